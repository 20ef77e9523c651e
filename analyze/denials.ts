// Calls a network ACL refused (AccessKeyId.AccessPolicyDenied / "denied due to access policy", flagged
// `acl_denied` at ingest), grouped by key and source, each with what the store knows of that source before.
import { sqlString, type Store } from '../ingest/store.ts';
import type { KeyKind, SourceKind, TimeWindow } from '../model/types.ts';

export interface DenialGroup {
  accessKeyId: string;
  keyKind: KeyKind;
  sourceKind: SourceKind;
  /** Address text (raw text when the source is not an address). */
  ip: string | null;
  vpcId: string | null;
  /** Some of the denied calls went to a service ACLs do not govern (then an ACL cannot be the cause). */
  exempt: boolean;
  deniedCalls: number;
  days: number;
  firstDenied: string;
  lastDenied: string;
  /** Sorted. */
  services: string[];
  /** Sorted, capped at 10. */
  eventNames: string[];
  errorCodes: string[];
  /** The earliest denied event, to look up in ActionTrail. */
  exampleEventId: string;
  /** The same key and source over the whole store: did it ever succeed? */
  history: {
    firstSeen: string;
    lastSeen: string;
    calls: number;
    /** Calls not refused by an ACL. */
    allowedCalls: number;
    lastAllowed: string | null;
    days: number;
  };
}

export interface DenialQuery {
  window: TimeWindow;
  keys?: string[];
}

export function denialsSql(query: DenialQuery): string {
  const keyFilter = query.keys && query.keys.length > 0 ? `AND access_key_id IN (${query.keys.map(sqlString).join(', ')})` : '';
  return `
WITH denied AS (
  SELECT access_key_id, any_value(key_kind) AS key_kind, source_kind, source_ip, vpc_id,
    bool_or(exempt) AS exempt,
    count(*) AS denied_calls, count(DISTINCT CAST(event_time AS DATE)) AS days,
    min(event_time) AS first_denied, max(event_time) AS last_denied,
    list_sort(list(DISTINCT service_name) FILTER (WHERE service_name IS NOT NULL)) AS services,
    list_slice(list_sort(list(DISTINCT event_name) FILTER (WHERE event_name IS NOT NULL)), 1, 10) AS event_names,
    list_sort(list(DISTINCT error_code) FILTER (WHERE error_code IS NOT NULL)) AS error_codes,
    arg_min(event_id, event_time) AS example_event_id
  FROM events
  WHERE acl_denied AND access_key_id IS NOT NULL
    AND event_time >= CAST(${sqlString(query.window.from)} AS TIMESTAMP)
    AND event_time < CAST(${sqlString(query.window.to)} AS TIMESTAMP)
    ${keyFilter}
  GROUP BY access_key_id, source_kind, source_ip, vpc_id
),
history AS (
  SELECT e.access_key_id, e.source_kind, e.source_ip, e.vpc_id,
    min(e.event_time) AS first_seen, max(e.event_time) AS last_seen, count(*) AS calls,
    count_if(NOT e.acl_denied) AS allowed_calls, max(e.event_time) FILTER (WHERE NOT e.acl_denied) AS last_allowed,
    count(DISTINCT CAST(e.event_time AS DATE)) AS days
  FROM events e
  SEMI JOIN denied d ON e.access_key_id = d.access_key_id AND e.source_kind = d.source_kind
    AND e.source_ip IS NOT DISTINCT FROM d.source_ip AND e.vpc_id IS NOT DISTINCT FROM d.vpc_id
  GROUP BY ALL
)
SELECT d.access_key_id AS "accessKeyId", d.key_kind AS "keyKind", d.source_kind AS "sourceKind", d.source_ip AS ip,
  d.vpc_id AS "vpcId", d.exempt, d.denied_calls AS "deniedCalls", d.days, d.first_denied AS "firstDenied",
  d.last_denied AS "lastDenied", d.services, d.event_names AS "eventNames", d.error_codes AS "errorCodes",
  d.example_event_id AS "exampleEventId",
  h.first_seen AS "firstSeen", h.last_seen AS "lastSeen", h.calls, h.allowed_calls AS "allowedCalls",
  h.last_allowed AS "lastAllowed", h.days AS "historyDays"
FROM denied d
JOIN history h ON h.access_key_id = d.access_key_id AND h.source_kind = d.source_kind
  AND h.source_ip IS NOT DISTINCT FROM d.source_ip AND h.vpc_id IS NOT DISTINCT FROM d.vpc_id
ORDER BY d.denied_calls DESC, d.access_key_id, d.vpc_id NULLS FIRST, d.source_ip NULLS FIRST`;
}

/** Denied calls in the window, grouped by key and source, most denied first. */
export async function loadDenials(store: Store, query: DenialQuery): Promise<DenialGroup[]> {
  const rows = await store.query<Record<string, unknown>>(denialsSql(query));
  return rows.map((r) => ({
    accessKeyId: r.accessKeyId as string,
    keyKind: r.keyKind as KeyKind,
    sourceKind: r.sourceKind as SourceKind,
    ip: (r.ip as string | null) ?? null,
    vpcId: (r.vpcId as string | null) ?? null,
    exempt: r.exempt === true,
    deniedCalls: Number(r.deniedCalls),
    days: Number(r.days),
    firstDenied: r.firstDenied as string,
    lastDenied: r.lastDenied as string,
    services: (r.services as string[] | null) ?? [],
    eventNames: (r.eventNames as string[] | null) ?? [],
    errorCodes: (r.errorCodes as string[] | null) ?? [],
    exampleEventId: r.exampleEventId as string,
    history: {
      firstSeen: r.firstSeen as string,
      lastSeen: r.lastSeen as string,
      calls: Number(r.calls),
      allowedCalls: Number(r.allowedCalls),
      lastAllowed: (r.lastAllowed as string | null) ?? null,
      days: Number(r.historyDays),
    },
  }));
}
