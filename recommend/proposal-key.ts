// One key's sources sorted into what may become ACL material and what is excluded, with the reason.
import { formatPrefix, maskValue, type Prefix, type ParsedPrefix } from '../model/address.ts';
import type { Excluded, IpFamily, KeyProfile, SourceUsage, TimeWindow } from '../model/types.ts';
import { candidateOf, comparePrefix, prefixLookup, type Candidate } from './proposal-rule.ts';
import { SUSPICION_THRESHOLDS, addressSortKey, classifySources, compareAddressText, factsOf, sortByAddress, type PoolGuess, type SuspiciousSource } from './suspicion.ts';

const DAY_MS = 86_400_000;

export interface PlanSettings {
  minDays: number;
  minCalls: number;
  include: ParsedPrefix[];
  window: TimeWindow;
}

export interface KeyPlan {
  profile: KeyProfile;
  /** Admitted public sources. */
  publicCandidates: Candidate[];
  /** Admitted VPC sources by VPC ID. */
  vpcCandidates: Map<string, Candidate[]>;
  /** Pool blocks this key uses (admitted whole). */
  pools: PoolGuess[];
  leaks: SuspiciousSource[];
  /** Leak addresses that must stay out of every entry (carved out of a pool block when one holds them). */
  forbidden: Array<{ family: IpFamily; value: bigint }>;
  excluded: Excluded[];
  warnings: string[];
  /** Include prefixes that matched at least one of this key's sources (text). */
  includesUsed: Set<string>;
  /** Why the key gets no ACL at all, when it does not. */
  noAclReason: string | null;
}

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

function inPrefix(p: Prefix, family: IpFamily, value: bigint): boolean {
  return p.family === family && maskValue(value, family, p.length) === p.base;
}

/** Exclusions every key gets from its counters: traffic an ACL never governs. */
function ungovernedExclusions(profile: KeyProfile): Excluded[] {
  const out: Excluded[] = [];
  if (profile.stsCalls > 0) {
    out.push({ source: 'sts', code: 'sts-key', calls: profile.stsCalls, reason: 'temporary STS credentials: never governed by network ACLs' });
  }
  if (profile.internalCalls > 0) {
    out.push({ source: 'internal', code: 'internal-source', calls: profile.internalCalls, reason: 'inter-service calls (source "internal"): not governed by network ACLs; give the service a RAM role instead' });
  }
  if (profile.serviceCalls > 0) {
    out.push({ source: 'service', code: 'service-source', calls: profile.serviceCalls, reason: 'calls made by a cloud service on the key\'s behalf (a service name as source): not ACL material; use a service role' });
  }
  if (profile.invalidSourceCalls > 0) {
    out.push({ source: 'invalid', code: 'invalid-source', calls: profile.invalidSourceCalls, reason: 'the recorded source is not an address (masked, empty or malformed): it cannot become an entry' });
  }
  for (const s of profile.exemptOnlySources) {
    out.push({
      source: s.ip ?? '(no address)',
      ...(s.vpcId ? { vpcId: s.vpcId } : {}),
      code: 'exempt-service-only',
      calls: s.calls,
      reason: `seen only on services network ACLs do not govern (${s.services.join(', ') || 'exempt services'}): it needs no entry`,
    });
  }
  return out;
}

/**
 * Sorts one key's sources. Order of the tests per public source: possible leak (unless `--include`),
 * member of a dynamic pool (admitted as the pool block whatever its counts), `--include`, min-calls, min-days
 * (a source first seen within the last `minDays` days cannot have reached it yet: admitted, with a warning).
 */
export function planKey(profile: KeyProfile, settings: PlanSettings, accountProfiles: KeyProfile[]): KeyPlan {
  const plan: KeyPlan = {
    profile,
    publicCandidates: [],
    vpcCandidates: new Map(),
    pools: [],
    leaks: [],
    forbidden: [],
    excluded: [],
    warnings: [],
    includesUsed: new Set(),
    noAclReason: null,
  };
  if (profile.keyKind !== 'permanent') {
    plan.excluded.push({ source: profile.accessKeyId, code: 'sts-key', calls: profile.totalCalls, reason: 'a temporary (STS) key: never governed by network ACLs' });
    plan.noAclReason = 'temporary STS credentials are never governed by network ACLs: no ACL proposed';
    return plan;
  }
  plan.excluded.push(...ungovernedExclusions(profile));

  const { leaks, pools, growth } = classifySources(profile, { window: settings.window, accountProfiles });
  const windowEnd = Date.parse(settings.window.to);
  const graceFrom = windowEnd - settings.minDays * DAY_MS;
  const included = (family: IpFamily, value: bigint): ParsedPrefix | undefined => (settings.include.length === 0 ? undefined : settings.include.find((p) => inPrefix(p, family, value)));
  const leakByIp = new Map(leaks.map((l) => [l.ip, l]));
  const publicPoolOf = prefixLookup(pools.filter((p) => p.vpcId === null));
  const vpcPoolOf = new Map<string, ReturnType<typeof prefixLookup<PoolGuess>>>();
  for (const vpcId of new Set(pools.map((p) => p.vpcId).filter((v): v is string => v !== null))) vpcPoolOf.set(vpcId, prefixLookup(pools.filter((p) => p.vpcId === vpcId)));
  const usedPools = new Set<PoolGuess>();
  const recent: string[] = [];

  // IPv6 privacy addresses change daily inside their /64, the unit an entry admits: judge the /64, not the address.
  const v6Units = new Map<bigint, { calls: number; days: Set<string>; maxDays: number; firstSeen: string; lastSeen: string }>();
  for (const s of profile.publicSources) {
    const a = factsOf(s).address;
    if (!a || a.family !== 6) continue;
    const unit = maskValue(a.value, 6, 64);
    const u = v6Units.get(unit) ?? { calls: 0, days: new Set<string>(), maxDays: 0, firstSeen: s.firstSeen, lastSeen: s.lastSeen };
    u.calls += s.calls;
    u.days.add(s.firstSeen.slice(0, 10)).add(s.lastSeen.slice(0, 10));
    u.maxDays = Math.max(u.maxDays, s.days);
    if (s.firstSeen < u.firstSeen) u.firstSeen = s.firstSeen;
    if (s.lastSeen > u.lastSeen) u.lastSeen = s.lastSeen;
    v6Units.set(unit, u);
  }
  const countsOf = (s: SourceUsage, vpcId?: string): { calls: number; days: number; firstSeen: string; lastSeen: string } => {
    const a = vpcId ? null : factsOf(s).address;
    const u = a && a.family === 6 ? v6Units.get(maskValue(a.value, 6, 64)) : undefined;
    // Distinct first/last-seen dates are a lower bound of the /64's active days.
    return u ? { calls: u.calls, days: Math.max(u.maxDays, u.days.size), firstSeen: u.firstSeen, lastSeen: u.lastSeen } : s;
  };

  // Short-lived addresses outside any pool block: a dynamic egress the evidence cannot pin down.
  // (an IPv6 privacy address is judged by its /64, which lives on)
  const shortLived = (s: SourceUsage): boolean => countsOf(s).days <= SUSPICION_THRESHOLDS.shortLivedDays;
  // Each public source's candidate and pool block, computed once: both passes below read them.
  const publicCandidateAt = profile.publicSources.map((s) => candidateOf(profile.accessKeyId, s));
  const publicPoolAt = publicCandidateAt.map((c) => (c ? publicPoolOf(c.family, c.value) : null));
  const loose = profile.publicSources.filter((s, i) => publicCandidateAt[i] !== null && shortLived(s) && publicPoolAt[i] === null);
  const looseWarning = loose.length >= 5 && loose.length >= SUSPICION_THRESHOLDS.rotatingKeyShare * profile.publicSources.length;
  // A key whose calls mostly come from addresses that come and go (in pools or not) draws from ranges, not
  // addresses. Counted in calls: a fixed egress with a few one-off addresses around it does not rotate.
  const publicCalls = profile.publicSources.reduce((n, s) => n + s.calls, 0);
  const shortLivedCalls = profile.publicSources.reduce((n, s) => (shortLived(s) ? n + s.calls : n), 0);
  const rotatingEgress = loose.length > 0 && profile.publicSources.length >= 4 && shortLivedCalls >= SUSPICION_THRESHOLDS.rotatingKeyShare * publicCalls;
  // Where such a key's short-lived addresses recur inside one routed block, the block is a range it draws from.
  const ranged = new Set(rotatingEgress ? recurringRanges(loose).flatMap((r) => r.sources) : []);

  const admitByCounts = (source: SourceUsage, vpcId?: string): boolean => {
    const where = vpcId ? { vpcId } : {};
    const s = { ...countsOf(source, vpcId), ip: source.ip };
    if (s.calls < settings.minCalls) {
      plan.excluded.push({ source: s.ip, ...where, code: 'below-min-calls', calls: s.calls, reason: `${plural(s.calls, 'call')} (minimum ${settings.minCalls}): too little evidence to admit` });
      return false;
    }
    // On a key whose egress rotates every address is short-lived: its day count is no sign of a one-off.
    if (s.days < settings.minDays && !(!vpcId && ranged.has(source))) {
      if (Date.parse(s.firstSeen) >= graceFrom) {
        recent.push(vpcId ? `${s.ip} (${vpcId})` : s.ip);
        return true;
      }
      plan.excluded.push({
        source: s.ip,
        ...where,
        code: 'below-min-days',
        calls: s.calls,
        reason: `active on ${plural(s.days, 'day')} (minimum ${settings.minDays}), last seen ${s.lastSeen.slice(0, 10)}: looks like a one-off`,
      });
      return false;
    }
    return true;
  };

  for (let i = 0; i < profile.publicSources.length; i++) {
    const s = profile.publicSources[i]!;
    const c = publicCandidateAt[i];
    if (!c) {
      plan.excluded.push({ source: s.ip, code: 'invalid-source', calls: s.calls, reason: 'not a valid address' });
      continue;
    }
    const include = included(c.family, c.value);
    if (include) plan.includesUsed.add(include.text);
    const pool = publicPoolAt[i] ?? null;
    const leak = leakByIp.get(s.ip);
    if (leak && !include) {
      plan.leaks.push(leak);
      if (pool) {
        plan.warnings.push(`possible leak from ${s.ip} lies inside the dynamic pool ${pool.cidr} this key uses: the address is carved out of the pool block, but an intruder on the same pool would still pass; investigate and rotate the key if these calls were not yours`);
      }
      plan.forbidden.push({ family: c.family, value: c.value });
      plan.excluded.push({ source: s.ip, code: 'possible-leak', calls: s.calls, reason: `${leak.reason}; admit it only with --include ${s.ip}` });
      continue;
    }
    if (pool) {
      usedPools.add(pool);
      plan.publicCandidates.push(c);
      continue;
    }
    if (include || admitByCounts(s)) plan.publicCandidates.push(c);
  }

  for (const s of profile.vpcSources) {
    const c = candidateOf(profile.accessKeyId, s);
    if (!c) {
      plan.excluded.push({ source: s.ip, vpcId: s.vpcId, code: 'invalid-source', calls: s.calls, reason: 'not a valid address' });
      continue;
    }
    const include = included(c.family, c.value);
    if (include) plan.includesUsed.add(include.text);
    const pool = vpcPoolOf.get(s.vpcId)?.(c.family, c.value) ?? null;
    if (pool) usedPools.add(pool);
    if (pool || include || admitByCounts(s, s.vpcId)) {
      const list = plan.vpcCandidates.get(s.vpcId);
      if (list) list.push(c);
      else plan.vpcCandidates.set(s.vpcId, [c]);
    }
  }

  // Sibling blocks of a provider the key draws from come too, even without a source of their own.
  for (const pool of pools) if (pool.keyAddresses.length === 0) usedPools.add(pool);
  plan.pools = [...usedPools].sort((a, b) => (a.vpcId ?? '').localeCompare(b.vpcId ?? '') || comparePrefix(a, b));
  const growing = growingRuns(plan, windowEnd);
  if (growing.length > 0) {
    // A growing block replaces the pool blocks inside it: young addresses are short-lived for being young.
    const inside = (p: PoolGuess): boolean => p.vpcId === null && growing.some((g) => g.family === p.family && g.length <= p.length && maskValue(p.base, p.family, g.length) === g.base);
    plan.pools = [...plan.pools.filter((p) => !inside(p)), ...growing].sort((a, b) => (a.vpcId ?? '').localeCompare(b.vpcId ?? '') || comparePrefix(a, b));
  }
  for (const pool of plan.pools) plan.warnings.push(`${growing.includes(pool) ? 'growing network' : 'dynamic pool'}: ${pool.reason}`);
  const ranges = rotatingEgress ? rangesOfRotatingEgress(plan, loose) : [];
  if (ranges.length > 0) {
    plan.pools.push(...ranges);
    plan.pools.sort((a, b) => (a.vpcId ?? '').localeCompare(b.vpcId ?? '') || comparePrefix(a, b));
    plan.warnings.push(
      `${plural(ranges.length, 'provider range')} admitted whole: this key's short-lived addresses recur in them (a /${SUSPICION_THRESHOLDS.rotatingRangePrefix[4]}, the longest prefix routed on the internet, is the least a provider allocates from): ${ranges.slice(0, 5).map((b) => b.cidr).join(', ')}${ranges.length > 5 ? ', …' : ''}`,
    );
  }
  if (looseWarning) {
    plan.warnings.push(
      `${plural(loose.length, 'public address')} of this key were each used for only a few days, scattered outside any known pool: its egress looks dynamic (hosted CI, functions without a static IP), and this proposal will likely deny addresses it has not seen yet; give the workload a fixed egress (NAT gateway, static IP) before enabling`,
    );
  }
  if (recent.length > 0) {
    recent.splice(0, recent.length, ...sortByAddress(recent, (r) => r));
    plan.warnings.push(
      `${plural(recent.length, 'source')} first seen in the last ${plural(settings.minDays, 'day')} admitted on little evidence (new egress address, or a one-off?): ${recent.slice(0, 10).join(', ')}${recent.length > 10 ? ', …' : ''}`,
    );
  }
  const admittedGrowth = growth.filter((ip) => plan.publicCandidates.some((c) => c.usage.ip === ip));
  if (admittedGrowth.length > 0) {
    plan.warnings.push(
      `${plural(admittedGrowth.length, 'new source')} far from the key's other networks admitted as growth: ${admittedGrowth.slice(0, 5).join(', ')}${admittedGrowth.length > 5 ? ', …' : ''}; confirm they are yours (a leaked key used quietly until now looks the same)`,
    );
  }
  if (plan.leaks.length > 0) {
    plan.warnings.push(`${plural(plan.leaks.length, 'possible leak source')} excluded: if those calls were not yours, rotate this key now (see excluded)`);
  }
  if (profile.deniedCalls > 0) {
    const refused = [...profile.publicSources, ...profile.vpcSources].filter((s) => s.deniedCalls > 0);
    const admittedUsages = new Set([...plan.publicCandidates, ...[...plan.vpcCandidates.values()].flat()].map((c) => c.usage));
    const admittedRefused = sortByAddress(refused.filter((s) => admittedUsages.has(s)).map((s) => s.ip), (ip) => ip);
    plan.warnings.push(
      `${plural(profile.deniedCalls, 'call')} in the window were already refused by an ACL in force (AccessPolicyDenied)` +
        (admittedRefused.length > 0 ? `; this proposal admits ${plural(admittedRefused.length, 'refused source')} (${admittedRefused.slice(0, 5).join(', ')}${admittedRefused.length > 5 ? ', …' : ''}): confirm they are yours` : ''),
    );
  }

  const governed = profile.publicSources.length + profile.vpcSources.length;
  const admitted = plan.publicCandidates.length + [...plan.vpcCandidates.values()].reduce((n, l) => n + l.length, 0);
  if (governed === 0) {
    plan.noAclReason = 'no governed traffic (public or VPC) in the window: no ACL proposed, since an enabled ACL would deny whatever the key does next';
  } else if (admitted === 0) {
    plan.noAclReason = `all ${plural(governed, 'governed source')} were excluded (see excluded): no ACL proposed, since it would deny all of them`;
  }
  plan.excluded = sortExcluded(plan.excluded);
  return plan;
}

/**
 * Networks still being put in service: runs of consecutive IPv4 addresses all first seen in the last
 * poolMemberMaxDays days, at least newAfterDays after the key's first call (a contiguous EIP group or NAT pool taking on addresses one by one). The run is
 * admitted as the aligned block holding it and as many addresses again after it (headroom 2 for the growth
 * still to come), never wider than one /24 network, never over a possible leak, never inside a pool block.
 */
function growingRuns(plan: KeyPlan, windowEnd: number): PoolGuess[] {
  const T = SUSPICION_THRESHOLDS;
  // Young in the window and new to the key (a short window makes every address young, not new).
  const youngFrom = Math.max(windowEnd - T.poolMemberMaxDays * DAY_MS, Date.parse(plan.profile.firstSeen) + T.newAfterDays * DAY_MS);
  const young = plan.publicCandidates
    .filter((c) => c.family === 4 && factsOf(c.usage).firstMs >= youngFrom)
    .sort((a, b) => (a.value < b.value ? -1 : a.value > b.value ? 1 : 0));
  const runs: Candidate[][] = [];
  for (const c of young) {
    const run = runs[runs.length - 1];
    const last = run?.[run.length - 1];
    if (run && last && (c.value === last.value || c.value === last.value + 1n)) run.push(c);
    else runs.push([c]);
  }
  const out: PoolGuess[] = [];
  for (const run of runs) {
    const addresses = new Set(run.map((c) => c.value));
    if (addresses.size < 2) continue;
    const min = run[0]!.value;
    const max = run[run.length - 1]!.value + BigInt(addresses.size);
    let length = 32;
    while (length > 0 && maskValue(min, 4, length) !== maskValue(max, 4, length)) length--;
    if (length < T.networkPrefix[4]) continue;
    const block: Prefix = { family: 4, base: maskValue(min, 4, length), length };
    if (plan.forbidden.some((f) => inPrefix(block, f.family, f.value))) continue;
    if (plan.pools.some((p) => p.vpcId === null && p.family === 4 && p.length <= length && maskValue(block.base, 4, p.length) === p.base)) continue;
    const cidr = formatPrefix(block);
    const ips = sortByAddress([...new Set(run.map((c) => c.usage.ip))], (ip) => ip);
    out.push({
      vpcId: null,
      cidr,
      family: 4,
      base: block.base,
      length,
      keyAddresses: ips,
      evidenceAddresses: ips.length,
      keys: [plan.profile.accessKeyId],
      calls: run.reduce((n, c) => n + c.usage.calls, 0),
      reason: `${plural(ips.length, 'consecutive address')} (${ips[0]} … ${ips[ips.length - 1]}) all first seen in the last ${T.poolMemberMaxDays} days: a network still taking on addresses; ${cidr} leaves room for as many again — confirm it is yours`,
    });
  }
  return out;
}

/** Routed blocks (IPv4 /24) holding at least two distinct short-lived addresses of the key, with those sources. */
function recurringRanges(loose: readonly SourceUsage[]): Array<{ base: bigint; sources: SourceUsage[] }> {
  const length = SUSPICION_THRESHOLDS.rotatingRangePrefix[4];
  const byBlock = new Map<bigint, SourceUsage[]>();
  for (const s of loose) {
    const a = factsOf(s).address;
    if (!a || a.family !== 4) continue;
    const base = maskValue(a.value, 4, length);
    byBlock.set(base, [...(byBlock.get(base) ?? []), s]);
  }
  return [...byBlock]
    .filter(([, sources]) => new Set(sources.map((s) => s.ip)).size >= 2)
    .map(([base, sources]) => ({ base, sources }))
    .sort((a, b) => (a.base < b.base ? -1 : a.base > b.base ? 1 : 0));
}

/**
 * A key whose public egress rotates (hosted runners, functions without a static IP) will call from the
 * neighbours of what it was seen on: a routed block where its short-lived addresses recur is admitted whole,
 * unless it meets a pool block or holds a possible leak (then its addresses stay as they are).
 */
function rangesOfRotatingEgress(plan: KeyPlan, loose: SourceUsage[]): PoolGuess[] {
  const length = SUSPICION_THRESHOLDS.rotatingRangePrefix[4];
  const admitted = new Set(plan.publicCandidates.map((c) => c.usage));
  const out: PoolGuess[] = [];
  for (const { base, sources: all } of recurringRanges(loose)) {
    const sources = all.filter((s) => admitted.has(s));
    if (sources.length === 0) continue;
    const block: Prefix = { family: 4, base, length };
    const meets = (p: Prefix): boolean => p.family === 4 && maskValue(p.base, 4, Math.min(p.length, length)) === maskValue(base, 4, Math.min(p.length, length));
    if (plan.pools.some((p) => p.vpcId === null && meets(p))) continue;
    if (plan.forbidden.some((f) => inPrefix(block, f.family, f.value))) continue;
    const cidr = formatPrefix(block);
    out.push({
      vpcId: null,
      cidr,
      family: 4,
      base,
      length,
      keyAddresses: sortByAddress(sources.map((s) => s.ip), (ip) => ip),
      evidenceAddresses: new Set(all.map((s) => s.ip)).size,
      keys: [plan.profile.accessKeyId],
      calls: sources.reduce((n, s) => n + s.calls, 0),
      reason: `${cidr}: ${plural(new Set(all.map((s) => s.ip)).size, 'short-lived address')} of a key whose egress rotates recur in this routed block`,
    });
  }
  return out;
}

/** Exclusions sorted by VPC, then address, then code (sort keys computed once). */
export function sortExcluded(list: readonly Excluded[]): Excluded[] {
  const keyed = list.map((e) => ({ e, k: `${e.vpcId ?? ''}\u0000${addressSortKey(e.source)}\u0000${e.code}` }));
  return keyed.sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0)).map((x) => x.e);
}

export function compareExcluded(a: Excluded, b: Excluded): number {
  return (
    (a.vpcId ?? '').localeCompare(b.vpcId ?? '') ||
    compareAddressText(a.source, b.source) ||
    a.code.localeCompare(b.code)
  );
}
