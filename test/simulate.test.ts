import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseAclText } from '../model/acl-file.ts';
import type { KeyProfile } from '../model/types.ts';
import { decide, type AclsInForce, type GovernedCall } from '../model/acl-rules.ts';
import { breaksLegitimateTraffic, decideRows, drift, leakJudgeFromRows, simulate, withProposalExclusions, type SourceAggregate } from '../recommend/simulate.ts';

const KEY = 'LTAIkey00001';
const OTHER = 'LTAIother001';

/** The ACLs in force from AccessKeyPolicy documents, the way IMS returns them. */
function policies(docs: Record<string, { Status: 'Active' | 'Inactive'; Statements: unknown[] }>): AclsInForce {
  return parseAclText(JSON.stringify(Object.fromEntries(Object.entries(docs).map(([k, d]) => [k, { Version: 1, ...d }])))).inForce;
}
const pub = (...ips: string[]) => ({ Type: 'ClassicWhiteList', IPList: ips });
const vpc = (id: string, ...ips: string[]) => ({ Type: 'VPCWhiteList', Value: id, IPList: ips });

const publicV4: GovernedCall = { accessKeyId: KEY, keyKind: 'permanent', sourceKind: 'public', ip: '203.0.113.7', vpcId: null, exemptService: false };
const publicV6: GovernedCall = { ...publicV4, ip: '2001:db8:1::7' };
const fromVpc: GovernedCall = { ...publicV4, sourceKind: 'vpc', ip: '172.16.1.5', vpcId: 'vpc-app' };
const fromOtherVpc: GovernedCall = { ...fromVpc, vpcId: 'vpc-other', ip: '10.0.0.9' };
const all = { publicV4, publicV6, fromVpc, fromOtherVpc };

function verdicts(acls: AclsInForce, accessKeyId = KEY): Record<keyof typeof all, string> {
  return Object.fromEntries(Object.entries(all).map(([name, call]) => {
    const v = decide(acls, { ...call, accessKeyId });
    return [name, `${v.allowed ? 'allow' : 'deny'}:${v.code}`];
  })) as Record<keyof typeof all, string>;
}

describe("the vendor's configuration examples, read from AccessKeyPolicy documents", () => {
  it('no restriction: Inactive empty policies (what IMS returns when none is set) allow everything', () => {
    expect(verdicts(policies({ account: { Status: 'Inactive', Statements: [] }, [KEY]: { Status: 'Inactive', Statements: [] } }))).toEqual({ publicV4: 'allow:no-acl', publicV6: 'allow:no-acl', fromVpc: 'allow:no-acl', fromOtherVpc: 'allow:no-acl' });
  });

  it('allow all public (0.0.0.0/0 and ::/0): every public call passes, VPC calls are denied (no VPC rule)', () => {
    expect(verdicts(policies({ account: { Status: 'Active', Statements: [pub('0.0.0.0/0', '::/0')] } }))).toEqual({
      publicV4: 'allow:allowed-by-entry', publicV6: 'allow:allowed-by-entry', fromVpc: 'deny:denied-no-vpc-rule', fromOtherVpc: 'deny:denied-no-vpc-rule',
    });
  });

  it('allow all VPC (AllowAllVPC): every VPC call passes, public calls are denied (no public rule)', () => {
    expect(verdicts(policies({ account: { Status: 'Active', Statements: [vpc('AllowAllVPC', '0.0.0.0/0', '::/0')] } }))).toEqual({
      publicV4: 'deny:denied-no-public-rule', publicV6: 'deny:denied-no-public-rule', fromVpc: 'allow:allowed-by-entry', fromOtherVpc: 'allow:allowed-by-entry',
    });
  });

  it('deny all public: enabled with only a VPC rule', () => {
    const v = verdicts(policies({ account: { Status: 'Active', Statements: [vpc('vpc-app', '172.16.0.0/12')] } }));
    expect([v.publicV4, v.publicV6]).toEqual(['deny:denied-no-public-rule', 'deny:denied-no-public-rule']);
    expect(v.fromVpc).toBe('allow:allowed-by-entry');
    expect(v.fromOtherVpc).toBe('deny:denied-vpc-not-listed');
  });

  it('deny all VPC: enabled with only a public rule', () => {
    const v = verdicts(policies({ account: { Status: 'Active', Statements: [pub('203.0.113.0/24')] } }));
    expect(v).toEqual({ publicV4: 'allow:allowed-by-entry', publicV6: 'deny:denied-not-in-public-rule', fromVpc: 'deny:denied-no-vpc-rule', fromOtherVpc: 'deny:denied-no-vpc-rule' });
  });

  it('deny everything: enabled with no statement at all', () => {
    const v = verdicts(policies({ account: { Status: 'Active', Statements: [] } }));
    expect(v).toEqual({ publicV4: 'deny:denied-no-public-rule', publicV6: 'deny:denied-no-public-rule', fromVpc: 'deny:denied-no-vpc-rule', fromOtherVpc: 'deny:denied-no-vpc-rule' });
  });

  it('a key-level policy overrides the account level for its key only', () => {
    const acls = policies({
      account: { Status: 'Active', Statements: [pub('203.0.113.0/24')] },
      [KEY]: { Status: 'Active', Statements: [pub('198.51.100.1')] },
    });
    expect(decide(acls, publicV4)).toMatchObject({ allowed: false, code: 'denied-not-in-public-rule', governedBy: 'key' });
    expect(decide(acls, { ...publicV4, accessKeyId: OTHER })).toMatchObject({ allowed: true, governedBy: 'account', matched: { cidr: '203.0.113.0/24' } });
  });

  it('account level and key level each with one public IP and one VPC CIDR', () => {
    const acls = policies({
      account: { Status: 'Active', Statements: [pub('198.51.100.9'), vpc('vpc-other', '10.0.0.0/24')] },
      [KEY]: { Status: 'Active', Statements: [pub('203.0.113.7'), vpc('vpc-app', '172.16.1.0/24')] },
    });
    expect(verdicts(acls, KEY)).toEqual({ publicV4: 'allow:allowed-by-entry', publicV6: 'deny:denied-not-in-public-rule', fromVpc: 'allow:allowed-by-entry', fromOtherVpc: 'deny:denied-vpc-not-listed' });
    expect(verdicts(acls, OTHER)).toEqual({ publicV4: 'deny:denied-not-in-public-rule', publicV6: 'deny:denied-not-in-public-rule', fromVpc: 'deny:denied-vpc-not-listed', fromOtherVpc: 'allow:allowed-by-entry' });
    expect(decide(acls, { ...publicV4, ip: '198.51.100.9', accessKeyId: OTHER })).toMatchObject({ allowed: true, matched: { vpcId: null, cidr: '198.51.100.9' } });
    expect(decide(acls, { ...fromVpc, ip: '172.16.2.1' })).toMatchObject({ allowed: false, code: 'denied-not-in-vpc-rule' });
  });

  it('an Inactive policy restricts nothing; an Inactive key policy with statements still replaces the account level', () => {
    expect(verdicts(policies({ account: { Status: 'Inactive', Statements: [pub('198.51.100.9')] } })).publicV4).toBe('allow:acl-disabled');
    const acls = policies({ account: { Status: 'Active', Statements: [] }, [KEY]: { Status: 'Inactive', Statements: [pub('198.51.100.9')] } });
    expect(decide(acls, publicV4)).toMatchObject({ allowed: true, code: 'acl-disabled', governedBy: 'key' });
    // An Inactive policy with no statements is no policy: the account level governs.
    const none = policies({ account: { Status: 'Active', Statements: [] }, [KEY]: { Status: 'Inactive', Statements: [] } });
    expect(decide(none, publicV4)).toMatchObject({ allowed: false, code: 'denied-no-public-rule', governedBy: 'account' });
  });

  it('a disabled ACL in the proposal shape restricts nothing, other statuses enforce', () => {
    const proposal = (status: string) => parseAclText(JSON.stringify({ accessKeys: [{ accessKeyId: KEY, status, public: null, vpc: [] }] })).inForce;
    expect(decide(proposal('disabled'), publicV4).code).toBe('acl-disabled');
    for (const status of ['draft', 'approved', 'enabled']) expect(decide(proposal(status), publicV4).code).toBe('denied-no-public-rule');
  });

  it('never denies STS keys, exempt services or inter-service sources, even under deny-all', () => {
    const acls = policies({ account: { Status: 'Active', Statements: [] } });
    expect(decide(acls, { ...publicV4, accessKeyId: 'STS.NUabc', keyKind: 'sts' })).toMatchObject({ allowed: true, code: 'not-governed-sts' });
    expect(decide(acls, { ...publicV4, exemptService: true })).toMatchObject({ allowed: true, code: 'not-governed-exempt-service' });
    expect(decide(acls, { ...publicV4, sourceKind: 'internal', ip: 'internal' })).toMatchObject({ allowed: true, code: 'not-governed-inter-service' });
  });
});

describe('replaying aggregated traffic', () => {
  const row = (over: Partial<SourceAggregate>): SourceAggregate => ({
    accessKeyId: KEY, keyKind: 'permanent', sourceKind: 'public', ip: '203.0.113.7', vpcId: null, exempt: false,
    calls: 10, deniedCalls: 0, errorCalls: 0, days: 5, firstSeen: '2026-11-01T00:00:00Z', lastSeen: '2026-11-05T00:00:00Z', ...over,
  });
  const acls = policies({ [KEY]: { Status: 'Active', Statements: [pub('203.0.113.0/28'), vpc('vpc-app', '172.16.1.0/24')] } });
  const rows = [
    row({}),
    row({ ip: '203.0.113.200', calls: 7 }),
    row({ ip: '192.0.2.66', calls: 3, days: 1 }),
    row({ sourceKind: 'vpc', ip: '172.16.1.5', vpcId: 'vpc-app', calls: 4 }),
    row({ ip: null, exempt: true, calls: 100 }),
    row({ accessKeyId: 'STS.*', keyKind: 'sts', calls: 50 }),
    row({ sourceKind: 'internal', ip: null, calls: 2 }),
    row({ sourceKind: 'invalid', ip: null, calls: 1 }),
    row({ accessKeyId: OTHER, ip: '198.51.100.1', calls: 9 }),
  ];

  it('counts denied calls and sources per key, legitimate unless the judge flags a leak', () => {
    const judge = (_k: string, s: { ip: string }) => (s.ip === '192.0.2.66' ? { legitimate: false, reason: 'burst from a new address: possible leak' } : { legitimate: true });
    const report = simulate(acls, rows, { judge });
    expect(report.totals).toMatchObject({
      calls: 186, governedCalls: 10 + 7 + 3 + 4 + 9, deniedCalls: 10, legitimateDeniedCalls: 7, suspectDeniedCalls: 3,
      deniedSources: 2, legitimateDeniedSources: 1, keysWithDenials: 1, keysBreaking: 1, undeterminedCalls: 1,
    });
    expect(report.notGoverned).toEqual({ 'not-governed-exempt-service': 100, 'not-governed-inter-service': 2, 'not-governed-sts': 50 });
    const key = report.keys[0]!;
    expect(key).toMatchObject({ accessKeyId: KEY, governedBy: 'key', governedCalls: 24, deniedCalls: 10, legitimateDeniedCalls: 7 });
    expect(key.examples.map((e) => [e.ip, e.legitimate, e.code])).toEqual([['203.0.113.200', true, 'denied-not-in-public-rule'], ['192.0.2.66', false, 'denied-not-in-public-rule']]);
    expect(key.examples[1]!.suspicion).toMatch(/possible leak/);
    expect(report.keys[1]).toMatchObject({ accessKeyId: OTHER, governedBy: null, deniedCalls: 0 });
    expect(breaksLegitimateTraffic(report)).toBe(true);
  });

  it('passes the gate when only leak-looking sources would be denied', () => {
    const report = simulate(acls, rows.filter((r) => r.ip !== '203.0.113.200'), { judge: () => ({ legitimate: false, reason: 'leak' }) });
    expect(report.totals.deniedCalls).toBe(3);
    expect(breaksLegitimateTraffic(report)).toBe(false);
  });

  it('counts sources the proposal excludes on purpose apart: they do not fail the gate, its possible leaks stay suspects', () => {
    const judge = withProposalExclusions(() => ({ legitimate: true }), new Map([[KEY, [
      { source: '203.0.113.200', code: 'below-min-days', reason: 'active on 1 day: looks like a one-off' },
      { source: '192.0.2.0/28', code: 'over-limit', reason: 'no room left' },
    ]]]));
    const report = simulate(acls, rows.filter((r) => r.ip !== '192.0.2.66'), { judge });
    expect(report.totals).toMatchObject({ deniedCalls: 7, legitimateDeniedCalls: 0, excludedDeniedCalls: 7, suspectDeniedCalls: 0 });
    expect(report.keys[0]!.examples[0]).toMatchObject({ ip: '203.0.113.200', status: 'excluded', suspicion: expect.stringMatching(/excluded by the proposal \(below-min-days\)/) });
    expect(breaksLegitimateTraffic(report)).toBe(false);
    // A block exclusion covers the addresses inside it.
    const inBlock = simulate(acls, [row({ ip: '192.0.2.9', calls: 2 })], { judge });
    expect(inBlock.totals.excludedDeniedCalls).toBe(2);
    const leak = withProposalExclusions(() => ({ legitimate: true }), new Map([[KEY, [{ source: '192.0.2.66', code: 'possible-leak', reason: 'burst: possible leak' }]]]));
    expect(simulate(acls, rows, { judge: leak }).totals).toMatchObject({ suspectDeniedCalls: 3, legitimateDeniedCalls: 7 });
  });

  it('records how much each entry was used', () => {
    const report = simulate(acls, rows);
    expect(report.entryUse).toEqual([
      { scope: KEY, vpcId: null, cidr: '203.0.113.0/28', calls: 10, lastSeen: '2026-11-05T00:00:00Z' },
      { scope: KEY, vpcId: 'vpc-app', cidr: '172.16.1.0/24', calls: 4, lastSeen: '2026-11-05T00:00:00Z' },
    ]);
  });

  it('reports drift: newly denied sources, unused entries, dormant approved keys, new keys without an ACL', () => {
    const approved = policies({ [KEY]: { Status: 'Active', Statements: [pub('203.0.113.0/28', '198.18.0.1')] }, LTAIdormant1: { Status: 'Active', Statements: [pub('192.0.2.1')] } });
    const report = drift({ approved, approvedKeys: [KEY, 'LTAIdormant1'], recentRows: rows, usageRows: rows });
    expect(report.newDeniedSources.map((s) => `${s.accessKeyId} ${s.ip}`)).toEqual([`${KEY} 203.0.113.200`, `${KEY} 172.16.1.5`, `${KEY} 192.0.2.66`]);
    expect(report.unusedEntries.map((u) => `${u.scope} ${u.cidr}`)).toEqual(['LTAIdormant1 192.0.2.1', `${KEY} 198.18.0.1`]);
    expect(report.dormantKeys).toEqual(['LTAIdormant1']);
    expect(report.newKeysWithoutAcl).toEqual([{ accessKeyId: OTHER, governedCalls: 9, governedBy: null }]);
    expect(report.needsAttention).toBe(true);
  });
});

describe('the fast replay path', () => {
  // Small address space so that entries overlap, nest and miss often.
  const v4 = fc.tuple(fc.constantFrom(203, 10, 172), fc.integer({ min: 0, max: 1 }), fc.integer({ min: 0, max: 15 })).map(([a, b, c]) => `${a}.${a === 172 ? 16 + b : b}.0.${c}`);
  const v6 = fc.integer({ min: 0, max: 0x1f }).map((n) => `2001:db8::${n.toString(16)}`);
  const prefix = fc.oneof(
    fc.tuple(v4, fc.integer({ min: 26, max: 32 })).map(([a, l]) => `${a}/${l}`),
    fc.tuple(v4, fc.constant(16)).map(([a, l]) => `${a}/${l}`),
    fc.tuple(v6, fc.integer({ min: 122, max: 128 })).map(([a, l]) => `${a}/${l}`),
  );
  const rules = fc.record({
    public: fc.option(fc.array(prefix.filter((p) => !/^(10|172)\./.test(p)), { minLength: 1, maxLength: 6 }), { nil: null }),
    vpc: fc.uniqueArray(fc.record({ vpcId: fc.constantFrom('vpc-a', 'vpc-b', 'AllowAllVPC'), cidrs: fc.array(prefix.filter((p) => !p.startsWith('203.')), { minLength: 1, maxLength: 4 }) }), { selector: (r) => r.vpcId, maxLength: 3 }),
    status: fc.constantFrom('enabled', 'enabled', 'enabled', 'disabled'),
  });
  // Mostly governed rows with addresses near the entries: the fast path's own territory.
  const row = fc.record({
    accessKeyId: fc.constantFrom(KEY, KEY, KEY, OTHER),
    keyKind: fc.constantFrom('permanent', 'permanent', 'permanent', 'permanent', 'sts'),
    sourceKind: fc.constantFrom('public', 'public', 'vpc', 'vpc', 'internal', 'invalid'),
    ip: fc.oneof({ arbitrary: v4, weight: 6 }, { arbitrary: v6, weight: 2 }, { arbitrary: fc.constantFrom('192.168.XX.XX', '010.1.1.1', ' 203.0.0.1'), weight: 1 }),
    vpcId: fc.constantFrom('vpc-a', 'vpc-b', 'vpc-c'),
    exempt: fc.constantFrom(false, false, false, true),
  });

  it('gives exactly what decide() gives, row by row', () => {
    fc.assert(fc.property(fc.option(rules, { nil: null }), rules, fc.array(row, { maxLength: 150 }), (account, own, rs) => {
      const doc = { accountLevel: account && { ...account, public: account.public && { cidrs: account.public } }, accessKeys: [{ accessKeyId: KEY, ...own, public: own.public && { cidrs: own.public } }] };
      const acls = parseAclText(JSON.stringify(doc)).inForce;
      const aggregates: SourceAggregate[] = rs.map((r) => ({
        ...r, keyKind: r.keyKind as 'permanent' | 'sts', sourceKind: r.sourceKind as SourceAggregate['sourceKind'], vpcId: r.sourceKind === 'vpc' ? r.vpcId : null,
        calls: 1, deniedCalls: 0, errorCalls: 0, days: 1, firstSeen: 'a', lastSeen: 'b',
      }));
      const fast = decideRows(acls, aggregates);
      aggregates.forEach((a, i) => {
        expect(fast[i]).toEqual(decide(acls, { accessKeyId: a.accessKeyId, keyKind: a.keyKind, sourceKind: a.sourceKind, ip: a.ip, vpcId: a.vpcId, exemptService: a.exempt }));
      });
    }), { numRuns: 300 });
  });
});

describe('judging denied sources from the replay rows', () => {
  const base = { accessKeyId: KEY, keyKind: 'permanent' as const, sourceKind: 'public' as const, vpcId: null, exempt: false, deniedCalls: 0, sensitiveCalls: 0 };
  const established: SourceAggregate = { ...base, ip: '203.0.113.10', calls: 500, errorCalls: 0, days: 20, firstSeen: '2026-11-01T00:00:00Z', lastSeen: '2026-11-20T00:00:00Z' };
  const burst: SourceAggregate = { ...base, ip: '198.18.7.7', calls: 12, errorCalls: 11, sensitiveCalls: 4, days: 1, firstSeen: '2026-11-18T00:00:00Z', lastSeen: '2026-11-18T01:00:00Z' };
  const growth: SourceAggregate = { ...base, ip: '203.0.113.77', calls: 40, errorCalls: 0, days: 3, firstSeen: '2026-11-18T00:00:00Z', lastSeen: '2026-11-20T00:00:00Z' };
  const window = { from: '2026-11-01T00:00:00Z', to: '2026-11-21T00:00:00Z' };

  it('flags a failing burst from a new, far address and keeps nearby growth legitimate', () => {
    const judge = leakJudgeFromRows([established, burst, growth], { window, keys: [KEY] });
    expect(judge(KEY, { ip: '198.18.7.7', vpcId: null, sourceKind: 'public' })).toMatchObject({ legitimate: false, reason: expect.stringMatching(/possible leak/) });
    expect(judge(KEY, { ip: '203.0.113.77', vpcId: null, sourceKind: 'public' }).legitimate).toBe(true);
    expect(judge(KEY, { ip: '198.18.7.7', vpcId: 'vpc-a', sourceKind: 'vpc' }).legitimate).toBe(true);
  });

  it('judges a test window against the training profiles before it', () => {
    const testOnly = leakJudgeFromRows([burst], { window, keys: [KEY] });
    // Alone, the burst is the key's first source: nothing to be new against.
    expect(testOnly(KEY, { ip: '198.18.7.7', vpcId: null, sourceKind: 'public' }).legitimate).toBe(true);
    const training: KeyProfile = {
      accessKeyId: KEY, keyKind: 'permanent', identityType: null, userName: null, accountId: null, firstSeen: established.firstSeen, lastSeen: '2026-11-14T00:00:00Z',
      totalCalls: 500, vpcSources: [], exemptOnlySources: [], stsCalls: 0, internalCalls: 0, serviceCalls: 0, invalidSourceCalls: 0, deniedCalls: 0,
      publicSources: [{ ip: '203.0.113.10', family: 4, calls: 500, days: 14, firstSeen: established.firstSeen, lastSeen: '2026-11-14T00:00:00Z', errorCalls: 0, deniedCalls: 0, sensitiveCalls: 0, services: [], userAgents: [] }],
    };
    const judged = leakJudgeFromRows([burst], { window, keys: [KEY], earlier: [training] });
    expect(judged(KEY, { ip: '198.18.7.7', vpcId: null, sourceKind: 'public' }).legitimate).toBe(false);
  });
});
