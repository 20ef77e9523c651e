// The aggregates a replay needs: one row per key × source kind × address × VPC × exempt over a window, with
// calls, first/last seen and active days. Matching against prefixes then happens once per distinct source
// (recommend/simulate.ts), never once per event.
import { sqlString, type Store } from '../ingest/store.ts';
import type { KeyKind, SourceKind, TimeWindow } from '../model/types.ts';
import { SENSITIVE_APIS } from '../model/acl-rules.ts';
import type { SourceAggregate } from '../recommend/simulate.ts';
import { hasRollup, loadRollupLastSeen } from './rollup.ts';

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
function activeDaysSql(window: TimeWindow): string {
  const spanDays = Math.ceil((Date.parse(window.to) - Date.parse(window.from)) / DAY_MS) + 2; // +2: partial first and last days
  const mask = spanDays <= 63 ? 'BIGINT' : spanDays <= 127 ? 'HUGEINT' : null;
  if (!mask || !(spanDays > 0)) return 'count(DISTINCT CAST(event_time AS DATE))';
  const firstDay = `CAST(CAST(${sqlString(window.from)} AS TIMESTAMP) AS DATE)`;
  return `bit_count(bit_or(CAST(1 AS ${mask}) << CAST(CAST(event_time AS DATE) - ${firstDay} AS ${mask})))`;
}

/** Rows packed per text chunk (see loadReplayRows). */
const PACK_ROWS = 20_000;

/**
 * The window's traffic as replay rows (see `replaySql`). The rows cross from DuckDB packed as text, a chunk of
 * rows per value (fields split by \x1f, rows by \x1e): converting each value to a JS value one by one costs
 * about five times more than the query at a million rows. Key IDs are the only free text: separators in them
 * (never seen in real IDs) become '?'.
 */
export async function loadReplayRows(store: Store, query: ReplayQuery): Promise<SourceAggregate[]> {
  const packed = `
SELECT string_agg(line, chr(30)) AS chunk FROM (
  SELECT concat_ws(chr(31), coalesce(translate("accessKeyId", chr(30) || chr(31), '??'), ''), "keyKind", "sourceKind",
      coalesce(ip, ''), coalesce("vpcId", ''), CASE WHEN exempt THEN '1' ELSE '0' END, calls, "deniedCalls", "errorCalls",
      "sensitiveCalls", days, "firstSeen", "lastSeen") AS line,
    (row_number() OVER ()) // ${PACK_ROWS} AS part
  FROM (${replaySql(query)})
) GROUP BY part`;
  const rows = await store.query<{ chunk: string | null }>(packed);
  const out: SourceAggregate[] = [];
  for (const { chunk } of rows) {
    if (!chunk) continue;
    for (const line of chunk.split('\x1e')) {
      const f = line.split('\x1f');
      out.push({
        accessKeyId: f[0] || null,
        keyKind: f[1] as KeyKind,
        sourceKind: f[2] as SourceKind,
        ip: f[3] || null,
        vpcId: f[4] || null,
        exempt: f[5] === '1',
        calls: Number(f[6]),
        deniedCalls: Number(f[7]),
        errorCalls: Number(f[8]),
        sensitiveCalls: Number(f[9]),
        days: Number(f[10]),
        firstSeen: f[11]!,
        lastSeen: f[12]!,
      });
    }
  }
  return out;
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
