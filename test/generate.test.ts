import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { isAclDenial, isExemptService } from '../model/acl-rules.ts';
import { isPrivateV4, isPublicAddress, parseAddress, parsePrefix, prefixContains } from '../model/address.ts';
import { DEMO_WORLD, DEMO_WRITE, writeDemo, type DemoManifest } from '../fixtures/demo.ts';
import {
  buildWorld, generateEvents, MALFORMED_KINDS, writeHistory, type GroundTruthKey, type MalformedKind, type WorldOptions,
} from '../fixtures/generate.ts';

const root = join(import.meta.dirname, '..');
const scratch = mkdtempSync(join(tmpdir(), 'kf-generate-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const SMALL: WorldOptions = { seed: 11, keys: 24, days: 20, eventsTarget: 12_000 };

function listFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...listFiles(p));
    else out.push(p);
  }
  return out.sort();
}

function readText(path: string): string {
  const raw = readFileSync(path);
  return (path.endsWith('.gz') ? gunzipSync(raw) : raw).toString('utf8');
}

function digest(dir: string): Record<string, string> {
  return Object.fromEntries(listFiles(dir).map((f) => [relative(dir, f), createHash('sha256').update(readFileSync(f)).digest('hex')]));
}

/** An independent reader: every record of a written tree, classified the way an ingester must. */
function readBack(files: string[]): { valid: Array<Record<string, unknown>>; broken: number; records: number } {
  const valid: Array<Record<string, unknown>> = [];
  let broken = 0;
  let records = 0;
  const unflatten = (flat: Record<string, unknown>): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(flat)) {
      if (!k.startsWith('event.')) continue;
      const path = k.slice('event.'.length).split('.');
      let node = out;
      for (const part of path.slice(0, -1)) node = (node[part] ??= {}) as Record<string, unknown>;
      node[path[path.length - 1]!] = v;
    }
    return out;
  };
  const accept = (event: unknown): void => {
    const e = event as Record<string, unknown> | null;
    const ip = typeof e?.sourceIpAddress === 'string' ? e.sourceIpAddress : '';
    const ipOk = parseAddress(ip) !== null || ip === 'internal' || /^[a-z][a-z0-9-]*(\.[a-z0-9-]+)+$/.test(ip) || ip.includes('XX');
    if (e && typeof e.eventId === 'string' && e.eventId && e.userIdentity && typeof e.userIdentity === 'object' && ipOk) valid.push(e);
    else broken++;
  };
  const record = (text: string): void => {
    records++;
    let outer: Record<string, unknown>;
    try {
      outer = JSON.parse(text) as Record<string, unknown>;
    } catch {
      broken++;
      return;
    }
    if ('event' in outer) {
      if (typeof outer.event === 'string') {
        try {
          accept(JSON.parse(outer.event));
        } catch {
          broken++;
        }
      } else accept(outer.event);
    } else if (Object.keys(outer).some((k) => k.startsWith('event.'))) accept(unflatten(outer));
    else accept(outer);
  };
  for (const f of files) {
    const text = readText(f);
    if (/\.json(\.gz)?$/.test(f)) {
      // One LookupEvents response after another, each at most 50 events.
      const pages = text.split('\n]}\n').filter((p) => p.trim()).map((p) => JSON.parse(`${p}\n]}`) as { Events: unknown[]; NextToken: string });
      for (const page of pages) {
        expect(page.Events.length).toBeLessThanOrEqual(50);
        expect(page.NextToken).toBeTruthy();
        for (const e of page.Events) {
          records++;
          accept(e);
        }
      }
    } else {
      for (const line of text.split('\n')) if (line) record(line);
    }
  }
  return { valid, broken, records };
}

function inAny(cidrs: string[], ip: string): boolean {
  const addr = parseAddress(ip);
  return !!addr && cidrs.some((c) => prefixContains(parsePrefix(c)!, addr));
}

describe('buildWorld', () => {
  it('is a pure function of its options', () => {
    expect(JSON.stringify(buildWorld(SMALL).truth)).toBe(JSON.stringify(buildWorld({ ...SMALL }).truth));
    expect(JSON.stringify(buildWorld({ ...SMALL, seed: 12 }).truth)).not.toBe(JSON.stringify(buildWorld(SMALL).truth));
  });

  it('rejects options it cannot honour', () => {
    expect(() => buildWorld({ seed: 1.5 })).toThrow(/seed/);
    expect(() => buildWorld({ seed: 1, keys: 0 })).toThrow(/keys/);
    expect(() => buildWorld({ seed: 1, end: 'yesterday' })).toThrow(/end/);
  });

  it('builds the shapes a recommender must survive into the default world', () => {
    const world = buildWorld({ seed: 1 });
    const truth = world.truth;
    expect(truth.keys).toHaveLength(40);
    const profiles = new Set(truth.keys.map((k) => k.profile));
    for (const p of ['office-nat', 'eip-service', 'vpc-ecs', 'mixed', 'ci-runners', 'function-compute', 'ipv6-privacy', 'weekly-job', 'nightly-batch', 'dormant']) {
      expect(profiles, p).toContain(p);
    }
    expect(truth.keys.filter((k) => k.identityType === 'root-account')).toHaveLength(1);
    expect(truth.keys.some((k) => !k.accessKeyId.startsWith('LTAI'))).toBe(true);
    expect(truth.keys.some((k) => k.aclInForce !== null)).toBe(true);
    expect(truth.keys.filter((k) => k.leaks.length > 0).map((k) => k.leaks[0]!.style).sort()).toEqual(expect.arrayContaining(['loud', 'quiet']));
    expect(truth.keys.some((k) => k.lateLegitSources.length > 0)).toBe(true);
    expect(truth.keys.some((k) => k.oneOffSources.length > 0)).toBe(true);
    expect(truth.keys.some((k) => k.exemptOnlySources.length > 0)).toBe(true);
    expect(truth.keys.some((k) => k.rotation?.replaces)).toBe(true);
    expect(truth.keys.some((k) => k.publicNetworks.some((c) => c.includes(':')))).toBe(true);
    // A hosted CI provider with more ranges than one ACL can hold.
    expect(Math.max(...truth.keys.filter((k) => k.profile === 'ci-runners').map((k) => k.publicNetworks.length))).toBeGreaterThan(50);
    // A key spread over more VPCs than seven VPC rules.
    expect(Math.max(...truth.keys.map((k) => k.vpcNetworks.length))).toBeGreaterThan(7);
    // Function Compute pools are shared by the keys of a region.
    const fc = truth.keys.filter((k) => k.profile === 'function-compute').map((k) => k.publicNetworks.join());
    expect(new Set(fc).size).toBeLessThan(fc.length);
    for (const k of truth.keys) {
      for (const c of k.publicNetworks) {
        const p = parsePrefix(c)!;
        expect(p, c).not.toBeNull();
        expect(isPublicAddress({ family: p.family, value: p.base }), c).toBe(true);
      }
      for (const v of k.vpcNetworks) for (const c of v.cidrs) expect(isPrivateV4(parseAddress(c.split('/')[0]!)!), c).toBe(true);
    }
  });
});

describe('large worlds', () => {
  it('hold keys baked into client apps, called from a different mobile address almost every time', () => {
    expect(buildWorld({ seed: 1 }).truth.keys.some((k) => k.profile === 'client-embedded')).toBe(false);
    const world = buildWorld({ seed: 5, keys: 300, days: 6, eventsTarget: 40_000 });
    const embedded = new Map(world.truth.keys.filter((k) => k.profile === 'client-embedded').map((k) => [k.accessKeyId, k]));
    expect(embedded.size).toBeGreaterThan(0);
    const sources = new Set<string>();
    let calls = 0;
    for (const { event, label } of generateEvents(world)) {
      const key = embedded.get((event.userIdentity as Record<string, string>).accessKeyId ?? '');
      if (!key || label !== 'legit') continue;
      calls++;
      sources.add(event.sourceIpAddress as string);
      expect(inAny(key.publicNetworks, event.sourceIpAddress as string)).toBe(true);
    }
    expect(calls).toBeGreaterThan(1000);
    expect(sources.size).toBeGreaterThan(calls * 0.3);
  });
});

describe('generateEvents', () => {
  const world = buildWorld(SMALL);
  const events = [...generateEvents(world)];
  const truthOf = new Map<string, GroundTruthKey>(world.truth.keys.map((k) => [k.accessKeyId, k]));

  it('yields time-ordered events inside the window, close to the target volume', () => {
    const times = events.map((e) => Date.parse(e.event.eventTime as string));
    for (let i = 1; i < times.length; i++) expect(times[i]).toBeGreaterThanOrEqual(times[i - 1]!);
    expect(times[0]).toBeGreaterThanOrEqual(Date.parse(world.truth.window.from));
    expect(times[times.length - 1]).toBeLessThan(Date.parse(world.truth.window.to));
    expect(events.length).toBeGreaterThan(SMALL.eventsTarget! * 0.8);
    expect(events.length).toBeLessThan(SMALL.eventsTarget! * 1.25);
    expect(new Set(events.map((e) => e.event.eventId)).size).toBe(events.length);
  });

  it('keeps every labelled event consistent with the ground truth', () => {
    const seen = new Set<string>();
    for (const { event, label } of events) {
      seen.add(label);
      const identity = event.userIdentity as Record<string, string>;
      const ip = event.sourceIpAddress as string;
      const key = truthOf.get(identity.accessKeyId ?? '');
      const where = `${label} ${identity.accessKeyId} ${ip} ${event.vpcId ?? ''}`;
      switch (label) {
        case 'legit':
          expect(key, where).toBeDefined();
          if (event.vpcId) expect(inAny(key!.vpcNetworks.find((v) => v.vpcId === event.vpcId)?.cidrs ?? [], ip), where).toBe(true);
          else expect(inAny(key!.publicNetworks, ip) && isPublicAddress(parseAddress(ip)!), where).toBe(true);
          break;
        case 'late-legit':
          expect(key!.lateLegitSources, where).toContain(parseAddress(ip)!.text);
          expect(inAny(key!.publicNetworks, ip), where).toBe(true);
          break;
        case 'one-off':
          expect(key!.oneOffSources, where).toContain(ip);
          expect(inAny(key!.publicNetworks, ip), where).toBe(false);
          break;
        case 'leak':
          expect(key!.leakSources, where).toContain(ip);
          expect(inAny(key!.publicNetworks, ip), where).toBe(false);
          break;
        case 'sts':
          expect(identity.accessKeyId.startsWith('STS.') && identity.type === 'assumed-role', where).toBe(true);
          break;
        case 'console':
          expect(identity.accessKeyId, where).toBeUndefined();
          break;
        case 'exempt':
          expect(isExemptService(event.serviceName as string, event.eventSource as string), where).toBe(true);
          if (!event.vpcId && !inAny(key!.publicNetworks, ip)) expect(key!.exemptOnlySources, where).toContain(ip);
          break;
        case 'internal':
          expect(ip, where).toBe('internal');
          break;
        case 'service':
          expect(ip, where).toMatch(/^[a-z]+\.aliyuncs\.com$/);
          break;
        case 'masked':
          expect(ip, where).toContain('XX');
          break;
      }
      if (label !== 'exempt') expect(isExemptService(event.serviceName as string, event.eventSource as string), where).toBe(false);
    }
    expect([...seen].sort()).toEqual(['console', 'exempt', 'internal', 'late-legit', 'leak', 'legit', 'masked', 'one-off', 'service', 'sts']);
  });

  it('shows ACL rejections only for keys with an ACL in force, and ordinary errors elsewhere', () => {
    const denied = events.filter((e) => isAclDenial(e.event.errorCode as string, e.event.errorMessage as string));
    expect(denied.length).toBeGreaterThan(0);
    for (const e of denied) expect(truthOf.get((e.event.userIdentity as Record<string, string>).accessKeyId)?.aclInForce, JSON.stringify(e.event)).not.toBeNull();
    const otherErrors = events.filter((e) => e.event.errorCode && !isAclDenial(e.event.errorCode as string, e.event.errorMessage as string));
    expect(otherErrors.length).toBeGreaterThan(events.length * 0.003);
    expect(otherErrors.length).toBeLessThan(events.length * 0.1);
  });

  it('rotates a key: same user and networks, a few days side by side, then the old key falls silent', () => {
    const next = world.truth.keys.find((k) => k.rotation?.replaces)!;
    const old = truthOf.get(next.rotation!.replaces!)!;
    expect(old.rotation?.replacedBy).toBe(next.accessKeyId);
    expect(next.userName).toBe(old.userName);
    expect(next.publicNetworks).toEqual(old.publicNetworks);
    const days = (id: string) => events.filter((e) => (e.event.userIdentity as Record<string, string>).accessKeyId === id).map((e) => (e.event.eventTime as string).slice(0, 10));
    const oldDays = days(old.accessKeyId);
    const nextDays = days(next.accessKeyId);
    expect(nextDays[0]! >= next.rotation!.on).toBe(true);
    expect(oldDays[oldDays.length - 1]! < nextDays[nextDays.length - 1]!).toBe(true);
    expect(oldDays.some((d) => nextDays.includes(d))).toBe(true);
  });

  it('moves a dynamic office line to a new address every few days inside its carrier pool', () => {
    const key = world.truth.keys.find((k) => k.profile === 'dynamic-office')!;
    const legit = events.filter((e) => e.label === 'legit' && (e.event.userIdentity as Record<string, string>).accessKeyId === key.accessKeyId);
    const perDay = new Map<string, Set<string>>();
    for (const e of legit) {
      const day = (e.event.eventTime as string).slice(0, 10);
      perDay.set(day, (perDay.get(day) ?? new Set()).add(e.event.sourceIpAddress as string));
    }
    expect([...perDay.values()].every((s) => s.size <= 2)).toBe(true);
    expect(new Set(legit.map((e) => e.event.sourceIpAddress)).size).toBeGreaterThan(2);
  });

  it('makes loud leaks fail and probe, and quiet leaks look ordinary', () => {
    for (const k of world.truth.keys) {
      for (const leak of k.leaks) {
        const calls = events.filter((e) => e.label === 'leak' && leak.sources.includes(e.event.sourceIpAddress as string));
        expect(calls.length, `${k.accessKeyId} ${leak.style}`).toBeGreaterThan(0);
        const errorShare = calls.filter((e) => e.event.errorCode).length / calls.length;
        const probing = calls.some((e) => ['ListUsers', 'CreateAccessKey', 'GetCallerIdentity', 'ListAccessKeys'].includes(e.event.eventName as string));
        if (leak.style === 'loud') expect(errorShare > 0.3 && probing).toBe(true);
        else expect(errorShare < 0.2 && calls.every((e) => e.event.eventRW === 'Read')).toBe(true);
        for (const e of calls) expect((e.event.eventTime as string).slice(0, 10) >= leak.from && (e.event.eventTime as string).slice(0, 10) <= leak.to).toBe(true);
      }
    }
  });
});

describe('writeHistory', () => {
  const written = (name: string, options: Omit<Parameters<typeof writeHistory>[1], 'outDir'>, world = buildWorld(SMALL)) =>
    writeHistory(world, { ...options, outDir: join(scratch, name) });

  it('writes the same bytes for the same seed and options', async () => {
    const options = { format: 'mixed' as const, malformedRate: 0.01, duplicateRate: 0.005, filesPerDay: 2 };
    await written('same-a', options);
    await written('same-b', options);
    const a = digest(join(scratch, 'same-a'));
    expect(Object.keys(a).length).toBeGreaterThan(10);
    expect(digest(join(scratch, 'same-b'))).toEqual(a);
    await written('other-seed', options, buildWorld({ ...SMALL, seed: 12 }));
    expect(digest(join(scratch, 'other-seed'))).not.toEqual(a);
  });

  for (const format of ['sls-export', 'bare', 'flattened', 'lookup', 'mixed'] as const) {
    it(`counts exactly what it writes as ${format}`, async () => {
      const world = buildWorld(SMALL);
      const result = await written(`counts-${format}`, { format, malformedRate: 0.01, duplicateRate: 0.004, gzip: format === 'bare' ? true : undefined });
      const back = readBack(result.files);
      expect(back.records).toBe(result.records);
      expect(result.records).toBe(result.events + result.duplicates + result.malformed);
      expect(back.broken).toBe(result.malformed);
      expect(result.malformed).toBeGreaterThan(0);
      expect(result.duplicates).toBeGreaterThan(0);
      expect(Object.values(result.malformedByKind).reduce((a, b) => a + b, 0)).toBe(result.malformed);
      const ids = back.valid.map((e) => e.eventId as string);
      expect(new Set(ids).size).toBe(result.events);
      expect(ids.length - new Set(ids).size).toBe(result.duplicates);
      // Exactly the generated events, and nothing invented by the injected damage.
      const expected = new Set([...generateEvents(world)].map((e) => e.event.eventId as string));
      expect(new Set(ids)).toEqual(expected);
      expect(result.labels.legit).toBeGreaterThan(0);
      expect(Object.values(result.labels).reduce((a, b) => a + b, 0)).toBe(result.events);
      expect(result.bytes).toBe(result.files.reduce((s, f) => s + statSync(f).size, 0));
      expect(JSON.parse(readFileSync(result.truthPath, 'utf8'))).toEqual(world.truth);
    });
  }

  it('writes SLS export lines whose embedded event is exactly the generated event, as JSON text', async () => {
    const world = buildWorld({ ...SMALL, eventsTarget: 4000 });
    const result = await written('sls-shape', { format: 'sls-export' }, world);
    const lines = result.files.flatMap((f) => readText(f).split('\n').filter(Boolean));
    const expected = [...generateEvents(world)];
    expect(lines).toHaveLength(expected.length);
    lines.forEach((text, i) => {
      const line = JSON.parse(text) as Record<string, string>;
      expect(line.__topic__).toBe('actiontrail_audit_event');
      expect(typeof line.event).toBe('string');
      const event = JSON.parse(line.event) as Record<string, unknown>;
      expect(line.__time__).toBe(String(Date.parse(event.eventTime as string) / 1000));
      expect(event).toEqual(expected[i]!.event);
    });
    // Denial messages carry quotes of their own: escaped twice, they must survive the round trip.
    expect(expected.some((e) => String(e.event.errorMessage ?? '').includes('"'))).toBe(true);
    expect(result.files.every((f) => /\/\d{4}\/\d{2}\/\d{2}\/[^/]+\.ndjson$/.test(f))).toBe(true);
  });

  it('injects every kind of malformed record over a large enough history', async () => {
    const result = await written('kinds', { format: 'sls-export', malformedRate: 0.02 });
    for (const kind of MALFORMED_KINDS) expect(result.malformedByKind[kind as MalformedKind], kind).toBeGreaterThan(0);
  });

  it('refuses a rate outside [0, 1] and an unknown format', async () => {
    await expect(written('bad-rate', { malformedRate: 2 })).rejects.toThrow(/malformedRate/);
    await expect(written('bad-format', { format: 'xml' as never })).rejects.toThrow(/format/);
  });
});

describe('the bundled demo', () => {
  const demoDir = join(root, 'fixtures', 'demo');
  const manifest = JSON.parse(readFileSync(join(demoDir, 'manifest.json'), 'utf8')) as DemoManifest;

  it('is exactly what the documented command regenerates', async () => {
    const again = await writeDemo(join(scratch, 'demo'));
    expect(again).toEqual(manifest);
    for (const f of manifest.files) expect(readText(join(scratch, 'demo', f)), f).toBe(readText(join(demoDir, f)));
    expect(readFileSync(join(scratch, 'demo', 'truth.json'), 'utf8')).toBe(readFileSync(join(demoDir, 'truth.json'), 'utf8'));
  });

  it('holds every shape, malformed records, a denial to explain and stays small', () => {
    expect(manifest.world).toEqual(DEMO_WORLD);
    expect(manifest.write).toEqual(DEMO_WRITE);
    expect(Object.keys(manifest.counts.shapes).sort()).toEqual(['bare', 'flattened', 'lookup', 'sls-export', 'sls-object']);
    expect(manifest.files.some((f) => f.endsWith('.gz'))).toBe(true);
    expect(manifest.counts.malformed).toBeGreaterThanOrEqual(3);
    const back = readBack(manifest.files.map((f) => join(demoDir, f)));
    expect(back.broken).toBe(manifest.counts.malformed);
    expect(back.valid.some((e) => isAclDenial(e.errorCode as string, e.errorMessage as string))).toBe(true);
    const bytes = listFiles(demoDir).reduce((s, f) => s + statSync(f).size, 0);
    expect(bytes).toBeLessThan(3.2 * 2 ** 20);
  });
});

describe('the CLI', () => {
  const cli = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', join(root, 'fixtures', 'generate.ts'), ...args], { cwd: root, encoding: 'utf8' });

  it('writes a history and prints its counts as JSON', () => {
    const out = join(scratch, 'cli');
    const run = cli(['--seed', '3', '--events', '3000', '--keys', '12', '--days', '10', '--out', out, '--format', 'bare', '--gzip', '--malformed-rate', '0.01', '--json']);
    expect(run.status, run.stderr).toBe(0);
    const summary = JSON.parse(run.stdout) as { events: number; malformed: number; files: number; records: number };
    expect(summary.events).toBeGreaterThan(2000);
    expect(listFiles(out).filter((f) => f.endsWith('.ndjson.gz'))).toHaveLength(summary.files);
    expect(readBack(listFiles(out).filter((f) => f.endsWith('.gz'))).broken).toBe(summary.malformed);
  });

  it('exits 1 with the usage on bad arguments', () => {
    for (const args of [['--seed', '1'], ['--seed', 'x', '--out', scratch], ['--seed', '1', '--out', scratch, '--format', 'xml'], ['--seed', '1', '--out', scratch, '--gzip-level', '0'], ['--bogus']]) {
      const run = cli(args);
      expect(run.status, args.join(' ')).toBe(1);
      expect(run.stderr).toMatch(/usage:/);
    }
  });
});
