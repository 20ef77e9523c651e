// The vendor's network-ACL rules, in one place (RAM "network access control for AccessKeys").
// Everything that decides "would this call be allowed" lives here so that recommend, simulate and
// explain cannot disagree.
import { parsePrefix, parseAddress, prefixContains, type Prefix } from './address.ts';
import type { AclRules, KeyKind, SourceKind } from './types.ts';

/** At most 50 IPs or CIDR blocks per ACL. */
export const MAX_ENTRIES_PER_ACL = 50;
/** At most 8 network ACLs per account and per AccessKey… */
export const MAX_ACLS = 8;
/** …of which at most one is a public-network ACL. */
export const MAX_PUBLIC_ACLS = 1;
/** So a key or the account gets at most 7 VPC rules. */
export const MAX_VPC_RULES = MAX_ACLS - MAX_PUBLIC_ACLS;

/** The VPC ID that stands for every VPC. */
export const ALLOW_ALL_VPC = 'AllowAllVPC';
export const ALLOW_ALL_CIDRS = ['0.0.0.0/0', '::/0'] as const;

/** Guardrails: shorter prefixes need `--allow-broad`; `/0` is never proposed. */
export const GUARDRAIL_MIN_PREFIX = { 4: 16, 6: 32 } as const;

/**
 * Services that network ACLs do not govern: calls to them are never rejected, so they justify no entry.
 * Matched case-insensitively against `serviceName` and against the first label of `eventSource`.
 * The vendor says this list will shrink: override with KEYFENCE_EXEMPT_SERVICES (comma-separated) or
 * `setExemptServices`.
 */
export const DEFAULT_EXEMPT_SERVICES: readonly string[] = [
  'rocketmq', 'ons', 'alikafka-rocketmq', // ApsaraMQ for RocketMQ
  'amqp', 'amqp-open', 'rabbitmq', // ApsaraMQ for RabbitMQ
  'mqtt', 'onsmqtt', // ApsaraMQ for MQTT
  'eventbridge',
  'mns', 'mns-open', 'smq', // Message Service / Simple Message Queue
  'cms-event', // CloudMonitor HTTP event reporting only (not all of CloudMonitor)
  'hologres', 'hologram',
];

let exemptServices = new Set(
  (process.env.KEYFENCE_EXEMPT_SERVICES?.split(',') ?? DEFAULT_EXEMPT_SERVICES).map((s) => s.trim().toLowerCase()).filter(Boolean),
);

export function setExemptServices(services: readonly string[]): void {
  exemptServices = new Set(services.map((s) => s.trim().toLowerCase()).filter(Boolean));
}

export function exemptServiceList(): string[] {
  return [...exemptServices].sort();
}

/** Whether a call to this service is outside the ACL's reach. */
export function isExemptService(serviceName: string | null | undefined, eventSource?: string | null): boolean {
  if (serviceName && exemptServices.has(serviceName.trim().toLowerCase())) return true;
  if (eventSource) {
    const firstLabel = eventSource.trim().toLowerCase().split('.')[0];
    if (firstLabel && exemptServices.has(firstLabel)) return true;
  }
  return false;
}

/** How an ACL rejection shows in an event; matched case-insensitively on errorCode and errorMessage. */
export const DEFAULT_DENIAL_PATTERNS: readonly string[] = [
  'AccessKeyId.AccessPolicyDenied',
  'denied due to access policy',
];

export function isAclDenial(errorCode: string | null | undefined, errorMessage: string | null | undefined, patterns: readonly string[] = DEFAULT_DENIAL_PATTERNS): boolean {
  const hay = `${errorCode ?? ''}\n${errorMessage ?? ''}`.toLowerCase();
  return patterns.some((p) => hay.includes(p.toLowerCase()));
}

/** APIs whose use from a never-seen source looks like a leaked key being explored. */
export const SENSITIVE_APIS: readonly string[] = [
  'CreateAccessKey', 'ListAccessKeys', 'ListUsers', 'GetUser', 'CreateUser', 'AttachPolicyToUser', 'AttachPolicyToRole',
  'CreateLoginProfile', 'UpdateLoginProfile', 'ListPolicies', 'GetAccountSummary', 'ListRoles', 'AssumeRole',
  'GetCallerIdentity', 'DescribeRegions', 'ListBuckets', 'GetBucketAcl', 'DescribeAccessKeyPolicy', 'SetAccessKeyPolicy',
  'SetAccessKeyPolicyForAccount', 'DeleteTrail', 'StopLogging', 'UpdateTrail',
];

/** STS keys and assumed roles are never governed. */
export function isTemporaryKey(accessKeyId: string | null | undefined, identityType?: string | null): boolean {
  return (accessKeyId ?? '').startsWith('STS.') || identityType === 'assumed-role';
}

// ---------------------------------------------------------------- deciding a call

export interface CompiledRule {
  vpcId: string;
  prefixes: Prefix[];
  cidrs: string[];
}

/** An ACL ready for matching. `enabled: false` restricts nothing. `publicRule: null` means no public rule. */
export interface CompiledAcl {
  enabled: boolean;
  publicRule: CompiledRule | null;
  vpcRules: CompiledRule[];
}

/** What is in force: the account-level ACL and key-level ACLs (a key-level ACL replaces the account level). */
export interface AclsInForce {
  accountLevel: CompiledAcl | null;
  keyLevel: Map<string, CompiledAcl>;
}

/** Statuses other than `disabled` (draft, approved, enabled) are read as enabled: a proposal is simulated as if applied. */
export function compileAcl(rules: AclRules): CompiledAcl {
  const compile = (vpcId: string, cidrs: string[]): CompiledRule => ({
    vpcId,
    cidrs,
    prefixes: cidrs.map((c) => {
      const p = parsePrefix(c);
      if (!p) throw new Error(`malformed CIDR ${JSON.stringify(c)} reached compileAcl: validate ACL files first`);
      return p;
    }),
  });
  return {
    enabled: rules.status !== 'disabled',
    publicRule: rules.public ? compile('', rules.public.cidrs) : null,
    vpcRules: rules.vpc.map((v) => compile(v.vpcId, v.cidrs)),
  };
}

export interface GovernedCall {
  accessKeyId: string | null;
  keyKind: KeyKind;
  sourceKind: SourceKind;
  /** Normalized source address text. */
  ip: string | null;
  vpcId: string | null;
  exemptService: boolean;
}

export type VerdictCode =
  | 'not-governed-no-key'
  | 'not-governed-sts'
  | 'not-governed-exempt-service'
  | 'not-governed-inter-service'
  | 'undetermined-source'
  | 'no-acl'
  | 'acl-disabled'
  | 'allowed-by-entry'
  | 'denied-no-public-rule'
  | 'denied-not-in-public-rule'
  | 'denied-no-vpc-rule'
  | 'denied-vpc-not-listed'
  | 'denied-not-in-vpc-rule';

export interface Verdict {
  allowed: boolean;
  code: VerdictCode;
  /** Which ACL decided: the key's own, the account's, or none applies. */
  governedBy: 'key' | 'account' | null;
  /** The entry that admitted the call. */
  matched?: { vpcId: string | null; cidr: string };
}

export function governingAcl(acls: AclsInForce, accessKeyId: string): { acl: CompiledAcl; level: 'key' | 'account' } | null {
  const own = acls.keyLevel.get(accessKeyId);
  if (own) return { acl: own, level: 'key' };
  if (acls.accountLevel) return { acl: acls.accountLevel, level: 'account' };
  return null;
}

/** Would this call pass the ACLs in force? Applies the vendor's rules exactly, in the vendor's order. */
export function decide(acls: AclsInForce, call: GovernedCall): Verdict {
  if (!call.accessKeyId || call.keyKind === 'none') return { allowed: true, code: 'not-governed-no-key', governedBy: null };
  if (call.keyKind === 'sts') return { allowed: true, code: 'not-governed-sts', governedBy: null };
  if (call.exemptService) return { allowed: true, code: 'not-governed-exempt-service', governedBy: null };
  if (call.sourceKind === 'internal' || call.sourceKind === 'service') {
    return { allowed: true, code: 'not-governed-inter-service', governedBy: null };
  }
  const governing = governingAcl(acls, call.accessKeyId);
  if (!governing) return { allowed: true, code: 'no-acl', governedBy: null };
  const { acl, level } = governing;
  if (!acl.enabled) return { allowed: true, code: 'acl-disabled', governedBy: level };
  const addr = call.ip ? parseAddress(call.ip) : null;
  if (call.sourceKind === 'invalid' || !addr) return { allowed: true, code: 'undetermined-source', governedBy: level };

  if (call.sourceKind === 'public') {
    if (!acl.publicRule) return { allowed: false, code: 'denied-no-public-rule', governedBy: level };
    const hit = acl.publicRule.prefixes.findIndex((p) => prefixContains(p, addr));
    if (hit < 0) return { allowed: false, code: 'denied-not-in-public-rule', governedBy: level };
    return { allowed: true, code: 'allowed-by-entry', governedBy: level, matched: { vpcId: null, cidr: acl.publicRule.cidrs[hit]! } };
  }
  // sourceKind === 'vpc'
  if (acl.vpcRules.length === 0) return { allowed: false, code: 'denied-no-vpc-rule', governedBy: level };
  const candidates = acl.vpcRules.filter((r) => r.vpcId === call.vpcId || r.vpcId === ALLOW_ALL_VPC);
  if (candidates.length === 0) return { allowed: false, code: 'denied-vpc-not-listed', governedBy: level };
  for (const rule of candidates) {
    const hit = rule.prefixes.findIndex((p) => prefixContains(p, addr));
    if (hit >= 0) return { allowed: true, code: 'allowed-by-entry', governedBy: level, matched: { vpcId: rule.vpcId, cidr: rule.cidrs[hit]! } };
  }
  return { allowed: false, code: 'denied-not-in-vpc-rule', governedBy: level };
}

export const VERDICT_TEXT: Record<VerdictCode, string> = {
  'not-governed-no-key': 'no AccessKey was used (console or service session): network ACLs do not apply',
  'not-governed-sts': 'temporary STS credentials are never governed by network ACLs',
  'not-governed-exempt-service': 'this service is not governed by network ACLs',
  'not-governed-inter-service': 'an inter-service call (internal or service source): network ACLs do not apply; use a service role',
  'undetermined-source': 'the recorded source is not an address, so the ACL decision cannot be reproduced',
  'no-acl': 'no ACL applies to this key (neither key level nor account level)',
  'acl-disabled': 'the ACL that governs this key is disabled and restricts nothing',
  'allowed-by-entry': 'an entry of the governing ACL admits this source',
  'denied-no-public-rule': 'the governing ACL is enabled and has no public rule: every public call is denied',
  'denied-not-in-public-rule': 'the source is in none of the public rule\'s entries',
  'denied-no-vpc-rule': 'the governing ACL is enabled and has no VPC rule: every VPC call is denied',
  'denied-vpc-not-listed': 'the governing ACL has no rule for this VPC ID (and no AllowAllVPC rule)',
  'denied-not-in-vpc-rule': 'the source is in none of the entries of the rule for this VPC',
};
