import { describe, expect, it } from 'vitest';
import { parseAddress, parsePrefix, isPublicAddress } from '../model/address.ts';
import { compileAcl, decide, type AclsInForce } from '../model/acl-rules.ts';

describe('address parsing', () => {
  it('normalizes IPv6 to compressed lowercase and IPv4-mapped IPv6 to IPv4', () => {
    expect(parseAddress('2001:DB8:0:0:0:0:0:1')?.text).toBe('2001:db8::1');
    expect(parseAddress('::ffff:203.0.113.9')).toMatchObject({ family: 4, text: '203.0.113.9' });
  });
  it('refuses octal, hex, short and masked forms', () => {
    for (const bad of ['010.1.1.1', '0x7f.0.0.1', '127.1', '192.168.XX.XX', '1.2.3.256', 'internal', '']) {
      expect(parseAddress(bad), bad).toBeNull();
    }
  });
  it('masks host bits and reports them', () => {
    expect(parsePrefix('10.0.0.5/24')).toMatchObject({ text: '10.0.0.0/24', hadHostBits: true });
  });
  it('counts RFC 1918 and CGNAT as not public, documentation ranges as public', () => {
    expect(isPublicAddress(parseAddress('10.1.2.3')!)).toBe(false);
    expect(isPublicAddress(parseAddress('100.100.1.1')!)).toBe(false);
    expect(isPublicAddress(parseAddress('203.0.113.7')!)).toBe(true);
  });
});

describe('ACL decisions', () => {
  const acls = (account: Parameters<typeof compileAcl>[0] | null, keys: Record<string, Parameters<typeof compileAcl>[0]> = {}): AclsInForce => ({
    accountLevel: account ? compileAcl(account) : null,
    keyLevel: new Map(Object.entries(keys).map(([k, v]) => [k, compileAcl(v)])),
  });
  const call = { accessKeyId: 'LTAIa', keyKind: 'permanent' as const, sourceKind: 'public' as const, ip: '203.0.113.7', vpcId: null, exemptService: false };

  it('a key-level ACL replaces the account-level one', () => {
    const inForce = acls({ public: { cidrs: ['203.0.113.0/24'] }, vpc: [] }, { LTAIa: { public: { cidrs: ['198.51.100.1'] }, vpc: [] } });
    expect(decide(inForce, call)).toMatchObject({ allowed: false, code: 'denied-not-in-public-rule', governedBy: 'key' });
  });
  it('an enabled ACL with no public rule denies every public call; a disabled one denies nothing', () => {
    expect(decide(acls({ public: null, vpc: [] }), call)).toMatchObject({ allowed: false, code: 'denied-no-public-rule' });
    expect(decide(acls({ status: 'disabled', public: null, vpc: [] }), call)).toMatchObject({ allowed: true, code: 'acl-disabled' });
  });
  it('never denies STS keys or exempt services', () => {
    const inForce = acls({ public: null, vpc: [] });
    expect(decide(inForce, { ...call, keyKind: 'sts' }).allowed).toBe(true);
    expect(decide(inForce, { ...call, exemptService: true }).allowed).toBe(true);
  });
});
