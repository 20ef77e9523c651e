// Small builders for KeyProfiles, shared by the recommend tests.
import type { KeyProfile, SourceUsage, VpcSourceUsage } from '../model/types.ts';

export const WINDOW = { from: '2026-10-01T00:00:00Z', to: '2026-10-31T00:00:00Z' };

export function day(n: number): string {
  return new Date(Date.parse(WINDOW.from) + n * 86_400_000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** A source used on `days` days from `from` (day index) on, `calls` calls in all. */
export function src(ip: string, calls: number, days: number, from = 0, extra: Partial<SourceUsage> = {}): SourceUsage {
  return {
    ip,
    family: ip.includes(':') ? 6 : 4,
    calls,
    days,
    firstSeen: day(from),
    lastSeen: day(from + Math.max(0, days - 1)),
    errorCalls: 0,
    deniedCalls: 0,
    sensitiveCalls: 0,
    services: ['ecs'],
    userAgents: ['aliyun-sdk-go/1.0'],
    ...extra,
  };
}

export function vsrc(vpcId: string, ip: string, calls: number, days: number, from = 0): VpcSourceUsage {
  return { ...src(ip, calls, days, from), vpcId };
}

export function profile(accessKeyId: string, publicSources: SourceUsage[], vpcSources: VpcSourceUsage[] = [], extra: Partial<KeyProfile> = {}): KeyProfile {
  const all = [...publicSources, ...vpcSources];
  return {
    accessKeyId,
    keyKind: 'permanent',
    identityType: 'ram-user',
    userName: `user-${accessKeyId.slice(-4).toLowerCase()}`,
    accountId: '1234567890123456',
    firstSeen: all.length ? all.map((s) => s.firstSeen).sort()[0]! : day(0),
    lastSeen: all.length ? all.map((s) => s.lastSeen).sort().at(-1)! : day(29),
    totalCalls: all.reduce((n, s) => n + s.calls, 0),
    publicSources,
    vpcSources,
    exemptOnlySources: [],
    stsCalls: 0,
    internalCalls: 0,
    serviceCalls: 0,
    invalidSourceCalls: 0,
    deniedCalls: 0,
    ...extra,
  };
}

/** `count` addresses spread evenly over the IPv4 block `base/length`, each seen once on its own day. */
export function sparse(base: string, length: number, count: number, firstDay = 0): SourceUsage[] {
  const [a, b, c, d] = base.split('.').map(Number) as [number, number, number, number];
  const start = ((a << 24) >>> 0) + (b << 16) + (c << 8) + d;
  const size = 2 ** (32 - length);
  return Array.from({ length: count }, (_, i) => {
    const v = start + Math.floor(((i * 2654435761) % 2 ** 32) / 2 ** 32 * size);
    const ip = [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join('.');
    return src(ip, 3, 1, (firstDay + i) % 30);
  });
}
