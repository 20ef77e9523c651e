import { describe, expect, it } from 'vitest';
import { approve, verify, parseApprovalRecord } from '../review/approve.ts';
import type { AclProposal } from '../model/types.ts';
import { UsageError } from '../model/errors.ts';

function proposal(): AclProposal {
  return {
    version: 1,
    generatedAt: '2026-11-20T02:00:00Z',
    window: { from: '2026-10-21T00:00:00Z', to: '2026-11-20T00:00:00Z' },
    accountLevel: { status: 'draft', public: { cidrs: ['47.100.0.0/24'] }, vpc: [], evidence: [], warnings: [] },
    accessKeys: [
      {
        accessKeyId: 'LTAI5tCiBot0000000000001', userName: 'ci-bot', status: 'draft',
        public: { cidrs: ['203.0.113.0/28', '2408:4000:1:2::/64'] }, vpc: [{ vpcId: 'vpc-bp1', cidrs: ['172.16.1.0/24'] }],
        evidence: [], excluded: [], warnings: [],
      },
      {
        accessKeyId: 'LTAI5tReport00000000002', userName: 'report', status: 'draft',
        public: { cidrs: ['198.51.100.7/32'] }, vpc: [], evidence: [], excluded: [], warnings: [],
      },
    ],
  };
}
const now = new Date('2026-11-23T09:00:00Z');

describe('approval', () => {
  it('records approver, time and a SHA-256 over the approved entries, which verify accepts', () => {
    const record = approve(proposal(), { approvedBy: 'alice', now });
    expect(record).toMatchObject({ approvedBy: 'alice', approvedAt: '2026-11-23T09:00:00Z', scopes: ['LTAI5tCiBot0000000000001', 'LTAI5tReport00000000002', 'account'] });
    expect(record.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(verify(record).ok).toBe(true);
  });

  it('fails verification when an approved entry is changed afterwards', () => {
    const record = approve(proposal(), { approvedBy: 'alice', now });
    const tampered = structuredClone(record);
    tampered.proposal.accessKeys[0]!.public!.cidrs[0] = '203.0.113.0/24';
    const result = verify(tampered);
    expect(result.ok).toBe(false);
    expect(result.problems.join(' ')).toMatch(/SHA-256/);
  });

  it('fails verification when an approved key is removed or one is added', () => {
    const record = approve(proposal(), { approvedBy: 'alice', now, scopes: ['LTAI5tReport00000000002'] });
    const added = structuredClone(record);
    added.proposal.accessKeys.push({ ...proposal().accessKeys[0]!, status: 'approved' });
    expect(verify(added).ok).toBe(false);
  });

  it('does not depend on the order entries are listed in', () => {
    const record = approve(proposal(), { approvedBy: 'alice', now });
    const reordered = structuredClone(record);
    reordered.proposal.accessKeys.reverse();
    reordered.proposal.accessKeys[1]!.public!.cidrs.reverse();
    expect(verify(reordered).ok).toBe(true);
  });

  it('approves only the named keys and refuses names not in the proposal', () => {
    const record = approve(proposal(), { approvedBy: 'bob', now, scopes: ['LTAI5tReport00000000002'] });
    expect(record.proposal.accessKeys.map((k) => k.accessKeyId)).toEqual(['LTAI5tReport00000000002']);
    expect(record.proposal.accountLevel).toBeNull();
    expect(() => approve(proposal(), { approvedBy: 'bob', now, scopes: ['LTAInope'] })).toThrow(UsageError);
    expect(() => approve(proposal(), { approvedBy: ' ', now })).toThrow(/approver/);
  });

  it('names the broken field of a file that is not an approval record', () => {
    expect(() => parseApprovalRecord({ kind: 'keyfence-approval', sha256: 'x' }, 'a.json')).toThrow(/sha256/);
  });
});
