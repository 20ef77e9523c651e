// analyze/findings.ts: which findings apply (asserted as sets of IDs), their order, the catalogue, the exit
// code, and `keyfence findings` as a real process on a real DuckDB file.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { Store } from '../ingest/store.ts';
import { EXIT } from '../model/errors.ts';
import { findingCatalog, findingMeta } from '../model/findings-catalog.ts';
import type { AuditEvent, KeyProfile, SourceUsage } from '../model/types.ts';
import { buildFindings, DEFAULT_FINDINGS_OPTIONS, findingsExitCode, mergeLastCalls, type FindingsInput } from '../analyze/findings.ts';
import { buildPoolIndex } from '../recommend/suspicion.ts';

const run = promisify(execFile);
const root = join(import.meta.dirname, '..');
const dir = mkdtempSync(join(tmpdir(), 'kf-findings-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const WINDOW = { from: '2026-10-01T00:00:00Z', to: '2026-10-31T00:00:00Z' };

function day(n: number, hour = 0): string {
  return new Date(Date.UTC(2026, 9, 1 + n, hour)).toISOString().replace('.000Z', 'Z');
}

function src(ip: string, o: Partial<SourceUsage> = {}): SourceUsage {
  return {
    ip, family: ip.includes(':') ? 6 : 4, calls: 100, days: 25, firstSeen: day(0), lastSeen: day(29),
    errorCalls: 0, deniedCalls: 0, sensitiveCalls: 0, services: ['Ecs'], userAgents: ['sdk'], ...o,
  };
}

function profile(id: string, o: Partial<KeyProfile> = {}): KeyProfile {
  const p: KeyProfile = {
    accessKeyId: id, keyKind: 'permanent', identityType: 'ram-user', userName: id.toLowerCase(), accountId: '1001',
    firstSeen: day(0), lastSeen: day(29), totalCalls: 0, publicSources: [src('203.0.113.10')], vpcSources: [], exemptOnlySources: [],
    stsCalls: 0, internalCalls: 0, serviceCalls: 0, invalidSourceCalls: 0, deniedCalls: 0, ...o,
  };
  p.totalCalls ||= [...p.publicSources, ...p.vpcSources].reduce((n, s) => n + s.calls, 0);
  return p;
}

function input(profiles: KeyProfile[], extra: Partial<FindingsInput> = {}): FindingsInput {
  return { window: WINDOW, newestEvent: day(29, 23), profiles, lastCalls: [], ...extra };
}

function ids(findings: { id: string; keyId: string }[]): string[] {
  return findings.map((f) => `${f.id} ${f.keyId}`).sort();
}

describe('findings (pure)', () => {
  it('finds nothing in a quiet, well-kept account', () => {
    const profiles = ['LTAIa', 'LTAIb', 'LTAIc'].map((k) => profile(k));
    const findings = buildFindings(input(profiles));
    expect(findings).toEqual([]);
    expect(findingsExitCode(findings)).toBe(EXIT.OK);
  });

  it('reports a root-account key in use as high severity, and asks for attention', () => {
    const findings = buildFindings(input([profile('LTAIroot', { identityType: 'root-account' })]));
    expect(ids(findings)).toEqual(['root-key-in-use LTAIroot']);
    expect(findings[0]!.severity).toBe('high');
    expect(findingsExitCode(findings)).toBe(EXIT.ATTENTION);
  });

  it('reports a permanent key used from VPC private addresses, suggesting a RAM role', () => {
    const p = profile('LTAIvpc', { vpcSources: [{ ...src('172.16.0.5'), vpcId: 'vpc-1' }, { ...src('172.16.0.6'), vpcId: 'vpc-2' }] });
    const [f] = buildFindings(input([p]));
    expect(f!.id).toBe('permanent-key-in-vpc');
    expect(f!.evidence).toMatchObject({ vpcs: ['vpc-1', 'vpc-2'], addresses: 2 });
    expect(f!.advice).toMatch(/RAM role/);
  });

  it('reports keys with no call for the dormant period before the newest event, and not the others', () => {
    const lastCalls = [
      { accessKeyId: 'LTAIold', userName: null, identityType: 'ram-user', lastSeen: '2026-08-15T00:00:00Z', calls: 3 },
      { accessKeyId: 'LTAIrecent', userName: null, identityType: 'ram-user', lastSeen: day(10), calls: 3 },
    ];
    const findings = buildFindings(input([], { lastCalls }));
    expect(ids(findings)).toEqual(['dormant-key LTAIold']);
    expect(findings[0]!.evidence).toMatchObject({ idleDays: 76 });
    expect(ids(buildFindings(input([], { lastCalls }), { ...DEFAULT_FINDINGS_OPTIONS, dormantDays: 15 }))).toEqual(['dormant-key LTAIold', 'dormant-key LTAIrecent']);
  });

  it('still sees a dormant key whose events were pruned into the retention rollup', () => {
    const fromEvents = [{ accessKeyId: 'LTAIlive', userName: 'svc', identityType: 'ram-user', lastSeen: day(28), calls: 9 }];
    const rollup = new Map([['LTAIpruned', '2026-07-01T00:00:00Z'], ['LTAIlive', '2026-07-02T00:00:00Z']]);
    const merged = mergeLastCalls(fromEvents, rollup);
    expect(merged.map((c) => [c.accessKeyId, c.lastSeen])).toEqual([['LTAIlive', day(28)], ['LTAIpruned', '2026-07-01T00:00:00Z']]);
    expect(ids(buildFindings(input([], { lastCalls: merged })))).toEqual(['dormant-key LTAIpruned']);
    expect(mergeLastCalls(fromEvents, rollup, ['LTAIlive'])).toEqual(fromEvents);
  });

  it('reports calls refused by an ACL with the sources they came from', () => {
    const p = profile('LTAIdenied', { deniedCalls: 4, publicSources: [src('203.0.113.10', { deniedCalls: 4 })] });
    const [f] = buildFindings(input([p]));
    expect(f!.id).toBe('acl-denied-calls');
    expect(f!.evidence.sources).toEqual([{ source: '203.0.113.10', vpcId: null, deniedCalls: 4 }]);
  });

  it('flags a key with far more sources than the account\'s usual, by a robust statistic', () => {
    // n sources, each in its own /24
    const sources = (n: number, base: number) => Array.from({ length: n }, (_, i) => src(`198.${base}.${i + 1}.7`));
    const peers = Array.from({ length: 6 }, (_, i) => profile(`LTAIpeer${i}`, { publicSources: sources(2 + (i % 2), i) }));
    const busy = profile('LTAIbusy', { publicSources: sources(40, 100) });
    const findings = buildFindings(input([...peers, busy]));
    expect(ids(findings)).toEqual(['unusual-source-count LTAIbusy']);
    expect(findings[0]!.evidence).toMatchObject({ networks: 40, median: 3, peers: 7 });
    // Forty addresses of one office block are one network: nothing unusual.
    const office = profile('LTAIoffice', { publicSources: Array.from({ length: 40 }, (_, i) => src(`203.0.113.${i + 1}`)) });
    expect(buildFindings(input([...peers, office]))).toEqual([]);
    // With too few peers there is no baseline to compare against.
    expect(buildFindings(input([peers[0]!, peers[1]!, busy]))).toEqual([]);
  });

  it('reports a burst from a never-seen, distant source with many errors as a possible leak (high)', () => {
    const p = profile('LTAIleaked', {
      publicSources: [
        src('203.0.113.10'),
        src('198.18.7.7', { calls: 20, errorCalls: 15, days: 1, firstSeen: day(20, 3), lastSeen: day(20, 5), sensitiveCalls: 2 }),
      ],
    });
    const findings = buildFindings(input([p]));
    expect(ids(findings)).toEqual(['possible-leak LTAIleaked']);
    expect(findings[0]!.evidence).toMatchObject({ source: '198.18.7.7', calls: 20 });
    expect(findingsExitCode(findings)).toBe(EXIT.ATTENTION);
  });

  it('reports rotating addresses spread over a block as a dynamic pool', () => {
    const rotating = Array.from({ length: 12 }, (_, i) => src(`47.96.${i * 7}.${10 + i}`, { calls: 2, days: 1, firstSeen: day(i), lastSeen: day(i) }));
    const p = profile('LTAIfc', { publicSources: rotating });
    expect(buildPoolIndex([p]).blocks.size).toBeGreaterThan(0);
    const pools = buildFindings(input([p])).filter((f) => f.id === 'dynamic-pool');
    // One finding per key, whatever the number of blocks; the blocks are in the evidence.
    expect(pools.map((f) => f.keyId)).toEqual(['LTAIfc']);
    expect((pools[0]!.evidence.pools as Array<{ cidr: string }>).length).toBeGreaterThan(0);
  });

  it('lists findings most severe first, then by ID and key, whatever the input order', () => {
    const profiles = [
      profile('LTAIz', { identityType: 'root-account', vpcSources: [{ ...src('10.0.0.1'), vpcId: 'vpc-1' }] }),
      profile('LTAIa', { vpcSources: [{ ...src('10.0.0.2'), vpcId: 'vpc-1' }], deniedCalls: 1 }),
    ];
    const findings = buildFindings(input(profiles));
    expect(findings.map((f) => `${f.severity} ${f.id} ${f.keyId}`)).toEqual([
      'high root-key-in-use LTAIz',
      'medium acl-denied-calls LTAIa',
      'low permanent-key-in-vpc LTAIa',
      'low permanent-key-in-vpc LTAIz',
    ]);
    expect(buildFindings(input([...profiles].reverse()))).toEqual(findings);
  });

  it('ignores STS profiles', () => {
    expect(buildFindings(input([profile('STS.x', { keyKind: 'sts', identityType: 'root-account' })]))).toEqual([]);
  });
});

describe('finding catalogue', () => {
  it('describes every finding with a title, a severity and advice', () => {
    const catalog = findingCatalog();
    expect(catalog.map((m) => m.id)).toEqual([
      'acl-denied-calls', 'dormant-key', 'dynamic-pool', 'permanent-key-in-vpc', 'possible-leak', 'possible-quiet-leak', 'root-key-in-use', 'unusual-source-count',
    ]);
    for (const m of catalog) {
      expect(m.title.length).toBeGreaterThan(10);
      expect(m.advice.length).toBeGreaterThan(20);
      expect(['high', 'medium', 'low', 'info']).toContain(m.severity);
    }
  });

  it('fails loudly on an unknown ID', () => {
    expect(() => findingMeta('no-such-finding')).toThrow(/unknown finding ID "no-such-finding"/);
    expect(() => findingMeta('toString')).toThrow(/unknown finding ID/);
  });
});

describe('keyfence findings (process)', () => {
  let seq = 0;
  function ev(e: Partial<AuditEvent>): AuditEvent {
    seq += 1;
    return {
      eventId: `f-${seq}`, eventTime: '2026-10-20T10:00:00Z', eventName: 'DescribeInstances', eventSource: 'ecs.aliyuncs.com', serviceName: 'Ecs',
      eventType: 'ApiCall', acsRegion: 'cn-hangzhou', sourceIp: '203.0.113.10', sourceKind: 'public', ipFamily: 4, vpcId: null, userAgent: 'sdk',
      errorCode: null, errorMessage: null, accessKeyId: 'LTAIok', keyKind: 'permanent', identityType: 'ram-user', accountId: '1001',
      principalId: 'p', userName: 'svc', exemptService: false, aclDenied: false, ...e,
    };
  }

  async function db(name: string, events: AuditEvent[]): Promise<string> {
    const path = join(dir, name);
    const store = await Store.open(path);
    try {
      const runId = await store.beginRun('file');
      await store.writeBatch({ runId, events, rejections: [], checkpoints: [] });
    } finally {
      store.close();
    }
    return path;
  }

  async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    try {
      const { stdout, stderr } = await run('node', ['bin/keyfence.js', 'findings', ...args], { cwd: root });
      return { code: 0, stdout, stderr };
    } catch (e) {
      const err = e as { code: number; stdout: string; stderr: string };
      return { code: err.code, stdout: err.stdout, stderr: err.stderr };
    }
  }

  it('exits 0 with no findings, and 4 with a root key in use and a dormant key', async () => {
    const clean = await db('clean.duckdb', [ev({}), ev({ eventTime: '2026-10-21T10:00:00Z' })]);
    const okRun = await cli(['--db', clean]);
    expect(okRun.code).toBe(0);
    expect(okRun.stdout).toMatch(/no findings/);

    const bad = await db('bad.duckdb', [
      ev({ accessKeyId: 'LTAIroot', identityType: 'root-account' }),
      ev({ accessKeyId: 'LTAIidle', eventTime: '2026-08-01T00:00:00Z' }),
    ]);
    const badRun = await cli(['--db', bad, '--json']);
    expect(badRun.code).toBe(4);
    const report = JSON.parse(badRun.stdout);
    expect(report.findings.map((f: { id: string; keyId: string }) => `${f.id} ${f.keyId}`)).toEqual(['root-key-in-use LTAIroot', 'dormant-key LTAIidle']);
    // A longer dormancy threshold leaves the idle key alone.
    const lenient = JSON.parse((await cli(['--db', bad, '--json', '--dormant-days', '90'])).stdout);
    expect(lenient.findings.map((f: { id: string }) => f.id)).toEqual(['root-key-in-use']);
    expect((await cli(['--db', bad, '--dormant-days', 'soon'])).code).toBe(1);
  });
});
