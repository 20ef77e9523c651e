// The only module that knows ActionTrail's shapes. One function turns any raw record (a file line, a Kafka
// message, an SLS log) into AuditEvents or typed rejections; the SQL fast path for files (see
// `ingest/file-ingest.ts`) takes its field list and classification rules from here too, and only vouches
// for the simple cases: everything else it hands back to `normalizeRecord`.
import { parseAddress, isPublicAddress } from '../model/address.ts';
import { DEFAULT_DENIAL_PATTERNS, exemptServiceList, isAclDenial, isExemptService, isTemporaryKey } from '../model/acl-rules.ts';
import type { AuditEvent, IpFamily, KeyKind, Rejection, RejectionReason, SourceKind } from '../model/types.ts';

/** A record longer than this is not an event (events are a few KiB; a LookupEvents page well under 1 MiB). */
export const MAX_RECORD_CHARS = 4 * 1024 * 1024;

export interface NormalizeResult {
  events: AuditEvent[];
  rejections: Rejection[];
}

/** Control characters JSON text can never hold raw, and the replacement character left by invalid UTF-8. */
const BINARY_RE = /[\u0000-\u0008\u000e-\u001f\ufffd]/;

/**
 * A service address: a host name whose first label starts with a letter and whose last label is alphabetic
 * (`ecs.aliyuncs.com`). Dotted masks such as `192.168.XX.XX` or `XX.XX.XX.XX` are not host names.
 * Shared with the SQL fast path (RE2 and JS read it the same way).
 */
export const SERVICE_HOST_PATTERN = '^[a-zA-Z][a-zA-Z0-9-]*(\\.[a-zA-Z0-9-]+)*\\.[a-zA-Z]{2,63}$';
export const MASKED_PATTERN = '^[xX.*]+$';
const SERVICE_HOST_RE = new RegExp(SERVICE_HOST_PATTERN);
const MASKED_RE = new RegExp(MASKED_PATTERN);

/**
 * Turns one raw record (JSON text or an already parsed value) into events and rejections. Accepts an SLS
 * export line (`event` as a JSON string or an object), flattened SLS keys (`"event.sourceIpAddress"`), a bare
 * event (OSS), a LookupEvents response (`{"Events": [...]}`) and a JSON array of any of these.
 */
export function normalizeRecord(raw: string | unknown): NormalizeResult {
  const out: NormalizeResult = { events: [], rejections: [] };
  if (typeof raw === 'string') {
    const text = raw;
    if (text.length > MAX_RECORD_CHARS) {
      out.rejections.push(reject('line-too-long', `record is ${text.length} characters, over the ${MAX_RECORD_CHARS} limit`, text));
      return out;
    }
    const binary = BINARY_RE.exec(text);
    if (binary) {
      out.rejections.push(reject('binary-data', `control or invalid UTF-8 byte at character ${binary.index}: not JSON text`, text));
      return out;
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (e) {
      out.rejections.push(reject('malformed-json', (e as Error).message, text));
      return out;
    }
    collect(value, text, out);
  } else {
    collect(raw, null, out);
  }
  return out;
}

function reject(reason: RejectionReason, detail: string, raw: string): Rejection {
  return { reason, detail, raw };
}

/** The raw text of a record, made only when a rejection needs it (JSON.stringify of every accepted record cost). */
type RawText = () => string;

function lazyRaw(value: unknown, text: string | null): RawText {
  return () => rawText(value, text);
}

function rawText(value: unknown, text: string | null): string {
  if (text !== null) return text;
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const EVENT_KEYS = ['eventId', 'eventTime', 'eventName', 'userIdentity', 'eventSource', 'sourceIpAddress'];

/** Finds the event(s) inside one container value and normalizes each. */
function collect(value: unknown, text: string | null, out: NormalizeResult): void {
  if (Array.isArray(value)) {
    for (const item of value) collect(item, null, out);
    return;
  }
  if (!isObject(value)) {
    out.rejections.push(reject('not-an-object', `a JSON ${value === null ? 'null' : typeof value} is not an event`, rawText(value, text)));
    return;
  }
  if (Array.isArray(value.Events)) {
    value.Events.forEach((item, i) => {
      if (!isObject(item)) {
        out.rejections.push(reject('not-an-object', `Events[${i}] is not an object`, rawText(item, null)));
        return;
      }
      addEvent(item, lazyRaw(item, null), `Events[${i}]: `, out);
    });
    return;
  }
  if ('event' in value) {
    const inner = value.event;
    if (typeof inner === 'string') {
      let parsed: unknown;
      try {
        parsed = JSON.parse(inner);
      } catch (e) {
        out.rejections.push(reject('malformed-json', `the "event" field is not JSON: ${(e as Error).message}`, rawText(value, text)));
        return;
      }
      if (!isObject(parsed)) {
        out.rejections.push(reject('not-an-object', 'the "event" field does not hold an object', rawText(value, text)));
        return;
      }
      addEvent(parsed, lazyRaw(value, text), '', out);
      return;
    }
    if (isObject(inner)) {
      addEvent(inner, lazyRaw(value, text), '', out);
      return;
    }
  }
  const flat = unflattenEventKeys(value);
  if (flat) {
    addEvent(flat, lazyRaw(value, text), '', out);
    return;
  }
  if (EVENT_KEYS.some((k) => k in value)) {
    addEvent(value, lazyRaw(value, text), '', out);
    return;
  }
  out.rejections.push(reject('unknown-shape', 'neither an SLS log (event / event.*), a bare event, nor a LookupEvents response (Events)', rawText(value, text)));
}

/** `{"event.userIdentity.accessKeyId": "…"}` → `{userIdentity: {accessKeyId: "…"}}`, or null when there are no such keys. */
function unflattenEventKeys(value: Record<string, unknown>): Record<string, unknown> | null {
  let found = false;
  const root: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    if (!key.startsWith('event.')) continue;
    found = true;
    const path = key.slice('event.'.length).split('.');
    let node = root;
    for (const part of path.slice(0, -1)) {
      if (!isObject(node[part])) node[part] = {};
      node = node[part] as Record<string, unknown>;
    }
    node[path[path.length - 1]!] = v;
  }
  return found ? root : null;
}

/** A string field: strings as they are, numbers and booleans as text, objects as JSON; empty → null. */
export function textField(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  const s = typeof v === 'string' ? v : typeof v === 'object' ? JSON.stringify(v) : String(v);
  return s === '' ? null : s;
}

function addEvent(ev: Record<string, unknown>, raw: RawText, where: string, out: NormalizeResult): void {
  const eventId = textField(ev.eventId);
  if (eventId === null || eventId.trim() === '') {
    out.rejections.push(reject('missing-event-id', `${where}no eventId`, raw()));
    return;
  }
  if (!isObject(ev.userIdentity)) {
    out.rejections.push(reject('missing-user-identity', `${where}event ${eventId} has no userIdentity object`, raw()));
    return;
  }
  if (ev.eventTime === undefined || ev.eventTime === null || ev.eventTime === '') {
    out.rejections.push(reject('missing-event-time', `${where}event ${eventId} has no eventTime`, raw()));
    return;
  }
  const eventTime = typeof ev.eventTime === 'string' ? parseEventTime(ev.eventTime) : null;
  if (eventTime === null) {
    out.rejections.push(reject('bad-event-time', `${where}event ${eventId} has eventTime ${JSON.stringify(ev.eventTime)}, not an ISO 8601 date-time`, raw()));
    return;
  }
  const identity = ev.userIdentity;
  const accessKeyId = textField(identity.accessKeyId);
  const identityType = textField(identity.type);
  const vpcId = textField(ev.vpcId);
  const serviceName = textField(ev.serviceName);
  const eventSource = textField(ev.eventSource);
  const errorCode = textField(ev.errorCode);
  const errorMessage = textField(ev.errorMessage);
  const source = classifySource(textField(ev.sourceIpAddress), vpcId);
  out.events.push({
    eventId,
    eventTime,
    eventName: textField(ev.eventName),
    eventSource,
    serviceName,
    eventType: textField(ev.eventType),
    acsRegion: textField(ev.acsRegion),
    sourceIp: source.sourceIp,
    sourceKind: source.sourceKind,
    ipFamily: source.ipFamily,
    vpcId,
    userAgent: textField(ev.userAgent),
    errorCode,
    errorMessage,
    accessKeyId,
    keyKind: classifyKey(accessKeyId, identityType),
    identityType,
    accountId: textField(identity.accountId),
    principalId: textField(identity.principalId),
    userName: textField(identity.userName),
    exemptService: isExemptService(serviceName, eventSource),
    aclDenied: isAclDenial(errorCode, errorMessage),
    requestId: textField(ev.requestId),
  });
}

export function classifyKey(accessKeyId: string | null, identityType: string | null): KeyKind {
  if (isTemporaryKey(accessKeyId, identityType)) return 'sts';
  return accessKeyId ? 'permanent' : 'none';
}

export interface SourceClass {
  sourceIp: string | null;
  sourceKind: SourceKind;
  ipFamily: IpFamily | null;
}

/**
 * Where a call came from. A parseable address with a vpcId is `vpc`; `internal` is `internal`; a host name is
 * `service`; a public address is `public`; any other parseable address without a vpcId (RFC 1918, CGNAT
 * 100.64/10 where the vendor's services live) is `internal`; anything else (masked, empty, garbage) `invalid`.
 */
export function classifySource(rawIp: string | null, vpcId: string | null): SourceClass {
  if (rawIp === null) return classifySourceText(rawIp, vpcId);
  // A pure function of the text and whether a vpcId is present; a trail repeats its few sources endlessly.
  const key = vpcId ? `v${rawIp}` : `-${rawIp}`;
  let known = sourceClassCache.get(key);
  if (known === undefined) {
    known = Object.freeze(classifySourceText(rawIp, vpcId));
    if (sourceClassCache.size >= SOURCE_CLASS_CACHE_LIMIT) sourceClassCache.clear();
    sourceClassCache.set(key, known);
  }
  return known;
}

const SOURCE_CLASS_CACHE_LIMIT = 200_000;
const sourceClassCache = new Map<string, Readonly<SourceClass>>();

function classifySourceText(rawIp: string | null, vpcId: string | null): SourceClass {
  const addr = rawIp === null ? null : parseAddress(rawIp);
  if (addr && vpcId) return { sourceIp: addr.text, sourceKind: 'vpc', ipFamily: addr.family };
  if (rawIp === null) return { sourceIp: null, sourceKind: 'invalid', ipFamily: null };
  const trimmed = rawIp.trim();
  if (trimmed.toLowerCase() === 'internal') return { sourceIp: rawIp, sourceKind: 'internal', ipFamily: null };
  if (SERVICE_HOST_RE.test(trimmed) && !MASKED_RE.test(trimmed)) return { sourceIp: rawIp, sourceKind: 'service', ipFamily: null };
  if (addr) return { sourceIp: addr.text, sourceKind: isPublicAddress(addr) ? 'public' : 'internal', ipFamily: addr.family };
  return { sourceIp: rawIp, sourceKind: 'invalid', ipFamily: null };
}

const CANONICAL_TIME_RE = /^[1-9]\d{3}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;
const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** Whether a `YYYY-MM-DDTHH:MM:SSZ` text names a real instant (no 31 April, no 24:00). */
function canonicalTimeIsReal(text: string): boolean {
  const year = Number(text.slice(0, 4));
  const month = Number(text.slice(5, 7));
  const day = Number(text.slice(8, 10));
  if (month < 1 || month > 12 || day < 1) return false;
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const lastDay = month === 2 && leap ? 29 : DAYS_IN_MONTH[month - 1]!;
  return day <= lastDay && Number(text.slice(11, 13)) <= 23 && Number(text.slice(14, 16)) <= 59 && Number(text.slice(17, 19)) <= 59;
}

const EVENT_TIME_RE = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})?$/i;

/**
 * ISO 8601 date-time → `YYYY-MM-DDTHH:MM:SSZ` in UTC (with `.sss` when the fraction is not zero); no zone means
 * UTC. Returns null for anything else, including impossible dates.
 */
export function parseEventTime(text: string): string | null {
  // What ActionTrail writes, already in the form this returns: checked field by field, no Date needed.
  if (CANONICAL_TIME_RE.test(text)) return canonicalTimeIsReal(text) ? text : null;
  const m = EVENT_TIME_RE.exec(text.trim());
  if (!m) return null;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) return null;
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (day > daysInMonth) return null;
  const millis = m[7] ? Number(m[7].slice(0, 3).padEnd(3, '0')) : 0;
  let offsetMinutes = 0;
  const zone = m[8];
  if (zone && zone.toUpperCase() !== 'Z') {
    const digits = zone.replace(':', '');
    const hours = Number(digits.slice(1, 3));
    const minutes = Number(digits.slice(3, 5));
    if (hours > 23 || minutes > 59) return null;
    offsetMinutes = (digits[0] === '-' ? -1 : 1) * (hours * 60 + minutes);
  }
  if (year < 1000) return null;
  const d = new Date(Date.UTC(year, month - 1, day, hour, minute, second, millis) - offsetMinutes * 60_000);
  const iso = d.toISOString();
  return millis === 0 ? iso.replace(/\.\d{3}Z$/, 'Z') : iso;
}

// ---------------------------------------------------------------- the SQL fast path (files)

/**
 * The mark on rows the SQL fast path writes for lines it does not vouch for: the file ingest normalizes them
 * again with `normalizeRecord`; the marked rows are deleted right after (see ingest/file-ingest.ts).
 */
export const FAST_PATH_MARK = { deferred: '~deferred' } as const;

/**
 * The scalar function the fast path calls for the source texts only `classifySource` can classify (IPv6,
 * IPv4-mapped, masked, padded…): `(source text, has vpcId) → encodeSourceClass(...)`. The caller registers it
 * on the connection (see `ingest/file-ingest.ts`).
 */
export const SOURCE_CLASSIFIER_FUNCTION = 'keyfence_classify_source';

/** `kind TAB family TAB sourceIp` (family empty when null; the IP last, so a tab inside it survives). */
export function encodeSourceClass(c: SourceClass): string {
  return `${c.sourceKind}\t${c.ipFamily ?? ''}\t${c.sourceIp ?? ''}`;
}

/**
 * The event fields the fast path extracts, in one parse. json_transform makes a non-object userIdentity a struct
 * of NULLs, as it does `{}`: a line whose identity fields are all NULL is left to `normalizeRecord`.
 */
const EVENT_STRUCT = JSON.stringify({
  eventId: 'VARCHAR', eventTime: 'VARCHAR', eventName: 'VARCHAR', eventSource: 'VARCHAR', serviceName: 'VARCHAR',
  eventType: 'VARCHAR', acsRegion: 'VARCHAR', sourceIpAddress: 'VARCHAR', vpcId: 'VARCHAR', userAgent: 'VARCHAR',
  errorCode: 'VARCHAR', errorMessage: 'VARCHAR', requestId: 'VARCHAR',
  userIdentity: { type: 'VARCHAR', accessKeyId: 'VARCHAR', accountId: 'VARCHAR', principalId: 'VARCHAR', userName: 'VARCHAR' },
});

/**
 * DuckDB's JSON reader accepts trailing commas and NaN/Infinity, which JSON (and JSON.parse) does not: a line
 * showing either, even inside a string value, is left to `normalizeRecord`. The comma pattern starts with a
 * literal, so RE2 skips from comma to comma.
 */
const TRAILING_COMMA_PATTERN = ',[ \\t\\r\\n]*[]}]';
const NON_FINITE_PATTERN = '[:,[][ \\t\\r\\n]*-?(NaN|Infinity)';

const OCTET = '(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])';
/** Canonical dotted-quad IPv4 (what `parseAddress` accepts and prints unchanged). */
const CANONICAL_V4_PATTERN = `^${OCTET}(\\.${OCTET}){3}$`;
function sqlLiteral(s: string): string {
  return `'${s.replaceAll("'", "''")}'`;
}

/**
 * One SELECT over `lines` (a relation with `line` and `file_tag`) producing rows in `events` column order. Lines
 * the SQL can vouch for (an SLS export line or a bare event, with a plain eventId, an object userIdentity and
 * an `YYYY-MM-DDTHH:MM:SSZ` eventTime) become events classified exactly as `normalizeRecord` does (source
 * texts the SQL cannot classify go to SOURCE_CLASSIFIER_FUNCTION, that is `classifySource`); every
 * other line becomes a `~deferred` row holding the raw line in `error_message` and `file_tag` (naming the
 * file) in `event_source`, for `normalizeRecord`. `$1` is the run ID. Nothing is deduplicated here.
 */
export function fastPathSelectSql(lines: string): string {
  const exempt = `[${exemptServiceList().map(sqlLiteral).join(', ')}]::VARCHAR[]`;
  const denial = DEFAULT_DENIAL_PATTERNS.map((p) => `contains(lower(coalesce(error_code, '') || chr(10) || coalesce(error_message, '')), ${sqlLiteral(p.toLowerCase())})`).join(' OR ');
  // Rows that are not ok are placeholders, deleted right after the transaction: only their NOT NULL columns,
  // event_id, error_message (the raw line) and event_source (the file) matter, so the rest is not masked.
  return `
WITH parsed AS (
  SELECT file_tag, line, outer_fields,
    CASE
      WHEN outer_fields[1] IS NOT NULL THEN CASE WHEN starts_with(outer_fields[1], '{') AND json_valid(outer_fields[1]) THEN json_transform(outer_fields[1], ${sqlLiteral(EVENT_STRUCT)}) END
      WHEN outer_fields IS NOT NULL AND outer_fields[2] IS NULL AND starts_with(line, '{') AND NOT contains(line, '"event.') THEN json_transform(line, ${sqlLiteral(EVENT_STRUCT)})
    END AS e
  -- json_valid first: try() would redo every vector holding one bad line row by row
  FROM (SELECT file_tag, line, CASE WHEN json_valid(line) THEN json_extract_string(line, ['$.event', '$.Events']) END AS outer_fields FROM ${lines})
),
fields AS (
  SELECT file_tag, line,
    e.eventId AS event_id,
    try_cast(replace(e.eventTime, 'Z', '') AS TIMESTAMP) AS event_time,
    e.eventTime AS event_time_text,
    nullif(e.eventName, '') AS event_name, nullif(e.eventSource, '') AS event_source, nullif(e.serviceName, '') AS service_name,
    nullif(e.eventType, '') AS event_type, nullif(e.acsRegion, '') AS region, nullif(e.sourceIpAddress, '') AS ip,
    nullif(e.vpcId, '') AS vpc_id, nullif(e.userAgent, '') AS user_agent, nullif(e.errorCode, '') AS error_code,
    nullif(e.errorMessage, '') AS error_message, nullif(e.requestId, '') AS request_id,
    CASE WHEN coalesce(e.userIdentity.type, e.userIdentity.accessKeyId, e.userIdentity.accountId, e.userIdentity.principalId, e.userIdentity.userName) IS NOT NULL THEN e.userIdentity END AS u
  FROM parsed
),
checked AS (
  SELECT *,
    coalesce(
      u IS NOT NULL
      AND ascii(event_id) BETWEEN 33 AND 126
      AND regexp_full_match(event_time_text, '[1-9][0-9]{3}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z')
      AND event_time IS NOT NULL
      AND (service_name IS NULL OR (ascii(service_name) BETWEEN 33 AND 126 AND ascii(right(service_name, 1)) BETWEEN 33 AND 126))
      AND (event_source IS NULL OR (ascii(event_source) BETWEEN 33 AND 126 AND ascii(right(event_source, 1)) BETWEEN 33 AND 126))
      AND strlen(line) <= ${MAX_RECORD_CHARS}
      AND NOT contains(line, chr(65533))
      -- (a projection evaluates every operand of AND/OR on every row: CASE keeps the costly regex to the rare lines)
      AND NOT regexp_matches(line, ${sqlLiteral(TRAILING_COMMA_PATTERN)})
      AND NOT CASE WHEN contains(line, 'NaN') OR contains(line, 'Infinity') THEN regexp_matches(line, ${sqlLiteral(NON_FINITE_PATTERN)}) ELSE false END,
      false) AS ok,
    nullif(u.accessKeyId, '') AS access_key_id, nullif(u.type, '') AS identity_type,
    regexp_full_match(ip, ${sqlLiteral(CANONICAL_V4_PATTERN)}) AS v4
  FROM fields
),
octets AS (
  SELECT *,
    CASE WHEN v4 THEN CAST(split_part(ip, '.', 1) AS INTEGER) END AS o1,
    CASE WHEN v4 THEN CAST(split_part(ip, '.', 2) AS INTEGER) END AS o2
  FROM checked
),
sql_classified AS (
  SELECT *,
    CASE
      WHEN ip IS NULL THEN 'invalid'
      WHEN v4 THEN CASE
        WHEN vpc_id IS NOT NULL THEN 'vpc'
        WHEN o1 IN (0, 10, 127) OR o1 >= 224 OR (o1 = 172 AND o2 BETWEEN 16 AND 31) OR (o1 = 192 AND o2 = 168)
          OR (o1 = 100 AND o2 BETWEEN 64 AND 127) OR (o1 = 169 AND o2 = 254) THEN 'internal'
        ELSE 'public' END
      WHEN ip = 'internal' THEN 'internal'
      WHEN regexp_full_match(ip, ${sqlLiteral(SERVICE_HOST_PATTERN)}) AND NOT regexp_full_match(ip, ${sqlLiteral(MASKED_PATTERN)}) THEN 'service'
    END AS sql_kind
  FROM octets
),
classified AS (
  SELECT *,
    CASE WHEN ok AND sql_kind IS NULL THEN ${SOURCE_CLASSIFIER_FUNCTION}(ip, vpc_id IS NOT NULL) END AS js_class
  FROM sql_classified
),
sources AS (
  SELECT *,
    split_part(js_class, chr(9), 1) AS js_kind,
    split_part(js_class, chr(9), 2) AS js_family
  FROM classified
)
SELECT
  CASE WHEN ok THEN event_id ELSE chr(1) || file_tag END AS event_id,
  CASE WHEN ok THEN event_time ELSE TIMESTAMP '1970-01-01' END AS event_time,
  event_name, CASE WHEN ok THEN event_source ELSE file_tag END, service_name, event_type, region,
  CASE WHEN js_class IS NULL THEN ip ELSE nullif(substr(js_class, length(js_kind) + length(js_family) + 3), '') END AS source_ip,
  CASE WHEN NOT ok THEN '${FAST_PATH_MARK.deferred}' WHEN js_class IS NULL THEN sql_kind ELSE js_kind END AS source_kind,
  CASE WHEN js_class IS NOT NULL THEN CAST(nullif(js_family, '') AS UTINYINT) WHEN v4 THEN 4 END AS ip_family,
  vpc_id, user_agent, error_code,
  CASE WHEN ok THEN error_message ELSE line END AS error_message,
  access_key_id,
  CASE WHEN starts_with(coalesce(access_key_id, ''), 'STS.') OR identity_type = 'assumed-role' THEN 'sts'
    WHEN access_key_id IS NOT NULL THEN 'permanent' ELSE 'none' END AS key_kind,
  identity_type, nullif(u.accountId, ''), nullif(u.principalId, ''), nullif(u.userName, ''),
  coalesce(list_contains(${exempt}, lower(service_name)) OR list_contains(${exempt}, split_part(lower(event_source), '.', 1)), false) AS exempt,
  CASE WHEN error_code IS NOT NULL OR error_message IS NOT NULL THEN coalesce(${denial}, false) ELSE false END AS acl_denied,
  request_id,
  $1 AS run_id
FROM sources`;
}
