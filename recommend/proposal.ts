// Profiles → the proposal contract: per key (and, with scope account/auto, for the account) one public rule
// and up to seven VPC rules, each entry with its evidence, each excluded source with its reason.
// Pure and deterministic: the same profiles and options give the same bytes.
import { maskValue, parsePrefix, type ParsedPrefix, type Prefix } from '../model/address.ts';
import { GUARDRAIL_MIN_PREFIX, MAX_ENTRIES_PER_ACL, MAX_VPC_RULES } from '../model/acl-rules.ts';
import { InvalidInputError } from '../model/errors.ts';
import type {
  AccountProposal,
  AclProposal,
  Evidence,
  Excluded,
  IpFamily,
  KeyProfile,
  KeyProposal,
  KeyWithoutAcl,
  TimeWindow,
} from '../model/types.ts';
import { planKey, sortExcluded, type KeyPlan } from './proposal-key.ts';
import { buildRule, comparePrefix, findPrefix, type Candidate, type RuleSettings } from './proposal-rule.ts';

export interface RecommendOptions {
  scope: 'key' | 'account' | 'auto';
  /** Sources active on fewer distinct days are left out (one-offs), unless first seen within the last minDays days. */
  minDays: number;
  /** Sources with fewer calls are left out. */
  minCalls: number;
  /** An entry may admit up to `headroom` × the addresses (IPv6: /64s) seen inside it. 1 = only what was seen. */
  headroom: number;
  /** Allow prefixes shorter than the guardrail (IPv4 /16, IPv6 /32). Never /0. */
  allowBroad: boolean;
  /** Sources (addresses or CIDRs) to admit even if they look like leaks or miss the thresholds. */
  include: string[];
  window: TimeWindow;
  generatedAt: string;
  /** Entries per ACL; the vendor's limit by default (tests may lower it). */
  maxEntries?: number;
}

/** Justified by the backtest in bench/quality.ts (see docs/recommend.md). */
export const DEFAULT_RECOMMEND_OPTIONS: Omit<RecommendOptions, 'window' | 'generatedAt'> = {
  scope: 'key',
  minDays: 2,
  minCalls: 1,
  headroom: 2,
  allowBroad: false,
  include: [],
  maxEntries: MAX_ENTRIES_PER_ACL,
};

/** With scope `auto`, a source goes to the account-level ACL when at least this share of the keys use it. */
export const ACCOUNT_SHARE = 0.5;

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

function checkOptions(options: RecommendOptions): { include: ParsedPrefix[]; rule: RuleSettings } {
  const maxEntries = options.maxEntries ?? MAX_ENTRIES_PER_ACL;
  if (!Number.isInteger(maxEntries) || maxEntries < 1 || maxEntries > MAX_ENTRIES_PER_ACL) {
    throw new InvalidInputError(`maxEntries ${maxEntries} is outside 1..${MAX_ENTRIES_PER_ACL}`, { hint: `the vendor allows at most ${MAX_ENTRIES_PER_ACL} entries per ACL` });
  }
  if (!(options.headroom >= 1) || !Number.isFinite(options.headroom)) {
    throw new InvalidInputError(`headroom ${options.headroom} must be a number ≥ 1`, { hint: '1 admits only what was seen; 2 lets an entry admit up to twice the addresses seen in it' });
  }
  if (!Number.isInteger(options.minDays) || options.minDays < 1) throw new InvalidInputError(`min-days ${options.minDays} must be a whole number ≥ 1`);
  if (!Number.isInteger(options.minCalls) || options.minCalls < 1) throw new InvalidInputError(`min-calls ${options.minCalls} must be a whole number ≥ 1`);
  const include = options.include.map((text) => {
    const p = parsePrefix(text);
    if (!p) throw new InvalidInputError(`--include ${JSON.stringify(text)} is not an address or CIDR block`, { hint: 'use e.g. 198.51.100.7 or 198.51.100.0/24' });
    if (p.length === 0) throw new InvalidInputError(`--include ${text} would admit everything`, { hint: 'name the source addresses to admit' });
    return p;
  });
  const minLength: Record<IpFamily, number> = options.allowBroad ? { 4: 1, 6: 1 } : { 4: GUARDRAIL_MIN_PREFIX[4], 6: GUARDRAIL_MIN_PREFIX[6] };
  return { include, rule: { maxEntries, minLength, headroom: options.headroom } };
}

interface BuiltAcl {
  public: { cidrs: string[] } | null;
  vpc: Array<{ vpcId: string; cidrs: string[] }>;
  /** Prefixes per rule, for containment checks: '' is the public rule. */
  prefixes: Map<string, Prefix[]>;
  evidence: Evidence[];
  excluded: Excluded[];
  /** The keys whose sources each exclusion concerns (account level). */
  excludedKeys: Map<Excluded, string[]>;
  warnings: string[];
}

function sumCalls(cs: Candidate[]): number {
  return cs.reduce((n, c) => n + c.usage.calls, 0);
}

/** One ACL (public rule + up to seven VPC rules) from candidates; over-limit sources become exclusions. */
type ScopedPool = Prefix & { vpcId: string | null };

function buildAcl(
  publicCandidates: Candidate[],
  vpcCandidates: Map<string, Candidate[]>,
  pools: ScopedPool[],
  forbidden: Array<{ family: IpFamily; value: bigint }>,
  rule: RuleSettings,
  level: 'key' | 'account',
): BuiltAcl {
  const out: BuiltAcl = { public: null, vpc: [], prefixes: new Map(), evidence: [], excluded: [], excludedKeys: new Map(), warnings: [] };
  const exclude = (e: Excluded, keys: string[]): void => {
    out.excluded.push(e);
    out.excludedKeys.set(e, [...new Set(keys)].sort());
  };
  const overLimit = (cs: Candidate[], reason: string, vpcId?: string): void => {
    for (const c of cs) exclude({ source: c.usage.ip, ...(vpcId ? { vpcId } : {}), code: 'over-limit', calls: c.usage.calls, reason }, [c.key]);
  };
  const keepKeys = (e: Evidence): Evidence => (level === 'account' ? e : (({ keys: _keys, ...rest }) => rest)(e));

  if (publicCandidates.length > 0) {
    const r = buildRule(publicCandidates, pools.filter((p) => p.vpcId === null), forbidden, rule);
    if (r.prefixes.length > 0) {
      out.public = { cidrs: r.cidrs };
      out.prefixes.set('', r.prefixes);
      out.evidence.push(...r.evidence.map(keepKeys));
    }
    if (r.dropped.length > 0) {
      overLimit(r.dropped, `its block does not fit: the public rule holds at most ${rule.maxEntries} entries of at least /${rule.minLength[4]} (IPv4) or /${rule.minLength[6]} (IPv6), and the blocks with more calls were kept`);
      out.warnings.push(`${plural(r.dropped.length, 'public source')} (${sumCalls(r.dropped)} calls) did not fit in ${rule.maxEntries} entries within the guardrail and will be denied: see excluded (over-limit); --allow-broad would merge them into wider blocks`);
    }
  }

  const byCalls = [...vpcCandidates].sort((a, b) => sumCalls(b[1]) - sumCalls(a[1]) || (a[0] < b[0] ? -1 : 1));
  const keptVpcs = byCalls.slice(0, MAX_VPC_RULES);
  const droppedVpcs = byCalls.slice(MAX_VPC_RULES);
  for (const [vpcId, cs] of droppedVpcs) {
    exclude(
      {
        source: vpcId,
        vpcId,
        code: 'over-limit',
        calls: sumCalls(cs),
        reason: `the ${level === 'account' ? 'account' : 'key'} calls from ${vpcCandidates.size} VPCs but an ACL holds at most ${MAX_VPC_RULES} VPC rules: the ${MAX_VPC_RULES} VPCs with most calls were kept and calls from this one (${plural(sumCalls(cs), 'call')}) will be denied`,
      },
      cs.map((c) => c.key),
    );
  }
  if (droppedVpcs.length > 0) {
    out.warnings.push(`${plural(droppedVpcs.length, 'VPC')} dropped (more than ${MAX_VPC_RULES} VPC rules): ${droppedVpcs.map(([v]) => v).sort().join(', ')}; their calls will be denied — move those workloads to an instance RAM role`);
  }
  for (const [vpcId, cs] of keptVpcs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
    const r = buildRule(cs, pools.filter((p) => p.vpcId === vpcId), [], rule);
    if (r.prefixes.length > 0) {
      out.vpc.push({ vpcId, cidrs: r.cidrs });
      out.prefixes.set(vpcId, r.prefixes);
      out.evidence.push(...r.evidence.map((e) => keepKeys({ ...e, vpcId })));
    }
    if (r.dropped.length > 0) {
      overLimit(r.dropped, `its block does not fit in the ${rule.maxEntries} entries of the rule for ${vpcId}`, vpcId);
      out.warnings.push(`${plural(r.dropped.length, 'source')} of ${vpcId} did not fit in ${rule.maxEntries} entries and will be denied: see excluded (over-limit)`);
    }
  }
  out.evidence = orderEvidence(out.evidence);
  return out;
}

function orderEvidence(evidence: Evidence[]): Evidence[] {
  return evidence.map((e) => {
    // Stable key order in JSON.
    const ordered: Evidence = { cidr: e.cidr, ...(e.vpcId ? { vpcId: e.vpcId } : {}), calls: e.calls, days: e.days, firstSeen: e.firstSeen, lastSeen: e.lastSeen, addresses: e.addresses };
    if (e.keys) ordered.keys = e.keys;
    return ordered;
  });
}

function keyWarnings(plan: KeyPlan, acl: BuiltAcl): string[] {
  const warnings = [...plan.warnings, ...acl.warnings];
  if (!acl.public) {
    const publicCalls = plan.profile.publicSources.reduce((n, s) => n + s.calls, 0);
    warnings.push(
      publicCalls > 0
        ? `no public rule: once enabled, this ACL denies every call from a public address, including the ${plural(publicCalls, 'public call')} seen in the window from excluded sources`
        : 'no public rule: the key was used only from VPCs; once enabled, this ACL denies every call from a public address',
    );
  }
  if (acl.vpc.length === 0 && plan.profile.vpcSources.length === 0 && acl.public) {
    warnings.push('no VPC rule: once enabled, this ACL denies every call through a VPC endpoint');
  }
  return warnings;
}

function ruleContains(prefixes: Prefix[] | undefined, c: Candidate): boolean {
  return Boolean(prefixes && findPrefix(prefixes, c.family, c.value) >= 0);
}

function keyProposal(plan: KeyPlan, acl: BuiltAcl): KeyProposal {
  return {
    accessKeyId: plan.profile.accessKeyId,
    userName: plan.profile.userName,
    status: 'draft',
    public: acl.public,
    vpc: acl.vpc,
    evidence: acl.evidence,
    excluded: sortExcluded([...plan.excluded, ...acl.excluded]),
    warnings: keyWarnings(plan, acl),
  };
}

function withoutAcl(plan: KeyPlan, reason: string, coveredByAccount: boolean, extraExcluded: Excluded[] = []): KeyWithoutAcl {
  return {
    accessKeyId: plan.profile.accessKeyId,
    userName: plan.profile.userName,
    coveredByAccount,
    reason,
    excluded: sortExcluded([...plan.excluded, ...extraExcluded]),
    warnings: plan.warnings,
  };
}

function scopedPool(pool: KeyPlan['pools'][number]): ScopedPool {
  return { vpcId: pool.vpcId, family: pool.family, base: pool.base, length: pool.length };
}

function unionPools(plans: KeyPlan[]): ScopedPool[] {
  const seen = new Map<string, ScopedPool>();
  for (const p of plans) for (const pool of p.pools) seen.set(`${pool.vpcId ?? ''}|${pool.cidr}`, scopedPool(pool));
  // Blocks of different keys may nest (one key's routed block inside another's pool): keep the outer one.
  const sorted = [...seen.values()].sort((a, b) => (a.vpcId ?? '').localeCompare(b.vpcId ?? '') || comparePrefix(a, b));
  const out: ScopedPool[] = [];
  for (const p of sorted) {
    const last = out[out.length - 1];
    if (last && last.vpcId === p.vpcId && last.family === p.family && last.length <= p.length && maskValue(p.base, p.family, last.length) === last.base) continue;
    out.push(p);
  }
  return out;
}

function unionForbidden(plans: KeyPlan[]): Array<{ family: IpFamily; value: bigint }> {
  return plans.flatMap((p) => p.forbidden);
}

function mergeVpc(plans: KeyPlan[], filter: (c: Candidate, vpcId: string) => boolean = () => true): Map<string, Candidate[]> {
  const out = new Map<string, Candidate[]>();
  for (const p of plans) {
    for (const [vpcId, cs] of p.vpcCandidates) {
      const kept = cs.filter((c) => filter(c, vpcId));
      if (kept.length > 0) out.set(vpcId, [...(out.get(vpcId) ?? []), ...kept]);
    }
  }
  return out;
}

/** Does the account-level ACL admit every source this key's plan admits? */
function accountCovers(plan: KeyPlan, account: BuiltAcl): boolean {
  if (!plan.publicCandidates.every((c) => ruleContains(account.prefixes.get(''), c))) return false;
  for (const [vpcId, cs] of plan.vpcCandidates) if (!cs.every((c) => ruleContains(account.prefixes.get(vpcId), c))) return false;
  return true;
}

function accountProposal(acl: BuiltAcl, coveredKeys: string[], extraWarnings: string[]): AccountProposal {
  const warnings = [
    'the account-level ACL governs every permanent AccessKey of the account without a key-level ACL, including keys not analyzed here: check that no other key calls from elsewhere',
    ...acl.warnings,
    ...extraWarnings,
  ];
  if (!acl.public) warnings.push('no public rule: once enabled, the account-level ACL denies every public call of the keys it governs');
  if (acl.vpc.length === 0) warnings.push('no VPC rule: once enabled, the account-level ACL denies every VPC call of the keys it governs');
  return { status: 'draft', public: acl.public, vpc: acl.vpc, evidence: acl.evidence, warnings, coveredKeys: [...coveredKeys].sort() };
}

/** The proposal for these profiles. */
export function recommend(profiles: KeyProfile[], options: RecommendOptions): AclProposal {
  const { include, rule } = checkOptions(options);
  const sorted = [...profiles].sort((a, b) => (a.accessKeyId < b.accessKeyId ? -1 : a.accessKeyId > b.accessKeyId ? 1 : 0));
  const plans = sorted.map((p) => planKey(p, { minDays: options.minDays, minCalls: options.minCalls, include, window: options.window }, sorted));
  const proposalWarnings: string[] = [];
  const usedIncludes = new Set(plans.flatMap((p) => [...p.includesUsed]));
  for (const inc of include) if (!usedIncludes.has(inc.text)) proposalWarnings.push(`--include ${inc.text} matched no source of the keys analyzed`);
  if (profiles.length === 0) proposalWarnings.push('no AccessKey had calls in the window: nothing to propose');

  const withAcl = plans.filter((p) => p.noAclReason === null);
  const accountIds = new Set(withAcl.map((p) => p.profile.accountId ?? ''));
  let scope = options.scope;
  if (scope !== 'key' && accountIds.size > 1) {
    if (scope === 'account') {
      throw new InvalidInputError(`the keys belong to ${accountIds.size} accounts (${[...accountIds].sort().join(', ')}): an account-level ACL is per account`, { hint: 'select one account\'s keys with --key, or use --scope key' });
    }
    proposalWarnings.push(`the keys belong to ${accountIds.size} accounts: scope auto fell back to key-level ACLs`);
    scope = 'key';
  }
  if (scope === 'auto' && withAcl.length < 2) scope = 'key';

  const accessKeys: KeyProposal[] = [];
  const keysWithoutAcl: KeyWithoutAcl[] = [];
  let accountLevel: AccountProposal | null = null;
  for (const p of plans) if (p.noAclReason !== null) keysWithoutAcl.push(withoutAcl(p, p.noAclReason, false));

  const ownAcl = (p: KeyPlan): BuiltAcl => buildAcl(p.publicCandidates, p.vpcCandidates, p.pools.map(scopedPool), p.forbidden, rule, 'key');

  if (scope === 'key') {
    for (const p of withAcl) accessKeys.push(keyProposal(p, ownAcl(p)));
  } else if (scope === 'account') {
    const acl = buildAcl(withAcl.flatMap((p) => p.publicCandidates), mergeVpc(withAcl), unionPools(withAcl), unionForbidden(plans), rule, 'account');
    for (const p of withAcl) {
      const mine = acl.excluded.filter((e) => acl.excludedKeys.get(e)?.includes(p.profile.accessKeyId));
      keysWithoutAcl.push(withoutAcl(p, 'governed by the account-level ACL', true, mine));
    }
    accountLevel = accountProposal(acl, withAcl.map((p) => p.profile.accessKeyId), []);
  } else {
    // auto: the account-level ACL holds what most keys share; a key needing anything else gets its own
    // complete ACL (a key-level ACL replaces the account-level one, it does not add to it).
    const threshold = Math.max(2, Math.ceil(ACCOUNT_SHARE * withAcl.length));
    const unitKey = (c: Candidate, vpcId: string): string => `${vpcId}|${c.family}|${c.value.toString(16)}`;
    const poolId = (pool: { vpcId: string | null; cidr: string }): string => `${pool.vpcId ?? ''}|${pool.cidr}`;
    const poolKeyUsers = new Map<string, Set<string>>();
    for (const p of withAcl) for (const pool of p.pools) poolKeyUsers.set(poolId(pool), (poolKeyUsers.get(poolId(pool)) ?? new Set()).add(p.profile.accessKeyId));
    const users = new Map<string, Set<string>>();
    for (const p of withAcl) {
      for (const c of p.publicCandidates) users.set(unitKey(c, ''), (users.get(unitKey(c, '')) ?? new Set()).add(c.key));
      for (const [vpcId, cs] of p.vpcCandidates) for (const c of cs) users.set(unitKey(c, vpcId), (users.get(unitKey(c, vpcId)) ?? new Set()).add(c.key));
    }
    const sharedPools = unionPools(withAcl.map((p) => ({ ...p, pools: p.pools.filter((pool) => (poolKeyUsers.get(poolId(pool))?.size ?? 0) >= threshold) })));
    const inSharedPool = (c: Candidate, vpcId: string): boolean =>
      sharedPools.some((pool) => (pool.vpcId ?? '') === vpcId && pool.family === c.family && maskValue(c.value, c.family, pool.length) === pool.base);
    const shared = (c: Candidate, vpcId: string): boolean => (users.get(unitKey(c, vpcId))?.size ?? 0) >= threshold || inSharedPool(c, vpcId);
    const sharedPublic = withAcl.flatMap((p) => p.publicCandidates.filter((c) => shared(c, '')));
    const sharedVpc = mergeVpc(withAcl, (c, vpcId) => shared(c, vpcId));
    let covered: KeyPlan[] = [];
    let account: BuiltAcl | null = null;
    if (sharedPublic.length > 0 || sharedVpc.size > 0) {
      account = buildAcl(sharedPublic, sharedVpc, sharedPools, unionForbidden(plans), rule, 'account');
      covered = withAcl.filter((p) => accountCovers(p, account!));
    }
    if (account && covered.length > 0) {
      accountLevel = accountProposal(account, covered.map((p) => p.profile.accessKeyId), [
        `${plural(withAcl.length - covered.length, 'key')} need sources beyond it and get a complete key-level ACL of their own`,
      ]);
      for (const p of covered) keysWithoutAcl.push(withoutAcl(p, 'every source it uses is admitted by the account-level ACL', true));
      for (const p of withAcl) if (!covered.includes(p)) accessKeys.push(keyProposal(p, ownAcl(p)));
    } else {
      proposalWarnings.push(`no source is shared by at least ${threshold} of the ${withAcl.length} keys: key-level ACLs only`);
      for (const p of withAcl) accessKeys.push(keyProposal(p, ownAcl(p)));
    }
  }

  accessKeys.sort((a, b) => (a.accessKeyId < b.accessKeyId ? -1 : a.accessKeyId > b.accessKeyId ? 1 : 0));
  keysWithoutAcl.sort((a, b) => (a.accessKeyId < b.accessKeyId ? -1 : a.accessKeyId > b.accessKeyId ? 1 : 0));
  for (const k of keysWithoutAcl) if (!k.coveredByAccount) proposalWarnings.push(`${k.accessKeyId}: ${k.reason}`);
  return {
    version: 1,
    generatedAt: options.generatedAt,
    window: { from: options.window.from, to: options.window.to },
    accountLevel,
    accessKeys,
    keysWithoutAcl,
    settings: {
      scope: options.scope,
      minDays: options.minDays,
      minCalls: options.minCalls,
      headroom: options.headroom,
      allowBroad: options.allowBroad,
      include: include.map((p) => p.text).sort(),
      maxEntries: rule.maxEntries,
    },
    warnings: proposalWarnings,
  };
}
