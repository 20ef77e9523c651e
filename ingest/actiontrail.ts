// The only module that knows ActionTrail's shapes. One function turns any raw record (a file line, a Kafka
// message, an SLS log) into AuditEvents or typed rejections; the SQL fast path for files (see
// `ingest/file-ingest.ts`) takes its field list and classification rules from here too, and only vouches
// for the simple cases: everything else it hands back to `normalizeRecord`.
import { parseAddress, isPublicAddress } from '../model/address.ts';
import { isAclDenial, isExemptService, isTemporaryKey } from '../model/acl-rules.ts';
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
export const SERVICE_HOST_PATTERN = '^[a-z][a-z0-9-]*(\\.[a-z0-9-]+)*\\.[a-z]{2,63}$';
export const MASKED_PATTERN = '^[x.*]+$';
const SERVICE_HOST_RE = new RegExp(SERVICE_HOST_PATTERN, 'i');
const MASKED_RE = new RegExp(MASKED_PATTERN, 'i');

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
      addEvent(item, rawText(item, null), `Events[${i}]: `, out);
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
      addEvent(parsed, rawText(value, text), '', out);
      return;
    }
    if (isObject(inner)) {
      addEvent(inner, rawText(value, text), '', out);
      return;
    }
  }
  const flat = unflattenEventKeys(value);
  if (flat) {
    addEvent(flat, rawText(value, text), '', out);
    return;
  }
  if (EVENT_KEYS.some((k) => k in value)) {
    addEvent(value, rawText(value, text), '', out);
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

function addEvent(ev: Record<string, unknown>, raw: string, where: string, out: NormalizeResult): void {
  const eventId = textField(ev.eventId);
  if (eventId === null || eventId.trim() === '') {
    out.rejections.push(reject('missing-event-id', `${where}no eventId`, raw));
    return;
  }
  if (!isObject(ev.userIdentity)) {
    out.rejections.push(reject('missing-user-identity', `${where}event ${eventId} has no userIdentity object`, raw));
    return;
  }
  if (ev.eventTime === undefined || ev.eventTime === null || ev.eventTime === '') {
    out.rejections.push(reject('missing-event-time', `${where}event ${eventId} has no eventTime`, raw));
    return;
  }
  const eventTime = typeof ev.eventTime === 'string' ? parseEventTime(ev.eventTime) : null;
  if (eventTime === null) {
    out.rejections.push(reject('bad-event-time', `${where}event ${eventId} has eventTime ${JSON.stringify(ev.eventTime)}, not an ISO 8601 date-time`, raw));
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
  const addr = rawIp === null ? null : parseAddress(rawIp);
  if (addr && vpcId) return { sourceIp: addr.text, sourceKind: 'vpc', ipFamily: addr.family };
  if (rawIp === null) return { sourceIp: null, sourceKind: 'invalid', ipFamily: null };
  const trimmed = rawIp.trim();
  if (trimmed.toLowerCase() === 'internal') return { sourceIp: rawIp, sourceKind: 'internal', ipFamily: null };
  if (SERVICE_HOST_RE.test(trimmed) && !MASKED_RE.test(trimmed)) return { sourceIp: rawIp, sourceKind: 'service', ipFamily: null };
  if (addr) return { sourceIp: addr.text, sourceKind: isPublicAddress(addr) ? 'public' : 'internal', ipFamily: addr.family };
  return { sourceIp: rawIp, sourceKind: 'invalid', ipFamily: null };
}

const EVENT_TIME_RE = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})?$/i;

/**
 * ISO 8601 date-time → `YYYY-MM-DDTHH:MM:SSZ` in UTC (with `.sss` when the fraction is not zero); no zone means
 * UTC. Returns null for anything else, including impossible dates.
 */
export function parseEventTime(text: string): string | null {
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
