// The report's data: what the HTML page embeds as JSON and renders every number from. Pure: a ReviewResult in,
// a plain JSON-able object out, keys sorted most urgent first.
import { governingAcl } from '../model/acl-rules.ts';
import type { Severity } from '../model/findings-catalog.ts';
import type { Excluded, KeyProfile, KeyProposal, KeyWithoutAcl } from '../model/types.ts';
import type { DailyActivityRow } from '../analyze/profiles.ts';
import type { ReviewResult } from './report-collect.ts';

export const REPORT_DATA_VERSION = 1;
/** Sources drawn by name in a key's timeline; the rest are summed as "other". */
export const TIMELINE_TOP_SOURCES = 5;
const DAY_MS = 86_400_000;

export type Urgency = 'high' | 'medium' | 'low' | 'none';

export interface ReportEntry {
  /** `public` or the VPC ID. */
  rule: string;
  cidr: string;
  calls: number;
  days: number;
  firstSeen: string;
  lastSeen: string;
  addresses: number | null;
}

export interface ReportKey {
  accessKeyId: string;
  userName: string | null;
  identityType: string | null;
  urgency: Urgency;
  /** Why the key is as urgent as it is, most urgent reason first. */
  reasons: string[];
  /** Which approved ACL governs the key, if any. */
  protectedBy: 'key' | 'account' | null;
  calls: number;
  publicSources: number;
  vpcSources: number;
  firstSeen: string | null;
  lastSeen: string | null;
  userAgents: string[];
  proposal: { kind: 'key' | 'account' | 'none'; reason: string | null; entries: ReportEntry[] };
  excluded: Excluded[];
  /** Excluded as possible leaks. */
  suspicious: Excluded[];
  warnings: string[];
  findings: Array<{ id: string; severity: Severity; title: string; detail: string; advice: string }>;
  drift: {
    newDeniedSources: Array<{ source: string; vpcId: string | null; calls: number; firstSeen: string; legitimate: boolean; suspicion: string | null }>;
    unusedEntries: Array<{ rule: string; cidr: string }>;
    dormant: boolean;
    withoutAcl: boolean;
  } | null;
  /** Daily governed calls, aligned with `days` of the report: top sources by calls, then "other". */
  timeline: Array<{ label: string; calls: number[] }>;
}

export interface ReportData {
  version: typeof REPORT_DATA_VERSION;
  generatedAt: string;
  window: { from: string; to: string };
  newestEvent: string;
  prunedBefore: string | null;
  /** UTC days of the window, `YYYY-MM-DD`, for every timeline. */
  days: string[];
  summary: {
    keys: number;
    protectedKeys: number;
    unprotectedKeys: number;
    urgentKeys: number;
    calls: number;
    findings: number;
    findingsBySeverity: Record<Severity, number>;
    proposedAcls: number;
    proposedEntries: number;
    accountLevelProposed: boolean;
    stsCalls: number;
  };
  approval: {
    file: string;
    approvedBy: string | null;
    approvedAt: string | null;
    sealOk: boolean | null;
    sealProblems: string[];
  } | null;
  drift: {
    recentWindow: { from: string; to: string };
    unusedDays: number;
    newDeniedSources: number;
    legitimateNewDeniedSources: number;
    unusedEntries: number;
    dormantKeys: number;
    newKeysWithoutAcl: number;
    needsAttention: boolean;
  } | null;
  /** Account-level findings and the account-level proposal, if any. */
  accountLevel: { entries: ReportEntry[]; coveredKeys: string[]; warnings: string[] } | null;
  warnings: string[];
  notes: string[];
  keys: ReportKey[];
}

function entriesOf(p: { evidence: KeyProposal['evidence'] }): ReportEntry[] {
  return p.evidence.map((e) => ({
    rule: e.vpcId ?? 'public', cidr: e.cidr, calls: e.calls, days: e.days, firstSeen: e.firstSeen, lastSeen: e.lastSeen, addresses: e.addresses ?? null,
  }));
}

/** The UTC days of [from, to). */
export function windowDays(window: { from: string; to: string }): string[] {
  const start = Math.floor(Date.parse(window.from) / DAY_MS) * DAY_MS;
  const end = Date.parse(window.to);
  const days: string[] = [];
  for (let t = start; t < end; t += DAY_MS) days.push(new Date(t).toISOString().slice(0, 10));
  return days;
}

/** Per key: the top sources by calls as their own series, the rest summed as "other". */
export function timelines(rows: readonly DailyActivityRow[], days: readonly string[], top = TIMELINE_TOP_SOURCES): Map<string, Array<{ label: string; calls: number[] }>> {
  const dayIndex = new Map(days.map((d, i) => [d, i]));
  const perKey = new Map<string, Map<string, { total: number; calls: number[] }>>();
  for (const r of rows) {
    const i = dayIndex.get(r.day);
    if (i === undefined) continue;
    let sources = perKey.get(r.accessKeyId);
    if (!sources) perKey.set(r.accessKeyId, (sources = new Map()));
    const label = r.sourceKind === 'vpc' ? `${r.vpcId ?? 'vpc'} ${r.sourceIp}` : r.sourceIp;
    let s = sources.get(label);
    if (!s) sources.set(label, (s = { total: 0, calls: new Array<number>(days.length).fill(0) }));
    s.calls[i]! += r.calls;
    s.total += r.calls;
  }
  const out = new Map<string, Array<{ label: string; calls: number[] }>>();
  for (const [key, sources] of perKey) {
    const ranked = [...sources].sort(([la, a], [lb, b]) => b.total - a.total || (la < lb ? -1 : la > lb ? 1 : 0));
    const series = ranked.slice(0, top).map(([label, s]) => ({ label, calls: s.calls }));
    const rest = ranked.slice(top);
    if (rest.length > 0) {
      const other = new Array<number>(days.length).fill(0);
      for (const [, s] of rest) s.calls.forEach((c, i) => (other[i]! += c));
      series.push({ label: `other (${rest.length} sources)`, calls: other });
    }
    out.set(key, series);
  }
  return out;
}

const URGENCY_ORDER: readonly Urgency[] = ['high', 'medium', 'low', 'none'];

export function buildReportData(review: ReviewResult): ReportData {
  const days = windowDays(review.window);
  const lines = timelines(review.daily, days);
  const profiles = new Map(review.analysis.profiles.filter((p) => p.keyKind === 'permanent').map((p) => [p.accessKeyId, p]));
  const proposed = new Map(review.proposal.accessKeys.map((k) => [k.accessKeyId, k]));
  const without = new Map((review.proposal.keysWithoutAcl ?? []).map((k) => [k.accessKeyId, k]));
  const lastCalls = new Map(review.lastCalls.map((c) => [c.accessKeyId, c]));
  const findingsByKey = new Map<string, ReviewResult['findings']>();
  for (const f of review.findings) findingsByKey.set(f.keyId, [...(findingsByKey.get(f.keyId) ?? []), f]);
  const approved = review.approval?.acls ?? null;
  const d = review.drift;

  const keyIds = new Set<string>([...profiles.keys(), ...proposed.keys(), ...without.keys(), ...findingsByKey.keys()]);
  if (approved) for (const k of approved.namedKeys) keyIds.add(k);
  for (const k of d?.newKeysWithoutAcl ?? []) keyIds.add(k.accessKeyId);
  keyIds.delete('account');

  const keys: ReportKey[] = [...keyIds].map((id) => {
    const profile = profiles.get(id) ?? null;
    const prop = proposed.get(id) ?? null;
    const wo = without.get(id) ?? null;
    const last = lastCalls.get(id) ?? null;
    const findings = (findingsByKey.get(id) ?? []).map((f) => ({ id: f.id, severity: f.severity, title: f.title, detail: f.detail, advice: f.advice }));
    const protectedBy = approved ? governingAcl(approved.inForce, id)?.level ?? null : null;
    const excludedAll = prop?.excluded ?? wo?.excluded ?? [];
    const keyDrift = d
      ? {
        newDeniedSources: d.newDeniedSources.filter((s) => s.accessKeyId === id).map((s) => ({ source: s.ip, vpcId: s.vpcId, calls: s.calls, firstSeen: s.firstSeen, legitimate: s.legitimate, suspicion: s.suspicion })),
        unusedEntries: d.unusedEntries.filter((u) => u.scope === id).map((u) => ({ rule: u.vpcId ?? 'public', cidr: u.cidr })),
        dormant: d.dormantKeys.includes(id),
        withoutAcl: d.newKeysWithoutAcl.some((k) => k.accessKeyId === id),
      }
      : null;
    const key: ReportKey = {
      accessKeyId: id,
      userName: profile?.userName ?? prop?.userName ?? wo?.userName ?? last?.userName ?? null,
      identityType: profile?.identityType ?? last?.identityType ?? null,
      urgency: 'none',
      reasons: [],
      protectedBy,
      calls: profile?.totalCalls ?? 0,
      publicSources: profile?.publicSources.length ?? 0,
      vpcSources: profile?.vpcSources.length ?? 0,
      firstSeen: profile?.firstSeen ?? null,
      lastSeen: profile?.lastSeen ?? last?.lastSeen ?? null,
      userAgents: topUserAgents(profile),
      proposal: prop
        ? { kind: 'key', reason: null, entries: entriesOf(prop) }
        : wo
          ? { kind: wo.coveredByAccount ? 'account' : 'none', reason: wo.reason, entries: [] }
          : { kind: 'none', reason: profile ? 'no ACL proposed' : 'no call in the window', entries: [] },
      excluded: excludedAll.filter((x) => x.code !== 'possible-leak'),
      suspicious: excludedAll.filter((x) => x.code === 'possible-leak'),
      warnings: [...(prop?.warnings ?? []), ...(wo?.warnings ?? [])],
      findings,
      drift: keyDrift,
      timeline: lines.get(id) ?? [],
    };
    [key.urgency, key.reasons] = urgencyOf(key, wo, Boolean(approved));
    return key;
  });
  keys.sort((a, b) =>
    URGENCY_ORDER.indexOf(a.urgency) - URGENCY_ORDER.indexOf(b.urgency) || b.reasons.length - a.reasons.length || b.calls - a.calls || (a.accessKeyId < b.accessKeyId ? -1 : 1));

  const bySeverity: Record<Severity, number> = { high: 0, medium: 0, low: 0, info: 0 };
  for (const f of review.findings) bySeverity[f.severity] += 1;
  const acct = review.proposal.accountLevel;
  const proposedEntries = review.proposal.accessKeys.reduce((n, k) => n + k.evidence.length, 0) + (acct?.evidence.length ?? 0);
  const protectedKeys = keys.filter((k) => k.protectedBy !== null).length;
  return {
    version: REPORT_DATA_VERSION,
    generatedAt: review.generatedAt,
    window: review.window,
    newestEvent: review.newestEvent,
    prunedBefore: review.prunedBefore,
    days,
    summary: {
      keys: keys.length,
      protectedKeys,
      unprotectedKeys: keys.length - protectedKeys,
      urgentKeys: keys.filter((k) => k.urgency === 'high').length,
      calls: keys.reduce((n, k) => n + k.calls, 0),
      findings: review.findings.length,
      findingsBySeverity: bySeverity,
      proposedAcls: review.proposal.accessKeys.length + (acct ? 1 : 0),
      proposedEntries,
      accountLevelProposed: acct !== null,
      stsCalls: review.analysis.sts?.calls ?? 0,
    },
    approval: review.approval
      ? {
        file: review.approval.file,
        approvedBy: review.approval.approvedBy,
        approvedAt: review.approval.approvedAt,
        sealOk: review.approval.seal ? review.approval.seal.ok : null,
        sealProblems: review.approval.seal?.problems ?? [],
      }
      : null,
    drift: d
      ? {
        recentWindow: d.recentWindow,
        unusedDays: d.unusedDays,
        newDeniedSources: d.newDeniedSources.length,
        legitimateNewDeniedSources: d.newDeniedSources.filter((s) => s.legitimate).length,
        unusedEntries: d.unusedEntries.length,
        dormantKeys: d.dormantKeys.length,
        newKeysWithoutAcl: d.newKeysWithoutAcl.length,
        needsAttention: d.needsAttention,
      }
      : null,
    accountLevel: acct ? { entries: entriesOf(acct), coveredKeys: acct.coveredKeys ?? [], warnings: acct.warnings } : null,
    warnings: review.proposal.warnings ?? [],
    notes: review.analysis.notes,
    keys,
  };
}

function topUserAgents(profile: KeyProfile | null): string[] {
  if (!profile) return [];
  const seen = new Set<string>();
  for (const s of [...profile.publicSources, ...profile.vpcSources]) for (const ua of s.userAgents) seen.add(ua);
  return [...seen].sort().slice(0, 5);
}

/** Most urgent first: drift that breaks traffic, high findings and leaks; then unprotected keys with traffic. */
function urgencyOf(key: ReportKey, wo: KeyWithoutAcl | null, haveApproval: boolean): [Urgency, string[]] {
  const reasons: Array<[Urgency, string]> = [];
  const legit = key.drift?.newDeniedSources.filter((s) => s.legitimate).length ?? 0;
  if (legit > 0) reasons.push(['high', `${legit} new legitimate source(s) the approved ACL would deny`]);
  if (key.suspicious.length > 0) reasons.push(['high', `${key.suspicious.length} possible leak source(s)`]);
  const byTitle = new Map<string, { level: Urgency; n: number }>();
  for (const f of key.findings) {
    const seen = byTitle.get(f.title);
    if (seen) seen.n += 1;
    else byTitle.set(f.title, { level: f.severity === 'info' ? 'low' : f.severity, n: 1 });
  }
  for (const [title, { level, n }] of byTitle) reasons.push([level, n > 1 ? `${title} (×${n})` : title]);
  const suspect = (key.drift?.newDeniedSources.length ?? 0) - legit;
  if (suspect > 0) reasons.push(['medium', `${suspect} new suspicious source(s) kept out by the approved ACL`]);
  if (key.drift?.withoutAcl) reasons.push(['medium', 'governed traffic but not in the approval']);
  if (key.drift?.dormant) reasons.push(['low', 'approved key without calls']);
  if ((key.drift?.unusedEntries.length ?? 0) > 0) reasons.push(['low', `${key.drift!.unusedEntries.length} approved entr${key.drift!.unusedEntries.length === 1 ? 'y' : 'ies'} unused`]);
  if (haveApproval && key.protectedBy === null && key.calls > 0 && !(wo && !wo.coveredByAccount && key.proposal.entries.length === 0 && key.publicSources + key.vpcSources === 0)) {
    reasons.push(['medium', 'not protected by an approved ACL']);
  }
  reasons.sort((a, b) => URGENCY_ORDER.indexOf(a[0]) - URGENCY_ORDER.indexOf(b[0]));
  const level = reasons[0]?.[0] ?? 'none';
  return [level, reasons.map(([, r]) => r)];
}
