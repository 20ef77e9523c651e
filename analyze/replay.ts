// The aggregates a replay needs: one row per key × source kind × address × VPC × exempt over a window, with
// calls, first/last seen and active days. Matching against prefixes then happens once per distinct source
// (recommend/simulate.ts), never once per event.
import { sqlString, type Store } from '../ingest/store.ts';
import type { KeyKind, SourceKind, TimeWindow } from '../model/types.ts';
import { SENSITIVE_APIS } from '../model/acl-rules.ts';
import type { SourceAggregate } from '../recommend/simulate.ts';

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
 * pre-aggregate (cheaper than count(DISTINCT) on the event level).
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
  sum(calls) AS calls, sum(denied) AS "deniedCalls", sum(errors) AS "errorCalls", sum(sensitive) AS "sensitiveCalls", count(*) AS days,
  min(first_seen) AS "firstSeen", max(last_seen) AS "lastSeen"
FROM per_day
GROUP BY key_id, key_kind, source_kind, ip, vpc, exempt
ORDER BY "accessKeyId" NULLS FIRST, "sourceKind", "vpcId" NULLS FIRST, ip NULLS FIRST, exempt`;
}

/** The window's traffic as replay rows (see `replaySql`). */
export async function loadReplayRows(store: Store, query: ReplayQuery): Promise<SourceAggregate[]> {
  const reader = await store.connection.runAndReadAll(replaySql(query));
  // Columnar read: at millions of rows, row objects cost more than the query.
  const cols = reader.getColumnsJS();
  const n = reader.currentRowCount;
  const [key, keyKind, sourceKind, ip, vpcId, exempt, calls, denied, errors, sensitive, days, first, last] = cols as unknown[][];
  const out: SourceAggregate[] = new Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = {
      accessKeyId: (key![i] as string | null) ?? null,
      keyKind: keyKind![i] as KeyKind,
      sourceKind: sourceKind![i] as SourceKind,
      ip: (ip![i] as string | null) ?? null,
      vpcId: (vpcId![i] as string | null) ?? null,
      exempt: exempt![i] === true,
      calls: Number(calls![i]),
      deniedCalls: Number(denied![i]),
      errorCalls: Number(errors![i]),
      sensitiveCalls: Number(sensitive![i]),
      days: Number(days![i]),
      firstSeen: isoTime(first![i]),
      lastSeen: isoTime(last![i]),
    };
  }
  return out;
}

function isoTime(v: unknown): string {
  if (v instanceof Date) return v.toISOString().replace(/\.\d{3}Z$/, 'Z');
  return String(v);
}

/** Last call per permanent key over the whole store (dormancy). */
export async function loadKeyLastSeen(store: Store): Promise<Map<string, string>> {
  const rows = await store.query<{ key: string; last: string }>(`
    SELECT access_key_id AS key, max(event_time) AS last FROM events
    WHERE access_key_id IS NOT NULL AND key_kind = 'permanent' GROUP BY 1`);
  return new Map(rows.map((r) => [r.key, r.last]));
}

/**
 * The AccessKey IDs the store has seen, among `candidates` when given (validating ACL files: an unknown key is
 * a typo or the wrong store).
 */
export async function loadKnownKeys(store: Store, candidates?: readonly string[]): Promise<Set<string>> {
  if (candidates && candidates.length === 0) return new Set();
  const filter = candidates ? `access_key_id IN (${candidates.map(sqlString).join(', ')})` : 'access_key_id IS NOT NULL';
  const rows = await store.query<{ key: string }>(`SELECT DISTINCT access_key_id AS key FROM events WHERE ${filter}`);
  return new Set(rows.map((r) => r.key));
}
