import { describe, expect, it } from 'vitest';
import { parseAddress } from '../model/address.ts';
import { parseAclText } from '../model/acl-file.ts';
import type { AclsInForce } from '../model/acl-rules.ts';
import { explainCall } from '../recommend/explain.ts';

const KEY = 'LTAIkey00001';
const addr = (text: string) => parseAddress(text)!;

function acls(keyRules: Record<string, unknown> | null, accountLevel: Record<string, unknown> | null = null): AclsInForce {
  return parseAclText(JSON.stringify({ accountLevel, accessKeys: keyRules ? [{ accessKeyId: KEY, ...keyRules }] : [] })).inForce;
}

describe('explaining a call', () => {
  it('names the entry that admits an allowed call and proposes no fix', () => {
    const e = explainCall(acls({ public: { cidrs: ['203.0.113.0/24'] }, vpc: [] }), { accessKeyId: KEY, address: addr('203.0.113.9') });
    expect(e.verdict).toMatchObject({ allowed: true, code: 'allowed-by-entry', governedBy: 'key' });
    expect(e.deciding).toBe('entry 203.0.113.0/24 of the public rule of the key-level ACL admits it');
    expect(e.fixes).toEqual([]);
  });

  it('proposes adding a /32 first, then the cheapest widenings with the space they admit and the headroom left', () => {
    const e = explainCall(acls({ public: { cidrs: ['203.0.113.8/30', '203.0.113.64/26', '198.51.100.0/24'] }, vpc: [] }), { accessKeyId: KEY, address: addr('203.0.113.13') });
    expect(e.verdict).toMatchObject({ allowed: false, code: 'denied-not-in-public-rule' });
    expect(e.fixes.map((f) => [f.kind, f.entry, f.replaces, f.extraAddresses, f.entriesAfter, f.headroomLeft])).toEqual([
      ['add-entry', '203.0.113.13/32', null, '1', 4, 46],
      ['widen-entry', '203.0.113.8/29', '203.0.113.8/30', '4', 3, 47],
      ['widen-entry', '203.0.113.0/25', '203.0.113.64/26', '60', 2, 48],
      ['widen-entry', '192.0.0.0/4', '198.51.100.0/24', expect.any(String), 1, 49],
    ]);
    expect(e.fixes[2]!.absorbs).toEqual(['203.0.113.8/30']);
    expect(e.fixes[3]!.absorbs).toEqual(['203.0.113.64/26', '203.0.113.8/30']);
    expect(e.fixes[3]!.broad).toBe(true);
    expect(e.fixes[0]!.text).toBe('add 203.0.113.13/32 to the public rule of the key-level ACL (4/50 entries, 46 left)');
  });

  it('widens first when the rule already holds 50 entries', () => {
    const cidrs = Array.from({ length: 50 }, (_, i) => `198.51.${i}.0/24`);
    const e = explainCall(acls({ public: { cidrs }, vpc: [] }), { accessKeyId: KEY, address: addr('198.51.50.9') });
    // 198.51.48.0/24 and 198.51.49.0/24 widen to the same /22: listed once, 1024 - 2 × 256 extra addresses.
    expect(e.fixes[0]).toMatchObject({ kind: 'widen-entry', possible: true, entry: '198.51.48.0/22', replaces: '198.51.48.0/24', absorbs: ['198.51.49.0/24'], extraAddresses: '512', headroomLeft: 1 });
    expect(e.fixes.filter((f) => f.entry === '198.51.48.0/22')).toHaveLength(1);
    expect(e.fixes.at(-1)).toMatchObject({ kind: 'add-entry', possible: false });
  });

  it('widens an IPv6 entry within its family only', () => {
    const e = explainCall(acls({ public: { cidrs: ['2001:db8:1:2::/64', '203.0.113.1'] }, vpc: [] }), { accessKeyId: KEY, address: addr('2001:db8:1:3::5') });
    expect(e.fixes.map((f) => f.entry)).toEqual(['2001:db8:1:3::5/128', '2001:db8:1:3::/64', '2001:db8:1:2::/63']);
    expect(e.fixes[1]).toMatchObject({ kind: 'add-entry', extraAddresses: (2n ** 64n - 1n).toString(), headroomLeft: 47 });
  });

  it('proposes a public rule when the enabled ACL has none, and a VPC rule for an unlisted VPC', () => {
    const acl = acls({ public: null, vpc: [{ vpcId: 'vpc-a', cidrs: ['172.16.0.0/16'] }] });
    const pub = explainCall(acl, { accessKeyId: KEY, address: addr('203.0.113.9') });
    expect(pub.verdict?.code).toBe('denied-no-public-rule');
    expect(pub.fixes).toMatchObject([{ kind: 'add-public-rule', entry: '203.0.113.9/32', possible: true, headroomLeft: 49 }]);
    const vpc = explainCall(acl, { accessKeyId: KEY, address: addr('10.1.2.3'), vpcId: 'vpc-b' });
    expect(vpc.verdict?.code).toBe('denied-vpc-not-listed');
    expect(vpc.fixes).toMatchObject([{ kind: 'add-vpc-rule', vpcId: 'vpc-b', entry: '10.1.2.3/32', possible: true }]);
  });

  it('says a VPC rule cannot be added when seven exist', () => {
    const vpc = Array.from({ length: 7 }, (_, i) => ({ vpcId: `vpc-${i}`, cidrs: ['10.0.0.0/8'] }));
    const e = explainCall(acls({ public: null, vpc }), { accessKeyId: KEY, address: addr('10.1.2.3'), vpcId: 'vpc-new' });
    expect(e.fixes).toMatchObject([{ kind: 'add-vpc-rule', possible: false }]);
    expect(e.fixes[0]!.text).toMatch(/already has 7 VPC rules/);
  });

  it('fixes inside the rule of the call\'s VPC', () => {
    const e = explainCall(acls({ public: null, vpc: [{ vpcId: 'vpc-a', cidrs: ['172.16.1.0/24'] }] }), { accessKeyId: KEY, address: addr('172.16.2.9'), vpcId: 'vpc-a' });
    expect(e.verdict?.code).toBe('denied-not-in-vpc-rule');
    expect(e.fixes.map((f) => [f.kind, f.vpcId, f.entry])).toEqual([['add-entry', 'vpc-a', '172.16.2.9/32'], ['widen-entry', 'vpc-a', '172.16.0.0/22']]);
  });

  it('warns that an account-level fix reaches every key without its own ACL', () => {
    const e = explainCall(acls(null, { public: { cidrs: ['198.51.100.0/24'] }, vpc: [] }), { accessKeyId: KEY, address: addr('203.0.113.9') });
    expect(e.verdict?.governedBy).toBe('account');
    expect(e.fixes[0]!.level).toBe('account');
    expect(e.notes.join('\n')).toMatch(/every key without its own ACL/);
  });

  it('says when an ACL cannot be the cause: STS key, exempt service, internal source', () => {
    const denyAll = acls({ public: null, vpc: [] });
    const sts = explainCall(denyAll, { accessKeyId: 'STS.NUabc', address: addr('203.0.113.9') });
    expect(sts).toMatchObject({ aclCannotBeCause: expect.stringMatching(/STS/), verdict: { allowed: true, code: 'not-governed-sts' }, fixes: [] });
    const exempt = explainCall(denyAll, { accessKeyId: KEY, address: addr('203.0.113.9'), service: 'mns.cn-hangzhou.aliyuncs.com' });
    expect(exempt).toMatchObject({ aclCannotBeCause: expect.stringMatching(/not governed/), verdict: { code: 'not-governed-exempt-service' } });
    const internal = explainCall(denyAll, { accessKeyId: KEY, address: addr('10.1.2.3') });
    expect(internal).toMatchObject({ call: { sourceKind: 'internal' }, verdict: { code: 'not-governed-inter-service' } });
    expect(internal.notes.join('\n')).toMatch(/pass --vpc/);
  });

  it('without ACLs gives no verdict but still says when an ACL cannot be the cause', () => {
    expect(explainCall(null, { accessKeyId: KEY, address: addr('203.0.113.9') })).toMatchObject({ verdict: null, aclCannotBeCause: null, deciding: expect.stringMatching(/no ACL file/) });
    expect(explainCall(null, { accessKeyId: 'STS.x', address: addr('203.0.113.9') }).aclCannotBeCause).toMatch(/STS/);
  });

  it('flags a mismatch when the ACLs would admit a call that was refused', () => {
    const e = explainCall(acls({ status: 'disabled', public: null, vpc: [] }), { accessKeyId: KEY, address: addr('203.0.113.9') });
    expect(e.verdict?.code).toBe('acl-disabled');
    expect(e.notes.join('\n')).toMatch(/does not describe what is in force/);
  });
});
