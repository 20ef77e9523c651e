// Findings: key hygiene and suspicious use, as small value objects. The code decides only which finding IDs
// apply and with what evidence; what each means (title, severity, advice) is data in model/findings-catalog.ts.
// The leak and pool heuristics are the recommender's (recommend/suspicion.ts), so a source reported here as a
// possible leak is exactly one the recommender keeps out of its proposal.
import { EXIT, type ExitCode } from '../model/errors.ts';
import { findingMeta, severityRank, type FindingId, type Severity } from '../model/findings-catalog.ts';
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
  /** …and at least this many distinct sources… */
  minUnusualSources: number;
  /** …among at least this many keys of the account (fewer peers: no baseline, no finding). */
  minPeers: number;
}

export const DEFAULT_FINDINGS_OPTIONS: FindingsOptions = { dormantDays: 30, madFactor: 4, minUnusualSources: 10, minPeers: 5 };

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
  out.push(...unusualSourceCounts(permanent, options));
  out.push(...suspicious(permanent, input.profiles, input.window));
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

/** Per account, keys whose distinct governed sources exceed median + k·(1.4826·MAD) (MAD floored at 1). */
function unusualSourceCounts(profiles: KeyProfile[], options: FindingsOptions): Finding[] {
  const byAccount = new Map<string, KeyProfile[]>();
  for (const p of profiles) {
    const account = p.accountId ?? '';
    byAccount.set(account, [...(byAccount.get(account) ?? []), p]);
  }
  const out: Finding[] = [];
  for (const [account, keys] of byAccount) {
    if (keys.length < options.minPeers) continue;
    const counts = keys.map((p) => p.publicSources.length + p.vpcSources.length);
    const m = median(counts);
    const mad = median(counts.map((c) => Math.abs(c - m)));
    const spread = Math.max(1.4826 * mad, 1);
    const threshold = m + options.madFactor * spread;
    keys.forEach((p, i) => {
      const n = counts[i]!;
      if (n <= threshold || n < options.minUnusualSources) return;
      out.push(finding('unusual-source-count', p.accessKeyId,
        `${n} distinct sources, against a median of ${m} over the account's ${keys.length} keys (threshold ${round(threshold)})`, {
          sources: n, publicSources: p.publicSources.length, vpcSources: p.vpcSources.length,
          accountId: account || null, peers: keys.length, median: m, mad, threshold: round(threshold),
        }));
    });
  }
  return out;
}

function round(x: number): number {
  return Math.round(x * 10) / 10;
}

/**
 * Leaks and pools, judged exactly as the recommender judges them: every analyzed profile is the shared pool
 * evidence (recommend() passes its whole sorted profile list too), so a source reported here as a possible
 * leak is one the proposal leaves out.
 */
function suspicious(profiles: KeyProfile[], allProfiles: KeyProfile[], window: TimeWindow): Finding[] {
  const out: Finding[] = [];
  for (const p of profiles) {
    const { leaks, pools } = classifySources(p, { window, accountProfiles: allProfiles });
    for (const leak of leaks) {
      out.push(finding(leak.kind === 'loud' ? 'possible-leak' : 'possible-quiet-leak', p.accessKeyId, `${leak.ip}: ${leak.reason}`, {
        source: leak.ip, calls: leak.calls, days: leak.days, firstSeen: leak.firstSeen, lastSeen: leak.lastSeen,
        errorShare: round(leak.errorShare * 100) / 100, sensitiveCalls: leak.sensitiveCalls, signals: leak.signals,
      }));
    }
    for (const pool of pools) {
      const where = pool.vpcId ? `${pool.cidr} in ${pool.vpcId}` : pool.cidr;
      out.push(finding('dynamic-pool', p.accessKeyId, `${pool.keyAddresses.length} of the key's addresses in ${where}: ${pool.reason}`, {
        cidr: pool.cidr, vpcId: pool.vpcId, keyAddresses: pool.keyAddresses.length, evidenceAddresses: pool.evidenceAddresses, keys: pool.keys, calls: pool.calls,
      }));
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

/** Findings over a store: the analysis window's profiles plus dormancy over the whole store. */
export async function loadFindings(store: Store, request: AnalysisRequest, options: FindingsOptions = DEFAULT_FINDINGS_OPTIONS): Promise<FindingsReport> {
  const analysis = await analyzeStore(store, request);
  const [newest] = await store.query<{ newest: string }>(`SELECT strftime(max(event_time), '%Y-%m-%dT%H:%M:%SZ') AS newest FROM events`);
  const newestEvent = newest?.newest ?? isoSeconds(new Date(analysis.window.to));
  const lastCalls = await loadLastCalls(store, request.keys);
  const findings = buildFindings({ window: analysis.window, newestEvent, profiles: analysis.profiles, lastCalls }, options);
  return { window: analysis.window, newestEvent, options, findings };
}
