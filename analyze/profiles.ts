// Per-AccessKey source profiles: one aggregate SQL pass over the events (the part an engine such as SLS can
// compute remotely), then a pure fold of its rows into KeyProfile records (the part every engine shares).
import { parseAddress } from '../model/address.ts';
import { SENSITIVE_APIS } from '../model/acl-rules.ts';
import type { ExemptOnlySource, IpFamily, KeyKind, KeyProfile, SourceKind, SourceUsage, TimeWindow, VpcSourceUsage } from '../model/types.ts';
import { sqlString, type Store } from '../ingest/store.ts';

/** At most this many distinct service names are kept per source (sorted, first N). */
export const SERVICES_CAP = 20;
/** At most this many user agents are kept per source (distinct, sorted, first N). */
export const USER_AGENTS_CAP = 5;

/**
 * One row per (key, source, exempt) aggregate over the window: exactly what a remote engine (SLS analytic
 * SQL) computes (see `sourceAggregateSql`). The grouping, in plain words:
 * - only events with an AccessKey ID, in [window.from, window.to);
 * - only permanent keys, unless `keys` names keys explicitly (then those keys, whatever their kind);
 * - group by access key, key kind, source kind, source address, address family, VPC ID, and whether the
 *   service is exempt from ACLs;
 * - for STS keys and for `internal` / `service` / `invalid` sources the address, family and VPC ID are
 *   blanked (NULL) before grouping: such traffic is counted, never used as ACL material, so one row per
 *   (key, source kind, exempt) is enough;
 * - identity fields (`identityType`, `userName`, `accountId`) are the max() over the group.
 */
export interface SourceAggregateRow {
  accessKeyId: string;
  keyKind: KeyKind;
  identityType: string | null;
  userName: string | null;
  accountId: string | null;
  sourceKind: SourceKind;
  sourceIp: string | null;
  ipFamily: IpFamily | null;
  vpcId: string | null;
  /** The calls of this row went to services network ACLs do not govern. */
  exempt: boolean;
  calls: number;
  /** Distinct UTC days with at least one call. */
  days: number;
  firstSeen: string;
  lastSeen: string;
  /** Calls with an error code. */
  errorCalls: number;
  /** Calls refused by a network ACL (`acl_denied`). */
  deniedCalls: number;
  /** Calls to `SENSITIVE_APIS` (model/acl-rules.ts). */
  sensitiveCalls: number;
  /** Distinct service names, sorted (capped at SERVICES_CAP by buildProfiles). */
  services: string[];
  /** Distinct user agents, sorted, the first USER_AGENTS_CAP (frequency ranking cost more than the rest of the query). */
  userAgents: string[];
}

export interface ProfileQuery {
  window: TimeWindow;
  /** Only these keys (any kind). Without it: every permanent key seen in the window. */
  keys?: string[];
}

/**
 * The aggregate SQL, plain on purpose: a remote engine (SLS analytic SQL) computes the same columns.
 * Column names are the events table's (ingest/store.ts SCHEMA_SQL).
 */
export function sourceAggregateSql(query: ProfileQuery): string {
  const sensitive = SENSITIVE_APIS.map(sqlString).join(', ');
  const keyFilter = query.keys && query.keys.length > 0 ? `access_key_id IN (${query.keys.map(sqlString).join(', ')})` : `key_kind = 'permanent'`;
  const blankUnlessAddress = (column: string) => `CASE WHEN key_kind = 'sts' OR source_kind NOT IN ('public', 'vpc') THEN NULL ELSE ${column} END`;
  return `
SELECT
  access_key_id, key_kind, source_kind,
  ${blankUnlessAddress('source_ip')} AS source_ip,
  ${blankUnlessAddress('ip_family')} AS ip_family,
  ${blankUnlessAddress('vpc_id')} AS vpc_id,
  exempt,
  max(identity_type) AS identity_type, max(user_name) AS user_name, max(account_id) AS account_id,
  count(*) AS calls,
  count(DISTINCT CAST(event_time AS DATE)) AS days,
  min(event_time) AS first_seen, max(event_time) AS last_seen,
  count(error_code) AS error_calls,
  count_if(acl_denied) AS denied_calls,
  count_if(event_name IN (${sensitive})) AS sensitive_calls,
  list_sort(list(DISTINCT service_name)) AS services,
  list_slice(list_sort(list(DISTINCT user_agent)), 1, ${USER_AGENTS_CAP}) AS user_agents
FROM events
WHERE access_key_id IS NOT NULL
  AND event_time >= CAST(${sqlString(query.window.from)} AS TIMESTAMP)
  AND event_time < CAST(${sqlString(query.window.to)} AS TIMESTAMP)
  AND ${keyFilter}
GROUP BY ALL`;
}

// Reading a million rows value by value through the DuckDB binding costs seconds; one delimited text per
// slice of keys, split in JavaScript, costs a fraction of that. The separators are ASCII control characters
// that are removed from every free-text value first, so no value can forge a field.
const FIELD = '\x1f';
const RECORD = '\x1e';
const ITEM = '\x1d';
const WIRE_SLICES = 8;

function wireSql(aggregateSql: string): string {
  const clean = (x: string) => `translate(${x}, chr(29) || chr(30) || chr(31), '   ')`;
  const text = (x: string) => `coalesce(${clean(x)}, '')`;
  const iso = (x: string) => `strftime(${x}, '%Y-%m-%dT%H:%M:%SZ')`;
  const items = (x: string) => `array_to_string(list_transform(list_filter(${x}, v -> v IS NOT NULL), v -> ${clean('v')}), chr(29))`;
  const fields = [
    text('access_key_id'), 'key_kind', 'source_kind', text('source_ip'), `coalesce(CAST(ip_family AS VARCHAR), '')`, text('vpc_id'),
    `CASE WHEN exempt THEN '1' ELSE '' END`, text('identity_type'), text('user_name'), text('account_id'),
    'calls', 'days', iso('first_seen'), iso('last_seen'), 'error_calls', 'denied_calls', 'sensitive_calls',
    items('services'), items('user_agents'),
  ];
  return `SELECT string_agg(concat(${fields.join(', chr(31), ')}), chr(30)) AS wire
FROM (${aggregateSql}) GROUP BY hash(access_key_id) % ${WIRE_SLICES}`;
}

function parseWireRow(line: string): SourceAggregateRow {
  const f = line.split(FIELD);
  const orNull = (s: string | undefined) => (s ? s : null);
  const list = (s: string | undefined) => (s ? s.split(ITEM) : []);
  return {
    accessKeyId: f[0]!,
    keyKind: f[1] as KeyKind,
    sourceKind: f[2] as SourceKind,
    sourceIp: orNull(f[3]),
    ipFamily: f[4] === '4' ? 4 : f[4] === '6' ? 6 : null,
    vpcId: orNull(f[5]),
    exempt: f[6] === '1',
    identityType: orNull(f[7]),
    userName: orNull(f[8]),
    accountId: orNull(f[9]),
    calls: Number(f[10]),
    days: Number(f[11]),
    firstSeen: f[12]!,
    lastSeen: f[13]!,
    errorCalls: Number(f[14]),
    deniedCalls: Number(f[15]),
    sensitiveCalls: Number(f[16]),
    services: list(f[17]),
    userAgents: list(f[18]),
  };
}

/** The per-(key, source) aggregates of the window, in one pass over the events. Row order is unspecified. */
export async function loadSourceAggregates(store: Store, query: ProfileQuery): Promise<SourceAggregateRow[]> {
  const slices = await store.query<{ wire: string | null }>(wireSql(sourceAggregateSql(query)));
  const rows: SourceAggregateRow[] = [];
  for (const { wire } of slices) {
    if (!wire) continue;
    for (const line of wire.split(RECORD)) rows.push(parseWireRow(line));
  }
  return rows;
}

/** Per-key profiles for the window: `buildProfiles` over `loadSourceAggregates`. */
export async function loadProfiles(store: Store, query: ProfileQuery): Promise<KeyProfile[]> {
  return buildProfiles(await loadSourceAggregates(store, query));
}

/**
 * Folds aggregate rows into one profile per key, sorted by accessKeyId; sources sorted by VPC ID, family
 * and numeric address. Rules:
 * - STS keys: every call counts as `stsCalls`; they have no sources (never governed).
 * - `internal` / `service` / `invalid` sources are counted apart, never listed as sources.
 * - a public or VPC source seen on a governed service becomes a source, with its governed calls only;
 *   a source seen only on exempt services goes to `exemptOnlySources`.
 * - identity fields: the value carried by most calls (ties: smallest text), nulls ignored.
 */
export function buildProfiles(rows: readonly SourceAggregateRow[]): KeyProfile[] {
  const byKey = new Map<string, SourceAggregateRow[]>();
  for (const row of rows) {
    const list = byKey.get(row.accessKeyId);
    if (list) list.push(row);
    else byKey.set(row.accessKeyId, [row]);
  }
  return [...byKey.keys()].sort().map((key) => buildProfile(key, byKey.get(key)!));
}

function buildProfile(accessKeyId: string, rows: SourceAggregateRow[]): KeyProfile {
  const keyKind = weightedChoice(rows, (r) => r.keyKind) ?? 'permanent';
  const profile: KeyProfile = {
    accessKeyId,
    keyKind,
    identityType: weightedChoice(rows, (r) => r.identityType),
    userName: weightedChoice(rows, (r) => r.userName),
    accountId: weightedChoice(rows, (r) => r.accountId),
    firstSeen: rows.reduce((m, r) => (r.firstSeen < m ? r.firstSeen : m), rows[0]!.firstSeen),
    lastSeen: rows.reduce((m, r) => (r.lastSeen > m ? r.lastSeen : m), rows[0]!.lastSeen),
    totalCalls: 0,
    publicSources: [],
    vpcSources: [],
    exemptOnlySources: [],
    stsCalls: 0,
    internalCalls: 0,
    serviceCalls: 0,
    invalidSourceCalls: 0,
    deniedCalls: 0,
  };
  // Public/VPC sources, split into their governed row and their exempt row.
  const sources = new Map<string, { governed?: SourceAggregateRow; exempt?: SourceAggregateRow }>();
  for (const row of rows) {
    profile.totalCalls += row.calls;
    profile.deniedCalls += row.deniedCalls;
    if (keyKind === 'sts' || row.keyKind === 'sts') {
      profile.stsCalls += row.calls;
      continue;
    }
    const isAddressSource = (row.sourceKind === 'public' || row.sourceKind === 'vpc') && row.sourceIp !== null && row.ipFamily !== null;
    if (row.sourceKind === 'internal') profile.internalCalls += row.calls;
    else if (row.sourceKind === 'service') profile.serviceCalls += row.calls;
    else if (!isAddressSource || (row.sourceKind === 'vpc' && row.vpcId === null)) profile.invalidSourceCalls += row.calls;
    else {
      const id = `${row.sourceKind}|${row.vpcId ?? ''}|${row.sourceIp}`;
      const entry = sources.get(id) ?? {};
      if (row.exempt) entry.exempt = row;
      else entry.governed = row;
      sources.set(id, entry);
    }
  }
  for (const { governed, exempt } of sources.values()) {
    if (governed) {
      const usage = toUsage(governed);
      if (governed.sourceKind === 'vpc') profile.vpcSources.push({ vpcId: governed.vpcId!, ...usage });
      else profile.publicSources.push(usage);
    } else if (exempt) {
      profile.exemptOnlySources.push({ ip: exempt.sourceIp, vpcId: exempt.vpcId, calls: exempt.calls, services: exempt.services.slice(0, SERVICES_CAP) });
    }
  }
  profile.publicSources = sortByAddress(profile.publicSources, () => '');
  profile.vpcSources = sortByAddress(profile.vpcSources, (s: VpcSourceUsage) => s.vpcId);
  profile.exemptOnlySources = sortExemptOnly(profile.exemptOnlySources);
  return profile;
}

function toUsage(row: SourceAggregateRow): SourceUsage {
  return {
    ip: row.sourceIp!,
    family: row.ipFamily!,
    calls: row.calls,
    days: row.days,
    firstSeen: row.firstSeen,
    lastSeen: row.lastSeen,
    errorCalls: row.errorCalls,
    deniedCalls: row.deniedCalls,
    sensitiveCalls: row.sensitiveCalls,
    services: row.services.slice(0, SERVICES_CAP),
    userAgents: row.userAgents.slice(0, USER_AGENTS_CAP),
  };
}

/** The value most calls carry (nulls ignored; ties broken by the smaller text). */
function weightedChoice<T extends string>(rows: readonly SourceAggregateRow[], pick: (r: SourceAggregateRow) => T | null): T | null {
  const weights = new Map<T, number>();
  for (const r of rows) {
    const v = pick(r);
    if (v !== null) weights.set(v, (weights.get(v) ?? 0) + r.calls);
  }
  let best: T | null = null;
  let bestWeight = -1;
  for (const [v, w] of weights) {
    if (w > bestWeight || (w === bestWeight && best !== null && v < best)) {
      best = v;
      bestWeight = w;
    }
  }
  return best;
}

/** A sort key that orders addresses numerically within a family: IPv4 before IPv6. */
export function addressSortKey(ip: string, family: IpFamily): string {
  if (family === 4) {
    const octets = ip.split('.');
    if (octets.length === 4) return `4:${octets.map((o) => o.padStart(3, '0')).join('.')}`;
  }
  const parsed = parseAddress(ip);
  if (parsed) return `${parsed.family}:${parsed.value.toString(16).padStart(parsed.family === 4 ? 8 : 32, '0')}`;
  return `9:${ip}`;
}

function sortByAddress<T extends SourceUsage>(list: T[], group: (s: T) => string): T[] {
  const keyed = list.map((s) => ({ s, k: `${group(s)}\u0000${addressSortKey(s.ip, s.family)}` }));
  keyed.sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0));
  return keyed.map((e) => e.s);
}

function sortExemptOnly(list: ExemptOnlySource[]): ExemptOnlySource[] {
  const key = (s: ExemptOnlySource) => `${s.vpcId ?? ''}\u0000${s.ip ? addressSortKey(s.ip, s.ip.includes(':') ? 6 : 4) : ''}`;
  return list.map((s) => ({ s, k: key(s) })).sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0)).map((e) => e.s);
}

// ---------------------------------------------------------------- side summaries

/** Temporary (STS) credentials in the window, summarized: they are never governed by ACLs. */
export interface StsSummary {
  keys: number;
  calls: number;
  /** Per identity (type, user/role session name, account), most calls first, capped at 20. */
  identities: Array<{ identityType: string | null; userName: string | null; accountId: string | null; keys: number; calls: number }>;
}

export async function loadStsSummary(store: Store, query: { window: TimeWindow }): Promise<StsSummary> {
  const where = `access_key_id IS NOT NULL AND key_kind = 'sts'
    AND event_time >= CAST(${sqlString(query.window.from)} AS TIMESTAMP) AND event_time < CAST(${sqlString(query.window.to)} AS TIMESTAMP)`;
  const [total] = await store.query<{ keys: number; calls: number }>(`SELECT count(DISTINCT access_key_id) AS keys, count(*) AS calls FROM events WHERE ${where}`);
  // Role session names (`role:session`) vary per session: group by the role part.
  const identities = await store.query<StsSummary['identities'][number]>(`
    SELECT identity_type AS "identityType", split_part(user_name, ':', 1) AS "userName", account_id AS "accountId",
      count(DISTINCT access_key_id) AS keys, count(*) AS calls
    FROM events WHERE ${where}
    GROUP BY ALL ORDER BY calls DESC, "identityType" NULLS LAST, "userName" NULLS LAST, "accountId" NULLS LAST LIMIT 20`);
  return { keys: total?.keys ?? 0, calls: total?.calls ?? 0, identities: identities.map((r) => ({ ...r, userName: r.userName || null })) };
}

/** Calls per key, source and UTC day (governed public/VPC sources only): the timeline of the HTML report. */
export interface DailyActivityRow {
  accessKeyId: string;
  sourceKind: 'public' | 'vpc';
  sourceIp: string;
  vpcId: string | null;
  /** `YYYY-MM-DD` (UTC). */
  day: string;
  calls: number;
  errorCalls: number;
}

export async function loadDailyActivity(store: Store, query: ProfileQuery): Promise<DailyActivityRow[]> {
  const keyFilter = query.keys && query.keys.length > 0 ? `access_key_id IN (${query.keys.map(sqlString).join(', ')})` : `key_kind = 'permanent'`;
  const rows = await store.query<Record<string, unknown>>(`
    SELECT access_key_id AS "accessKeyId", source_kind AS "sourceKind", source_ip AS "sourceIp", vpc_id AS "vpcId",
      strftime(CAST(event_time AS DATE), '%Y-%m-%d') AS day, count(*) AS calls, count(error_code) AS "errorCalls"
    FROM events
    WHERE access_key_id IS NOT NULL AND key_kind <> 'sts' AND NOT exempt AND source_kind IN ('public', 'vpc') AND source_ip IS NOT NULL
      AND event_time >= CAST(${sqlString(query.window.from)} AS TIMESTAMP) AND event_time < CAST(${sqlString(query.window.to)} AS TIMESTAMP)
      AND ${keyFilter}
    GROUP BY ALL
    ORDER BY "accessKeyId", "sourceKind", "vpcId" NULLS FIRST, "sourceIp", day`);
  return rows.map((r) => ({
    accessKeyId: r.accessKeyId as string,
    sourceKind: r.sourceKind as 'public' | 'vpc',
    sourceIp: r.sourceIp as string,
    vpcId: (r.vpcId as string | null) ?? null,
    day: r.day as string,
    calls: Number(r.calls),
    errorCalls: Number(r.errorCalls),
  }));
}
