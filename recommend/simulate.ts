// Replaying aggregated traffic against ACLs: which calls and sources a proposal (or the ACLs in force) would
// deny, per key. Pure: the rows come from analyze/replay.ts, each row one key × source (already summed), and
// every decision is `decide()` from model/acl-rules.ts, so replay and enforcement cannot disagree.
import { parseAddress, parsePrefix, prefixContains, prefixEnd, type Prefix } from '../model/address.ts';
import { decide, governingAcl, VERDICT_TEXT, type AclsInForce, type CompiledAcl, type GovernedCall, type Verdict, type VerdictCode } from '../model/acl-rules.ts';
import type { KeyKind, KeyProfile, SourceKind, SourceUsage, TimeWindow } from '../model/types.ts';
import { PublicSourceRecord } from '../model/source-usage.ts';
import { classifySources } from './suspicion.ts';

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
  /** Calls to SENSITIVE_APIS (model/acl-rules.ts); the leak heuristics weigh them. */
  sensitiveCalls?: number;
  days: number;
  firstSeen: string;
  lastSeen: string;
}

/**
 * Whether a source is legitimate traffic (breaking it is a false deny), looks like a leaked key in use, or was
 * left out by the proposal on purpose (listed in its `excluded`, e.g. a one-off: a reviewed, accepted break).
 */
export interface SourceJudgement {
  legitimate: boolean;
  /** The proposal's own exclusion reason, when it lists this source (and not as a possible leak). */
  excludedByProposal?: string;
  /** Why it is not, e.g. "burst from a new address, 80% errors: possible leak". */
  reason?: string;
}

export type SourceJudge = (accessKeyId: string, source: { ip: string; vpcId: string | null; sourceKind: SourceKind }) => SourceJudgement;

export interface SimulateOptions {
  /** Default: every source is legitimate (the safe assumption for a gate). */
  judge?: SourceJudge;
  /** Denied sources listed per key (the rest are counted). Default 5. */
  examplesPerKey?: number;
  /** `decideRows(acls, rows)` computed before (e.g. to find the keys worth judging): not computed again. */
  verdicts?: readonly Verdict[];
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
  /** `breaks` (legitimate), `excluded` (the proposal leaves it out on purpose), `suspect` (possible leak). */
  status: 'breaks' | 'excluded' | 'suspect';
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
  /** Denied calls from sources the proposal excludes on purpose (not counted as legitimate breaks). */
  excludedDeniedCalls: number;
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
    /** Denied calls from sources the proposal itself excludes (one-offs, thresholds): reviewed, accepted. */
    excludedDeniedCalls: number;
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
  const judge = options.judge ?? (() => LEGITIMATE);
  const examplesPerKey = options.examplesPerKey ?? 5;
  const perKey = new Map<string, KeyTally>();
  const notGoverned: Partial<Record<VerdictCode, number>> = {};
  const entryUse = initialEntryUse(acls);
  let undeterminedCalls = 0;
  let totalCalls = 0;

  const verdicts = options.verdicts ?? decideRows(acls, rows);
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i]!;
    const verdict = verdicts[i]!;
    totalCalls += row.calls;
    if (NOT_GOVERNED.has(verdict.code) || !row.accessKeyId) {
      notGoverned[verdict.code] = (notGoverned[verdict.code] ?? 0) + row.calls;
      if (row.accessKeyId && row.keyKind === 'permanent') keyTally(perKey, row.accessKeyId, acls).sim.calls += row.calls;
      continue;
    }
    const tally = keyTally(perKey, row.accessKeyId, acls);
    tally.sim.calls += row.calls;
    if (verdict.code === 'undetermined-source') {
      undeterminedCalls += row.calls;
      continue;
    }
    tally.sim.governedCalls += row.calls;
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
    tally.sim.deniedCalls += row.calls;
    tally.sim.deniedSources++;
    if (judgement.legitimate) {
      tally.sim.legitimateDeniedCalls += row.calls;
      tally.sim.legitimateDeniedSources++;
    } else if (judgement.excludedByProposal) {
      tally.sim.excludedDeniedCalls += row.calls;
    }
    tally.denied.push({ row: i, judgement });
  }

  const keys = [...perKey.values()].map((t) => finishKey(t, rows, verdicts, examplesPerKey));
  keys.sort((a, b) => b.legitimateDeniedCalls - a.legitimateDeniedCalls || b.deniedCalls - a.deniedCalls || cmp(a.accessKeyId, b.accessKeyId));
  const totals = {
    calls: totalCalls,
    governedCalls: sum(keys, (k) => k.governedCalls),
    deniedCalls: sum(keys, (k) => k.deniedCalls),
    legitimateDeniedCalls: sum(keys, (k) => k.legitimateDeniedCalls),
    suspectDeniedCalls: sum(keys, (k) => k.deniedCalls - k.legitimateDeniedCalls - k.excludedDeniedCalls),
    excludedDeniedCalls: sum(keys, (k) => k.excludedDeniedCalls),
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

const LEGITIMATE: SourceJudgement = { legitimate: true };

interface KeyTally {
  sim: KeySimulation;
  /** Denied rows by index, with their judgement: DeniedSource objects are made for the listed ones only. */
  denied: Array<{ row: number; judgement: SourceJudgement }>;
}

/** Keys with at least one call the ACLs would deny: the only ones a leak judge needs to look at. */
export function keysWithDenials(rows: readonly SourceAggregate[], verdicts: readonly Verdict[]): string[] {
  const keys = new Set<string>();
  rows.forEach((row, i) => {
    if (!verdicts[i]!.allowed && row.accessKeyId) keys.add(row.accessKeyId);
  });
  return [...keys].sort();
}

/**
 * `decide()` for every row, fast. decide's answer for a governed address depends only on the governing ACL,
 * its level, the source kind, the VPC ID and *which entries contain the address*; so the entries containing
 * each address are found with plain number comparisons (IPv4; bigint only for IPv6), and decide() runs once
 * per distinct combination, its verdict shared by every row in it. decide() stays the only judge.
 */
export function decideRows(acls: AclsInForce, rows: readonly SourceAggregate[]): Verdict[] {
  const cache = new Map<CompiledAcl, Map<string, Map<number | string, Verdict>>>();
  const out: Verdict[] = [];
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i]!;
    const governed = row.accessKeyId && row.keyKind === 'permanent' && !row.exempt && (row.sourceKind === 'public' || row.sourceKind === 'vpc') && row.ip;
    const gov = governed ? governingAcl(acls, row.accessKeyId!) : null;
    const addr = gov && gov.acl.enabled ? fastAddress(row.ip!) : null;
    if (!gov || !addr) {
      out.push(decide(acls, callOf(row)));
      continue;
    }
    let byGroup = cache.get(gov.acl);
    if (!byGroup) cache.set(gov.acl, (byGroup = new Map()));
    const group = row.sourceKind === 'public' ? (gov.level === 'key' ? 'key|public' : 'account|public') : `${gov.level}|vpc|${row.vpcId ?? ''}`;
    let byHits = byGroup.get(group);
    if (!byHits) byGroup.set(group, (byHits = new Map()));
    const hits = containingEntries(gov.acl, row.sourceKind, addr);
    let verdict = byHits.get(hits);
    if (!verdict) byHits.set(hits, (verdict = decide(acls, callOf(row))));
    out.push(verdict);
  }
  return out;
}

function callOf(row: SourceAggregate): GovernedCall {
  return { accessKeyId: row.accessKeyId, keyKind: row.keyKind, sourceKind: row.sourceKind, ip: row.ip, vpcId: row.vpcId, exemptService: row.exempt };
}

interface RangeTable {
  /** IPv4 entries as [lo, hi] numbers, per rule in rule order; IPv6 as bigints. */
  v4: Array<Float64Array>;
  v6: Array<Array<[bigint, bigint]>>;
}

const rangeTables = new WeakMap<CompiledAcl, { public: RangeTable; vpc: RangeTable }>();

function tablesOf(acl: CompiledAcl): { public: RangeTable; vpc: RangeTable } {
  let t = rangeTables.get(acl);
  if (!t) {
    const build = (rules: CompiledAcl['vpcRules']): RangeTable => ({
      v4: rules.map((r) => Float64Array.from(r.prefixes.flatMap((p) => (p.family === 4 ? [Number(p.base), Number(prefixEnd(p))] : [-1, -2])))),
      v6: rules.map((r) => r.prefixes.map((p): [bigint, bigint] => (p.family === 6 ? [p.base, prefixEnd(p)] : [1n, 0n]))),
    });
    t = { public: build(acl.publicRule ? [acl.publicRule] : []), vpc: build(acl.vpcRules) };
    rangeTables.set(acl, t);
  }
  return t;
}

type FastAddress = { family: 4; v4: number } | { family: 6; value: bigint };

/**
 * Which entries (of the rules the source kind looks at) contain the address: -1 for none, `rule * 64 + entry`
 * for exactly one (the common case, no string built), "rule:entry,…" for several.
 */
function containingEntries(acl: CompiledAcl, sourceKind: SourceKind, addr: FastAddress): number | string {
  const tables = tablesOf(acl);
  const table = sourceKind === 'public' ? tables.public : tables.vpc;
  let first = -1;
  let several = false;
  if (addr.family === 4) {
    const x = addr.v4;
    for (let r = 0; r < table.v4.length; r++) {
      const ranges = table.v4[r]!;
      for (let e = 0; e < ranges.length; e += 2) {
        if (x >= ranges[e]! && x <= ranges[e + 1]!) {
          if (first < 0) first = r * 64 + (e >> 1);
          else several = true;
        }
      }
    }
  } else {
    for (let r = 0; r < table.v6.length; r++) {
      const ranges = table.v6[r]!;
      for (let e = 0; e < ranges.length; e++) {
        if (addr.value >= ranges[e]![0] && addr.value <= ranges[e]![1]) {
          if (first < 0) first = r * 64 + e;
          else several = true;
        }
      }
    }
  }
  if (!several) return first;
  let hits = '';
  if (addr.family === 4) {
    for (let r = 0; r < table.v4.length; r++) {
      const ranges = table.v4[r]!;
      for (let e = 0; e < ranges.length; e += 2) if (addr.v4 >= ranges[e]! && addr.v4 <= ranges[e + 1]!) hits += `${r}:${e >> 1},`;
    }
  } else {
    for (let r = 0; r < table.v6.length; r++) {
      const ranges = table.v6[r]!;
      for (let e = 0; e < ranges.length; e++) if (addr.value >= ranges[e]![0] && addr.value <= ranges[e]![1]) hits += `${r}:${e},`;
    }
  }
  return hits;
}

/**
 * Parses the store's normalized address text: a plain dotted quad without leading zeros directly, anything
 * else through model/address.ts. Returns null when decide() would not see an address either.
 */
function fastAddress(text: string): FastAddress | null {
  let v = 0;
  let octets = 0;
  let digits = 0;
  let octet = 0;
  let ok = true;
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : 46;
    if (c === 46) {
      if (digits === 0 || octet > 255) { ok = false; break; }
      v = v * 256 + octet;
      octets++;
      digits = 0;
      octet = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits === 1 && octet === 0) { ok = false; break; } // leading zero: let the strict parser decide
      octet = octet * 10 + (c - 48);
      digits++;
    } else { ok = false; break; }
  }
  if (ok && octets === 4) return { family: 4, v4: v };
  const parsed = parseAddress(text);
  if (!parsed) return null;
  return parsed.family === 4 ? { family: 4, v4: Number(parsed.value) } : { family: 6, value: parsed.value };
}

/** The gate: true when some legitimate governed call would be denied. */
export function breaksLegitimateTraffic(report: SimulationReport): boolean {
  return report.totals.legitimateDeniedCalls > 0;
}

function keyTally(perKey: Map<string, KeyTally>, accessKeyId: string, acls: AclsInForce): KeyTally {
  let tally = perKey.get(accessKeyId);
  if (!tally) {
    const governedBy = acls.keyLevel.has(accessKeyId) ? 'key' : acls.accountLevel ? 'account' : null;
    tally = {
      sim: {
        accessKeyId, governedBy, calls: 0, governedCalls: 0, deniedCalls: 0, legitimateDeniedCalls: 0,
        deniedSources: 0, legitimateDeniedSources: 0, excludedDeniedCalls: 0, deniedShare: 0, legitimateDeniedShare: 0, examples: [],
      },
      denied: [],
    };
    perKey.set(accessKeyId, tally);
  }
  return tally;
}

function finishKey(tally: KeyTally, rows: readonly SourceAggregate[], verdicts: readonly Verdict[], examplesPerKey: number): KeySimulation {
  const order = (a: KeyTally['denied'][number], b: KeyTally['denied'][number]): number => {
    const x = rows[a.row]!;
    const y = rows[b.row]!;
    return rank(a.judgement) - rank(b.judgement) || y.calls - x.calls || cmp(x.vpcId ?? '', y.vpcId ?? '') || cmp(x.ip ?? '', y.ip ?? '');
  };
  const listed = topN(tally.denied, examplesPerKey, order).map(({ row, judgement }): DeniedSource => {
    const r = rows[row]!;
    const code = verdicts[row]!.code;
    return {
      ip: r.ip!, vpcId: r.vpcId, sourceKind: r.sourceKind, code, reason: VERDICT_TEXT[code],
      calls: r.calls, days: r.days, firstSeen: r.firstSeen, lastSeen: r.lastSeen,
      legitimate: judgement.legitimate,
      status: judgement.legitimate ? 'breaks' : judgement.excludedByProposal ? 'excluded' : 'suspect',
      suspicion: judgement.legitimate ? null : judgement.excludedByProposal ?? judgement.reason ?? 'flagged as a possible leak',
    };
  });
  const sim = tally.sim;
  return {
    ...sim,
    deniedShare: sim.governedCalls > 0 ? sim.deniedCalls / sim.governedCalls : 0,
    legitimateDeniedShare: sim.governedCalls > 0 ? sim.legitimateDeniedCalls / sim.governedCalls : 0,
    examples: listed,
  };
}

/** Listing order: legitimate breaks first, then deliberate exclusions, then suspects. */
function rank(j: SourceJudgement): number {
  return j.legitimate ? 0 : j.excludedByProposal ? 1 : 2;
}

/** The first `n` items in `order`, without sorting everything when n is small. */
function topN<T>(items: readonly T[], n: number, order: (a: T, b: T) => number): T[] {
  if (n <= 0) return [];
  if (items.length <= n || n > 64) return [...items].sort(order).slice(0, n);
  const best: T[] = [];
  for (const item of items) {
    if (best.length === n && order(item, best[n - 1]!) >= 0) continue;
    let at = best.length;
    while (at > 0 && order(item, best[at - 1]!) < 0) at--;
    best.splice(at, 0, item);
    if (best.length > n) best.pop();
  }
  return best;
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
  /** Only entries of these ACLs (`account` or key IDs) are checked for use; all when omitted. */
  entryScopes?: ReadonlySet<string>;
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

const STATUS_RANK: Record<DeniedSource['status'], number> = { breaks: 0, excluded: 1, suspect: 2 };

export function drift(input: DriftInput): DriftReport {
  const recent = simulate(input.approved, input.recentRows, { judge: input.judge, examplesPerKey: Number.MAX_SAFE_INTEGER });
  const usage = simulate(input.approved, input.usageRows, { examplesPerKey: 0 });
  const newDeniedSources = recent.keys
    .flatMap((k) => k.examples.map((e) => ({ accessKeyId: k.accessKeyId, ...e })))
    .sort((a, b) => STATUS_RANK[a.status] - STATUS_RANK[b.status] || b.calls - a.calls || cmp(a.accessKeyId, b.accessKeyId) || cmp(a.ip, b.ip));
  const unusedEntries = usage.entryUse.filter((u) => u.calls === 0 && (!input.entryScopes || input.entryScopes.has(u.scope)));
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
    needsAttention: newDeniedSources.filter((s) => s.status !== 'excluded').length + unusedEntries.length + dormantKeys.length + newKeysWithoutAcl.length > 0,
  };
}

// ---------------------------------------------------------------- judging sources from the same aggregates

/**
 * Profiles of `keys` folded from replay rows (public sources only: what the leak and pool heuristics read;
 * services and user agents left empty), merged with `earlier` profiles of a disjoint earlier window when
 * given. No second scan of the events.
 */
export function profilesFromRows(rows: readonly SourceAggregate[], options: { keys: readonly string[]; earlier?: readonly KeyProfile[] }): KeyProfile[] {
  const wanted = new Set(options.keys);
  const profiles = new Map<string, KeyProfile>();
  // Earlier sources are shared, not copied (with what suspicion.ts already parsed from them), until a row of
  // this window adds to one: that one is replaced in the list by a merged copy; the earlier profile is untouched.
  for (const p of options.earlier ?? []) {
    if (wanted.has(p.accessKeyId)) profiles.set(p.accessKeyId, { ...p, publicSources: [...p.publicSources] });
  }
  const sourceAt = new Map<string, number>();
  for (const p of profiles.values()) p.publicSources.forEach((s, i) => sourceAt.set(`${p.accessKeyId}\u0000${s.ip}`, i));
  const merged = new Set<SourceUsage>();
  for (const row of rows) {
    if (!row.accessKeyId || !wanted.has(row.accessKeyId)) continue;
    let profile = profiles.get(row.accessKeyId);
    if (!profile) {
      profile = {
        accessKeyId: row.accessKeyId, keyKind: row.keyKind, identityType: null, userName: null, accountId: null,
        firstSeen: row.firstSeen, lastSeen: row.lastSeen, totalCalls: 0, publicSources: [], vpcSources: [], exemptOnlySources: [],
        stsCalls: 0, internalCalls: 0, serviceCalls: 0, invalidSourceCalls: 0, deniedCalls: 0,
      };
      profiles.set(row.accessKeyId, profile);
    }
    if (row.firstSeen < profile.firstSeen) profile.firstSeen = row.firstSeen;
    if (row.lastSeen > profile.lastSeen) profile.lastSeen = row.lastSeen;
    profile.totalCalls += row.calls;
    if (row.keyKind !== 'permanent' || row.exempt || row.sourceKind !== 'public' || !row.ip) continue;
    const id = `${row.accessKeyId}\u0000${row.ip}`;
    const at = sourceAt.get(id);
    if (at !== undefined) {
      let known = profile.publicSources[at]!;
      if (!merged.has(known)) {
        known = new PublicSourceRecord(known.ip, known.family, known.calls, known.days, known.firstSeen, known.lastSeen, known.errorCalls, known.deniedCalls, known.sensitiveCalls, known.services, known.userAgents);
        profile.publicSources[at] = known;
        merged.add(known);
      }
      known.calls += row.calls;
      known.days += row.days; // the windows are disjoint
      known.errorCalls += row.errorCalls;
      known.deniedCalls += row.deniedCalls;
      known.sensitiveCalls += row.sensitiveCalls ?? 0;
      if (row.firstSeen < known.firstSeen) known.firstSeen = row.firstSeen;
      if (row.lastSeen > known.lastSeen) known.lastSeen = row.lastSeen;
      continue;
    }
    const usage = new PublicSourceRecord(row.ip, row.ip.includes(':') ? 6 : 4, row.calls, row.days, row.firstSeen, row.lastSeen, row.errorCalls, row.deniedCalls, row.sensitiveCalls ?? 0, [], []);
    merged.add(usage);
    sourceAt.set(id, profile.publicSources.push(usage) - 1);
  }
  return [...profiles.values()].sort((a, b) => cmp(a.accessKeyId, b.accessKeyId));
}

/**
 * The leak judge of a replay: a public source is not legitimate when `classifySources` (recommend/suspicion.ts)
 * flags it as a possible leak over `profilesFromRows` (with `earlier` = the training profiles in a backtest,
 * so "new" means new against the whole history seen). Only `keys` are judged; pools are looked for with those
 * keys as evidence. VPC sources are always legitimate.
 */
export function leakJudgeFromRows(rows: readonly SourceAggregate[], options: { window: TimeWindow; keys: readonly string[]; earlier?: readonly KeyProfile[] }): SourceJudge {
  if (options.keys.length === 0) return () => LEGITIMATE;
  const all = profilesFromRows(rows, options);
  const leaks = new Map<string, string>();
  for (const profile of all) {
    for (const leak of classifySources(profile, { window: options.window, accountProfiles: all }).leaks) {
      leaks.set(`${profile.accessKeyId}\u0000${leak.ip}`, leak.reason);
    }
  }
  return (accessKeyId, source) => {
    const reason = source.sourceKind === 'public' ? leaks.get(`${accessKeyId}\u0000${source.ip}`) : undefined;
    return reason ? { legitimate: false, reason } : LEGITIMATE;
  };
}

/**
 * Wraps a judge so that sources a proposal lists in its own `excluded` (per key; possible leaks stay suspects)
 * count as deliberate, reviewed exclusions rather than legitimate breaks.
 */
export function withProposalExclusions(judge: SourceJudge, excluded: ReadonlyMap<string, ReadonlyArray<{ source: string; vpcId?: string; code: string; reason: string }>>): SourceJudge {
  const index = new Map<string, { code: string; reason: string }>();
  // An exclusion may name a block (e.g. an IPv6 /64) rather than one address.
  const blocks = new Map<string, Array<{ prefix: Prefix; vpcId: string; code: string; reason: string }>>();
  for (const [key, list] of excluded) {
    for (const e of list) {
      index.set(`${key}\u0000${e.vpcId ?? ''}\u0000${e.source}`, e);
      const p = e.source.includes('/') ? parsePrefix(e.source) : null;
      if (p) blocks.set(key, [...(blocks.get(key) ?? []), { prefix: p, vpcId: e.vpcId ?? '', code: e.code, reason: e.reason }]);
    }
  }
  if (index.size === 0) return judge;
  return (accessKeyId, source) => {
    let e = index.get(`${accessKeyId}\u0000${source.vpcId ?? ''}\u0000${source.ip}`);
    if (!e && blocks.has(accessKeyId)) {
      const addr = parseAddress(source.ip);
      e = addr ? blocks.get(accessKeyId)!.find((b) => b.vpcId === (source.vpcId ?? '') && prefixContains(b.prefix, addr)) : undefined;
    }
    if (!e) return judge(accessKeyId, source);
    if (e.code === 'possible-leak') return { legitimate: false, reason: e.reason };
    return { legitimate: false, excludedByProposal: `excluded by the proposal (${e.code}): ${e.reason}` };
  };
}
