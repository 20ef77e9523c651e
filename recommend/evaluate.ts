// How good a proposal is, against a history whose truth is known: replay held-out calls through the vendor's
// decision (model/acl-rules.ts `decide`), count legitimate calls it would deny, compare admitted space with the
// true networks, and check no leak source gets in. Pure.
import { parseAddress, parsePrefix, type Prefix } from '../model/address.ts';
import { GUARDRAIL_MIN_PREFIX, MAX_ENTRIES_PER_ACL, MAX_VPC_RULES, compileAcl, decide, type AclsInForce } from '../model/acl-rules.ts';
import type { AclProposal, AclRules, IpFamily } from '../model/types.ts';
import type { SourceAggregate } from './simulate.ts';

/** The part of the fixtures' ground truth the evaluation reads (fixtures/world.ts `GroundTruth` fits it). */
export interface GroundTruth {
  keys: Array<{
    accessKeyId: string;
    /** The true public space: every CIDR legitimate public traffic comes from. */
    publicNetworks: string[];
    vpcNetworks: Array<{ vpcId: string; cidrs: string[] }>;
    leakSources: string[];
    oneOffSources?: string[];
  }>;
}

/** Held-out calls, aggregated: one row per (key, source, exempt) with its call count. */
export type HeldOutRow = Pick<SourceAggregate, 'keyKind' | 'sourceKind' | 'ip' | 'vpcId' | 'exempt' | 'calls'> & { accessKeyId: string };

export interface KeyQuality {
  accessKeyId: string;
  /** Which ACL would govern the key: its own, the account's, or none. */
  governedBy: 'key' | 'account' | null;
  legitCalls: number;
  falseDenied: number;
  /** Of `falseDenied`, calls from the truth's one-off sources (unpredictable by construction). */
  falseDeniedOneOff: number;
  falseDenyShare: number;
  /** Admitted public space (IPv4 addresses + IPv6 /64s) against the true public space. */
  admittedUnits: number;
  trueUnits: number;
  leaksAdmitted: string[];
}

export interface QualityReport {
  legitGovernedCalls: number;
  falseDeniedCalls: number;
  falseDeniedOneOffCalls: number;
  /** falseDenied / legitGoverned, over every key. */
  falseDenyShare: number;
  worstKey: { accessKeyId: string; share: number; falseDenied: number; legitCalls: number } | null;
  /** Public space, over keys an ACL would govern. */
  admittedUnits: number;
  trueUnits: number;
  spaceRatio: number;
  vpcAdmittedUnits: number;
  vpcTrueUnits: number;
  vpcSpaceRatio: number;
  leakSources: number;
  leaksAdmitted: Array<{ accessKeyId: string; source: string }>;
  /** Keys with leak sources that no ACL would govern (nothing blocks the leak). */
  leakKeysUngoverned: string[];
  limitBreaches: string[];
  keysGoverned: number;
  keysUngoverned: number;
  perKey: KeyQuality[];
}

const UNIT_BITS: Record<IpFamily, number> = { 4: 32, 6: 64 };

/** Units of a union of prefixes: nested and duplicate prefixes count once. */
export function unionUnits(prefixes: Prefix[]): number {
  const sorted = [...prefixes].sort((a, b) => a.family - b.family || (a.base < b.base ? -1 : a.base > b.base ? 1 : 0) || a.length - b.length);
  let total = 0;
  let last: Prefix | null = null;
  for (const p of sorted) {
    if (last && last.family === p.family && last.length <= p.length && (p.base >> BigInt((p.family === 4 ? 32 : 128) - last.length)) === (last.base >> BigInt((p.family === 4 ? 32 : 128) - last.length))) continue;
    total += 2 ** (UNIT_BITS[p.family] - Math.min(p.length, UNIT_BITS[p.family]));
    last = p;
  }
  return total;
}

function prefixesOf(cidrs: readonly string[]): Prefix[] {
  return cidrs.map((c) => parsePrefix(c)).filter((p): p is NonNullable<typeof p> => p !== null);
}

/** Every way a proposal can break the vendor's limits or the guardrail, in words. */
export function limitBreaches(proposal: AclProposal): string[] {
  const allowBroad = proposal.settings?.allowBroad === true;
  const out: string[] = [];
  const check = (label: string, rules: AclRules): void => {
    const rule = (name: string, cidrs: string[]): void => {
      if (cidrs.length > MAX_ENTRIES_PER_ACL) out.push(`${label} ${name}: ${cidrs.length} entries > ${MAX_ENTRIES_PER_ACL}`);
      if (cidrs.length === 0) out.push(`${label} ${name}: an empty rule`);
      for (const c of cidrs) {
        const p = parsePrefix(c);
        if (!p) out.push(`${label} ${name}: malformed ${c}`);
        else if (p.length === 0) out.push(`${label} ${name}: ${c} admits everything`);
        else if (!allowBroad && p.length < GUARDRAIL_MIN_PREFIX[p.family]) out.push(`${label} ${name}: ${c} is broader than the /${GUARDRAIL_MIN_PREFIX[p.family]} guardrail`);
      }
    };
    if (rules.public) rule('public rule', rules.public.cidrs);
    if (rules.vpc.length > MAX_VPC_RULES) out.push(`${label}: ${rules.vpc.length} VPC rules > ${MAX_VPC_RULES}`);
    for (const v of rules.vpc) rule(`VPC rule ${v.vpcId}`, v.cidrs);
    if (!rules.public && rules.vpc.length === 0) out.push(`${label}: an empty ACL (denies everything)`);
  };
  if (proposal.accountLevel) check('account level', proposal.accountLevel);
  for (const k of proposal.accessKeys) check(k.accessKeyId, k);
  return out;
}

export function aclsOfProposal(proposal: AclProposal): AclsInForce {
  return {
    accountLevel: proposal.accountLevel ? compileAcl(proposal.accountLevel) : null,
    keyLevel: new Map(proposal.accessKeys.map((k) => [k.accessKeyId, compileAcl(k)])),
  };
}

export function evaluateAgainstTruth(proposal: AclProposal, heldOut: HeldOutRow[], truth: GroundTruth): QualityReport {
  const acls = aclsOfProposal(proposal);
  const truthByKey = new Map(truth.keys.map((k) => [k.accessKeyId, k]));
  const leakSet = new Map(truth.keys.map((k) => [k.accessKeyId, new Set(k.leakSources.map((s) => parseAddress(s)?.text ?? s))]));
  const oneOffSet = new Map(truth.keys.map((k) => [k.accessKeyId, new Set((k.oneOffSources ?? []).map((s) => parseAddress(s)?.text ?? s))]));
  const rulesOf = (key: string): { rules: AclRules; level: 'key' | 'account' } | null => {
    const own = proposal.accessKeys.find((k) => k.accessKeyId === key);
    if (own) return { rules: own, level: 'key' };
    return proposal.accountLevel ? { rules: proposal.accountLevel, level: 'account' } : null;
  };

  const perKey = new Map<string, KeyQuality>();
  const quality = (key: string): KeyQuality => {
    let q = perKey.get(key);
    if (!q) {
      const governing = rulesOf(key);
      const t = truthByKey.get(key);
      q = {
        accessKeyId: key,
        governedBy: governing?.level ?? null,
        legitCalls: 0,
        falseDenied: 0,
        falseDeniedOneOff: 0,
        falseDenyShare: 0,
        admittedUnits: governing?.rules.public ? unionUnits(prefixesOf(governing.rules.public.cidrs)) : 0,
        trueUnits: t ? unionUnits(prefixesOf(t.publicNetworks)) : 0,
        leaksAdmitted: [],
      };
      perKey.set(key, q);
    }
    return q;
  };
  for (const k of truth.keys) quality(k.accessKeyId);

  for (const row of heldOut) {
    const ip = row.ip ? parseAddress(row.ip)?.text ?? row.ip : null;
    if (ip && leakSet.get(row.accessKeyId)?.has(ip)) continue;
    const verdict = decide(acls, { accessKeyId: row.accessKeyId, keyKind: row.keyKind, sourceKind: row.sourceKind, ip, vpcId: row.vpcId, exemptService: row.exempt });
    if (verdict.code.startsWith('not-governed') || verdict.code === 'undetermined-source') continue;
    const q = quality(row.accessKeyId);
    q.legitCalls += row.calls;
    if (!verdict.allowed) {
      q.falseDenied += row.calls;
      if (ip && oneOffSet.get(row.accessKeyId)?.has(ip)) q.falseDeniedOneOff += row.calls;
    }
  }

  const leaksAdmitted: QualityReport['leaksAdmitted'] = [];
  const leakKeysUngoverned: string[] = [];
  let leakSources = 0;
  for (const t of truth.keys) {
    if (t.leakSources.length === 0) continue;
    leakSources += t.leakSources.length;
    if (!rulesOf(t.accessKeyId)) {
      leakKeysUngoverned.push(t.accessKeyId);
      continue;
    }
    for (const source of t.leakSources) {
      const v = decide(acls, { accessKeyId: t.accessKeyId, keyKind: 'permanent', sourceKind: 'public', ip: source, vpcId: null, exemptService: false });
      if (v.allowed) {
        leaksAdmitted.push({ accessKeyId: t.accessKeyId, source });
        quality(t.accessKeyId).leaksAdmitted.push(source);
      }
    }
  }

  let legit = 0;
  let denied = 0;
  let deniedOneOff = 0;
  let admitted = 0;
  let trueUnits = 0;
  let vpcAdmitted = 0;
  let vpcTrue = 0;
  let worst: QualityReport['worstKey'] = null;
  for (const q of perKey.values()) {
    q.falseDenyShare = q.legitCalls > 0 ? q.falseDenied / q.legitCalls : 0;
    legit += q.legitCalls;
    denied += q.falseDenied;
    deniedOneOff += q.falseDeniedOneOff;
    if (q.governedBy) {
      admitted += q.admittedUnits;
      trueUnits += q.trueUnits;
      const governing = rulesOf(q.accessKeyId)!;
      const t = truthByKey.get(q.accessKeyId);
      for (const v of governing.rules.vpc) {
        // VPC space counts only for the VPCs the key really uses (the account level may list more).
        if (governing.level === 'key' || t?.vpcNetworks.some((n) => n.vpcId === v.vpcId)) vpcAdmitted += unionUnits(prefixesOf(v.cidrs));
      }
      for (const n of t?.vpcNetworks ?? []) vpcTrue += unionUnits(prefixesOf(n.cidrs));
      if (!worst || q.falseDenyShare > worst.share || (q.falseDenyShare === worst.share && q.accessKeyId < worst.accessKeyId)) {
        worst = { accessKeyId: q.accessKeyId, share: q.falseDenyShare, falseDenied: q.falseDenied, legitCalls: q.legitCalls };
      }
    }
  }
  const keys = [...perKey.values()].sort((a, b) => (a.accessKeyId < b.accessKeyId ? -1 : 1));
  return {
    legitGovernedCalls: legit,
    falseDeniedCalls: denied,
    falseDeniedOneOffCalls: deniedOneOff,
    falseDenyShare: legit > 0 ? denied / legit : 0,
    worstKey: worst,
    admittedUnits: admitted,
    trueUnits,
    spaceRatio: trueUnits > 0 ? admitted / trueUnits : 0,
    vpcAdmittedUnits: vpcAdmitted,
    vpcTrueUnits: vpcTrue,
    vpcSpaceRatio: vpcTrue > 0 ? vpcAdmitted / vpcTrue : 0,
    leakSources,
    leaksAdmitted: leaksAdmitted.sort((a, b) => (a.accessKeyId < b.accessKeyId ? -1 : a.accessKeyId > b.accessKeyId ? 1 : a.source < b.source ? -1 : 1)),
    leakKeysUngoverned: leakKeysUngoverned.sort(),
    limitBreaches: limitBreaches(proposal),
    keysGoverned: keys.filter((k) => k.governedBy).length,
    keysUngoverned: keys.filter((k) => !k.governedBy).length,
    perKey: keys,
  };
}
