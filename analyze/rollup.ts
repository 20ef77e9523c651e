// The read half of retention (review/retention.ts writes it): what `keyfence prune` / nightly `--keep` rolled
// up into `source_rollup` before deleting events, read back as replay rows and last calls, so history older
// than the kept events still answers "first seen", "last seen", "unused for N days" and "is this key known".
import type { TimeWindow } from '../model/types.ts';
import { isoSeconds } from '../model/window.ts';
import { sqlString, type Store } from '../ingest/store.ts';
import type { SourceAggregate } from '../recommend/simulate.ts';

/** Whether the store was ever pruned (has a `source_rollup` table, or, over several databases, its view). */
export async function hasRollup(store: Store): Promise<boolean> {
  const rows = await store.query<{ n: number }>(
    `SELECT count(*) AS n FROM information_schema.tables WHERE table_name = 'source_rollup' AND table_catalog IN (current_database(), 'temp')`,
  );
  return (rows[0]?.n ?? 0) > 0;
}

/** The instant before which events were pruned (the latest cutoff), or null when never pruned. */
export async function prunedBefore(store: Store): Promise<string | null> {
  if (!(await hasRollup(store))) return null;
  const [row] = await store.query<{ cutoff: string | null }>('SELECT max(cutoff) AS cutoff FROM retention_log');
  return row?.cutoff ? isoSeconds(new Date(row.cutoff)) : null;
}

/**
 * Rolled-up rows whose pruned span overlaps `window`, as replay rows. A rollup row sums all its pruned history,
 * so over a window that starts inside the pruned span its calls and days are an upper bound; `lastSeen` and
 * `firstSeen` are exact, which is what "unused for N days", dormancy and "first seen" need.
 */
export async function loadRollupRows(store: Store, window: TimeWindow): Promise<SourceAggregate[]> {
  if (!(await hasRollup(store))) return [];
  const rows = await store.query<Record<string, unknown>>(`
    SELECT access_key_id AS "accessKeyId", key_kind AS "keyKind", source_kind AS "sourceKind", source_ip AS ip, vpc_id AS "vpcId", exempt,
      calls, denied_calls AS "deniedCalls", error_calls AS "errorCalls", sensitive_calls AS "sensitiveCalls", days,
      first_seen AS "firstSeen", last_seen AS "lastSeen"
    FROM source_rollup
    WHERE last_seen >= CAST(${sqlString(window.from)} AS TIMESTAMP) AND first_seen < CAST(${sqlString(window.to)} AS TIMESTAMP)
    ORDER BY "accessKeyId" NULLS FIRST, "sourceKind", "vpcId" NULLS FIRST, ip NULLS FIRST, exempt`);
  return rows.map((r) => ({
    accessKeyId: (r.accessKeyId as string | null) ?? null,
    keyKind: r.keyKind as SourceAggregate['keyKind'],
    sourceKind: r.sourceKind as SourceAggregate['sourceKind'],
    ip: (r.ip as string | null) ?? null,
    vpcId: (r.vpcId as string | null) ?? null,
    exempt: r.exempt === true,
    calls: Number(r.calls),
    deniedCalls: Number(r.deniedCalls),
    errorCalls: Number(r.errorCalls),
    sensitiveCalls: Number(r.sensitiveCalls),
    days: Number(r.days),
    firstSeen: isoSeconds(new Date(r.firstSeen as string)),
    lastSeen: isoSeconds(new Date(r.lastSeen as string)),
  }));
}

/**
 * Replay rows (events in the window) plus rolled-up rows for the part of the window before the prune cutoff.
 * A key × source present in both is summed (first/last seen widened): the pruned and kept spans are disjoint.
 */
export function mergeRollupRows(eventRows: readonly SourceAggregate[], rollupRows: readonly SourceAggregate[]): SourceAggregate[] {
  if (rollupRows.length === 0) return [...eventRows];
  const id = (r: SourceAggregate): string => [r.accessKeyId ?? '', r.keyKind, r.sourceKind, r.ip ?? '', r.vpcId ?? '', r.exempt ? '1' : '0'].join('\u0000');
  const merged = new Map<string, SourceAggregate>();
  for (const r of [...rollupRows, ...eventRows]) {
    const key = id(r);
    const m = merged.get(key);
    if (!m) {
      merged.set(key, { ...r });
      continue;
    }
    m.calls += r.calls;
    m.deniedCalls += r.deniedCalls;
    m.errorCalls += r.errorCalls;
    m.sensitiveCalls = (m.sensitiveCalls ?? 0) + (r.sensitiveCalls ?? 0);
    m.days += r.days;
    if (r.firstSeen < m.firstSeen) m.firstSeen = r.firstSeen;
    if (r.lastSeen > m.lastSeen) m.lastSeen = r.lastSeen;
  }
  return [...merged.values()].sort((a, b) => (id(a) < id(b) ? -1 : id(a) > id(b) ? 1 : 0));
}

/** Permanent keys' last call including pruned history (dormancy after a prune). */
export async function loadRollupLastSeen(store: Store): Promise<Map<string, string>> {
  if (!(await hasRollup(store))) return new Map();
  const rows = await store.query<{ key: string; last: string }>(`
    SELECT access_key_id AS key, max(last_seen) AS last FROM source_rollup
    WHERE access_key_id IS NOT NULL AND key_kind = 'permanent' GROUP BY 1`);
  return new Map(rows.map((r) => [r.key, isoSeconds(new Date(r.last))]));
}
