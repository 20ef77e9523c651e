// The window an analysis covers, resolved against the store: windows count back from the newest event,
// so an imported history behaves like a live one (see model/window.ts).
import { StoreError, UsageError } from '../model/errors.ts';
import type { TimeWindow } from '../model/types.ts';
import { isoSeconds, parseDuration, parseInstant, resolveWindow } from '../model/window.ts';
import type { Store } from '../ingest/store.ts';

/** What the command line asked for: a lookback (`30d`), or explicit bounds, or nothing (the default lookback). */
export interface WindowRequest {
  since?: string;
  from?: string;
  to?: string;
}

/** The time of the newest event in the store, or null when it holds none. */
export async function newestEventTime(store: Store): Promise<Date | null> {
  const [row] = await store.query<{ newest: string | null }>('SELECT max(event_time) AS newest FROM events');
  return row?.newest ? new Date(row.newest) : null;
}

/** The oldest and newest event times, for messages that say what the store does hold. */
export async function storeSpan(store: Store): Promise<{ oldest: string; newest: string; events: number } | null> {
  const [row] = await store.query<{ oldest: string | null; newest: string | null; events: number }>(
    'SELECT min(event_time) AS oldest, max(event_time) AS newest, count(*) AS events FROM events',
  );
  if (!row?.newest || !row.oldest) return null;
  return { oldest: isoSeconds(new Date(row.oldest)), newest: isoSeconds(new Date(row.newest)), events: row.events };
}

/**
 * The window [from, to) to analyze. With nothing given, `defaultLookback` back from just after the newest
 * event; `since` replaces the lookback (and may be combined with `to`); `from`/`to` override.
 * Throws UsageError for unparsable or contradictory flags and StoreError for a store with no events.
 */
export async function resolveStoreWindow(store: Store, request: WindowRequest, defaultLookback = '30d'): Promise<TimeWindow> {
  if (request.since !== undefined && request.from !== undefined) {
    throw new UsageError('--since and --from contradict each other', { hint: 'give a lookback (--since 30d) or explicit bounds (--from … [--to …]), not both' });
  }
  const lookbackText = request.since ?? defaultLookback;
  const lookbackMs = parseDuration(lookbackText);
  if (lookbackMs === null) {
    throw new UsageError(`--since ${JSON.stringify(lookbackText)} is not a duration`, { hint: 'use e.g. 30d, 12h, 2w, 90m' });
  }
  const from = parseBound('--from', request.from);
  const to = parseBound('--to', request.to);
  if (from && to && from.getTime() >= to.getTime()) {
    throw new UsageError(`--from ${request.from} is not before --to ${request.to}`, { hint: 'the window is [from, to): from must be earlier than to' });
  }
  const newest = await newestEventTime(store);
  if (!newest) {
    throw new StoreError(`the store ${store.paths.join(', ')} holds no events`, { hint: 'run `keyfence ingest …` first, or pass the right --db' });
  }
  return resolveWindow(newest, lookbackMs, { from, to });
}

function parseBound(flag: string, text: string | undefined): Date | null {
  if (text === undefined) return null;
  const d = parseInstant(text);
  if (!d) throw new UsageError(`${flag} ${JSON.stringify(text)} is not a date`, { hint: 'use ISO 8601, e.g. 2026-11-01 or 2026-11-01T00:00:00Z' });
  return d;
}
