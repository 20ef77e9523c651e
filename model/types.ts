// The shared vocabulary of keyfence: record types every floor speaks. No I/O here.

/** `permanent` for any AccessKey ID that is not temporary (LTAI… or an older form), `sts` for `STS.…` or an assumed role. */
export type KeyKind = 'permanent' | 'sts' | 'none';

/**
 * Where a call came from, as far as an ACL is concerned:
 * `public` a public IPv4/IPv6 address; `vpc` a call through a VPC endpoint (vpcId set);
 * `internal` / `service` inter-service calls (never ACL material); `invalid` anything that is not an address
 * (masked doc values such as `192.168.XX.XX`, empty, garbage).
 */
export type SourceKind = 'public' | 'vpc' | 'internal' | 'service' | 'invalid';

export type IpFamily = 4 | 6;

/** One ActionTrail event, normalized. Produced only by `ingest/actiontrail.ts`. */
export interface AuditEvent {
  eventId: string;
  /** ISO 8601 UTC, e.g. `2026-11-01T02:03:04Z`. */
  eventTime: string;
  eventName: string | null;
  eventSource: string | null;
  serviceName: string | null;
  eventType: string | null;
  acsRegion: string | null;
  /** Normalized address text (IPv6 compressed lowercase, IPv4-mapped IPv6 as IPv4); the raw value when not an address. */
  sourceIp: string | null;
  sourceKind: SourceKind;
  ipFamily: IpFamily | null;
  vpcId: string | null;
  userAgent: string | null;
  /** Empty strings from the vendor are stored as null. */
  errorCode: string | null;
  errorMessage: string | null;
  accessKeyId: string | null;
  keyKind: KeyKind;
  identityType: string | null;
  accountId: string | null;
  principalId: string | null;
  userName: string | null;
  /** The service is not governed by network ACLs (see `model/acl-rules.ts`). */
  exemptService: boolean;
  /** The call was refused by a network ACL (`AccessKeyId.AccessPolicyDenied` or "denied due to access policy"). */
  aclDenied: boolean;
  /** The vendor's request ID (stored as `events.request_id`), when the event carries one. */
  requestId?: string | null;
}

export type RejectionReason =
  | 'malformed-json'
  | 'not-an-object'
  | 'missing-event-id'
  | 'missing-user-identity'
  | 'missing-event-time'
  | 'bad-event-time'
  | 'bad-source-ip'
  | 'line-too-long'
  | 'binary-data'
  | 'truncated-input'
  | 'unreadable-file'
  | 'unknown-shape';

/** A record that could not become an AuditEvent. Keeps the raw text (size-capped by the store) and why. */
export interface Rejection {
  reason: RejectionReason;
  detail: string;
  raw: string;
  /** Size in bytes of the whole record when `raw` was already cut by the reader (default: the size of `raw`). */
  rawBytes?: number;
}

/** Where a raw record came from: file + line, topic/partition/offset, SLS shard + cursor, … */
export interface RecordLocation {
  source: string;
  location: string;
}

// ---------------------------------------------------------------- analyze → recommend

/** How one source (address, or VPC + address) was used by one key in the window. */
export interface SourceUsage {
  /** Normalized address text. */
  ip: string;
  family: IpFamily;
  calls: number;
  /** Distinct UTC days with at least one call. */
  days: number;
  firstSeen: string;
  lastSeen: string;
  errorCalls: number;
  /** Calls refused by an ACL. */
  deniedCalls: number;
  /** Calls to sensitive APIs (CreateAccessKey, ListUsers, …; see `model/acl-rules.ts`). */
  sensitiveCalls: number;
  /** Distinct serviceName values, sorted, capped. */
  services: string[];
  /** Most frequent user agents, capped. */
  userAgents: string[];
}

export interface VpcSourceUsage extends SourceUsage {
  vpcId: string;
}

/** A source seen only on services that ACLs do not govern: it justifies no entry. */
export interface ExemptOnlySource {
  ip: string | null;
  vpcId: string | null;
  calls: number;
  services: string[];
}

export interface KeyProfile {
  accessKeyId: string;
  keyKind: KeyKind;
  identityType: string | null;
  userName: string | null;
  accountId: string | null;
  firstSeen: string;
  lastSeen: string;
  totalCalls: number;
  /** Governed public traffic: candidate ACL material. */
  publicSources: SourceUsage[];
  /** Governed VPC traffic: candidate ACL material. */
  vpcSources: VpcSourceUsage[];
  exemptOnlySources: ExemptOnlySource[];
  stsCalls: number;
  internalCalls: number;
  serviceCalls: number;
  invalidSourceCalls: number;
  deniedCalls: number;
}

/** The time window an analysis or proposal covers (ISO 8601 UTC, inclusive from, exclusive to). */
export interface TimeWindow {
  from: string;
  to: string;
}

// ---------------------------------------------------------------- proposals and ACLs in force

export type AclStatus = 'draft' | 'approved' | 'enabled' | 'disabled';

export interface PublicRule {
  cidrs: string[];
}

export interface VpcRule {
  vpcId: string;
  cidrs: string[];
}

/** Why an entry is in a proposal. */
export interface Evidence {
  cidr: string;
  vpcId?: string;
  calls: number;
  days: number;
  firstSeen: string;
  lastSeen: string;
  /** Distinct addresses seen inside the entry. */
  addresses?: number;
  /** Keys whose traffic justifies the entry (account level). */
  keys?: string[];
}

export type ExclusionCode =
  | 'sts-key'
  | 'internal-source'
  | 'service-source'
  | 'invalid-source'
  | 'exempt-service-only'
  | 'possible-leak'
  | 'below-min-calls'
  | 'below-min-days'
  | 'over-limit';

export interface Excluded {
  source: string;
  vpcId?: string;
  reason: string;
  code: ExclusionCode;
  calls?: number;
}

/** One ACL (public rule + VPC rules), at key or account level. `public: null` means no public rule. */
export interface AclRules {
  status?: AclStatus;
  public: PublicRule | null;
  vpc: VpcRule[];
}

export interface KeyProposal extends AclRules {
  accessKeyId: string;
  userName: string | null;
  status: AclStatus;
  evidence: Evidence[];
  excluded: Excluded[];
  warnings: string[];
}

export interface AccountProposal extends AclRules {
  status: AclStatus;
  evidence: Evidence[];
  warnings: string[];
  /** Keys that rely on the account-level ACL (no key-level ACL of their own). */
  coveredKeys?: string[];
}

/**
 * A key analyzed that gets no key-level ACL, and why: it relies on the account-level ACL (`coveredByAccount`),
 * or it gets no ACL at all (STS key, no governed traffic, every source excluded). Never an empty ACL.
 */
export interface KeyWithoutAcl {
  accessKeyId: string;
  userName: string | null;
  coveredByAccount: boolean;
  reason: string;
  excluded: Excluded[];
  warnings: string[];
}

/** The proposal contract (see shared DESIGN.md): other tools read it. */
export interface AclProposal {
  version: 1;
  generatedAt: string;
  window: TimeWindow;
  accountLevel: AccountProposal | null;
  accessKeys: KeyProposal[];
  /** Keys analyzed that get no key-level ACL (covered by the account level, or no ACL at all), with why. */
  keysWithoutAcl?: KeyWithoutAcl[];
  /** The knobs the proposal was made with, for reproducibility. */
  settings?: Record<string, unknown>;
  warnings?: string[];
}

// ---------------------------------------------------------------- ingest

/** What one ingest run did; printed by every source (`--json` prints this object). */
export interface IngestSummary {
  source: 'file' | 'kafka' | 'sls';
  runId: number;
  /** Raw records read (lines, messages, logs). */
  read: number;
  /** Events newly stored. */
  inserted: number;
  /** Valid events already in the store (redelivered). */
  duplicates: number;
  /** Records rejected into quarantine. */
  quarantined: number;
  quarantinedByReason: Partial<Record<RejectionReason, number>>;
  /** Inputs skipped because a checkpoint says they were fully ingested (files, partitions, shards). */
  skipped: number;
  seconds: number;
  eventsPerSecond: number;
  /** Human-readable problems with whole inputs (missing path, unreadable file), each naming the input. */
  errors: string[];
  /** Facts worth saying that are not problems (an empty file). */
  notes?: string[];
  /** The first rejected records, each naming its input and location (all of them are in quarantine). */
  rejected?: Array<RecordLocation & { reason: RejectionReason; detail: string }>;
}
