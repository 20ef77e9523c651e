// Findings: key hygiene and suspicious use, as small value objects. The code decides only which finding IDs
// apply and with what evidence; what each means (title, severity, advice) is data in model/findings-catalog.ts.
// The leak and pool heuristics are the recommender's (recommend/suspicion.ts), so a source reported here as a
// possible leak is exactly one the recommender keeps out of its proposal.
import { EXIT, type ExitCode } from '../model/errors.ts';
import { findingMeta, severityRank, type FindingId, type Severity } from '../model/findings-catalog.ts';
import { maskValue, parseAddress } from '../model/address.ts';
import type { KeyProfile, TimeWindow } from '../model/types.ts';
import { isoSeconds } from '../model/window.ts';
import { classifySources } from '../recommend/suspicion.ts';
import { sqlString, type Store } from '../ingest/store.ts';
import { analyzeStore, type AnalysisRequest } from './analysis.ts';

export interface Finding {
  id: FindingId;
  /** The AccessKey the finding is about. */
  keyId: string;
  severity: Severity;
  title: string;
  /** This instance, in one sentence. */
  detail: string;
  advice: string;
  /** The figures behind it (addresses, calls, dates). */
  evidence: Record<string, unknown>;
}

export interface FindingsOptions {
  /** A permanent key with no call in this many days before the newest event is dormant. */
  dormantDays: number;
  /** "Many more sources than usual": more than median + madFactor × (1.4826 × MAD) of the account's keys… */
  madFactor: number;
  /** …and at least this many distinct source networks… */
  minUnusualNetworks: number;
  /** …among at least this many keys of the account (fewer peers: no baseline, no finding). */
  minPeers: number;
}

export const DEFAULT_FINDINGS_OPTIONS: FindingsOptions = { dormantDays: 30, madFactor: 4, minUnusualNetworks: 10, minPeers: 5 };

/** A permanent key's last call, for dormancy (looked up over the whole store, not only the window). */
export interface KeyLastCall {
  accessKeyId: string;
  userName: string | null;
  identityType: string | null;
  lastSeen: string;
  calls: number;
}

export interface FindingsInput {
  window: TimeWindow;
  /** Newest event in the store: dormancy counts back from it. */
  newestEvent: string;
  profiles: KeyProfile[];
  lastCalls: KeyLastCall[];
}

export interface FindingsReport {
  window: TimeWindow;
  newestEvent: string;
  options: FindingsOptions;
  findings: Finding[];
}

const DAY_MS = 86_400_000;

function finding(id: FindingId, keyId: string, detail: string, evidence: Record<string, unknown>): Finding {
  const meta = findingMeta(id);
  return { id, keyId, severity: meta.severity, title: meta.title, detail, advice: meta.advice, evidence };
}

/** Pure: every finding for the input, sorted by severity (most severe first), ID, key, detail. */
export function buildFindings(input: FindingsInput, options: FindingsOptions = DEFAULT_FINDINGS_OPTIONS): Finding[] {
  const out: Finding[] = [];
  const permanent = input.profiles.filter((p) => p.keyKind === 'permanent');
  for (const p of permanent) {
    out.push(...rootKey(p), ...vpcUse(p), ...denials(p));
  }
  out.push(...dormant(input, options));
  const suspicion = classifyAll(permanent, input.profiles, input.window);
  out.push(...unusualSourceCounts(permanent, suspicion, options));
  out.push(...suspicious(permanent, suspicion));
  return sortFindings(out);
}

export function sortFindings(findings: Finding[]): Finding[] {
  return findings.sort(
    (a, b) =>
      severityRank(a.severity) - severityRank(b.severity) ||
      cmp(a.id, b.id) ||
      cmp(a.keyId, b.keyId) ||
      cmp(a.detail, b.detail),
  );
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** 4 (ATTENTION) when any high-severity finding exists, else 0. */
export function findingsExitCode(findings: readonly Finding[]): ExitCode {
  return findings.some((f) => f.severity === 'high') ? EXIT.ATTENTION : EXIT.OK;
}

function rootKey(p: KeyProfile): Finding[] {
  if (p.identityType !== 'root-account') return [];
  return [finding('root-key-in-use', p.accessKeyId, `root-account key made ${p.totalCalls} calls between ${p.firstSeen} and ${p.lastSeen}`, {
    calls: p.totalCalls, firstSeen: p.firstSeen, lastSeen: p.lastSeen, accountId: p.accountId,
    publicSources: p.publicSources.length, vpcSources: p.vpcSources.length,
  })];
}

function vpcUse(p: KeyProfile): Finding[] {
  if (p.vpcSources.length === 0) return [];
  const vpcs = [...new Set(p.vpcSources.map((s) => s.vpcId))].sort();
  const calls = p.vpcSources.reduce((n, s) => n + s.calls, 0);
  const alsoPublic = p.publicSources.length > 0 ? `; also used from ${p.publicSources.length} public address(es)` : '';
  return [finding('permanent-key-in-vpc', p.accessKeyId, `${calls} calls from ${p.vpcSources.length} private address(es) in ${vpcs.join(', ')}${alsoPublic}`, {
    vpcs, addresses: p.vpcSources.length, calls, publicAddresses: p.publicSources.length,
  })];
}

function denials(p: KeyProfile): Finding[] {
  if (p.deniedCalls === 0) return [];
  const sources = [
    ...p.publicSources.filter((s) => s.deniedCalls > 0).map((s) => ({ source: s.ip, vpcId: null as string | null, deniedCalls: s.deniedCalls })),
    ...p.vpcSources.filter((s) => s.deniedCalls > 0).map((s) => ({ source: s.ip, vpcId: s.vpcId as string | null, deniedCalls: s.deniedCalls })),
  ].sort((a, b) => b.deniedCalls - a.deniedCalls || cmp(a.vpcId ?? '', b.vpcId ?? '') || cmp(a.source, b.source));
  return [finding('acl-denied-calls', p.accessKeyId, `${p.deniedCalls} call(s) refused by a network ACL, from ${sources.length} governed source(s)`, {
    deniedCalls: p.deniedCalls, sources: sources.slice(0, 10),
  })];
}

function dormant(input: FindingsInput, options: FindingsOptions): Finding[] {
  const newest = Date.parse(input.newestEvent);
  const out: Finding[] = [];
  for (const k of input.lastCalls) {
    const idleDays = Math.floor((newest - Date.parse(k.lastSeen)) / DAY_MS);
    if (idleDays < options.dormantDays) continue;
    out.push(finding('dormant-key', k.accessKeyId, `no call for ${idleDays} days (last call ${k.lastSeen}, newest event ${input.newestEvent})`, {
      lastSeen: k.lastSeen, idleDays, dormantDays: options.dormantDays, userName: k.userName, callsInStore: k.calls,
    }));
  }
  return out;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/**
 * What "a source" is when counting how spread a key's use is: a network, not an address, so one office NAT
 * block or one subnet counts once: IPv4 by /24, IPv6 by /48 (inside a VPC: per VPC ID too).
 */
function sourceNetwork(ip: string): string {
  const a = parseAddress(ip);
  if (!a) return ip;
  const length = a.family === 4 ? 24 : 48;
  return `${a.family}:${maskValue(a.value, a.family, length).toString(16)}/${length}`;
}

/**
 * Per account, keys whose distinct source networks exceed median + k·(1.4826·MAD) (MAD floored at 1).
 * Sources inside the key's dynamic pools are left out: a pool is its own finding.
 */
function unusualSourceCounts(profiles: KeyProfile[], suspicion: Map<string, Suspicion>, options: FindingsOptions): Finding[] {
  const byAccount = new Map<string, KeyProfile[]>();
  for (const p of profiles) {
    const account = p.accountId ?? '';
    const list = byAccount.get(account);
    if (list) list.push(p);
    else byAccount.set(account, [p]);
  }
  const out: Finding[] = [];
  for (const [account, keys] of byAccount) {
    if (keys.length < options.minPeers) continue;
    const counts = keys.map((p) => {
      const pooled = new Set((suspicion.get(p.accessKeyId)?.pools ?? []).flatMap((pool) => pool.keyAddresses.map((ip) => `${pool.vpcId ?? ''}|${ip}`)));
      const units = new Set<string>();
      for (const s of p.publicSources) if (!pooled.has(`|${s.ip}`)) units.add(`|${sourceNetwork(s.ip)}`);
      for (const s of p.vpcSources) if (!pooled.has(`${s.vpcId}|${s.ip}`)) units.add(`${s.vpcId}|${sourceNetwork(s.ip)}`);
      return units.size;
    });
    const m = median(counts);
    const mad = median(counts.map((c) => Math.abs(c - m)));
    const spread = Math.max(1.4826 * mad, 1);
    const threshold = m + options.madFactor * spread;
    keys.forEach((p, i) => {
      const n = counts[i]!;
      if (n <= threshold || n < options.minUnusualNetworks) return;
      out.push(finding('unusual-source-count', p.accessKeyId,
        `used from ${n} distinct networks (IPv4 /24, IPv6 /48) outside any dynamic pool, against a median of ${m} over the account's ${keys.length} keys (threshold ${round(threshold)})`, {
          networks: n, publicSources: p.publicSources.length, vpcSources: p.vpcSources.length,
          accountId: account || null, peers: keys.length, median: m, mad, threshold: round(threshold),
        }));
    });
  }
  return out;
}

function round(x: number): number {
  return Math.round(x * 10) / 10;
}

type Suspicion = ReturnType<typeof classifySources>;

/**
 * Leaks and pools, judged exactly as the recommender judges them: every analyzed profile is the shared pool
 * evidence (recommend() passes its whole sorted profile list too), so a source reported here as a possible
 * leak is one the proposal leaves out.
 */
function classifyAll(profiles: KeyProfile[], allProfiles: KeyProfile[], window: TimeWindow): Map<string, Suspicion> {
  const out = new Map<string, Suspicion>();
  for (const p of profiles) out.set(p.accessKeyId, classifySources(p, { window, accountProfiles: allProfiles }));
  return out;
}

/** One finding per leak-looking source; one per key for its dynamic pools (the blocks in the evidence). */
function suspicious(profiles: KeyProfile[], suspicion: Map<string, Suspicion>): Finding[] {
  const out: Finding[] = [];
  for (const p of profiles) {
    const { leaks, pools } = suspicion.get(p.accessKeyId)!;
    for (const leak of leaks) {
      out.push(finding(leak.kind === 'loud' ? 'possible-leak' : 'possible-quiet-leak', p.accessKeyId, `${leak.ip}: ${leak.reason}`, {
        source: leak.ip, calls: leak.calls, days: leak.days, firstSeen: leak.firstSeen, lastSeen: leak.lastSeen,
        errorShare: round(leak.errorShare * 100) / 100, sensitiveCalls: leak.sensitiveCalls, signals: leak.signals,
      }));
    }
    if (pools.length > 0) {
      const blocks = pools.map((pool) => ({
        cidr: pool.cidr, vpcId: pool.vpcId, keyAddresses: pool.keyAddresses.length, evidenceAddresses: pool.evidenceAddresses, keys: pool.keys.length, calls: pool.calls,
      }));
      const where = pools.map((pool) => (pool.vpcId ? `${pool.cidr} in ${pool.vpcId}` : pool.cidr));
      const addresses = blocks.reduce((n, b) => n + b.keyAddresses, 0);
      out.push(finding('dynamic-pool', p.accessKeyId,
        `${addresses} of the key's addresses rotate inside ${pools.length === 1 ? 'the block' : `${pools.length} blocks`} ${where.slice(0, 5).join(', ')}${where.length > 5 ? ', …' : ''}: ${pools[0]!.reason}`,
        { pools: blocks }));
    }
  }
  return out;
}

// ---------------------------------------------------------------- the store side

/** Each permanent key's last call over the whole store (optionally only `keys`). */
export async function loadLastCalls(store: Store, keys?: string[]): Promise<KeyLastCall[]> {
  const filter = keys && keys.length > 0 ? `AND access_key_id IN (${keys.map(sqlString).join(', ')})` : '';
  return store.query<KeyLastCall & Record<string, unknown>>(`
    SELECT access_key_id AS "accessKeyId", max(user_name) AS "userName", max(identity_type) AS "identityType",
      strftime(max(event_time), '%Y-%m-%dT%H:%M:%SZ') AS "lastSeen", count(*) AS calls
    FROM events
    WHERE access_key_id IS NOT NULL AND key_kind = 'permanent' ${filter}
    GROUP BY access_key_id
    ORDER BY access_key_id`);
}

/**
 * Merges last calls known from elsewhere (events pruned into a rollup: review/retention.ts) into the ones the
 * events table gives, keeping the later call per key; only `keys` when given.
 */
export function mergeLastCalls(fromEvents: KeyLastCall[], elsewhere: ReadonlyMap<string, string>, keys?: string[]): KeyLastCall[] {
  if (elsewhere.size === 0) return fromEvents;
  const wanted = keys && keys.length > 0 ? new Set(keys) : null;
  const merged = new Map(fromEvents.map((c) => [c.accessKeyId, c]));
  for (const [key, lastSeen] of elsewhere) {
    if (wanted && !wanted.has(key)) continue;
    const known = merged.get(key);
    if (!known) merged.set(key, { accessKeyId: key, userName: null, identityType: null, lastSeen, calls: 0 });
    else if (lastSeen > known.lastSeen) merged.set(key, { ...known, lastSeen });
  }
  return [...merged.values()].sort((a, b) => cmp(a.accessKeyId, b.accessKeyId));
}

/**
 * Findings over a store: the analysis window's profiles plus dormancy over the whole store. `lastSeenElsewhere`
 * adds keys' last calls the events table no longer holds (the retention rollup), so pruning never hides a
 * dormant key.
 */
export async function loadFindings(
  store: Store,
  request: AnalysisRequest,
  options: FindingsOptions = DEFAULT_FINDINGS_OPTIONS,
  lastSeenElsewhere: ReadonlyMap<string, string> = new Map(),
): Promise<FindingsReport> {
  const analysis = await analyzeStore(store, request);
  const [newest] = await store.query<{ newest: string }>(`SELECT strftime(max(event_time), '%Y-%m-%dT%H:%M:%SZ') AS newest FROM events`);
  const newestEvent = newest?.newest ?? isoSeconds(new Date(analysis.window.to));
  const lastCalls = mergeLastCalls(await loadLastCalls(store, request.keys), lastSeenElsewhere, request.keys);
  const findings = buildFindings({ window: analysis.window, newestEvent, profiles: analysis.profiles, lastCalls }, options);
  return { window: analysis.window, newestEvent, options, findings };
}
