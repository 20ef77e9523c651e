import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { parsePrefix } from '../model/address.ts';
import { GUARDRAIL_MIN_PREFIX, MAX_ENTRIES_PER_ACL, MAX_VPC_RULES, decide } from '../model/acl-rules.ts';
import { InvalidInputError } from '../model/errors.ts';
import type { AclProposal, ExclusionCode, KeyProfile } from '../model/types.ts';
import { DEFAULT_RECOMMEND_OPTIONS, recommend, type RecommendOptions } from '../recommend/proposal.ts';
import { aclsOfProposal, evaluateAgainstTruth, limitBreaches } from '../recommend/evaluate.ts';
import { WINDOW, profile, sparse, src, vsrc } from './helpers-recommend.ts';

const opts = (o: Partial<RecommendOptions> = {}): RecommendOptions => ({ ...DEFAULT_RECOMMEND_OPTIONS, window: WINDOW, generatedAt: '2026-10-31T00:00:00Z', ...o });

function allows(p: AclProposal, key: string, ip: string, vpcId: string | null = null): boolean {
  return decide(aclsOfProposal(p), { accessKeyId: key, keyKind: 'permanent', sourceKind: vpcId ? 'vpc' : 'public', ip, vpcId, exemptService: false }).allowed;
}

function codes(p: AclProposal, key: string): ExclusionCode[] {
  const k = p.accessKeys.find((x) => x.accessKeyId === key) ?? p.keysWithoutAcl?.find((x) => x.accessKeyId === key);
  return [...new Set((k?.excluded ?? []).map((e) => e.code))].sort();
}

const office = ['203.0.113.1', '203.0.113.2', '203.0.113.3', '203.0.113.5', '203.0.113.6'].map((ip) => src(ip, 40, 20));

describe('limits', () => {
  it('never puts more entries in the public rule than the limit, and still admits every source', () => {
    const many = Array.from({ length: 30 }, (_, i) => src(`198.51.${i}.${(i * 7) % 250 + 1}`, 10, 10));
    const p = recommend([profile('LTAIlimit', many)], opts({ maxEntries: 8 }));
    const k = p.accessKeys[0]!;
    expect(k.public!.cidrs.length).toBeLessThanOrEqual(8);
    for (const s of many) expect(allows(p, 'LTAIlimit', s.ip), s.ip).toBe(true);
    expect(limitBreaches(p)).toEqual([]);
  });

  it('keeps the seven VPCs with most calls and names the dropped ones as over-limit', () => {
    const vpcs = Array.from({ length: 9 }, (_, i) => vsrc(`vpc-${String(i).padStart(2, '0')}`, `172.16.${i}.10`, 100 - i, 20));
    const p = recommend([profile('LTAIvpcs', [], vpcs)], opts());
    const k = p.accessKeys[0]!;
    expect(k.vpc).toHaveLength(MAX_VPC_RULES);
    expect(k.vpc.map((v) => v.vpcId)).not.toContain('vpc-07');
    const dropped = k.excluded.filter((e) => e.code === 'over-limit').map((e) => e.vpcId).sort();
    expect(dropped).toEqual(['vpc-07', 'vpc-08']);
    expect(k.warnings.join(' ')).toMatch(/vpc-07, vpc-08/);
  });

  it('keeps every entry within the /16 guardrail and drops the blocks that do not fit as over-limit', () => {
    const spread = Array.from({ length: 6 }, (_, i) => src(`${10 + i * 20}.7.1.1`, 100 - i, 10));
    const p = recommend([profile('LTAIguard', spread)], opts({ maxEntries: 4 }));
    const k = p.accessKeys[0]!;
    for (const c of k.public!.cidrs) expect(parsePrefix(c)!.length).toBeGreaterThanOrEqual(GUARDRAIL_MIN_PREFIX[4]);
    expect(k.excluded.filter((e) => e.code === 'over-limit').map((e) => e.source).sort()).toEqual(['110.7.1.1', '90.7.1.1']);
  });

  it('with --allow-broad merges into wider blocks instead, but never /0', () => {
    const spread = Array.from({ length: 6 }, (_, i) => src(`${10 + i * 20}.7.1.1`, 100 - i, 10));
    const p = recommend([profile('LTAIbroad', spread)], opts({ maxEntries: 1, allowBroad: true }));
    const k = p.accessKeys[0]!;
    expect(k.public!.cidrs).toHaveLength(1);
    expect(parsePrefix(k.public!.cidrs[0]!)!.length).toBeGreaterThan(0);
    for (const s of spread) expect(allows(p, 'LTAIbroad', s.ip)).toBe(true);
  });

  it('rejects an entry budget above the vendor limit', () => {
    expect(() => recommend([], opts({ maxEntries: MAX_ENTRIES_PER_ACL + 1 }))).toThrow(InvalidInputError);
  });
});

describe('exclusions', () => {
  it('gives every kind of non-ACL traffic its reason code', () => {
    const k = profile('LTAIwhy', [...office, src('192.0.2.50', 1, 1, 5), src('192.0.2.60', 9, 1, 5)], [], {
      internalCalls: 5,
      serviceCalls: 6,
      invalidSourceCalls: 7,
      stsCalls: 8,
      exemptOnlySources: [{ ip: '198.51.100.77', vpcId: null, calls: 9, services: ['mns'] }],
    });
    const p = recommend([k], opts({ minCalls: 2 }));
    expect(codes(p, 'LTAIwhy')).toEqual(['below-min-calls', 'below-min-days', 'exempt-service-only', 'internal-source', 'invalid-source', 'service-source', 'sts-key']);
    const excluded = p.accessKeys[0]!.excluded;
    expect(excluded.find((e) => e.code === 'below-min-calls')).toMatchObject({ source: '192.0.2.50', calls: 1 });
    expect(excluded.find((e) => e.code === 'below-min-days')).toMatchObject({ source: '192.0.2.60' });
    expect(allows(p, 'LTAIwhy', '192.0.2.60')).toBe(false);
  });

  it('never admits a possible leak unless --include names it', () => {
    const leak = src('45.33.10.10', 300, 2, 20, { errorCalls: 250, sensitiveCalls: 40 });
    const k = profile('LTAIleak', [...office, leak]);
    const p = recommend([k], opts());
    expect(codes(p, 'LTAIleak')).toContain('possible-leak');
    expect(allows(p, 'LTAIleak', '45.33.10.10')).toBe(false);
    expect(p.accessKeys[0]!.excluded.find((e) => e.code === 'possible-leak')!.reason).toMatch(/--include 45\.33\.10\.10/);
    const included = recommend([k], opts({ include: ['45.33.10.0/24'] }));
    expect(allows(included, 'LTAIleak', '45.33.10.10')).toBe(true);
    expect(codes(included, 'LTAIleak')).not.toContain('possible-leak');
  });

  it('carves a leak next to admitted addresses out of the entry that would hold it', () => {
    // The leak sits between two admitted addresses of the same /24: a one-entry cover would admit it.
    const near = [src('203.0.113.1', 50, 20), src('203.0.113.200', 50, 20)];
    const leak = src('203.0.113.100', 200, 2, 20, { errorCalls: 180, sensitiveCalls: 100 });
    const p = recommend([profile('LTAIcarve', [...near, leak])], opts({ maxEntries: 3 }));
    expect(allows(p, 'LTAIcarve', '203.0.113.100')).toBe(false);
    expect(allows(p, 'LTAIcarve', '203.0.113.1')).toBe(true);
    expect(allows(p, 'LTAIcarve', '203.0.113.200')).toBe(true);
    const tight = recommend([profile('LTAIcarve', [...near, leak])], opts({ maxEntries: 1 }));
    expect(allows(tight, 'LTAIcarve', '203.0.113.100')).toBe(false);
    expect(tight.accessKeys[0]!.public!.cidrs).toHaveLength(1);
    expect(codes(tight, 'LTAIcarve')).toContain('over-limit');
  });

  it('admits a new source first seen in the last min-days days, with a warning', () => {
    const fresh = src('198.51.100.9', 30, 1, 29);
    const p = recommend([profile('LTAIfresh', [...office, fresh])], opts({ minDays: 2 }));
    expect(allows(p, 'LTAIfresh', '198.51.100.9')).toBe(true);
    expect(p.accessKeys[0]!.warnings.join(' ')).toMatch(/first seen in the last 2 days/);
  });

  it('rejects a malformed --include', () => {
    expect(() => recommend([profile('LTAIx', office)], opts({ include: ['010.1.1.1'] }))).toThrow(InvalidInputError);
  });
});

describe('shapes of traffic', () => {
  it('widens an office NAT to its /29 when 5 of 8 addresses were seen (headroom 2), not with headroom 1', () => {
    expect(recommend([profile('LTAInat', office)], opts()).accessKeys[0]!.public!.cidrs).toEqual(['203.0.113.0/29']);
    const exact = recommend([profile('LTAInat', office)], opts({ headroom: 1 })).accessKeys[0]!.public!.cidrs;
    expect(exact).toEqual(['203.0.113.1/32', '203.0.113.2/31', '203.0.113.5/32', '203.0.113.6/32'].sort((a, b) => (parsePrefix(a)!.base < parsePrefix(b)!.base ? -1 : 1)));
  });

  it('proposes the block of a dynamic pool instead of fragments, with a warning', () => {
    const a = profile('LTAIfcA', sparse('47.96.16.0', 20, 12));
    const b = profile('LTAIfcB', sparse('47.96.16.0', 20, 4, 3));
    const p = recommend([a, b], opts());
    for (const key of ['LTAIfcA', 'LTAIfcB']) {
      const k = p.accessKeys.find((x) => x.accessKeyId === key)!;
      expect(k.public!.cidrs).toEqual(['47.96.16.0/20']);
      expect(k.warnings.join(' ')).toMatch(/dynamic pool/);
      expect(k.excluded.filter((e) => e.code === 'below-min-days')).toEqual([]);
    }
    expect(allows(p, 'LTAIfcB', '47.96.31.250')).toBe(true);
  });

  it('leaves room to grow for a run of consecutive new addresses (a network still taking on addresses), not for one', () => {
    const established = src('198.51.100.7', 900, 30);
    // .233–.235 appear in the last days: the block holding them and three more is /29.
    const growing = [src('101.133.74.233', 3, 2, 27), src('101.133.74.234', 2, 1, 28), src('101.133.74.235', 1, 1, 29)];
    const p = recommend([profile('LTAIgrow', [established, ...growing])], opts());
    expect(p.accessKeys[0]!.public!.cidrs).toEqual(['101.133.74.232/29', '198.51.100.7/32']);
    expect(p.accessKeys[0]!.warnings.join(' ')).toMatch(/growing network/);
    const single = recommend([profile('LTAIone', [established, src('101.133.74.233', 60, 2, 27)])], opts());
    expect(single.accessKeys[0]!.public!.cidrs).toEqual(['101.133.74.233/32', '198.51.100.7/32']);
    // In a window as short as the key's history, every address is young but none is new: no growth.
    const short = recommend([profile('LTAIshort', [src('101.133.74.233', 30, 3, 27), src('101.133.74.234', 20, 3, 27), src('101.133.74.235', 10, 3, 27)])], opts());
    expect(short.accessKeys[0]!.public!.cidrs).not.toContain('101.133.74.232/29');
    // The same run seen since the first week is no longer growing: headroom alone applies.
    const old = recommend([profile('LTAIold', [established, ...[233, 234, 235].map((d) => src(`101.133.74.${d}`, 30, 20, 1))])], opts());
    expect(old.accessKeys[0]!.public!.cidrs).toEqual(['101.133.74.232/30', '198.51.100.7/32']);
  });

  it('admits the routed /24 where a rotating key\'s one-day addresses recur, but not a lone one-day address', () => {
    // Hosted runners: every address lives a day, in ranges spread over a provider's space.
    const runners = [
      src('20.10.1.7', 20, 1, 2),
      src('20.10.1.200', 25, 1, 9),
      src('52.30.7.14', 18, 1, 5),
      src('52.30.7.99', 22, 1, 16),
      src('104.44.9.3', 30, 1, 12),
    ];
    const p = recommend([profile('LTAIci', runners)], opts());
    const k = p.accessKeys[0]!;
    expect(k.public!.cidrs).toEqual(['20.10.1.0/24', '52.30.7.0/24']);
    expect(codes(p, 'LTAIci')).toEqual(['below-min-days']);
    expect(allows(p, 'LTAIci', '20.10.1.129')).toBe(true);
    expect(k.warnings.join(' ')).toMatch(/recur/);
    // A fixed egress with a few one-day addresses around it does not rotate: they stay one-offs.
    const fixed = recommend([profile('LTAIfix', [src('198.51.100.7', 900, 30), src('20.10.1.7', 3, 1, 2), src('20.10.1.200', 2, 1, 9), src('52.30.7.14', 2, 1, 5)])], opts());
    expect(fixed.accessKeys[0]!.public!.cidrs).toEqual(['198.51.100.7/32']);
  });

  it('gives a VPC-only key no public rule and says that every public call will be denied', () => {
    const p = recommend([profile('LTAIvpc', [], [vsrc('vpc-a', '172.16.1.5', 100, 20), vsrc('vpc-a', '172.16.1.9', 100, 20)])], opts());
    const k = p.accessKeys[0]!;
    expect(k.public).toBeNull();
    expect(k.vpc).toEqual([{ vpcId: 'vpc-a', cidrs: ['172.16.1.5/32', '172.16.1.9/32'] }]);
    expect(k.warnings.join(' ')).toMatch(/denies every call from a public address/);
  });

  it('never proposes an empty ACL: a key with no governed traffic gets none, and a warning', () => {
    const idle = profile('LTAIidle', [], [], { internalCalls: 40 });
    const oneOffs = profile('LTAIoneoff', [src('192.0.2.1', 3, 1, 4)]);
    const p = recommend([idle, oneOffs, profile('LTAIsts', [], [], { keyKind: 'sts', stsCalls: 5 })], opts());
    expect(p.accessKeys).toEqual([]);
    expect(p.keysWithoutAcl!.map((k) => [k.accessKeyId, k.coveredByAccount])).toEqual([['LTAIidle', false], ['LTAIoneoff', false], ['LTAIsts', false]]);
    expect(p.keysWithoutAcl!.find((k) => k.accessKeyId === 'LTAIsts')!.excluded[0]!.code).toBe('sts-key');
    expect(p.warnings!.join(' ')).toMatch(/LTAIidle: no governed traffic/);
    expect(limitBreaches(p)).toEqual([]);
  });

  it('records the evidence behind each entry', () => {
    const p = recommend([profile('LTAIev', [src('198.51.100.1', 10, 3, 2), src('198.51.100.2', 20, 5, 1)])], opts({ headroom: 1 }));
    expect(p.accessKeys[0]!.evidence).toEqual([{ cidr: '198.51.100.1/32', calls: 10, days: 3, firstSeen: '2026-10-03T00:00:00Z', lastSeen: '2026-10-05T00:00:00Z', addresses: 1 }, expect.objectContaining({ cidr: '198.51.100.2/32', calls: 20 })]);
  });
});

describe('scopes', () => {
  const shared = (key: string, extra: ReturnType<typeof src>[] = []): KeyProfile => profile(key, [...office.map((s) => ({ ...s })), ...extra]);

  it('auto: the account level holds what most keys share; a key needing more gets a complete ACL of its own', () => {
    const p = recommend([shared('LTAIa'), shared('LTAIb'), shared('LTAIc', [src('198.51.100.80', 50, 20)])], opts({ scope: 'auto' }));
    expect(p.accountLevel!.public!.cidrs).toEqual(['203.0.113.0/29']);
    expect(p.accountLevel!.coveredKeys).toEqual(['LTAIa', 'LTAIb']);
    expect(p.accessKeys.map((k) => k.accessKeyId)).toEqual(['LTAIc']);
    // A key-level ACL replaces the account-level one: it must repeat the shared office.
    expect(allows(p, 'LTAIc', '203.0.113.2')).toBe(true);
    expect(allows(p, 'LTAIc', '198.51.100.80')).toBe(true);
    expect(allows(p, 'LTAIa', '203.0.113.2')).toBe(true);
    expect(allows(p, 'LTAIa', '198.51.100.80')).toBe(false);
    expect(p.keysWithoutAcl!.filter((k) => k.coveredByAccount).map((k) => k.accessKeyId)).toEqual(['LTAIa', 'LTAIb']);
  });

  it('account: one account-level ACL for every key, no key-level ACLs', () => {
    const p = recommend([shared('LTAIa'), shared('LTAIc', [src('198.51.100.80', 50, 20)])], opts({ scope: 'account' }));
    expect(p.accessKeys).toEqual([]);
    expect(p.accountLevel!.coveredKeys).toEqual(['LTAIa', 'LTAIc']);
    expect(allows(p, 'LTAIa', '198.51.100.80')).toBe(true);
    expect(p.accountLevel!.evidence.find((e) => e.cidr === '198.51.100.80/32')!.keys).toEqual(['LTAIc']);
  });

  it('account scope over keys of several accounts is refused; auto falls back to key level', () => {
    const other = { ...shared('LTAIz'), accountId: '9999' };
    expect(() => recommend([shared('LTAIa'), other], opts({ scope: 'account' }))).toThrow(InvalidInputError);
    const p = recommend([shared('LTAIa'), other], opts({ scope: 'auto' }));
    expect(p.accountLevel).toBeNull();
    expect(p.accessKeys).toHaveLength(2);
  });
});

describe('determinism and safety', () => {
  it('gives the same bytes whatever the order of the profiles', () => {
    const keys = [profile('LTAIb', office), profile('LTAIa', sparse('47.96.16.0', 20, 12)), profile('LTAIc', [], [vsrc('vpc-x', '10.0.0.5', 9, 9)])];
    const a = JSON.stringify(recommend(keys, opts({ scope: 'auto' })));
    const b = JSON.stringify(recommend([...keys].reverse(), opts({ scope: 'auto' })));
    expect(a).toBe(b);
  });

  it('admits every source it does not exclude, denies every excluded leak, and never breaks a limit (property)', () => {
    const octet = fc.integer({ min: 1, max: 254 });
    const source = fc.record({ a: fc.constantFrom(23, 45, 101, 203), b: fc.integer({ min: 0, max: 3 }), c: octet, d: octet, calls: fc.integer({ min: 1, max: 50 }), days: fc.integer({ min: 1, max: 25 }), from: fc.integer({ min: 0, max: 29 }), errors: fc.boolean() });
    fc.assert(
      fc.property(fc.array(source, { minLength: 1, maxLength: 40 }), fc.integer({ min: 1, max: 12 }), (sources, maxEntries) => {
        const list = sources.map((s) => src(`${s.a}.${s.b}.${s.c}.${s.d}`, s.calls, Math.min(s.days, 30 - s.from), s.from, s.errors ? { errorCalls: s.calls, sensitiveCalls: s.calls } : {}));
        const unique = [...new Map(list.map((s) => [s.ip, s])).values()];
        const p = recommend([profile('LTAIprop', unique)], opts({ maxEntries }));
        expect(limitBreaches(p)).toEqual([]);
        const k = p.accessKeys[0];
        const excluded = new Map((k?.excluded ?? p.keysWithoutAcl?.[0]?.excluded ?? []).map((e) => [e.source, e.code]));
        for (const s of unique) {
          const code = excluded.get(s.ip);
          if (!k) continue;
          if (code === undefined) expect(allows(p, 'LTAIprop', s.ip), s.ip).toBe(true);
          if (code === 'possible-leak') expect(allows(p, 'LTAIprop', s.ip), s.ip).toBe(false);
        }
        if (k?.public) expect(k.public.cidrs.length).toBeLessThanOrEqual(maxEntries);
      }),
      { numRuns: 60, seed: 7 },
    );
  });
});

describe('quality metrics', () => {
  it('counts denied legitimate calls, admitted leaks and space against the truth', () => {
    const p = recommend([profile('LTAIq', office)], opts());
    const report = evaluateAgainstTruth(
      p,
      [
        { accessKeyId: 'LTAIq', keyKind: 'permanent', sourceKind: 'public', ip: '203.0.113.4', vpcId: null, exempt: false, calls: 90 },
        { accessKeyId: 'LTAIq', keyKind: 'permanent', sourceKind: 'public', ip: '198.51.100.1', vpcId: null, exempt: false, calls: 10 },
        { accessKeyId: 'LTAIq', keyKind: 'permanent', sourceKind: 'public', ip: '198.51.100.99', vpcId: null, exempt: true, calls: 500 },
        { accessKeyId: 'LTAIq', keyKind: 'permanent', sourceKind: 'public', ip: '45.1.1.1', vpcId: null, exempt: false, calls: 70 },
      ],
      { keys: [{ accessKeyId: 'LTAIq', publicNetworks: ['203.0.113.0/28'], vpcNetworks: [], leakSources: ['45.1.1.1', '203.0.113.7'] }] },
    );
    expect(report.legitGovernedCalls).toBe(100);
    expect(report.falseDeniedCalls).toBe(10);
    expect(report.worstKey).toMatchObject({ accessKeyId: 'LTAIq', share: 0.1 });
    expect(report.admittedUnits).toBe(8);
    expect(report.trueUnits).toBe(16);
    expect(report.leaksAdmitted).toEqual([{ accessKeyId: 'LTAIq', source: '203.0.113.7' }]);
    expect(report.limitBreaches).toEqual([]);
  });
});
