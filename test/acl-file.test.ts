import { describe, expect, it } from 'vitest';
import { overlayAcls, parseAclText, readAclValue } from '../model/acl-file.ts';
import { InvalidInputError } from '../model/errors.ts';

const proposal = (keys: unknown[], accountLevel: unknown = null) => JSON.stringify({ version: 1, generatedAt: '2026-11-01T00:00:00Z', window: { from: 'a', to: 'b' }, accountLevel, accessKeys: keys });
const key = (id: string, rules: Record<string, unknown> = {}) => ({ accessKeyId: id, userName: null, status: 'draft', public: { cidrs: ['203.0.113.0/24'] }, vpc: [], evidence: [], excluded: [], warnings: [], ...rules });
const many = <T,>(n: number, f: (i: number) => T): T[] => Array.from({ length: n }, (_, i) => f(i));

/** The rejection for `text`: its message and JSON path. */
function rejection(text: string, knownKeys?: Set<string>): { message: string; path: unknown; hint: string | undefined } {
  try {
    parseAclText(text, { source: 'acl.json', knownKeys });
  } catch (e) {
    expect(e).toBeInstanceOf(InvalidInputError);
    const err = e as InvalidInputError;
    expect(err.name).toBe('InvalidInputError');
    return { message: err.message, path: err.context.path, hint: err.hint };
  }
  throw new Error('expected a rejection');
}

describe('reading the proposal contract', () => {
  it('reads key-level and account-level ACLs, statuses other than disabled as enabled', () => {
    const loaded = parseAclText(proposal([key('LTAIb0000001'), key('LTAIa0000001', { status: 'disabled' })], { status: 'approved', public: null, vpc: [{ vpcId: 'vpc-abc', cidrs: ['172.16.0.0/16'] }], evidence: [], warnings: [] }));
    expect(loaded.shape).toBe('proposal');
    expect([...loaded.keyLevel.keys()]).toEqual(['LTAIa0000001', 'LTAIb0000001']);
    expect(loaded.inForce.keyLevel.get('LTAIa0000001')!.enabled).toBe(false);
    expect(loaded.inForce.keyLevel.get('LTAIb0000001')!.enabled).toBe(true);
    expect(loaded.inForce.accountLevel).toMatchObject({ enabled: true, publicRule: null });
    expect(loaded.proposal?.generatedAt).toBe('2026-11-01T00:00:00Z');
  });

  it('unwraps an approval record and names paths inside it', () => {
    const record = { kind: 'keyfence-approval', version: 1, approvedBy: 'x', proposal: JSON.parse(proposal([key('LTAIa0000001')])) };
    expect(readAclValue(record).wrapped).toBe(true);
    record.proposal.accessKeys[0].public.cidrs = ['nope'];
    expect(rejection(JSON.stringify(record)).path).toBe('proposal.accessKeys[0].public.cidrs[0]');
  });

  it('notes entries with host bits set and reads an empty entry list as no rule', () => {
    const loaded = parseAclText(proposal([key('LTAIa0000001', { public: { cidrs: ['203.0.113.5/24'] } }), key('LTAIb0000001', { public: { cidrs: [] } })]));
    expect(loaded.notes).toEqual(['accessKeys[0].public.cidrs[0]: 203.0.113.5/24 has host bits set; the vendor admits 203.0.113.0/24']);
    expect(loaded.inForce.keyLevel.get('LTAIb0000001')!.publicRule).toBeNull();
  });

  it('overlays a proposal on the ACLs in force: key-level replaced or added, account level kept unless proposed', () => {
    const inForce = parseAclText(proposal([key('LTAIa0000001'), key('LTAIb0000001')], { public: { cidrs: ['198.51.100.0/24'] }, vpc: [] })).inForce;
    const proposed = parseAclText(proposal([key('LTAIb0000001', { public: { cidrs: ['192.0.2.1'] } }), key('LTAIc0000001')])).inForce;
    const merged = overlayAcls(inForce, proposed);
    expect([...merged.keyLevel.keys()].sort()).toEqual(['LTAIa0000001', 'LTAIb0000001', 'LTAIc0000001']);
    expect(merged.keyLevel.get('LTAIb0000001')!.publicRule!.cidrs).toEqual(['192.0.2.1']);
    expect(merged.accountLevel).toBe(inForce.accountLevel);
  });
});

describe('reading AccessKeyPolicy documents', () => {
  const doc = (status: string, statements: unknown[]) => ({ Version: 1, Status: status, Statements: statements });

  it('reads objects, JSON strings and API responses; Active is enabled, Inactive disabled', () => {
    const loaded = parseAclText(JSON.stringify({
      account: doc('Active', [{ Type: 'ClassicWhiteList', IPList: ['0.0.0.0/0', '::/0'] }]),
      LTAIa0000001: JSON.stringify(doc('Inactive', [{ Type: 'VPCWhiteList', Value: 'vpc-abc', IPList: ['172.16.1.0/24'] }])),
      LTAIb0000001: { RequestId: 'r', AccessKeyPolicy: JSON.stringify(doc('Active', [{ Type: 'VPCWhiteList', Value: 'AllowAllVPC', IPList: ['0.0.0.0/0', '::/0'] }])) },
    }));
    expect(loaded.shape).toBe('ims');
    expect(loaded.accountLevel).toEqual({ status: 'enabled', public: { cidrs: ['0.0.0.0/0', '::/0'] }, vpc: [] });
    expect(loaded.keyLevel.get('LTAIa0000001')).toEqual({ status: 'disabled', public: null, vpc: [{ vpcId: 'vpc-abc', cidrs: ['172.16.1.0/24'] }] });
    expect(loaded.keyLevel.get('LTAIb0000001')!.vpc[0]!.vpcId).toBe('AllowAllVPC');
  });

  it('reads an Inactive policy with no statements as no policy at all', () => {
    const loaded = parseAclText(JSON.stringify({ account: doc('Active', []), LTAIa0000001: doc('Inactive', []) }));
    expect(loaded.keyLevel.has('LTAIa0000001')).toBe(false);
    expect(loaded.namedKeys).toEqual(['LTAIa0000001']);
    expect(loaded.inForce.accountLevel).toMatchObject({ enabled: true, publicRule: null, vpcRules: [] });
  });
});

describe('rejecting bad ACL and proposal files with the exact path', () => {
  const imsKey = (statements: unknown[]) => JSON.stringify({ LTAIa0000001: { Version: 1, Status: 'Active', Statements: statements } });
  const cases: Array<[string, string, string, RegExp]> = [
    ['not JSON', '{"accessKeys": [', '(top level)', /not valid JSON/],
    ['not an object', '[1, 2]', '(top level)', /expected a JSON object/],
    ['51 public entries', proposal([key('LTAIa0000001'), key('LTAIb0000001'), key('LTAIc0000001'), key('LTAId0000001', { public: { cidrs: many(51, (i) => `203.0.113.${i}`) } })]), 'accessKeys[3].public.cidrs[50]', /51 entries: at most 50/],
    ['51 VPC entries', proposal([key('LTAIa0000001', { vpc: [{ vpcId: 'vpc-a', cidrs: many(51, (i) => `10.0.0.${i}`) }] })]), 'accessKeys[0].vpc[0].cidrs[50]', /at most 50/],
    ['8 VPC rules', proposal([key('LTAIa0000001', { vpc: many(8, (i) => `vpc-${i}`).map((v) => ({ vpcId: v, cidrs: ['10.0.0.0/8'] })) })]), 'accessKeys[0].vpc[7]', /8 VPC rules: at most 7/],
    ['2 public ACLs in a proposal', proposal([key('LTAIa0000001', { public: [{ cidrs: ['203.0.113.1'] }, { cidrs: ['198.51.100.1'] }] })]), 'accessKeys[0].public[1]', /2 public ACLs: at most 1/],
    ['2 public ACLs in a policy', imsKey([{ Type: 'ClassicWhiteList', IPList: ['203.0.113.1'] }, { Type: 'ClassicWhiteList', IPList: ['198.51.100.1'] }]), 'LTAIa0000001.Statements[1]', /second public statement/],
    ['8 VPC statements', imsKey(many(8, (i) => ({ Type: 'VPCWhiteList', Value: `vpc-${i}`, IPList: ['10.0.0.0/8'] }))), 'LTAIa0000001.Statements[7]', /more than 7 VPC statements/],
    ['malformed CIDR', proposal([key('LTAIa0000001'), key('LTAIb0000001', { public: { cidrs: ['203.0.113.0/24', '203.0.113.0/33'] } })]), 'accessKeys[1].public.cidrs[1]', /not an IP address or CIDR block/],
    ['octal address', proposal([key('LTAIa0000001', { public: { cidrs: ['010.1.1.1'] } })]), 'accessKeys[0].public.cidrs[0]', /not an IP address or CIDR block/],
    ['several entries in one string', proposal([key('LTAIa0000001', { public: { cidrs: ['203.0.113.1,203.0.113.2'] } })]), 'accessKeys[0].public.cidrs[0]', /one entry per string|not an IP address/],
    ['private address in a public rule', proposal([key('LTAIa0000001', { public: { cidrs: ['203.0.113.1', '192.168.1.0/24'] } })]), 'accessKeys[0].public.cidrs[1]', /not a public address/],
    ['CGNAT address in a public policy', imsKey([{ Type: 'ClassicWhiteList', IPList: ['100.100.1.1'] }]), 'LTAIa0000001.Statements[0].IPList[0]', /not a public address/],
    ['public IPv4 in a VPC rule', proposal([key('LTAIa0000001', { vpc: [{ vpcId: 'vpc-a', cidrs: ['172.16.0.0/12', '8.8.8.8'] }] })]), 'accessKeys[0].vpc[0].cidrs[1]', /public IPv4 address: a VPC rule admits private/],
    ['public IPv4 in a VPC statement', imsKey([{ Type: 'VPCWhiteList', Value: 'vpc-a', IPList: ['203.0.113.0/24'] }]), 'LTAIa0000001.Statements[0].IPList[0]', /public IPv4/],
    ['bad VPC ID', proposal([key('LTAIa0000001', { vpc: [{ vpcId: 'subnet-1', cidrs: ['10.0.0.0/8'] }] })]), 'accessKeys[0].vpc[0].vpcId', /not a VPC ID/],
    ['two rules for one VPC', proposal([key('LTAIa0000001', { vpc: [{ vpcId: 'vpc-a', cidrs: ['10.0.0.0/8'] }, { vpcId: 'vpc-a', cidrs: ['172.16.0.0/12'] }] })]), 'accessKeys[0].vpc[1].vpcId', /one rule per VPC/],
    ['unknown status', proposal([key('LTAIa0000001', { status: 'live' })]), 'accessKeys[0].status', /unknown status "live"/],
    ['duplicate key', proposal([key('LTAIa0000001'), key('LTAIa0000001')]), 'accessKeys[1].accessKeyId', /already has an ACL at accessKeys\[0\]/],
    ['STS key', proposal([key('STS.NUxyz123456')]), 'accessKeys[0].accessKeyId', /temporary STS key/],
    ['unsupported version', JSON.stringify({ version: 2, accessKeys: [] }), 'version', /unsupported version 2/],
    ['bad policy status', JSON.stringify({ account: { Version: 1, Status: 'On', Statements: [] } }), 'account.Status', /"Active" or "Inactive"/],
    ['null statements', JSON.stringify({ account: { Version: 1, Status: 'Active', Statements: null } }), 'account.Statements', /never null/],
    ['unknown statement type', imsKey([{ Type: 'Whatever', IPList: [] }]), 'LTAIa0000001.Statements[0].Type', /unknown statement type/],
    ['policy string not JSON', JSON.stringify({ LTAIa0000001: '{"Status":' }), 'LTAIa0000001', /AccessKeyPolicy string is not valid JSON/],
  ];
  for (const [name, text, path, message] of cases) {
    it(`rejects ${name} at ${path}`, () => {
      const r = rejection(text);
      expect(r.path).toBe(path);
      expect(r.message).toMatch(message);
      expect(r.message.startsWith(`acl.json: ${path}: `)).toBe(true);
      expect(r.hint).toBeTruthy();
    });
  }

  it('rejects a key the store has never seen, in both shapes', () => {
    const known = new Set(['LTAIa0000001']);
    expect(rejection(proposal([key('LTAIa0000001'), key('LTAIzz000009')]), known)).toMatchObject({ path: 'accessKeys[1].accessKeyId', message: expect.stringMatching(/unknown AccessKey LTAIzz000009/) });
    expect(rejection(JSON.stringify({ LTAIzz000009: { Version: 1, Status: 'Active', Statements: [] } }), known).path).toBe('LTAIzz000009');
  });
});
