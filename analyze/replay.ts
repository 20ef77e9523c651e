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
 * folds into one row per key and reason; STS keys folded into `STS.*`; days counted through a per-day
 * pre-aggregate. Counts come back as DOUBLE and times as ISO text: at a million rows, converting BIGINT and
 * TIMESTAMP values to JS objects costs more than the query. Unordered: every consumer sorts what it shows.
 */
export function replaySql(query: ReplayQuery): string {
  const keyFilter = query.keys && query.keys.length > 0 ? `AND access_key_id IN (${query.keys.map(sqlString).join(', ')})` : '';
  const governed = `key_kind = 'permanent' AND NOT exempt AND source_kind IN ('public', 'vpc')`;
  return `
WITH per_day AS (
  SELECT
    CASE WHEN key_kind = 'sts' THEN '${STS_KEY_PLACEHOLDER}' ELSE access_key_id END AS key_id,
    key_kind, source_kind,
    CASE WHEN ${governed} THEN source_ip END AS ip,
    CASE WHEN ${governed} AND source_kind = 'vpc' THEN vpc_id END AS vpc,
    exempt,
    CAST(event_time AS DATE) AS day,
    count(*) AS calls, count_if(acl_denied) AS denied, count(error_code) AS errors,
    count_if(event_name IN (${SENSITIVE_APIS.map(sqlString).join(', ')})) AS sensitive,
    min(event_time) AS first_seen, max(event_time) AS last_seen
  FROM events
  WHERE event_time >= CAST(${sqlString(query.window.from)} AS TIMESTAMP)
    AND event_time < CAST(${sqlString(query.window.to)} AS TIMESTAMP)
    ${keyFilter}
  GROUP BY ALL
)
SELECT key_id AS "accessKeyId", key_kind AS "keyKind", source_kind AS "sourceKind", ip, vpc AS "vpcId", exempt,
  CAST(sum(calls) AS DOUBLE) AS calls, CAST(sum(denied) AS DOUBLE) AS "deniedCalls", CAST(sum(errors) AS DOUBLE) AS "errorCalls",
  CAST(sum(sensitive) AS DOUBLE) AS "sensitiveCalls", CAST(count(*) AS DOUBLE) AS days,
  strftime(min(first_seen), '%Y-%m-%dT%H:%M:%SZ') AS "firstSeen", strftime(max(last_seen), '%Y-%m-%dT%H:%M:%SZ') AS "lastSeen"
FROM per_day
GROUP BY key_id, key_kind, source_kind, ip, vpc, exempt`;
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
