import { describe, expect, it } from 'vitest';
import { parseAddress } from '../model/address.ts';
import { buildPoolIndex, classifySources, clusterPools } from '../recommend/suspicion.ts';
import { WINDOW, profile, sparse, src, vsrc } from './helpers-recommend.ts';

const office = ['203.0.113.1', '203.0.113.2', '203.0.113.3'].map((ip) => src(ip, 200, 28));

describe('possible leaks', () => {
  it('flags a loud burst from a new, far address (mostly failures)', () => {
    const k = profile('LTAIloud', [...office, src('45.33.10.10', 300, 2, 20, { errorCalls: 250 })]);
    const { leaks } = classifySources(k, { window: WINDOW });
    expect(leaks.map((l) => [l.ip, l.kind])).toEqual([['45.33.10.10', 'loud']]);
    expect(leaks[0]!.signals).toEqual(expect.arrayContaining(['far-from-key-networks', 'high-error-share', 'new-source']));
  });

  it('does not flag the same failing address when the key has used it from the start', () => {
    const k = profile('LTAIold', [...office, src('45.33.10.10', 300, 25, 0, { errorCalls: 250 })]);
    expect(classifySources(k, { window: WINDOW }).leaks).toEqual([]);
  });

  it('flags a quiet run from a new far address that then stopped while the key went on', () => {
    const k = profile('LTAIquiet', [...office, src('45.33.10.10', 120, 4, 15)]);
    const { leaks } = classifySources(k, { window: WINDOW });
    expect(leaks.map((l) => [l.ip, l.kind])).toEqual([['45.33.10.10', 'quiet']]);
    expect(leaks[0]!.signals).toContain('run-then-stopped');
  });

  it('judges a new network as stopped only when all of its new addresses are silent (a NAT\'s addresses take turns)', () => {
    // 45.33.10.11 went quiet days ago, but 45.33.10.12 of the same new /24 is still in use.
    const k = profile('LTAIturns', [...office, src('45.33.10.11', 120, 4, 15), src('45.33.10.12', 300, 10, 19)]);
    expect(classifySources(k, { window: WINDOW }).leaks).toEqual([]);
  });

  it('takes a new far address that stays and carries real load for growth, not a leak', () => {
    const k = profile('LTAIgrow', [...office, src('198.51.100.9', 900, 6, 24)]);
    expect(classifySources(k, { window: WINDOW }).leaks).toEqual([]);
  });

  it('flags a new far address carrying a sliver of the key\'s traffic, judging a NAT\'s new addresses together', () => {
    const sliver = profile('LTAIsliver', [...office, src('45.33.10.10', 6, 6, 24)]);
    expect(classifySources(sliver, { window: WINDOW }).leaks.map((l) => l.signals)).toEqual([expect.arrayContaining(['minor-share'])]);
    const nat = profile('LTAInat', [...office, ...['198.51.100.1', '198.51.100.2', '198.51.100.3', '198.51.100.4'].map((ip) => src(ip, 30, 6, 24))]);
    expect(classifySources(nat, { window: WINDOW }).leaks).toEqual([]);
  });

  it('reads sensitive calls against the key\'s own habits, and ACL refusals as no sign at all', () => {
    const habitual = office.map((s) => ({ ...s, sensitiveCalls: 60 }));
    const probing = src('45.33.10.10', 100, 6, 24, { sensitiveCalls: 30 });
    expect(classifySources(profile('LTAIhabit', [...habitual, probing]), { window: WINDOW }).leaks).toEqual([]);
    expect(classifySources(profile('LTAIprobe', [...office, probing]), { window: WINDOW }).leaks[0]!.signals).toContain('sensitive-calls');
    const refused = src('198.51.100.9', 900, 6, 24, { errorCalls: 900, deniedCalls: 900 });
    expect(classifySources(profile('LTAIrefused', [...office, refused]), { window: WINDOW }).leaks).toEqual([]);
  });

  it('flags a fixed address that appears on a key otherwise calling only from shared dynamic pools', () => {
    const fc = profile('LTAIfc', [...sparse('47.96.16.0', 20, 20), src('45.33.10.10', 200, 5, 24)]);
    const other = profile('LTAIfc2', sparse('47.96.16.0', 20, 6, 9));
    // A key's own dynamic line (no other key draws from it) may gain a fixed address: no signal then.
    expect(classifySources(fc, { window: WINDOW }).leaks).toEqual([]);
    const { leaks, pools } = classifySources(fc, { window: WINDOW, accountProfiles: [fc, other] });
    expect(pools.map((p) => p.cidr)).toEqual(['47.96.16.0/20']);
    expect(leaks.map((l) => l.ip)).toEqual(['45.33.10.10']);
    expect(leaks[0]!.signals).toContain('fixed-address-on-pool-key');
  });
});

describe('dynamic pools', () => {
  it('widens a dynamic line\'s few leases (one address at a time) to the block they cannot be told apart from, not concurrent addresses', () => {
    const ips = ['222.93.74.20', '222.93.74.90', '222.93.74.160', '222.93.74.230', '222.93.75.30', '222.93.75.120', '222.93.75.210'];
    // Seven leases of four days each, one after the other: all in one half of a /22 happens one time in 64.
    const line = profile('LTAIline', ips.map((ip, i) => src(ip, 300, 4, i * 4)));
    const { pools } = classifySources(line, { window: WINDOW });
    expect(pools.map((p) => p.cidr)).toEqual(['222.93.72.0/22']);
    expect(pools[0]!.reason).toMatch(/dynamic line/);
    // The same addresses in use together are a pool seen whole: its enclosing block stays.
    const together = profile('LTAItogether', ips.map((ip) => src(ip, 300, 4, 3)));
    expect(classifySources(together, { window: WINDOW }).pools.map((p) => p.cidr)).toEqual(['222.93.74.0/23']);
    // One after the other but each for a job's hours (a runner, not a lease): no line either.
    const jobs = profile('LTAIjobs', ips.map((ip, i) => src(ip, 30, 1, i * 4)));
    expect(classifySources(jobs, { window: WINDOW }).pools.map((p) => p.cidr)).toEqual(['222.93.74.0/23']);
  });

  it('finds the block rotating addresses fill, from several keys\' evidence', () => {
    const a = profile('LTAIa', sparse('47.96.16.0', 20, 10));
    // The same generator picks the same first addresses: b's three are among a's ten.
    const b = profile('LTAIb', sparse('47.96.16.0', 20, 3, 11));
    const { pools } = classifySources(b, { window: WINDOW, accountProfiles: [a, b] });
    expect(pools).toHaveLength(1);
    expect(pools[0]).toMatchObject({ cidr: '47.96.16.0/20', vpcId: null, keys: ['LTAIa', 'LTAIb'], evidenceAddresses: 10 });
  });

  it('keeps two distant pools in one /16 apart instead of admitting the block between them', () => {
    const k = profile('LTAItwo', [...sparse('47.96.0.0', 22, 12), ...sparse('47.96.240.0', 22, 12, 5)]);
    expect(classifySources(k, { window: WINDOW }).pools.map((p) => p.cidr)).toEqual(['47.96.0.0/22', '47.96.240.0/22']);
  });

  it('does not let a stray pair of new addresses join a neighbouring pool', () => {
    const values = [...sparse('39.96.0.0', 20, 40).map((s) => parseAddress(s.ip)!.value), parseAddress('39.96.84.105')!.value, parseAddress('39.96.84.106')!.value].sort((x, y) => (x < y ? -1 : 1));
    expect(clusterPools(4, values, 16).map((p) => `${p.base}/${p.length}`)).toEqual([`${parseAddress('39.96.0.0')!.value}/20`]);
  });

  it('extends a key drawing from several of a provider\'s blocks to the provider\'s other blocks', () => {
    const ranges = ['20.1.0.0', '20.7.32.0', '40.2.64.0', '52.9.128.0'];
    const heavy1 = profile('LTAIci1', ranges.flatMap((r, i) => sparse(r, 22, 5, i)));
    const heavy2 = profile('LTAIci2', ranges.flatMap((r, i) => sparse(r, 22, 5, i + 7)));
    const light = profile('LTAIci3', [...sparse('20.1.0.0', 22, 2, 3), ...sparse('40.2.64.0', 22, 2, 9)]);
    const { pools } = classifySources(light, { window: WINDOW, accountProfiles: [heavy1, heavy2, light] });
    expect(pools.map((p) => p.cidr)).toEqual(['20.1.0.0/22', '20.7.32.0/22', '40.2.64.0/22', '52.9.128.0/22']);
    expect(pools.find((p) => p.cidr === '52.9.128.0/22')!.reason).toMatch(/drawn from together/);
  });

  it('finds autoscaled instances inside one VPC, per VPC ID', () => {
    const ephemeral = Array.from({ length: 12 }, (_, i) => vsrc('vpc-a', `10.1.${i * 20}.${(i * 37) % 250 + 2}`, 2, 1, i));
    const k = profile('LTAIecs', [], [vsrc('vpc-a', '10.1.0.10', 900, 28), ...ephemeral]);
    const { pools } = classifySources(k, { window: WINDOW });
    expect(pools.map((p) => [p.vpcId, p.cidr])).toEqual([['vpc-a', '10.1.0.0/16']]);
    expect(pools[0]!.reason).toMatch(/autoscaled instances/);
  });

  it('ignores failing, probing addresses as pool evidence', () => {
    const loud = sparse('47.96.16.0', 20, 10).map((s) => ({ ...s, errorCalls: s.calls }));
    expect(buildPoolIndex([profile('LTAIx', loud)]).blocks.get('|4') ?? []).toEqual([]);
  });
});
