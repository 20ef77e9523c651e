// `keyfence analyze --engine sls`: the per-key aggregation pushed down to Simple Log Service's analytic SQL, so
// only aggregates leave the logstore. SLS groups by the raw fields classification needs (key, identity type,
// source address, VPC, service, endpoint, UTC day, and apart the user agent); here every aggregated source is
// classified by the same functions ingest applies to each event (ingest/actiontrail.ts, model/acl-rules.ts),
// folded into exactly the `SourceAggregateRow`s the local engine produces, and handed to `buildProfiles`.
//
// Exactness, checked rather than assumed:
// - events are de-duplicated by eventId inside the query (the store keeps one row per eventId);
// - an answer whose progress is not `Complete` is asked again, never used (ingest/sources/sls.ts);
// - paging: one `LIMIT n` page up to the service's 1,000,000-row cap, or `LIMIT offset, n` pages of at most
//   10,000; a result that reaches the cap is refused, never truncated silently;
// - the calls of all rows must add up to a separate count of the same events, or the run fails (the logstore
//   changed between queries, or a page went missing).
// Assumption, said aloud: `eventTime` is ISO 8601 in UTC with `Z` (as ActionTrail writes it), so its first ten
// characters are the UTC day and its text order is its time order (min/max are taken on the text in SLS).
import { classifyKey, classifySource, parseEventTime, textField } from '../ingest/actiontrail.ts';
// The SLS SDK (ingest/sources/sls*.ts, @alicloud/*) costs ~0.5 s to load: imported only when a query runs.
import type { SlsConnection } from '../ingest/sources/sls.ts';
import type { RetryPolicy } from '../ingest/sources/sls-retry.ts';
import { sqlString } from '../ingest/store.ts';
import { DEFAULT_DENIAL_PATTERNS, isExemptService, SENSITIVE_APIS } from '../model/acl-rules.ts';
import { SourceError, UsageError } from '../model/errors.ts';
import type { IpFamily, KeyKind, KeyProfile, SourceKind, TimeWindow } from '../model/types.ts';
import { isoSeconds, parseDuration, parseInstant } from '../model/window.ts';
import { buildProfiles, compareText, topUserAgents, type SourceAggregateRow } from './profiles.ts';

/** The service's cap on analytic result rows, and on one `LIMIT offset, n` page. */
export const SLS_MAX_ROWS = 1_000_000;
export const SLS_MAX_PAGE = 10_000;
/** Logs are fetched by log time (`__time__`) this far around the window; the window itself is applied to eventTime. */
const LOG_TIME_SLACK_MS = 86_400_000;

export interface SlsAggregateQuery {
  window: TimeWindow;
  /** Only these keys (any kind). Without it: every permanent key seen in the window. */
  keys?: string[];
  /** Rows per query: up to SLS_MAX_ROWS in one `LIMIT n`, or pages of at most SLS_MAX_PAGE with `LIMIT offset, n`. */
  pageSize?: number;
  retry?: RetryPolicy;
}

const F = {
  id: '"event.eventId"',
  ak: '"event.userIdentity.accessKeyId"',
  itype: '"event.userIdentity.type"',
  uname: '"event.userIdentity.userName"',
  acct: '"event.userIdentity.accountId"',
  ip: '"event.sourceIpAddress"',
  vpc: '"event.vpcId"',
  svc: '"event.serviceName"',
  esrc: '"event.eventSource"',
  t: '"event.eventTime"',
  name: '"event.eventName"',
  err: '"event.errorCode"',
  msg: '"event.errorMessage"',
  ua: '"event.userAgent"',
} as const;

/** One row per eventId, with the fields the aggregates need, in the window and key scope. */
function dedupedEvents(query: SlsAggregateQuery): string {
  const fields = (Object.keys(F) as Array<keyof typeof F>).filter((k) => k !== 'id').map((k) => `arbitrary(${F[k]}) AS k_${k}`);
  const scope = query.keys && query.keys.length > 0
    ? `${F.ak} IN (${query.keys.map(sqlString).join(', ')})`
    // Temporary keys are never ACL material: leave them in the logstore (classifyKey re-checks every row).
    : `${F.ak} NOT LIKE 'STS.%' AND coalesce(${F.itype}, '') <> 'assumed-role'`;
  return `SELECT ${F.id} AS k_id, ${fields.join(', ')}
    FROM log
    WHERE ${F.id} IS NOT NULL AND ${F.id} <> '' AND ${F.ak} IS NOT NULL AND ${F.ak} <> ''
      AND try(from_iso8601_timestamp(${F.t})) >= from_iso8601_timestamp(${sqlString(query.window.from)})
      AND try(from_iso8601_timestamp(${F.t})) < from_iso8601_timestamp(${sqlString(query.window.to)})
      AND ${scope}
    GROUP BY ${F.id}`;
}

const GROUP = ['k_ak', 'k_itype', 'k_ip', 'k_vpc', 'k_svc', 'k_esrc'];

function deniedSql(): string {
  const checks = DEFAULT_DENIAL_PATTERNS.map((p) => p.toLowerCase()).flatMap((p) => [
    `strpos(lower(coalesce(k_err, '')), ${sqlString(p)}) > 0`,
    `strpos(lower(coalesce(k_msg, '')), ${sqlString(p)}) > 0`,
  ]);
  return `count_if(${checks.join(' OR ')})`;
}

/** The per-day aggregates: one row per (key, identity type, address, VPC, service, endpoint, UTC day). */
export function dailyAggregateSql(query: SlsAggregateQuery): string {
  const sensitive = SENSITIVE_APIS.map(sqlString).join(', ');
  const group = [...GROUP, 'k_day'];
  return `* | SELECT ${GROUP.join(', ')}, substr(k_t, 1, 10) AS k_day,
    count(*) AS calls, min(k_t) AS first_seen, max(k_t) AS last_seen,
    count_if(k_err IS NOT NULL AND k_err <> '') AS error_calls,
    ${deniedSql()} AS denied_calls,
    count_if(k_name IN (${sensitive})) AS sensitive_calls,
    max(k_uname) AS user_name, max(k_acct) AS account_id
  FROM (${dedupedEvents(query)})
  GROUP BY ${GROUP.join(', ')}, substr(k_t, 1, 10)
  ORDER BY ${group.join(', ')}`;
}

/** The user agents: one row per (key, identity type, address, VPC, service, endpoint, user agent), with its calls. */
export function userAgentSql(query: SlsAggregateQuery): string {
  const group = [...GROUP, 'k_ua'];
  return `* | SELECT ${group.join(', ')}, count(*) AS calls
  FROM (${dedupedEvents(query)})
  GROUP BY ${group.join(', ')}
  ORDER BY ${group.join(', ')}`;
}

export function totalSql(query: SlsAggregateQuery): string {
  return `* | SELECT count(*) AS calls FROM (${dedupedEvents(query)})`;
}

type SlsRow = Record<string, string | null>;

/** SLS sends null as the text "null"; keyfence reads empty text as absent too (ingest's textField). */
function value(row: SlsRow, name: string): string | null {
  const v = row[name];
  return v === undefined || v === null || v === 'null' ? null : textField(v);
}

function count(row: SlsRow, name: string): number {
  const n = Number(row[name]);
  if (!Number.isInteger(n) || n < 0) throw new SourceError(`SLS answered ${JSON.stringify(row[name])} for ${name}, not a count`);
  return n;
}

async function fetchAll(conn: SlsConnection, sql: string, window: TimeWindow, pageSize: number, retry: RetryPolicy): Promise<SlsRow[]> {
  const { runAnalyticQuery } = await import('../ingest/sources/sls.ts');
  const from = new Date(Date.parse(window.from) - LOG_TIME_SLACK_MS);
  const to = new Date(Date.parse(window.to) + LOG_TIME_SLACK_MS);
  if (pageSize > SLS_MAX_PAGE) {
    const rows = await runAnalyticQuery(conn, { query: `${sql} LIMIT ${SLS_MAX_ROWS}`, from, to }, retry);
    if (rows.length >= SLS_MAX_ROWS) throw tooMany();
    return rows;
  }
  const out: SlsRow[] = [];
  for (let offset = 0; ; offset += pageSize) {
    if (offset + pageSize > SLS_MAX_ROWS) throw tooMany();
    const page = await runAnalyticQuery(conn, { query: `${sql} LIMIT ${offset}, ${pageSize}`, from, to }, retry);
    for (const r of page) out.push(r);
    if (page.length < pageSize) return out;
  }
}

function tooMany(): SourceError {
  return new SourceError(`the aggregation has ${SLS_MAX_ROWS.toLocaleString('en')} rows or more, the most SLS returns`, {
    hint: 'narrow the window (--from/--to), name the keys (--key), or ingest and analyze locally',
  });
}

interface Folded {
  row: SourceAggregateRow;
  days: Set<string>;
  services: Set<string>;
  /** Calls per user agent, summed over the SLS groups (services, endpoints) that fold into this row. */
  agents: Map<string, number>;
}

/** How ingest would classify the events of one SLS group, and the identity of the aggregate row it lands in. */
function classify(r: SlsRow): { id: string; accessKeyId: string; keyKind: KeyKind; sourceKind: SourceKind; sourceIp: string | null; ipFamily: IpFamily | null; vpcId: string | null; exempt: boolean } | null {
  const accessKeyId = value(r, 'k_ak');
  if (accessKeyId === null) return null;
  const keyKind = classifyKey(accessKeyId, value(r, 'k_itype'));
  const vpcRaw = value(r, 'k_vpc');
  const source = classifySource(value(r, 'k_ip'), vpcRaw);
  const exempt = isExemptService(value(r, 'k_svc'), value(r, 'k_esrc'));
  const blank = keyKind === 'sts' || (source.sourceKind !== 'public' && source.sourceKind !== 'vpc');
  const sourceIp = blank ? null : source.sourceIp;
  const ipFamily = blank ? null : source.ipFamily;
  const vpcId = blank ? null : vpcRaw;
  return {
    id: [accessKeyId, keyKind, source.sourceKind, sourceIp ?? '', ipFamily ?? '', vpcId ?? '', exempt ? 1 : 0].join('\u0000'),
    accessKeyId, keyKind, sourceKind: source.sourceKind, sourceIp, ipFamily, vpcId, exempt,
  };
}

/** An event time as the local aggregate reports it: UTC, whole seconds (`YYYY-MM-DDTHH:MM:SSZ`). */
function toSeconds(text: string | null): string | null {
  const iso = text === null ? null : parseEventTime(text);
  return iso === null ? null : iso.replace(/\.\d+Z$/, 'Z');
}

const maxText = (a: string | null, b: string | null): string | null => (a === null ? b : b === null ? a : b > a ? b : a);

/** Folds the SLS rows into one `SourceAggregateRow` per (key, key kind, source kind, address, VPC, exempt). */
export function foldSlsAggregates(daily: SlsRow[], agents: SlsRow[], query: Pick<SlsAggregateQuery, 'keys'>): SourceAggregateRow[] {
  const folded = new Map<string, Folded>();
  const explicitKeys = query.keys && query.keys.length > 0;
  for (const r of daily) {
    const c = classify(r);
    if (!c || (!explicitKeys && c.keyKind !== 'permanent')) continue;
    const first = toSeconds(value(r, 'first_seen'));
    const last = toSeconds(value(r, 'last_seen'));
    const day = value(r, 'k_day');
    if (!first || !last || !day) throw new SourceError(`SLS answered an aggregate without a valid time (${JSON.stringify(r.first_seen)}, ${JSON.stringify(r.last_seen)})`);
    let f = folded.get(c.id);
    if (!f) {
      f = {
        row: {
          accessKeyId: c.accessKeyId, keyKind: c.keyKind, identityType: null, userName: null, accountId: null,
          sourceKind: c.sourceKind, sourceIp: c.sourceIp, ipFamily: c.ipFamily, vpcId: c.vpcId, exempt: c.exempt,
          calls: 0, days: 0, firstSeen: first, lastSeen: last, errorCalls: 0, deniedCalls: 0, sensitiveCalls: 0, services: [], userAgents: [],
        },
        days: new Set(), services: new Set(), agents: new Map(),
      };
      folded.set(c.id, f);
    }
    const row = f.row;
    row.calls += count(r, 'calls');
    row.errorCalls += count(r, 'error_calls');
    row.deniedCalls += count(r, 'denied_calls');
    row.sensitiveCalls += count(r, 'sensitive_calls');
    if (first < row.firstSeen) row.firstSeen = first;
    if (last > row.lastSeen) row.lastSeen = last;
    row.identityType = maxText(row.identityType, value(r, 'k_itype'));
    row.userName = maxText(row.userName, value(r, 'user_name'));
    row.accountId = maxText(row.accountId, value(r, 'account_id'));
    f.days.add(day);
    const service = value(r, 'k_svc');
    if (service !== null) f.services.add(service);
  }
  for (const r of agents) {
    const c = classify(r);
    if (!c) continue;
    const f = folded.get(c.id);
    const agent = value(r, 'k_ua');
    if (!f || agent === null) continue;
    f.agents.set(agent, (f.agents.get(agent) ?? 0) + count(r, 'calls'));
  }
  const rows = [...folded.values()].map((f) => ({
    ...f.row,
    days: f.days.size,
    services: [...f.services].sort(compareText),
    userAgents: topUserAgents([...f.agents].map(([agent, calls]) => ({ agent, calls }))),
  }));
  return rows.sort((a, b) => (a.accessKeyId < b.accessKeyId ? -1 : a.accessKeyId > b.accessKeyId ? 1 : 0));
}

/** The source aggregates of the window, computed by SLS: the same rows `loadSourceAggregates` reads from a store. */
export async function loadSourceAggregatesViaSls(conn: SlsConnection, query: SlsAggregateQuery): Promise<SourceAggregateRow[]> {
  const pageSize = query.pageSize ?? SLS_MAX_ROWS;
  if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > SLS_MAX_ROWS) throw new UsageError(`page size must be 1..${SLS_MAX_ROWS}`);
  const retry = query.retry ?? (await import('../ingest/sources/sls-retry.ts')).DEFAULT_RETRY_POLICY;
  const daily = await fetchAll(conn, dailyAggregateSql(query), query.window, pageSize, retry);
  const agents = await fetchAll(conn, userAgentSql(query), query.window, pageSize, retry);
  const [total] = await fetchAll(conn, totalSql(query), query.window, SLS_MAX_ROWS, retry);
  const expected = total ? count(total, 'calls') : 0;
  const dailyCalls = daily.reduce((n, r) => n + count(r, 'calls'), 0);
  const agentCalls = agents.reduce((n, r) => n + count(r, 'calls'), 0);
  if (dailyCalls !== expected || agentCalls !== expected) {
    throw new SourceError(`SLS aggregates do not add up: ${expected} events in the window, ${dailyCalls} in the daily rows, ${agentCalls} in the user-agent rows`, {
      hint: 'the logstore changed between queries (a window reaching into the last minutes), or a page was lost; run again, or end the window (--to) earlier',
      retriable: true,
    });
  }
  return foldSlsAggregates(daily, agents, query);
}

/** Per-key profiles computed by SLS: `buildProfiles` over `loadSourceAggregatesViaSls`, ready for `recommend`. */
export async function loadProfilesViaSls(conn: SlsConnection, query: SlsAggregateQuery): Promise<KeyProfile[]> {
  return buildProfiles(await loadSourceAggregatesViaSls(conn, query));
}

// ---------------------------------------------------------------- the command

export interface AnalyzeSlsOptions {
  engine?: string;
  endpoint?: string;
  project?: string;
  logstore?: string;
  /** Lookback back from now (`30d`), or explicit bounds. */
  since?: string;
  from?: string;
  to?: string;
  key?: string[];
  json?: boolean;
}

/** The window for a logstore: explicit bounds, or a lookback back from `now` (default 30 days). */
export function slsWindow(opts: Pick<AnalyzeSlsOptions, 'since' | 'from' | 'to'>, now: Date): TimeWindow {
  if (opts.since !== undefined && opts.from !== undefined) throw new UsageError('--since and --from contradict each other');
  const instant = (flag: string, text: string | undefined): Date | null => {
    if (text === undefined) return null;
    const d = parseInstant(text);
    if (!d) throw new UsageError(`${flag} ${JSON.stringify(text)} is not a date`, { hint: 'use ISO 8601, e.g. 2026-11-01 or 2026-11-01T00:00:00Z' });
    return d;
  };
  const lookback = parseDuration(opts.since ?? '30d');
  if (lookback === null) throw new UsageError(`--since ${JSON.stringify(opts.since)} is not a duration`, { hint: 'e.g. 30d' });
  const to = instant('--to', opts.to) ?? now;
  const from = instant('--from', opts.from) ?? new Date(to.getTime() - lookback);
  if (from.getTime() >= to.getTime()) throw new UsageError('--from must be before --to');
  return { from: isoSeconds(from), to: isoSeconds(to) };
}

/** `keyfence analyze --engine sls`: profiles computed in the logstore; prints them (JSON with --json). */
export async function analyzeViaSls(opts: AnalyzeSlsOptions): Promise<number> {
  if (!opts.endpoint || !opts.project || !opts.logstore) {
    throw new UsageError('--engine sls needs --endpoint, --project and --logstore', { hint: 'the trail\'s logstore, e.g. --endpoint cn-hangzhou.log.aliyuncs.com' });
  }
  const window = slsWindow(opts, new Date());
  const { connectSls } = await import('../ingest/sources/sls.ts');
  const conn = connectSls({ endpoint: opts.endpoint, project: opts.project, logstore: opts.logstore });
  const profiles = await loadProfilesViaSls(conn, { window, keys: opts.key });
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ engine: 'sls', window, profiles }, null, 2)}\n`);
    return 0;
  }
  const lines = [`window ${window.from} → ${window.to} (computed by SLS in ${opts.project}/${opts.logstore})`, `${profiles.length} permanent key(s)`];
  for (const p of profiles) {
    lines.push(`${p.accessKeyId}  ${p.userName ?? '-'}  ${p.totalCalls} calls  ${p.publicSources.length} public / ${p.vpcSources.length} VPC source(s)${p.deniedCalls ? `  ${p.deniedCalls} denied` : ''}`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}
