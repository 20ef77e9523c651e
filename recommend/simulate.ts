// Replaying aggregated traffic against ACLs: which calls and sources a proposal (or the ACLs in force) would
// deny, per key. Pure: the rows come from analyze/replay.ts, each row one key × source (already summed), and
// every decision is `decide()` from model/acl-rules.ts, so replay and enforcement cannot disagree.
import { decide, VERDICT_TEXT, type AclsInForce, type VerdictCode } from '../model/acl-rules.ts';
import type { KeyKind, SourceKind } from '../model/types.ts';

/** One key × source × exempt combination over a window, summed. `ip` is null for sources that are not addresses. */
export interface SourceAggregate {
  accessKeyId: string | null;
  keyKind: KeyKind;
  sourceKind: SourceKind;
  ip: string | null;
  vpcId: string | null;
  exempt: boolean;
  calls: number;
  /** Calls the real ACL refused (AccessPolicyDenied) when they were made. */
  deniedCalls: number;
  errorCalls: number;
  days: number;
  firstSeen: string;
  lastSeen: string;
}

/** Whether a source is legitimate traffic (breaking it is a false deny) or looks like a leaked key in use. */
export interface SourceJudgement {
  legitimate: boolean;
  /** Why it is not, e.g. "burst from a new address, 80% errors: possible leak". */
  reason?: string;
}

export type SourceJudge = (accessKeyId: string, source: { ip: string; vpcId: string | null; sourceKind: SourceKind }) => SourceJudgement;

export interface SimulateOptions {
  /** Default: every source is legitimate (the safe assumption for a gate). */
  judge?: SourceJudge;
  /** Denied sources listed per key (the rest are counted). Default 5. */
  examplesPerKey?: number;
}

export interface DeniedSource {
  ip: string;
  vpcId: string | null;
  sourceKind: SourceKind;
  code: VerdictCode;
  reason: string;
  calls: number;
  days: number;
  firstSeen: string;
  lastSeen: string;
  legitimate: boolean;
  suspicion: string | null;
}

export interface KeySimulation {
  accessKeyId: string;
  /** Which ACL would govern the key: its own, the account's, or none. */
  governedBy: 'key' | 'account' | null;
  calls: number;
  /** Calls an ACL can act on: permanent key, governed service, public or VPC address. */
  governedCalls: number;
  deniedCalls: number;
  legitimateDeniedCalls: number;
  deniedSources: number;
  legitimateDeniedSources: number;
  /** Denied calls / governed calls. */
  deniedShare: number;
  legitimateDeniedShare: number;
  /** The most-called denied sources, legitimate first. */
  examples: DeniedSource[];
}

/** How often one entry admitted calls (drift: entries nobody uses). */
export interface EntryUse {
  /** `account` or the AccessKey ID whose key-level ACL holds the entry. */
  scope: string;
  vpcId: string | null;
  cidr: string;
  calls: number;
  lastSeen: string | null;
}

export interface SimulationReport {
  totals: {
    calls: number;
    governedCalls: number;
    deniedCalls: number;
    legitimateDeniedCalls: number;
    suspectDeniedCalls: number;
    deniedSources: number;
    legitimateDeniedSources: number;
    keys: number;
    keysWithDenials: number;
    /** Keys that would lose legitimate calls. */
    keysBreaking: number;
    /** Calls whose source is not an address: the decision cannot be reproduced. */
    undeterminedCalls: number;
  };
  /** Calls no ACL can deny, by reason (STS, exempt service, inter-service, no key). */
  notGoverned: Partial<Record<VerdictCode, number>>;
  /** Keys sorted by legitimate denied calls, then denied calls, then ID. */
  keys: KeySimulation[];
  entryUse: EntryUse[];
}

const NOT_GOVERNED: ReadonlySet<VerdictCode> = new Set(['not-governed-no-key', 'not-governed-sts', 'not-governed-exempt-service', 'not-governed-inter-service']);

/** Replays `rows` against `acls`. Deterministic: sorted keys, sources and entries. */
export function simulate(acls: AclsInForce, rows: readonly SourceAggregate[], options: SimulateOptions = {}): SimulationReport {
  const judge = options.judge ?? (() => ({ legitimate: true }));
  const examplesPerKey = options.examplesPerKey ?? 5;
  const perKey = new Map<string, { sim: KeySimulation; denied: DeniedSource[] }>();
  const notGoverned: Partial<Record<VerdictCode, number>> = {};
  const entryUse = initialEntryUse(acls);
  let undeterminedCalls = 0;

  for (const row of rows) {
    const verdict = decide(acls, {
      accessKeyId: row.accessKeyId,
      keyKind: row.keyKind,
      sourceKind: row.sourceKind,
      ip: row.ip,
      vpcId: row.vpcId,
      exemptService: row.exempt,
    });
    if (NOT_GOVERNED.has(verdict.code) || !row.accessKeyId) {
      notGoverned[verdict.code] = (notGoverned[verdict.code] ?? 0) + row.calls;
      if (row.accessKeyId && row.keyKind === 'permanent') keyEntry(perKey, row.accessKeyId, acls).sim.calls += row.calls;
      continue;
    }
    const entry = keyEntry(perKey, row.accessKeyId, acls);
    entry.sim.calls += row.calls;
    if (verdict.code === 'undetermined-source') {
      undeterminedCalls += row.calls;
      continue;
    }
    entry.sim.governedCalls += row.calls;
    if (verdict.allowed) {
      if (verdict.matched) {
        const scope = verdict.governedBy === 'key' ? row.accessKeyId : 'account';
        const use = entryUse.get(entryKey(scope, verdict.matched.vpcId, verdict.matched.cidr));
        if (use) {
          use.calls += row.calls;
          if (use.lastSeen === null || row.lastSeen > use.lastSeen) use.lastSeen = row.lastSeen;
        }
      }
      continue;
    }
    const judgement = judge(row.accessKeyId, { ip: row.ip!, vpcId: row.vpcId, sourceKind: row.sourceKind });
    entry.sim.deniedCalls += row.calls;
    if (judgement.legitimate) entry.sim.legitimateDeniedCalls += row.calls;
    entry.denied.push({
      ip: row.ip!,
      vpcId: row.vpcId,
      sourceKind: row.sourceKind,
      code: verdict.code,
      reason: VERDICT_TEXT[verdict.code],
      calls: row.calls,
      days: row.days,
      firstSeen: row.firstSeen,
      lastSeen: row.lastSeen,
      legitimate: judgement.legitimate,
      suspicion: judgement.legitimate ? null : judgement.reason ?? 'flagged as a possible leak',
    });
  }

  const keys = [...perKey.values()].map(({ sim, denied }) => finishKey(sim, denied, examplesPerKey));
  keys.sort((a, b) => b.legitimateDeniedCalls - a.legitimateDeniedCalls || b.deniedCalls - a.deniedCalls || cmp(a.accessKeyId, b.accessKeyId));
  const totals = {
    calls: rows.reduce((s, r) => s + r.calls, 0),
    governedCalls: sum(keys, (k) => k.governedCalls),
    deniedCalls: sum(keys, (k) => k.deniedCalls),
    legitimateDeniedCalls: sum(keys, (k) => k.legitimateDeniedCalls),
    suspectDeniedCalls: sum(keys, (k) => k.deniedCalls - k.legitimateDeniedCalls),
    deniedSources: sum(keys, (k) => k.deniedSources),
    legitimateDeniedSources: sum(keys, (k) => k.legitimateDeniedSources),
    keys: keys.length,
    keysWithDenials: keys.filter((k) => k.deniedCalls > 0).length,
    keysBreaking: keys.filter((k) => k.legitimateDeniedCalls > 0).length,
    undeterminedCalls,
  };
  const uses = [...entryUse.values()].sort((a, b) => cmp(a.scope, b.scope) || cmp(a.vpcId ?? '', b.vpcId ?? '') || cmp(a.cidr, b.cidr));
  return { totals, notGoverned: sortedRecord(notGoverned), keys, entryUse: uses };
}

/** The gate: true when some legitimate governed call would be denied. */
export function breaksLegitimateTraffic(report: SimulationReport): boolean {
  return report.totals.legitimateDeniedCalls > 0;
}

function keyEntry(perKey: Map<string, { sim: KeySimulation; denied: DeniedSource[] }>, accessKeyId: string, acls: AclsInForce) {
  let entry = perKey.get(accessKeyId);
  if (!entry) {
    const governedBy = acls.keyLevel.has(accessKeyId) ? 'key' : acls.accountLevel ? 'account' : null;
    entry = {
      sim: {
        accessKeyId, governedBy, calls: 0, governedCalls: 0, deniedCalls: 0, legitimateDeniedCalls: 0,
        deniedSources: 0, legitimateDeniedSources: 0, deniedShare: 0, legitimateDeniedShare: 0, examples: [],
      },
      denied: [],
    };
    perKey.set(accessKeyId, entry);
  }
  return entry;
}

function finishKey(sim: KeySimulation, denied: DeniedSource[], examplesPerKey: number): KeySimulation {
  denied.sort((a, b) => Number(b.legitimate) - Number(a.legitimate) || b.calls - a.calls || cmp(a.vpcId ?? '', b.vpcId ?? '') || cmp(a.ip, b.ip));
  return {
    ...sim,
    deniedSources: denied.length,
    legitimateDeniedSources: denied.filter((d) => d.legitimate).length,
    deniedShare: sim.governedCalls > 0 ? sim.deniedCalls / sim.governedCalls : 0,
    legitimateDeniedShare: sim.governedCalls > 0 ? sim.legitimateDeniedCalls / sim.governedCalls : 0,
    examples: denied.slice(0, examplesPerKey),
  };
}

function initialEntryUse(acls: AclsInForce): Map<string, EntryUse> {
  const uses = new Map<string, EntryUse>();
  const add = (scope: string, acl: AclsInForce['accountLevel']) => {
    if (!acl) return;
    for (const cidr of acl.publicRule?.cidrs ?? []) uses.set(entryKey(scope, null, cidr), { scope, vpcId: null, cidr, calls: 0, lastSeen: null });
    for (const rule of acl.vpcRules) {
      for (const cidr of rule.cidrs) uses.set(entryKey(scope, rule.vpcId, cidr), { scope, vpcId: rule.vpcId, cidr, calls: 0, lastSeen: null });
    }
  };
  add('account', acls.accountLevel);
  for (const [key, acl] of acls.keyLevel) add(key, acl);
  return uses;
}

function entryKey(scope: string, vpcId: string | null, cidr: string): string {
  return `${scope}\u0000${vpcId ?? ''}\u0000${cidr}`;
}

function sortedRecord<T>(r: Partial<Record<VerdictCode, T>>): Partial<Record<VerdictCode, T>> {
  return Object.fromEntries(Object.entries(r).sort(([a], [b]) => cmp(a, b))) as Partial<Record<VerdictCode, T>>;
}

function sum<T>(items: readonly T[], f: (t: T) => number): number {
  let s = 0;
  for (const i of items) s += f(i);
  return s;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// ---------------------------------------------------------------- drift since approval

export interface DriftInput {
  /** The approved ACLs, read as enabled (what will be in force). */
  approved: AclsInForce;
  /** Keys the approval names: key-level ACLs plus the account level's covered keys. */
  approvedKeys: readonly string[];
  /** Traffic since the approval check window (`--since`). */
  recentRows: readonly SourceAggregate[];
  /** Traffic over the last `--unused-days` (entries and keys nobody used). */
  usageRows: readonly SourceAggregate[];
  judge?: SourceJudge;
}

export interface DriftReport {
  /** Sources seen recently that the approved ACLs would deny, legitimate first. */
  newDeniedSources: Array<DeniedSource & { accessKeyId: string }>;
  /** Entries that admitted no call over the usage window: candidates to remove. */
  unusedEntries: EntryUse[];
  /** Approved keys with no call over the usage window. */
  dormantKeys: string[];
  /** Keys with governed traffic that the approval does not name. */
  newKeysWithoutAcl: Array<{ accessKeyId: string; governedCalls: number; governedBy: 'account' | null }>;
  needsAttention: boolean;
}

export function drift(input: DriftInput): DriftReport {
  const recent = simulate(input.approved, input.recentRows, { judge: input.judge, examplesPerKey: Number.MAX_SAFE_INTEGER });
  const usage = simulate(input.approved, input.usageRows, { examplesPerKey: 0 });
  const newDeniedSources = recent.keys
    .flatMap((k) => k.examples.map((e) => ({ accessKeyId: k.accessKeyId, ...e })))
    .sort((a, b) => Number(b.legitimate) - Number(a.legitimate) || b.calls - a.calls || cmp(a.accessKeyId, b.accessKeyId) || cmp(a.ip, b.ip));
  const unusedEntries = usage.entryUse.filter((u) => u.calls === 0);
  const active = new Set(usage.keys.filter((k) => k.calls > 0).map((k) => k.accessKeyId));
  const approvedKeys = new Set(input.approvedKeys);
  const dormantKeys = [...approvedKeys].filter((k) => !active.has(k)).sort();
  const newKeysWithoutAcl = recent.keys
    .filter((k) => k.governedCalls > 0 && !approvedKeys.has(k.accessKeyId))
    .map((k) => ({ accessKeyId: k.accessKeyId, governedCalls: k.governedCalls, governedBy: k.governedBy === 'account' ? 'account' as const : null }))
    .sort((a, b) => cmp(a.accessKeyId, b.accessKeyId));
  return {
    newDeniedSources,
    unusedEntries,
    dormantKeys,
    newKeysWithoutAcl,
    needsAttention: newDeniedSources.length + unusedEntries.length + dormantKeys.length + newKeysWithoutAcl.length > 0,
  };
}
