// Approval records: who approved which entries when, sealed by a SHA-256 over exactly those entries.
// keyfence never applies an ACL; an approval is what a person hands to the change process.
import { createHash } from 'node:crypto';
import { InvalidInputError, UsageError } from '../model/errors.ts';
import type { AclProposal, AclRules, KeyProposal } from '../model/types.ts';

export const APPROVAL_KIND = 'keyfence-approval';

/** The approval file: the approved subset of a proposal plus who, when, and the seal. */
export interface ApprovalRecord {
  kind: typeof APPROVAL_KIND;
  version: 1;
  approvedBy: string;
  approvedAt: string;
  /** SHA-256 (hex) over the canonical form of every approved ACL's entries. */
  sha256: string;
  /** `account` and/or AccessKey IDs approved. */
  scopes: string[];
  proposal: AclProposal;
}

/** The entries of one ACL in a canonical order, so that the hash depends on content only. */
interface CanonicalAcl {
  scope: string;
  public: string[] | null;
  vpc: Array<{ vpcId: string; cidrs: string[] }>;
}

function canonicalAcl(scope: string, rules: AclRules): CanonicalAcl {
  return {
    scope,
    public: rules.public ? [...rules.public.cidrs].sort() : null,
    vpc: [...rules.vpc].map((v) => ({ vpcId: v.vpcId, cidrs: [...v.cidrs].sort() })).sort((a, b) => (a.vpcId < b.vpcId ? -1 : a.vpcId > b.vpcId ? 1 : 0)),
  };
}

export function canonicalEntries(proposal: AclProposal): CanonicalAcl[] {
  const acls: CanonicalAcl[] = [];
  if (proposal.accountLevel) acls.push(canonicalAcl('account', proposal.accountLevel));
  for (const key of [...proposal.accessKeys].sort((a, b) => (a.accessKeyId < b.accessKeyId ? -1 : 1))) {
    acls.push(canonicalAcl(key.accessKeyId, key));
  }
  return acls;
}

export function sealEntries(proposal: AclProposal): string {
  return createHash('sha256').update(JSON.stringify(canonicalEntries(proposal))).digest('hex');
}

export interface ApproveOptions {
  approvedBy: string;
  /** AccessKey IDs (and/or `account`) to approve; all when omitted. */
  scopes?: string[];
  now: Date;
}

/** Approves all of a proposal, or the named keys (and `account`). Unknown names are a usage error. */
export function approve(proposal: AclProposal, options: ApproveOptions): ApprovalRecord {
  const by = options.approvedBy.trim();
  if (!by) throw new UsageError('an approval needs the approver\'s name', { hint: 'pass --by NAME' });
  const available = new Set([...(proposal.accountLevel ? ['account'] : []), ...proposal.accessKeys.map((k) => k.accessKeyId)]);
  const wanted = options.scopes && options.scopes.length > 0 ? options.scopes : [...available];
  const unknown = wanted.filter((s) => !available.has(s));
  if (unknown.length > 0) {
    throw new UsageError(`not in the proposal: ${unknown.join(', ')}`, { hint: `the proposal holds ${[...available].join(', ') || 'nothing'}` });
  }
  if (wanted.length === 0) throw new UsageError('the proposal holds no ACL to approve');
  const chosen = new Set(wanted);
  const approvedAt = options.now.toISOString().replace(/\.\d{3}Z$/, 'Z');
  const approvedKeys: KeyProposal[] = proposal.accessKeys.filter((k) => chosen.has(k.accessKeyId)).map((k) => ({ ...k, status: 'approved' }));
  const approved: AclProposal = {
    ...proposal,
    accountLevel: proposal.accountLevel && chosen.has('account') ? { ...proposal.accountLevel, status: 'approved' } : null,
    accessKeys: approvedKeys,
  };
  return {
    kind: APPROVAL_KIND,
    version: 1,
    approvedBy: by,
    approvedAt,
    sha256: sealEntries(approved),
    scopes: [...chosen].sort(),
    proposal: approved,
  };
}

export interface VerifyResult {
  ok: boolean;
  expected: string;
  actual: string;
  approvedBy: string;
  approvedAt: string;
  /** Scopes whose entries differ from what was approved, when the record says which (best effort). */
  problems: string[];
}

/** Checks that the entries in an approval record are exactly the ones that were sealed. */
export function verify(record: ApprovalRecord): VerifyResult {
  const actual = sealEntries(record.proposal);
  const problems: string[] = [];
  const present = canonicalEntries(record.proposal).map((a) => a.scope).sort();
  const sealedScopes = [...record.scopes].sort();
  if (JSON.stringify(present) !== JSON.stringify(sealedScopes)) {
    problems.push(`approved scopes were ${sealedScopes.join(', ')}; the file now holds ${present.join(', ') || 'none'}`);
  }
  if (actual !== record.sha256) problems.push('the entries differ from the approved ones (SHA-256 mismatch)');
  return { ok: problems.length === 0, expected: record.sha256, actual, approvedBy: record.approvedBy, approvedAt: record.approvedAt, problems };
}

/** Reads an approval record from parsed JSON, naming the field that is wrong. */
export function parseApprovalRecord(value: unknown, file: string): ApprovalRecord {
  const fail = (path: string, what: string): never => {
    throw new InvalidInputError(`${file}: ${path} ${what}`, { context: { file, path }, hint: 'an approval file is written by `keyfence approve`' });
  };
  if (!value || typeof value !== 'object') fail('(root)', 'is not an object');
  const v = value as Record<string, unknown>;
  if (v.kind !== APPROVAL_KIND) fail('kind', `must be "${APPROVAL_KIND}"`);
  if (typeof v.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(v.sha256)) fail('sha256', 'must be a hex SHA-256');
  if (typeof v.approvedBy !== 'string') fail('approvedBy', 'must be a string');
  if (typeof v.approvedAt !== 'string') fail('approvedAt', 'must be a string');
  if (!Array.isArray(v.scopes) || v.scopes.some((s) => typeof s !== 'string')) fail('scopes', 'must be a list of strings');
  const p = v.proposal as Record<string, unknown> | undefined;
  if (!p || typeof p !== 'object') fail('proposal', 'is missing');
  if (!Array.isArray(p!.accessKeys)) fail('proposal.accessKeys', 'must be a list');
  return value as ApprovalRecord;
}
