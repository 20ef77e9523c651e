// The aggregates a replay needs: one row per key × source kind × address × VPC × exempt over a window, with
// calls, first/last seen and active days. Matching against prefixes then happens once per distinct source
// (recommend/simulate.ts), never once per event.
import { sqlString, type Store } from '../ingest/store.ts';
import type { TimeWindow } from '../model/types.ts';
import { SENSITIVE_APIS } from '../model/acl-rules.ts';
import type { SourceAggregate } from '../recommend/simulate.ts';
import { hasRollup, loadRollupLastSeen } from './rollup.ts';
import { decimalIn, forEachWireRow, keyKindAt, sourceKindAt } from './wire-text.ts';

/** STS keys are folded into one pseudo key: each session has its own ID, and none is ever governed. */
export const STS_KEY_PLACEHOLDER = 'STS.*';

export interface ReplayQuery {
  window: TimeWindow;
  /** Only these keys; all when omitted. */
  keys?: string[];
}

/**
 * In plain words: events in [from, to); addresses (and VPC IDs) kept only for governed material (a permanent
 * key calling a governed service from a public or VPC address) and blanked otherwise, so ungoverned traffic
 * folds into one row per key and reason; STS keys folded into `STS.*`. Counts come back as DOUBLE and times as
 * ISO text: at a million rows, converting BIGINT and TIMESTAMP values to JS objects costs more than the query.
 * Unordered: every consumer sorts what it shows.
 *
 * One GROUP BY over the events (a quarter less CPU than a per-day pre-aggregate summed again): active days are
 * bits of an integer OR-ed over the group (day d of the window is bit d) while the window spans few enough
 * days, a DISTINCT count of days beyond; sensitive calls through `list_contains` over the constant list (an
 * `IN` list is planned as a join), which counts exactly the same calls.
 */
export function replaySql(query: ReplayQuery): string {
  const keyFilter = query.keys && query.keys.length > 0 ? `AND access_key_id IN (${query.keys.map(sqlString).join(', ')})` : '';
  const governed = `key_kind = 'permanent' AND NOT exempt AND source_kind IN ('public', 'vpc')`;
  return `
SELECT
  CASE WHEN key_kind = 'sts' THEN '${STS_KEY_PLACEHOLDER}' ELSE access_key_id END AS "accessKeyId",
  key_kind AS "keyKind", source_kind AS "sourceKind",
  CASE WHEN ${governed} THEN source_ip END AS ip,
  CASE WHEN ${governed} AND source_kind = 'vpc' THEN vpc_id END AS "vpcId",
  exempt,
  CAST(count(*) AS DOUBLE) AS calls, CAST(count_if(acl_denied) AS DOUBLE) AS "deniedCalls", CAST(count(error_code) AS DOUBLE) AS "errorCalls",
  CAST(count_if(list_contains([${SENSITIVE_APIS.map(sqlString).join(', ')}], event_name)) AS DOUBLE) AS "sensitiveCalls",
  CAST(${activeDaysSql(query.window)} AS DOUBLE) AS days,
  strftime(min(event_time), '%Y-%m-%dT%H:%M:%SZ') AS "firstSeen", strftime(max(event_time), '%Y-%m-%dT%H:%M:%SZ') AS "lastSeen"
FROM events
WHERE event_time >= CAST(${sqlString(query.window.from)} AS TIMESTAMP)
  AND event_time < CAST(${sqlString(query.window.to)} AS TIMESTAMP)
  ${keyFilter}
GROUP BY ALL`;
}

const DAY_MS = 86_400_000;

/**
 * Distinct UTC days with a call in the group: a day mask when the window's days surely fit in an integer's
 * bits (bit 0 is the window's first day as DuckDB reads the bound, so no event of the window shifts below 0).
 */
export function activeDaysSql(window: TimeWindow): string {
  const spanDays = Math.ceil((Date.parse(window.to) - Date.parse(window.from)) / DAY_MS) + 2; // +2: partial first and last days
  const mask = spanDays <= 63 ? 'BIGINT' : spanDays <= 127 ? 'HUGEINT' : null;
  if (!mask || !(spanDays > 0)) return 'count(DISTINCT CAST(event_time AS DATE))';
  const firstDay = `CAST(CAST(${sqlString(window.from)} AS TIMESTAMP) AS DATE)`;
  return `bit_count(bit_or(CAST(1 AS ${mask}) << CAST(CAST(event_time AS DATE) - ${firstDay} AS ${mask})))`;
}

/** Fields per row in a key's text (the key ID is the row's own column). */
const WIRE_FIELDS = 12;

/**
 * The window's traffic as replay rows (see `replaySql`). The rows cross from DuckDB as one text per key (fields
 * split by \x1f, rows by \x1e; counts as integers): converting each value to a JS value one by one costs about
 * five times more than the query at a million rows. The text is read in place: only the addresses, VPC IDs
 * and times are cut out; kinds are matched to literals, counts parsed from their digits. The key ID is a
 * column, never in the text. Addresses are normalized by ingest and VPC IDs are the vendor's: neither carries
 * the separators, which the field and row counts check.
 */
export async function loadReplayRows(store: Store, query: ReplayQuery): Promise<SourceAggregate[]> {
  const int = (x: string) => `CAST(${x} AS BIGINT)`;
  const packed = `
SELECT "accessKeyId" AS key, count(*) AS rows,
  string_agg(concat_ws(chr(31), "keyKind", "sourceKind", coalesce(ip, ''), coalesce("vpcId", ''), CASE WHEN exempt THEN '1' ELSE '0' END,
    ${int('calls')}, ${int('"deniedCalls"')}, ${int('"errorCalls"')}, ${int('"sensitiveCalls"')}, ${int('days')}, "firstSeen", "lastSeen"), chr(30)) AS wire
FROM (${replaySql(query)})
GROUP BY "accessKeyId"`;
  const keys = await store.query<{ key: string | null; rows: number; wire: string }>(packed);
  const out: SourceAggregate[] = [];
  for (const { key, rows, wire } of keys) {
    if (readWire(key, wire, out) !== rows) throw new Error(`replay rows of key ${key} could not be read back: a separator inside a value (analyze/replay.ts)`);
  }
  return out;
}

/** Appends one key's rows to `out`; returns how many it read (-1 when a row has the wrong number of fields). */
function readWire(accessKeyId: string | null, wire: string, out: SourceAggregate[]): number {
  return forEachWireRow(wire, WIRE_FIELDS, (at, end) => {
    out.push({
      accessKeyId,
      keyKind: keyKindAt(wire, at[0]!, at[1]! - 1),
      sourceKind: sourceKindAt(wire, at[1]!, at[2]! - 1),
      ip: at[3]! - at[2]! > 1 ? wire.slice(at[2], at[3]! - 1) : null,
      vpcId: at[4]! - at[3]! > 1 ? wire.slice(at[3], at[4]! - 1) : null,
      exempt: wire.charCodeAt(at[4]!) === 49,
      calls: decimalIn(wire, at[5]!, at[6]! - 1),
      deniedCalls: decimalIn(wire, at[6]!, at[7]! - 1),
      errorCalls: decimalIn(wire, at[7]!, at[8]! - 1),
      sensitiveCalls: decimalIn(wire, at[8]!, at[9]! - 1),
      days: decimalIn(wire, at[9]!, at[10]! - 1),
      firstSeen: wire.slice(at[10], at[11]! - 1),
      lastSeen: wire.slice(at[11], end),
    });
  });
}

/** Last call per permanent key over the whole store, pruned history (the rollup) included (dormancy). */
export async function loadKeyLastSeen(store: Store): Promise<Map<string, string>> {
  const rows = await store.query<{ key: string; last: string }>(`
    SELECT access_key_id AS key, max(event_time) AS last FROM events
    WHERE access_key_id IS NOT NULL AND key_kind = 'permanent' GROUP BY 1`);
  const lastSeen = new Map(rows.map((r) => [r.key, r.last]));
  // Kept events are all newer than pruned ones: the rollup only speaks for keys with no kept event.
  for (const [key, last] of await loadRollupLastSeen(store)) if (!lastSeen.has(key)) lastSeen.set(key, last);
  return lastSeen;
}

/**
 * The AccessKey IDs the store has seen, among `candidates` when given (validating ACL files: an unknown key is
 * a typo or the wrong store). Keys whose every event was pruned count as seen: the rollup holds them.
 */
export async function loadKnownKeys(store: Store, candidates?: readonly string[]): Promise<Set<string>> {
  if (candidates && candidates.length === 0) return new Set();
  const filter = candidates ? `access_key_id IN (${candidates.map(sqlString).join(', ')})` : 'access_key_id IS NOT NULL';
  const pruned = (await hasRollup(store)) ? ` UNION SELECT access_key_id AS key FROM source_rollup WHERE ${filter} AND key_kind <> 'sts'` : '';
  const rows = await store.query<{ key: string }>(`SELECT DISTINCT access_key_id AS key FROM events WHERE ${filter}${pruned}`);
  return new Set(rows.map((r) => r.key));
}
