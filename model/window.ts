// Time windows count back from the newest event in the store, so an imported history behaves like a live one.
import type { TimeWindow } from './types.ts';

const UNIT_MS: Record<string, number> = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 };

/** Parses `30d`, `12h`, `2w`, `90m` into milliseconds, or returns null. */
export function parseDuration(text: string): number | null {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([mhdw])\s*$/i.exec(text);
  if (!m) return null;
  const ms = Number(m[1]) * UNIT_MS[m[2]!.toLowerCase()]!;
  return ms > 0 ? ms : null;
}

/** Parses an ISO date or date-time as UTC, or returns null. */
export function parseInstant(text: string): Date | null {
  const s = /^\d{4}-\d{2}-\d{2}$/.test(text) ? `${text}T00:00:00Z` : text;
  const d = new Date(s);
  return Number.isNaN(d.getTime()) ? null : d;
}

export function isoSeconds(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

const dayPrefixes = new Map<number, string>();
let clockTexts: string[] | null = null;

/**
 * `isoSeconds` of a whole number of seconds since 1970 (what analyze's aggregate text carries): the day's
 * `YYYY-MM-DDT` and the second's `HH:MM:SSZ` come from tables, so a million sources cost no Date each.
 */
export function isoFromEpochSeconds(seconds: number): string {
  if (!Number.isInteger(seconds)) return isoSeconds(new Date(Math.floor(seconds) * 1000));
  const day = Math.floor(seconds / 86_400);
  let prefix = dayPrefixes.get(day);
  if (prefix === undefined) {
    if (dayPrefixes.size >= 100_000) dayPrefixes.clear();
    prefix = isoSeconds(new Date(day * 86_400_000)).slice(0, -9);
    dayPrefixes.set(day, prefix);
  }
  clockTexts ??= Array.from({ length: 86_400 }, (_, s) => isoSeconds(new Date(s * 1000)).slice(-9));
  return prefix + clockTexts[seconds - day * 86_400]!;
}

/**
 * The window [from, to) to analyze. `to` defaults to just after the newest event; `from` to `to - lookback`.
 * Explicit `from`/`to` override the lookback.
 */
export function resolveWindow(newestEvent: Date, lookbackMs: number, explicit: { from?: Date | null; to?: Date | null } = {}): TimeWindow {
  const to = explicit.to ?? new Date(newestEvent.getTime() + 1000);
  const from = explicit.from ?? new Date(to.getTime() - lookbackMs);
  return { from: isoSeconds(from), to: isoSeconds(to) };
}
