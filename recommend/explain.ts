// Explaining one call against the ACLs in force: the verdict, the entry or missing rule that decides it, the
// cases where an ACL cannot be the cause, and the smallest fix (add a /32, or widen entry X to /N) with the
// space it admits and the 50-entry headroom it leaves. Pure: history and neighbours are added by the caller.
import { FAMILY_BITS, formatPrefix, isPublicAddress, maskValue, prefixCovers, prefixSize, type Address, type Prefix } from '../model/address.ts';
import {
  GUARDRAIL_MIN_PREFIX,
  MAX_ENTRIES_PER_ACL,
  MAX_VPC_RULES,
  ALLOW_ALL_VPC,
  VERDICT_TEXT,
  decide,
  governingAcl,
  isExemptService,
  isTemporaryKey,
  type AclsInForce,
  type CompiledAcl,
  type CompiledRule,
  type Verdict,
} from '../model/acl-rules.ts';
import type { KeyKind, SourceKind } from '../model/types.ts';

export interface CallToExplain {
  accessKeyId: string;
  /** Parsed strictly by the caller (an unparseable address is a usage error, not a verdict). */
  address: Address;
  vpcId?: string | null;
  /** serviceName or endpoint host, e.g. `Ecs` or `ecs.aliyuncs.com`. */
  service?: string | null;
}

export type FixKind = 'add-entry' | 'widen-entry' | 'add-public-rule' | 'add-vpc-rule';

export interface Fix {
  kind: FixKind;
  /** The ACL to change: the key's own, or the account's. */
  level: 'key' | 'account';
  /** null for the public rule. */
  vpcId: string | null;
  /** The entry to add, or the widened entry. */
  entry: string;
  /** The entry it replaces (widen). */
  replaces: string | null;
  /** Other entries the widened one swallows (they can be removed). */
  absorbs: string[];
  /** Addresses admitted that were not before (decimal; IPv6 counts are large). */
  extraAddresses: string;
  entriesAfter: number;
  /** Entries still free in this rule after the fix (of 50). */
  headroomLeft: number;
  /** Shorter than the guardrail (/16 IPv4, /32 IPv6): needs a deliberate decision. */
  broad: boolean;
  /** Whether the rule (or the 7-VPC-rule limit) leaves room for it. */
  possible: boolean;
  text: string;
}

export interface Explanation {
  call: {
    accessKeyId: string;
    keyKind: KeyKind;
    sourceKind: SourceKind;
    ip: string;
    vpcId: string | null;
    service: string | null;
    exemptService: boolean;
  };
  /** null when no ACL file was given: only whether an ACL can be the cause is known. */
  verdict: (Verdict & { text: string }) | null;
  governing: {
    level: 'key' | 'account';
    enabled: boolean;
    publicEntries: number | null;
    vpcRules: Array<{ vpcId: string; entries: number }>;
  } | null;
  /** The sentence that says what decides: the admitting entry, or the missing rule/entry. */
  deciding: string;
  /** Set when no ACL can have refused this call (STS key, exempt service, internal source). */
  aclCannotBeCause: string | null;
  /** Smallest first; the first possible one is the recommended fix. Empty when allowed. */
  fixes: Fix[];
  notes: string[];
}

/** How many widening alternatives to list besides adding an entry. */
const WIDEN_OPTIONS = 3;

export function explainCall(acls: AclsInForce | null, call: CallToExplain): Explanation {
  const keyKind: KeyKind = isTemporaryKey(call.accessKeyId) ? 'sts' : 'permanent';
  const vpcId = call.vpcId ?? null;
  const sourceKind: SourceKind = vpcId ? 'vpc' : isPublicAddress(call.address) ? 'public' : 'internal';
  const exemptService = call.service ? isExemptService(call.service, call.service) : false;
  const described = {
    accessKeyId: call.accessKeyId, keyKind, sourceKind, ip: call.address.text, vpcId, service: call.service ?? null, exemptService,
  };
  const notes: string[] = [];
  const cannot = cannotBeCause(keyKind, exemptService, sourceKind);
  if (sourceKind === 'internal') notes.push('a private address without a VPC ID: if the call went through a VPC endpoint, pass --vpc with its VPC ID');

  if (!acls) {
    return {
      call: described, verdict: null, governing: null,
      deciding: cannot ?? 'no ACL file given (--acl): the verdict cannot be reproduced; history only',
      aclCannotBeCause: cannot, fixes: [], notes,
    };
  }
  const verdict = decide(acls, { accessKeyId: call.accessKeyId, keyKind, sourceKind, ip: call.address.text, vpcId, exemptService });
  const gov = governingAcl(acls, call.accessKeyId);
  const governing = gov ? {
    level: gov.level,
    enabled: gov.acl.enabled,
    publicEntries: gov.acl.publicRule ? gov.acl.publicRule.cidrs.length : null,
    vpcRules: gov.acl.vpcRules.map((r) => ({ vpcId: r.vpcId, entries: r.cidrs.length })),
  } : null;
  if (gov?.level === 'key' && acls.accountLevel) notes.push('the key has its own ACL, which replaces the account-level ACL for this key');
  if (verdict.allowed && !cannot && (verdict.code === 'no-acl' || verdict.code === 'acl-disabled' || verdict.code === 'allowed-by-entry')) {
    notes.push('if this call was nevertheless refused, the ACL file does not describe what is in force, or the recorded source is not the caller\'s egress address (NAT, proxy)');
  }
  const fixes = verdict.allowed || !gov ? [] : fixesFor(gov.acl, gov.level, verdict, call.address, vpcId);
  if (gov?.level === 'account' && fixes.length > 0) {
    notes.push('the fix changes the account-level ACL, i.e. every key without its own ACL; alternatively give this key its own ACL, which must then hold everything the key needs (it replaces the account level)');
  }
  return {
    call: described,
    verdict: { ...verdict, text: VERDICT_TEXT[verdict.code] },
    governing,
    deciding: decidingSentence(verdict, gov?.level ?? null),
    aclCannotBeCause: cannot,
    fixes,
    notes,
  };
}

function cannotBeCause(keyKind: KeyKind, exempt: boolean, sourceKind: SourceKind): string | null {
  if (keyKind === 'sts') return VERDICT_TEXT['not-governed-sts'];
  if (exempt) return VERDICT_TEXT['not-governed-exempt-service'];
  if (sourceKind === 'internal') return VERDICT_TEXT['not-governed-inter-service'];
  return null;
}

function decidingSentence(verdict: Verdict, level: 'key' | 'account' | null): string {
  const acl = level === 'key' ? 'the key-level ACL' : 'the account-level ACL';
  if (verdict.code === 'allowed-by-entry' && verdict.matched) {
    const rule = verdict.matched.vpcId ? `the VPC rule for ${verdict.matched.vpcId}` : 'the public rule';
    return `entry ${verdict.matched.cidr} of ${rule} of ${acl} admits it`;
  }
  if (verdict.code.startsWith('denied-')) return `${acl}: ${VERDICT_TEXT[verdict.code]}`;
  return VERDICT_TEXT[verdict.code];
}

function fixesFor(acl: CompiledAcl, level: 'key' | 'account', verdict: Verdict, addr: Address, vpcId: string | null): Fix[] {
  const host = hostPrefix(addr);
  switch (verdict.code) {
    case 'denied-no-public-rule':
      return [newRuleFix('add-public-rule', level, null, host, true)];
    case 'denied-no-vpc-rule':
    case 'denied-vpc-not-listed':
      return [newRuleFix('add-vpc-rule', level, vpcId, host, acl.vpcRules.length < MAX_VPC_RULES)];
    case 'denied-not-in-public-rule':
      return ruleFixes(acl.publicRule!, level, null, addr);
    case 'denied-not-in-vpc-rule': {
      const rule = acl.vpcRules.find((r) => r.vpcId === vpcId) ?? acl.vpcRules.find((r) => r.vpcId === ALLOW_ALL_VPC)!;
      return ruleFixes(rule, level, rule.vpcId, addr);
    }
    default:
      return [];
  }
}

function hostPrefix(addr: Address): Prefix {
  return { family: addr.family, base: addr.value, length: FAMILY_BITS[addr.family] };
}

function newRuleFix(kind: FixKind, level: 'key' | 'account', vpcId: string | null, host: Prefix, possible: boolean): Fix {
  const entry = formatPrefix(host);
  const where = vpcId ? `a VPC rule for ${vpcId}` : 'a public rule';
  return {
    kind, level, vpcId, entry, replaces: null, absorbs: [], extraAddresses: '1', entriesAfter: 1, headroomLeft: MAX_ENTRIES_PER_ACL - 1,
    broad: false, possible,
    text: possible ? `add ${where} to the ${level}-level ACL holding ${entry}` : `cannot add ${where}: the ${level}-level ACL already has ${MAX_VPC_RULES} VPC rules`,
  };
}

/** Add the host, or widen one existing entry just enough to take it in; smallest extra space first. */
function ruleFixes(rule: CompiledRule, level: 'key' | 'account', vpcId: string | null, addr: Address): Fix[] {
  const n = rule.cidrs.length;
  const where = `${vpcId ? `the VPC rule for ${vpcId}` : 'the public rule'} of the ${level}-level ACL`;
  const host = hostPrefix(addr);
  const addPossible = n < MAX_ENTRIES_PER_ACL;
  const add: Fix = {
    kind: 'add-entry', level, vpcId, entry: formatPrefix(host), replaces: null, absorbs: [], extraAddresses: '1',
    entriesAfter: n + 1, headroomLeft: MAX_ENTRIES_PER_ACL - n - 1, broad: false, possible: addPossible,
    text: addPossible
      ? `add ${formatPrefix(host)} to ${where} (${n + 1}/${MAX_ENTRIES_PER_ACL} entries, ${MAX_ENTRIES_PER_ACL - n - 1} left)`
      : `cannot add an entry: ${where} already holds ${MAX_ENTRIES_PER_ACL}; widen an entry instead`,
  };
  // IPv6 privacy addresses rotate inside their /64: the /128 breaks again tomorrow, the /64 lasts.
  const slash64: Fix[] = [];
  if (addr.family === 6 && !vpcId) {
    const block: Prefix = { family: 6, base: maskValue(addr.value, 6, 64), length: 64 };
    const entry = formatPrefix(block);
    if (!rule.cidrs.includes(entry)) {
      slash64.push({
        kind: 'add-entry', level, vpcId, entry, replaces: null, absorbs: [], extraAddresses: (prefixSize(block) - 1n).toString(),
        entriesAfter: n + 1, headroomLeft: MAX_ENTRIES_PER_ACL - n - 1, broad: false, possible: addPossible,
        text: `add ${entry} to ${where} instead, if the source uses rotating IPv6 privacy addresses (${n + 1}/${MAX_ENTRIES_PER_ACL} entries)`,
      });
    }
  }
  const widens: Fix[] = [];
  rule.prefixes.forEach((p, i) => {
    if (p.family !== addr.family) return;
    const length = commonLength(p, addr);
    if (length === 0) return; // never propose /0
    const widened: Prefix = { family: p.family, base: maskValue(addr.value, addr.family, length), length };
    const absorbed = rule.prefixes.map((q, j) => ({ q, j })).filter(({ q, j }) => j !== i && prefixCovers(widened, q));
    const before = [p, ...absorbed.map((a) => a.q)].reduce((s, q) => s + prefixSize(q), 0n);
    const extra = prefixSize(widened) - before;
    const entriesAfter = n - absorbed.length;
    const broad = length < GUARDRAIL_MIN_PREFIX[p.family];
    const entry = formatPrefix(widened);
    widens.push({
      kind: 'widen-entry', level, vpcId, entry, replaces: rule.cidrs[i]!, absorbs: absorbed.map((a) => rule.cidrs[a.j]!).sort(),
      extraAddresses: extra.toString(), entriesAfter, headroomLeft: MAX_ENTRIES_PER_ACL - entriesAfter, broad, possible: true,
      text: `widen ${rule.cidrs[i]} to ${entry} in ${where}: admits ${extra} more address${extra === 1n ? '' : 'es'}`
        + `${absorbed.length ? `, absorbs ${absorbed.length} other entr${absorbed.length === 1 ? 'y' : 'ies'}` : ''}`
        + `, ${MAX_ENTRIES_PER_ACL - entriesAfter} entries left${broad ? ' (broader than the guardrail: needs --allow-broad)' : ''}`,
    });
  });
  widens.sort((a, b) => cmpBig(BigInt(a.extraAddresses), BigInt(b.extraAddresses)) || (a.entry < b.entry ? -1 : a.entry > b.entry ? 1 : 0));
  // Widening different entries can land on the same block: list each block once.
  const distinct = widens.filter((w, i) => widens.findIndex((x) => x.entry === w.entry) === i);
  // Adding one address costs no extra space: it leads while the rule has room.
  return addPossible ? [add, ...slash64, ...distinct.slice(0, WIDEN_OPTIONS)] : [...distinct.slice(0, WIDEN_OPTIONS), add, ...slash64];
}

/** The longest prefix length holding both the entry and the address (never longer than the entry). */
function commonLength(p: Prefix, addr: Address): number {
  const bits = FAMILY_BITS[p.family];
  let length = p.length;
  while (length > 0 && maskValue(addr.value, addr.family, length) !== maskValue(p.base, p.family, length)) length--;
  return Math.min(length, bits);
}

function cmpBig(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
