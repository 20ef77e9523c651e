// Per-AccessKey source profiles: one aggregate SQL pass over the events (the part an engine such as SLS can
// compute remotely), then a pure fold of its rows into KeyProfile records (the part every engine shares).
import { parseAddress } from '../model/address.ts';
import { isoFromEpochSeconds } from '../model/window.ts';
import { SENSITIVE_APIS } from '../model/acl-rules.ts';
import type { IpFamily, KeyKind, KeyProfile, SourceKind, SourceUsage, TimeWindow, VpcSourceUsage } from '../model/types.ts';
import { PublicSourceRecord, VpcSourceRecord } from '../model/source-usage.ts';
import { sqlString, type Store } from '../ingest/store.ts';
import { decimalIn, sourceKindAt } from './wire-text.ts';

/** At most this many distinct service names are kept per source (sorted, first N). */
export const SERVICES_CAP = 20;
/** At most this many user agents are kept per source (most calls first, ties by text). */
export const USER_AGENTS_CAP = 5;

/**
 * One row per (key, source, exempt) aggregate over the window: exactly what a remote engine (SLS analytic
 * SQL) computes (see `sourceAggregateSql`, the reference query). The grouping, in plain words:
 * - only events with an AccessKey ID, in [window.from, window.to);
 * - only permanent keys, unless `keys` names keys explicitly (then those keys, whatever their kind);
 * - group by access key, key kind, source kind, source address, address family, VPC ID, and whether the
 *   service is exempt from ACLs;
 * - for STS keys and for `internal` / `service` / `invalid` sources the address, family and VPC ID are
 *   blanked (NULL) before grouping: such traffic is counted, never used as ACL material, so one row per
 *   (key, source kind, exempt) is enough;
 * - identity fields (`identityType`, `userName`, `accountId`) are the max() over the key's events in scope
 *   (`keyIdentitySql`): a key has one owner, and taking them per key saves a third of the query.
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
  /** User agents, most calls first (ties by text), at most USER_AGENTS_CAP. */
  userAgents: string[];
}

export interface ProfileQuery {
  window: TimeWindow;
  /** Only these keys (any kind). Without it: every permanent key seen in the window. */
  keys?: string[];
  /**
   * False: every source's `userAgents` is empty, and the aggregate has one grouping level instead of two
   * (recommend never reads user agents).
   */
  userAgents?: boolean;
}

/** The events in scope: an AccessKey, inside [from, to), permanent keys or the keys named. */
/** The calls a profile query reads: with an AccessKey ID, in the window, of the keys asked for (default: permanent keys). */
export function scopeSql(query: ProfileQuery): string {
  const keyFilter = query.keys && query.keys.length > 0 ? `access_key_id IN (${query.keys.map(sqlString).join(', ')})` : `key_kind = 'permanent'`;
  return `access_key_id IS NOT NULL
  AND event_time >= CAST(${sqlString(query.window.from)} AS TIMESTAMP)
  AND event_time < CAST(${sqlString(query.window.to)} AS TIMESTAMP)
  AND ${keyFilter}`;
}

const blankUnlessAddress = (column: string) => `CASE WHEN key_kind = 'sts' OR source_kind NOT IN ('public', 'vpc') THEN NULL ELSE ${column} END`;

/** A source's identity in the aggregate: key, kinds, address, VPC and exempt flag (addresses only for ACL material). */
export const GROUP_SELECT = `access_key_id, key_kind, source_kind,
    ${blankUnlessAddress('source_ip')} AS source_ip,
    ${blankUnlessAddress('ip_family')} AS ip_family,
    ${blankUnlessAddress('vpc_id')} AS vpc_id,
    exempt`;

/**
 * The aggregate in plain SQL: the reference a remote engine (SLS analytic SQL) reproduces, and what
 * `loadSourceAggregates` computes (faster: see `AggregatePlan`). Column names are the events table's.
 * Two levels: per (source, user agent) first, so the user agents can be ranked by calls (most first, ties by
 * text) without a second scan; then per source.
 */
export function sourceAggregateSql(query: ProfileQuery): string {
  const sensitive = SENSITIVE_APIS.map(sqlString).join(', ');
  return `
SELECT
  access_key_id, key_kind, source_kind, source_ip, ip_family, vpc_id, exempt,
  sum(calls) AS calls,
  length(list_distinct(flatten(list(days)))) AS days,
  min(first_seen) AS first_seen, max(last_seen) AS last_seen,
  sum(error_calls) AS error_calls,
  sum(denied_calls) AS denied_calls,
  sum(sensitive_calls) AS sensitive_calls,
  list_sort(list_distinct(flatten(list(services)))) AS services,
  list_slice(list(user_agent ORDER BY calls DESC, user_agent) FILTER (WHERE user_agent IS NOT NULL), 1, ${USER_AGENTS_CAP}) AS user_agents
FROM (
  SELECT
    ${GROUP_SELECT},
    user_agent,
    count(*) AS calls,
    list(DISTINCT CAST(event_time AS DATE)) AS days,
    min(event_time) AS first_seen, max(event_time) AS last_seen,
    count(error_code) AS error_calls,
    count_if(acl_denied) AS denied_calls,
    count_if(event_name IN (${sensitive})) AS sensitive_calls,
    list(DISTINCT service_name) AS services
  FROM events
  WHERE ${scopeSql(query)}
  GROUP BY ALL
)
GROUP BY ALL`;
}

/** Identity per key: max() of each field over the key's events in scope. */
export function keyIdentitySql(query: ProfileQuery): string {
  return `SELECT access_key_id, max(identity_type) AS identity_type, max(user_name) AS user_name, max(account_id) AS account_id
FROM events WHERE ${scopeSql(query)} GROUP BY access_key_id`;
}

/**
 * How the local engine computes the reference aggregate faster (CPU per million events, measured):
 * - DuckDB's DISTINCT aggregates cost about as much as the rest of the query (+0.45 s each). Distinct days and
 *   services are small sets, so they are bits of an integer OR-ed over the group: day d of the window is bit d,
 *   service i of the window's sorted services is bit i. With more than the widest integer holds, the plain
 *   DISTINCT lists are used.
 * - An ordered list aggregate is dearer still: user agents come back unordered with their calls and are
 *   ranked in JavaScript (few per source), as one text of `calls agent` items: two lists (agents, calls)
 *   joined into text per row cost ~8 % more of the whole query (3 M events, one thread).
 * - `event_name IN (…23 names)` is planned as a join against the list and cost a sixth of the aggregate;
 *   `list_contains` over the same constant list gives the same answer (NULL is never counted) for a tenth of it.
 */
export interface AggregatePlan {
  /** First UTC day of the window (`YYYY-MM-DD`): bit 0 of the day mask. */
  firstDay: string;
  /** Integer type of the day mask, or null for DISTINCT day lists. */
  dayMask: MaskType | null;
  /** The window's distinct service names, sorted: bit i is services[i]. Null for DISTINCT lists. */
  services: string[] | null;
  serviceMask: MaskType | null;
}

type MaskType = 'BIGINT' | 'HUGEINT';
const MASK_BITS: Record<MaskType, number> = { BIGINT: 63, HUGEINT: 127 };
const DAY_MS = 86_400_000;

function maskTypeFor(n: number): MaskType | null {
  return n <= MASK_BITS.BIGINT ? 'BIGINT' : n <= MASK_BITS.HUGEINT ? 'HUGEINT' : null;
}

async function planAggregate(store: Store, query: ProfileQuery): Promise<AggregatePlan> {
  const firstDay = query.window.from.slice(0, 10);
  const days = Math.floor((Date.parse(query.window.to) - Date.parse(`${firstDay}T00:00:00Z`)) / DAY_MS) + 1;
  const rows = await store.query<{ s: string }>(`SELECT DISTINCT service_name AS s FROM events WHERE ${scopeSql(query)} AND service_name IS NOT NULL`);
  const services = rows.map((r) => r.s).sort(compareText);
  const serviceMask = maskTypeFor(services.length);
  return { firstDay, dayMask: maskTypeFor(days), services: serviceMask ? services : null, serviceMask };
}

function plannedAggregateSql(query: ProfileQuery, plan: AggregatePlan): string {
  const sensitive = SENSITIVE_APIS.map(sqlString).join(', ');
  const [innerDays, outerDays] = plan.dayMask
    ? [
        `bit_or(CAST(1 AS ${plan.dayMask}) << CAST(CAST(event_time AS DATE) - DATE ${sqlString(plan.firstDay)} AS ${plan.dayMask}))`,
        'bit_count(bit_or(days))',
      ]
    : ['list(DISTINCT CAST(event_time AS DATE))', 'length(list_distinct(flatten(list(days))))'];
  const [innerServices, outerServices] = plan.serviceMask && plan.services
    ? [
        `bit_or(CAST(1 AS ${plan.serviceMask}) << CAST(list_position([${plan.services.map(sqlString).join(', ')}], service_name) - 1 AS ${plan.serviceMask}))`,
        'CAST(bit_or(services) AS VARCHAR)',
      ]
    : ['list(DISTINCT service_name)', 'list_sort(list_distinct(flatten(list(services))))'];
  // The per-call counts, over the events of one group.
  const counts = (days: string, services: string): string => `count(*) AS calls,
    ${days} AS days,
    min(event_time) AS first_seen, max(event_time) AS last_seen,
    count(error_code) AS error_calls,
    count_if(acl_denied) AS denied_calls,
    count_if(list_contains([${sensitive}], event_name)) AS sensitive_calls,
    ${services} AS services`;
  if (query.userAgents === false) {
    // One grouping level: the user-agent level only exists to rank agents.
    const days = plan.dayMask ? `bit_count(${innerDays})` : 'count(DISTINCT CAST(event_time AS DATE))';
    const services = plan.serviceMask && plan.services ? `CAST(${innerServices} AS VARCHAR)` : 'list_sort(list(DISTINCT service_name))';
    return `
SELECT ${GROUP_SELECT}, ${counts(days, services)}, '' AS user_agent_items
FROM events
WHERE ${scopeSql(query)}
GROUP BY ALL`;
  }
  return `
SELECT
  access_key_id, key_kind, source_kind, source_ip, ip_family, vpc_id, exempt,
  sum(calls) AS calls,
  ${outerDays} AS days,
  min(first_seen) AS first_seen, max(last_seen) AS last_seen,
  sum(error_calls) AS error_calls,
  sum(denied_calls) AS denied_calls,
  sum(sensitive_calls) AS sensitive_calls,
  ${outerServices} AS services,
  string_agg(concat(calls, ' ', ${CLEAN_SQL('user_agent')}), chr(29)) AS user_agent_items
FROM (
  SELECT ${GROUP_SELECT}, user_agent, ${counts(innerDays, innerServices)}
  FROM events
  WHERE ${scopeSql(query)}
  GROUP BY ALL
)
GROUP BY ALL`;
}

// Reading a million rows value by value through the DuckDB binding costs seconds; one delimited text per
// key, split in JavaScript, costs a fraction of that. The key ID and kind are columns of that row, not repeated
// in the text. The separators are ASCII control characters. List items (user agents, service names) are cleaned
// of them in SQL. The other text fields (address, VPC ID) are written by the vendor, not by a caller, and
// cleaning them costs more than the aggregate itself, so instead every key's text is checked: a separator
// inside a value adds a record or a field, which the row count and the field count reveal; then every key is
// read again with every field, the key ID included, cleaned.
const FIELD = '\x1f';
const RECORD = '\x1e';
const ITEM = '\x1d';
const WIRE_FIELDS = 14;
const SEPARATOR = /[\x1e\x1f]/;

/** One key's aggregate rows as text. */
type WireKey = {
  access_key_id: string;
  key_kind: string;
  rows: number;
  wire: string;
};

/** SQL for `x` with the separators turned into spaces. */
const CLEAN_SQL = (x: string): string => `translate(${x}, chr(29) || chr(30) || chr(31), '   ')`;

function wireSql(aggregateSql: string, servicesAsMask: boolean, cleanEverything: boolean): string {
  const clean = CLEAN_SQL;
  const text = (x: string) => (cleanEverything ? `coalesce(${clean(x)}, '')` : `coalesce(${x}, '')`);
  // Whole seconds since 1970: text JavaScript turns into numbers and ISO text for less than strftime costs.
  const seconds = (x: string) => `epoch_ms(date_trunc('second', ${x})) // 1000`;
  const items = (x: string) => `array_to_string(list_transform(list_filter(${x}, v -> v IS NOT NULL), v -> ${clean('v')}), chr(29))`;
  const fields = [
    'source_kind', text('source_ip'), `coalesce(CAST(ip_family AS VARCHAR), '')`, text('vpc_id'),
    `CASE WHEN exempt THEN '1' ELSE '' END`,
    'calls', 'days', seconds('first_seen'), seconds('last_seen'), 'error_calls', 'denied_calls', 'sensitive_calls',
    servicesAsMask ? `coalesce(services, '')` : items('services'),
    // user agents as `calls agent` items, cleaned in the aggregate (a NULL agent is an empty agent)
    `coalesce(user_agent_items, '')`,
  ];
  return `SELECT ${text('access_key_id')} AS access_key_id, coalesce(key_kind, '') AS key_kind, count(*) AS rows,
  string_agg(concat(${fields.join(', chr(31), ')}), chr(30)) AS wire
FROM (${aggregateSql}) GROUP BY ALL ORDER BY access_key_id, key_kind`;
}

interface KeyIdentity {
  identityType: string | null;
  userName: string | null;
  accountId: string | null;
}

const NO_IDENTITY: KeyIdentity = { identityType: null, userName: null, accountId: null };

function orNull(s: string | undefined): string | null {
  return s ? s : null;
}

// The fold compares kinds once per row: a literal per value makes those comparisons pointer checks instead of
// reads into the wire text.
const KEY_KINDS: ReadonlyMap<string, KeyKind> = new Map((['permanent', 'sts', 'none'] as const).map((k) => [k, k]));
const SOURCE_KINDS: ReadonlyMap<string, SourceKind> = new Map((['public', 'vpc', 'internal', 'service', 'invalid'] as const).map((k) => [k, k]));

/** Appends one key's rows to `out`, or returns false (`out` partly appended) when a value carried a separator. */
function parseWireKey(key: WireKey, identity: KeyIdentity, services: (field: string) => string[], out: SourceAggregateRow[]): boolean {
  // A key ID carrying a separator makes the whole read cleaned, as it would if the ID were in the text.
  if (SEPARATOR.test(key.access_key_id)) return false;
  const lines = key.wire.split(RECORD);
  if (lines.length !== key.rows) return false;
  const accessKeyId = key.access_key_id;
  const keyKind = KEY_KINDS.get(key.key_kind) ?? (key.key_kind as KeyKind);
  for (const line of lines) {
    const f = line.split(FIELD);
    if (f.length !== WIRE_FIELDS) return false;
    out.push({
      accessKeyId,
      keyKind,
      identityType: identity.identityType,
      userName: identity.userName,
      accountId: identity.accountId,
      sourceKind: SOURCE_KINDS.get(f[0]!) ?? (f[0] as SourceKind),
      sourceIp: orNull(f[1]),
      ipFamily: f[2] === '4' ? 4 : f[2] === '6' ? 6 : null,
      vpcId: orNull(f[3]),
      exempt: f[4] === '1',
      calls: Number(f[5]),
      days: Number(f[6]),
      firstSeen: isoFromEpochSeconds(Number(f[7])),
      lastSeen: isoFromEpochSeconds(Number(f[8])),
      errorCalls: Number(f[9]),
      deniedCalls: Number(f[10]),
      sensitiveCalls: Number(f[11]),
      services: services(f[12] ?? ''),
      userAgents: rankUserAgents(f[13]!),
    });
  }
  return true;
}

/**
 * The most frequent user agents (ties by text), at most USER_AGENTS_CAP, from `calls agent` items (calls are
 * digits: the first space ends them). Empty agents (NULL in the store) are not agents.
 */
function rankUserAgents(itemsField: string): string[] {
  if (!itemsField.includes(ITEM)) {
    const agent = itemsField.slice(itemsField.indexOf(' ') + 1);
    return agent ? [agent] : [];
  }
  const counted: UserAgentCalls[] = [];
  for (const item of itemsField.split(ITEM)) {
    const space = item.indexOf(' ');
    const agent = item.slice(space + 1);
    if (agent) counted.push({ agent, calls: Number(item.slice(0, space)) });
  }
  return topUserAgents(counted);
}

/** One user agent of a source and the calls it made. */
export interface UserAgentCalls {
  agent: string;
  calls: number;
}

/** The text order of every list field (services, tie-breaks): UTF-16 code units, as `Array.prototype.sort`. */
export function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The user-agent ranking every engine applies: most calls first, ties by text. */
export function compareUserAgentCalls(a: UserAgentCalls, b: UserAgentCalls): number {
  return b.calls - a.calls || compareText(a.agent, b.agent);
}

/** The first USER_AGENTS_CAP agents by `compareUserAgentCalls` (sorts `counted` in place). */
export function topUserAgents(counted: UserAgentCalls[]): string[] {
  return counted.sort(compareUserAgentCalls).slice(0, USER_AGENTS_CAP).map((r) => r.agent);
}

/** Decodes service masks (decimal text) into sorted names, once per distinct mask. */
function serviceDecoder(plan: AggregatePlan): (field: string) => string[] {
  if (!plan.serviceMask || !plan.services) return (field) => (field ? field.split(ITEM).sort(compareText) : []);
  const names = plan.services;
  const cache = new Map<string, string[]>();
  return (field) => {
    if (!field || field === '0') return [];
    let list = cache.get(field);
    if (!list) {
      list = [];
      let mask = BigInt(field);
      for (let i = 0; mask > 0n; i++, mask >>= 1n) if (mask & 1n) list.push(names[i]!);
      // Shared by every row with the same services: frozen, so a consumer that mutates one fails loudly.
      Object.freeze(list);
      cache.set(field, list);
    }
    return list;
  };
}

/** What reading the aggregate back needs besides its rows: each key's identity and the service decoder. */
interface WireRead {
  plan: AggregatePlan;
  aggregate: string;
  identities: Map<string, KeyIdentity>;
  decodeServices: (field: string) => string[];
}

async function prepareWireRead(store: Store, query: ProfileQuery): Promise<WireRead> {
  const plan = await planAggregate(store, query);
  const identityRows = await store.query<{ access_key_id: string; identity_type: string | null; user_name: string | null; account_id: string | null }>(keyIdentitySql(query));
  const identities = new Map(identityRows.map((r) => [r.access_key_id, { identityType: r.identity_type, userName: r.user_name, accountId: r.account_id }]));
  return { plan, aggregate: plannedAggregateSql(query, plan), identities, decodeServices: serviceDecoder(plan) };
}

function queryWire(store: Store, read: WireRead, cleanEverything: boolean): Promise<WireKey[]> {
  return store.query<WireKey>(wireSql(read.aggregate, read.plan.serviceMask !== null, cleanEverything));
}

/** Every key's rows, or null when a value carried a separator. */
function parseWireKeys(keys: readonly WireKey[], read: WireRead): SourceAggregateRow[] | null {
  const rows: SourceAggregateRow[] = [];
  for (const key of keys) if (!parseWireKey(key, read.identities.get(key.access_key_id) ?? NO_IDENTITY, read.decodeServices, rows)) return null;
  return rows;
}

const UNREADABLE = 'aggregate rows could not be read back even with every value cleaned: a bug in analyze/profiles.ts';

/**
 * The per-(key, source) aggregates of the window: one pass over the events (plus two small lookups: the
 * window's service names and each key's identity). Row order is unspecified.
 */
export async function loadSourceAggregates(store: Store, query: ProfileQuery): Promise<SourceAggregateRow[]> {
  const read = await prepareWireRead(store, query);
  const rows = parseWireKeys(await queryWire(store, read, false), read) ?? parseWireKeys(await queryWire(store, read, true), read);
  if (!rows) throw new Error(UNREADABLE);
  return rows;
}

/**
 * Per-key profiles for the window: `buildProfiles` over `loadSourceAggregates`, computed without the row
 * objects where it can (`foldWireKey`).
 */
export async function loadProfiles(store: Store, query: ProfileQuery): Promise<KeyProfile[]> {
  const read = await prepareWireRead(store, query);
  const profiles = foldWireKeys(await queryWire(store, read, false), read);
  if (profiles) return profiles;
  const rows = parseWireKeys(await queryWire(store, read, true), read);
  if (!rows) throw new Error(UNREADABLE);
  return buildProfiles(rows);
}

/** `buildProfiles` over the rows of `keys`, or null when a value carried a separator. */
function foldWireKeys(keys: readonly WireKey[], read: WireRead): KeyProfile[] | null {
  const byKey = new Map<string, WireKey[]>();
  for (const key of keys) {
    const list = byKey.get(key.access_key_id);
    if (list) list.push(key);
    else byKey.set(key.access_key_id, [key]);
  }
  const profiles: KeyProfile[] = [];
  for (const [accessKeyId, wires] of byKey) {
    const identity = read.identities.get(accessKeyId) ?? NO_IDENTITY;
    let profile = wires.length === 1 ? foldWireKey(wires[0]!, identity, read.decodeServices) : undefined;
    if (profile === undefined) {
      const rows: SourceAggregateRow[] = [];
      for (const wire of wires) if (!parseWireKey(wire, identity, read.decodeServices, rows)) return null;
      profile = buildProfile(accessKeyId, rows);
    }
    if (profile === null) return null;
    profiles.push(profile);
  }
  return profiles.sort((a, b) => compareText(a.accessKeyId, b.accessKeyId));
}

const FIELD_FROM = new Int32Array(WIRE_FIELDS);
const FIELD_TO = new Int32Array(WIRE_FIELDS);

/** Where the agent of a one-agent user-agent field (`calls agent`) starts; `from` when the field has several. */
function singleAgentAt(wire: string, from: number, to: number): number {
  // Within the field only: an empty field (no user agents asked for) must not send a search down the whole text.
  let space = from;
  while (space < to && wire.charCodeAt(space) !== 0x20) space++;
  if (space >= to) return from;
  for (let i = space + 1; i < to; i++) if (wire.charCodeAt(i) === 0x1d) return from;
  return space + 1;
}

/** The list read from the last field of one kind, and that field's text (where in the wire it is). */
class PreviousField {
  #wire = '';
  #from = 0;
  #to = -1;
  list: string[] = [];

  /** Whether wire[from, to) is the same text as the field the list was read from. */
  holds(wire: string, from: number, to: number): boolean {
    if (to - from !== this.#to - this.#from || wire !== this.#wire) return false;
    for (let i = 0; i < to - from; i++) if (wire.charCodeAt(from + i) !== wire.charCodeAt(this.#from + i)) return false;
    return true;
  }

  keep(wire: string, from: number, to: number, list: string[]): void {
    this.#wire = wire;
    this.#from = from;
    this.#to = to;
    this.list = list;
  }
}

function indexOrEnd(text: string, separator: string, from: number): number {
  const i = text.indexOf(separator, from);
  return i < 0 ? text.length : i;
}

/**
 * `buildProfile` over one key's wire text (one key kind) without a row object per source: the rows of one
 * kind and one identity make every weighted choice that kind and that identity. Null when a value carried a
 * separator; undefined when the key has rows on exempt services (`buildProfile` over its rows then).
 */
function foldWireKey(key: WireKey, identity: KeyIdentity, services: (field: string) => string[]): KeyProfile | null | undefined {
  if (SEPARATOR.test(key.access_key_id)) return null;
  const keyKind = KEY_KINDS.get(key.key_kind) ?? (key.key_kind as KeyKind);
  const sts = keyKind === 'sts';
  const profile = emptyProfile(key.access_key_id, keyKind, identity, '', '');
  let firstSeen = Infinity;
  let lastSeen = -Infinity;
  // Fields are read in place (offsets into the text), not split into a list of strings per row: only the
  // texts a source keeps are cut out. The checks are `parseWireKey`'s: rows and fields per row counted.
  const wire = key.wire;
  const from = FIELD_FROM;
  const to = FIELD_TO;
  const previousServices = new PreviousField();
  const previousAgents = new PreviousField();
  let rows = 0;
  for (let start = 0; ; ) {
    const recordEnd = indexOrEnd(wire, RECORD, start);
    let fields = 0;
    for (let at = start; ; ) {
      if (fields === WIRE_FIELDS) return null;
      const end = Math.min(indexOrEnd(wire, FIELD, at), recordEnd);
      from[fields] = at;
      to[fields] = end;
      fields++;
      if (end === recordEnd) break;
      at = end + 1;
    }
    if (fields !== WIRE_FIELDS) return null;
    rows++;
    if (to[4]! - from[4]! === 1 && wire.charCodeAt(from[4]!) === 49) return undefined;
    const calls = decimalIn(wire, from[5]!, to[5]!);
    const deniedCalls = decimalIn(wire, from[10]!, to[10]!);
    const firstSecond = decimalIn(wire, from[7]!, to[7]!);
    const lastSecond = decimalIn(wire, from[8]!, to[8]!);
    if (firstSecond < firstSeen) firstSeen = firstSecond;
    if (lastSecond > lastSeen) lastSeen = lastSecond;
    profile.totalCalls += calls;
    profile.deniedCalls += deniedCalls;
    const sourceKind = sourceKindAt(wire, from[0]!, to[0]!);
    const ip = wire.slice(from[1], to[1]);
    const familyChar = to[2]! - from[2]! === 1 ? wire.charCodeAt(from[2]!) : 0;
    const family = familyChar === 52 ? 4 : familyChar === 54 ? 6 : null;
    const vpcId = sourceKind === 'vpc' ? wire.slice(from[3], to[3]) : '';
    if (sts) profile.stsCalls += calls;
    else if (sourceKind === 'internal') profile.internalCalls += calls;
    else if (sourceKind === 'service') profile.serviceCalls += calls;
    else if (!ip || family === null || (sourceKind === 'vpc' && !vpcId)) profile.invalidSourceCalls += calls;
    else {
      // Neighbouring sources mostly share their services and user agents: the previous row's lists are
      // reused (frozen) when the text is the same, rather than a list per source.
      if (!previousServices.holds(wire, from[12]!, to[12]!)) previousServices.keep(wire, from[12]!, to[12]!, services(wire.slice(from[12], to[12])));
      // One agent (`calls agent`): the same agent whatever its calls.
      const agentsFrom = singleAgentAt(wire, from[13]!, to[13]!);
      if (!previousAgents.holds(wire, agentsFrom, to[13]!)) previousAgents.keep(wire, agentsFrom, to[13]!, Object.freeze(rankUserAgents(wire.slice(from[13], to[13]))) as string[]);
      const serviceList = previousServices.list;
      const userAgents = previousAgents.list;
      const days = decimalIn(wire, from[6]!, to[6]!);
      const errorCalls = decimalIn(wire, from[9]!, to[9]!);
      const sensitiveCalls = decimalIn(wire, from[11]!, to[11]!);
      const cappedServices = serviceList.length > SERVICES_CAP ? serviceList.slice(0, SERVICES_CAP) : serviceList;
      const cappedAgents = userAgents.length > USER_AGENTS_CAP ? userAgents.slice(0, USER_AGENTS_CAP) : userAgents;
      if (sourceKind === 'vpc') {
        profile.vpcSources.push(new VpcSourceRecord(vpcId, ip, family, calls, days, isoFromEpochSeconds(firstSecond), isoFromEpochSeconds(lastSecond), errorCalls, deniedCalls, sensitiveCalls, cappedServices, cappedAgents, firstSecond, lastSecond));
      } else {
        profile.publicSources.push(new PublicSourceRecord(ip, family, calls, days, isoFromEpochSeconds(firstSecond), isoFromEpochSeconds(lastSecond), errorCalls, deniedCalls, sensitiveCalls, cappedServices, cappedAgents, firstSecond, lastSecond));
      }
    }
    if (recordEnd === wire.length) break;
    start = recordEnd + 1;
  }
  if (rows !== key.rows) return null;
  profile.firstSeen = isoFromEpochSeconds(firstSeen);
  profile.lastSeen = isoFromEpochSeconds(lastSeen);
  sortSources(profile.publicSources);
  sortSources(profile.vpcSources);
  return profile;
}

/**
 * Folds aggregate rows into one profile per key, sorted by accessKeyId; sources sorted by VPC ID, then
 * numerically by address (IPv4 before IPv6). Rules:
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
  let firstSeen = rows[0]!.firstSeen;
  let lastSeen = rows[0]!.lastSeen;
  for (const r of rows) {
    if (r.firstSeen < firstSeen) firstSeen = r.firstSeen;
    if (r.lastSeen > lastSeen) lastSeen = r.lastSeen;
  }
  const identity = {
    identityType: weightedChoice(rows, (r) => r.identityType),
    userName: weightedChoice(rows, (r) => r.userName),
    accountId: weightedChoice(rows, (r) => r.accountId),
  };
  const profile = emptyProfile(accessKeyId, keyKind, identity, firstSeen, lastSeen);
  // A source's governed row makes it a source; its exempt row (if any) matters only when there is no governed one.
  const governed: SourceAggregateRow[] = [];
  const exempt: SourceAggregateRow[] = [];
  for (const row of rows) {
    profile.totalCalls += row.calls;
    profile.deniedCalls += row.deniedCalls;
    if (keyKind === 'sts' || row.keyKind === 'sts') profile.stsCalls += row.calls;
    else if (row.sourceKind === 'internal') profile.internalCalls += row.calls;
    else if (row.sourceKind === 'service') profile.serviceCalls += row.calls;
    else if (row.sourceIp === null || row.ipFamily === null || (row.sourceKind === 'vpc' && row.vpcId === null)) profile.invalidSourceCalls += row.calls;
    else (row.exempt ? exempt : governed).push(row);
  }
  for (const row of governed) {
    if (row.sourceKind === 'vpc') profile.vpcSources.push(toVpcUsage(row));
    else profile.publicSources.push(toUsage(row));
  }
  if (exempt.length > 0) {
    const governedIds = new Set(governed.map(sourceId));
    for (const row of exempt) {
      if (governedIds.has(sourceId(row))) continue;
      profile.exemptOnlySources.push({ ip: row.sourceIp, vpcId: row.vpcId, calls: row.calls, services: row.services.slice(0, SERVICES_CAP) });
    }
  }
  sortSources(profile.publicSources);
  sortSources(profile.vpcSources);
  sortSources(profile.exemptOnlySources);
  return profile;
}

function sourceId(row: SourceAggregateRow): string {
  return `${row.vpcId ?? ''}|${row.sourceIp}`;
}

function toVpcUsage(row: SourceAggregateRow): VpcSourceUsage {
  return new VpcSourceRecord(row.vpcId!, ...usageFields(row));
}

function toUsage(row: SourceAggregateRow): SourceUsage {
  return new PublicSourceRecord(...usageFields(row));
}

function usageFields(row: SourceAggregateRow): ConstructorParameters<typeof PublicSourceRecord> {
  return [
    row.sourceIp!,
    row.ipFamily!,
    row.calls,
    row.days,
    row.firstSeen,
    row.lastSeen,
    row.errorCalls,
    row.deniedCalls,
    row.sensitiveCalls,
    row.services.length > SERVICES_CAP ? row.services.slice(0, SERVICES_CAP) : row.services,
    row.userAgents.length > USER_AGENTS_CAP ? row.userAgents.slice(0, USER_AGENTS_CAP) : row.userAgents,
  ];
}

/** The value most calls carry (nulls ignored; ties broken by the smaller text). */
function weightedChoice<T extends string>(rows: readonly SourceAggregateRow[], pick: (r: SourceAggregateRow) => T | null): T | null {
  const first = pick(rows[0]!);
  if (first !== null && rows.every((r) => pick(r) === first)) return first;
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

/** Orders addresses numerically: IPv4 before IPv6, text that is not an address last (by text). */
export function compareAddresses(a: string, b: string): number {
  const x = addressOrder(a);
  const y = addressOrder(b);
  if (x.rank !== y.rank) return x.rank - y.rank;
  if (x.value !== y.value) return x.value < y.value ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

const V4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

function addressOrder(ip: string): { rank: number; value: number | bigint } {
  const m = V4.exec(ip);
  if (m) return { rank: 4, value: ((Number(m[1]) * 256 + Number(m[2])) * 256 + Number(m[3])) * 256 + Number(m[4]) };
  const parsed = parseAddress(ip);
  if (parsed) return { rank: parsed.family, value: parsed.value };
  return { rank: 9, value: 0 };
}

/** Sorts in place by VPC ID (none first), then address. */
function sortSources<T extends { ip: string | null; vpcId?: string | null }>(list: T[]): void {
  if (list.length < 2) return;
  if (!sortIpv4Sources(list)) sortAnySources(list);
}

/**
 * The common case, a list of IPv4 sources, without an object per source: each source's order is one number
 * (VPC rank × 2^32 + address), ties (the same address written differently) by text. False, list untouched,
 * when an address is not a dotted quad that fits 32 bits.
 */
function sortIpv4Sources<T extends { ip: string | null; vpcId?: string | null }>(list: T[]): boolean {
  const n = list.length;
  const order = new Float64Array(n);
  const firstVpc = list[0]!.vpcId ?? '';
  let oneVpc = true;
  for (let i = 0; i < n; i++) {
    const s = list[i]!;
    const value = s.ip === null ? -1 : ipv4Value(s.ip);
    if (value < 0 || value > 0xffffffff) return false;
    order[i] = value;
    if (oneVpc && (s.vpcId ?? '') !== firstVpc) oneVpc = false;
  }
  if (!oneVpc) {
    const rank = new Map([...new Set(list.map((s) => s.vpcId ?? ''))].sort(compareText).map((vpc, i) => [vpc, i] as const));
    for (let i = 0; i < n; i++) order[i]! += rank.get(list[i]!.vpcId ?? '')! * 2 ** 32;
  }
  const index = oneVpc && n <= INDEX_SPAN ? packedOrder(order, list) : null;
  const sorted = list.slice();
  if (index) for (let i = 0; i < n; i++) list[i] = sorted[index[i]!]!;
  else {
    const byOrder = Array.from({ length: n }, (_, i) => i);
    byOrder.sort((a, b) => order[a]! - order[b]! || compareText(sorted[a]!.ip!, sorted[b]!.ip!) || a - b);
    for (let i = 0; i < n; i++) list[i] = sorted[byOrder[i]!]!;
  }
  return true;
}

const INDEX_SPAN = 2 ** 21;

/**
 * Positions by order (< 2^32), then text, then position: order × 2^21 + position is exact in a double, so a
 * comparator-free numeric sort does it; only runs of equal order are then sorted by text.
 */
function packedOrder(order: Float64Array, list: ReadonlyArray<{ ip: string | null }>): number[] {
  const n = order.length;
  const packed = new Float64Array(n);
  for (let i = 0; i < n; i++) packed[i] = order[i]! * INDEX_SPAN + i;
  packed.sort();
  const index: number[] = new Array(n);
  for (let i = 0; i < n; i++) index[i] = packed[i]! % INDEX_SPAN;
  for (let start = 0; start < n; ) {
    let end = start + 1;
    while (end < n && order[index[end]!] === order[index[start]!]) end++;
    if (end - start > 1) {
      const run = index.slice(start, end).sort((a, b) => compareText(list[a]!.ip!, list[b]!.ip!) || a - b);
      for (let i = 0; i < run.length; i++) index[start + i] = run[i]!;
    }
    start = end;
  }
  return index;
}

/** What `V4` accepts, as `addressOrder` values it (octets of up to three digits, not range-checked), or -1. */
function ipv4Value(ip: string): number {
  let value = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < ip.length; i++) {
    const c = ip.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (++digits > 3) return -1;
      part = part * 10 + (c - 48);
    } else if (c === 46) {
      if (digits === 0 || dots === 3) return -1;
      value = value * 256 + part;
      part = 0;
      digits = 0;
      dots++;
    } else return -1;
  }
  return digits === 0 || dots !== 3 ? -1 : value * 256 + part;
}

function sortAnySources<T extends { ip: string | null; vpcId?: string | null }>(list: T[]): void {
  const keyed = list.map((s) => ({ s, vpc: s.vpcId ?? '', order: addressOrder(s.ip ?? ''), ip: s.ip ?? '' }));
  keyed.sort((a, b) => {
    if (a.vpc !== b.vpc) return a.vpc < b.vpc ? -1 : 1;
    if (a.order.rank !== b.order.rank) return a.order.rank - b.order.rank;
    if (a.order.value !== b.order.value) return a.order.value < b.order.value ? -1 : 1;
    return a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : 0;
  });
  for (let i = 0; i < keyed.length; i++) list[i] = keyed[i]!.s;
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

/** A profile with its identity and nothing counted yet (fields in the order the JSON contract shows them). */
function emptyProfile(
  accessKeyId: string,
  keyKind: KeyProfile['keyKind'],
  identity: Pick<KeyProfile, 'identityType' | 'userName' | 'accountId'>,
  firstSeen: string,
  lastSeen: string,
): KeyProfile {
  return {
    accessKeyId,
    keyKind,
    identityType: identity.identityType,
    userName: identity.userName,
    accountId: identity.accountId,
    firstSeen,
    lastSeen,
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
}
