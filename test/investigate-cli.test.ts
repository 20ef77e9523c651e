// explain, denials, simulate, backtest and drift through real processes on a small real DuckDB file.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Store, sqlString } from '../ingest/store.ts';
import { loadReplayRows } from '../analyze/replay.ts';

const ROOT = join(import.meta.dirname, '..');
const CI = 'LTAIci000001';
const APP = 'LTAIapp00002';
let dir: string;
let db: string;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  json: any;
}

function keyfence(...args: string[]): Run {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin/keyfence.js'), ...args, '--db', db], { cwd: dir, encoding: 'utf8', env: { ...process.env, CI: '1' } });
  let json: unknown = null;
  if (args.includes('--json')) json = JSON.parse(r.stdout);
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, json };
}

function file(name: string, value: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, typeof value === 'string' ? value : JSON.stringify(value));
  return path;
}

/** 20 days of a CI key (two public addresses, one VPC source), an app key, STS traffic, two refused calls, a leak. */
async function buildStore(): Promise<void> {
  const store = await Store.open(db);
  const rows: string[] = [];
  const add = (time: string, key: string, o: { kind?: string; source?: string; ip: string; vpc?: string; exempt?: boolean; denied?: boolean; error?: string; name?: string; service?: string }) => {
    const family = o.ip.includes(':') ? 6 : 4;
    rows.push(`(${sqlString(`e${rows.length}`)}, TIMESTAMP ${sqlString(time)}, ${sqlString(o.name ?? 'DescribeInstances')}, 'ecs.aliyuncs.com', ${sqlString(o.service ?? 'Ecs')}, 'ApiCall', 'cn-hangzhou',
      ${sqlString(o.ip)}, ${sqlString(o.source ?? (o.vpc ? 'vpc' : 'public'))}, ${family}, ${o.vpc ? sqlString(o.vpc) : 'NULL'}, 'aliyun-sdk', ${o.error ? sqlString(o.error) : 'NULL'}, NULL,
      ${sqlString(key)}, ${sqlString(o.kind ?? 'permanent')}, 'ram-user', '1234', 'p', 'u', ${o.exempt ? 'true' : 'false'}, ${o.denied ? 'true' : 'false'}, NULL, 1)`);
  };
  for (let d = 1; d <= 20; d++) {
    const day = `2026-11-${String(d).padStart(2, '0')}`;
    for (let h = 0; h < 5; h++) add(`${day} 0${h}:00:00`, CI, { ip: '203.0.113.10' });
    add(`${day} 06:00:00`, CI, { ip: '203.0.113.11' });
    add(`${day} 07:00:00`, CI, { ip: '172.16.1.5', vpc: 'vpc-abc123' });
    add(`${day} 08:00:00`, APP, { ip: '198.51.100.7' });
    add(`${day} 09:00:00`, 'STS.NUsession', { kind: 'sts', ip: '192.0.2.1' });
  }
  for (const d of ['19', '20']) add(`2026-11-${d} 10:00:00`, CI, { ip: '203.0.113.99', denied: true, error: 'AccessKeyId.AccessPolicyDenied' });
  for (let i = 0; i < 5; i++) add(`2026-11-18 12:0${i}:00`, CI, { ip: '192.0.2.200', error: 'Forbidden.RAM', name: 'ListUsers', service: 'Ram' });
  add('2026-11-20 11:00:00', CI, { ip: '192.0.2.50', exempt: true, service: 'mns' });
  await store.run(`INSERT INTO events VALUES ${rows.join(',\n')}`);
  store.close();
}

const ACL_IN_FORCE = {
  account: { Version: 1, Status: 'Active', Statements: [{ Type: 'ClassicWhiteList', IPList: ['198.51.100.0/24'] }] },
  [CI]: JSON.stringify({ Version: 1, Status: 'Active', Statements: [
    { Type: 'ClassicWhiteList', IPList: ['203.0.113.10', '203.0.113.11'] },
    { Type: 'VPCWhiteList', Value: 'vpc-abc123', IPList: ['172.16.1.0/24'] },
  ] }),
};

const proposal = (ciPublic: string[]) => ({
  version: 1, generatedAt: '2026-11-20T00:00:00Z', window: { from: '2026-11-01T00:00:00Z', to: '2026-11-20T00:00:00Z' }, accountLevel: null,
  accessKeys: [
    { accessKeyId: CI, userName: 'ci', status: 'draft', public: { cidrs: ciPublic }, vpc: [{ vpcId: 'vpc-abc123', cidrs: ['172.16.1.0/24'] }], evidence: [], excluded: [], warnings: [] },
    { accessKeyId: APP, userName: 'app', status: 'draft', public: { cidrs: ['198.51.100.7'] }, vpc: [], evidence: [], excluded: [], warnings: [] },
  ],
});

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kf-investigate-'));
  db = join(dir, 'events.duckdb');
  await buildStore();
  file('acl.json', ACL_IN_FORCE);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('keyfence explain', () => {
  it('explains a refused call: the key-level ACL, the missing entry, the /32 fix, and the source\'s history', () => {
    const r = keyfence('explain', '--key', CI, '--ip', '203.0.113.99', '--acl', join(dir, 'acl.json'), '--json');
    expect(r.code).toBe(0);
    const { explanation, history } = r.json;
    expect(explanation.verdict).toMatchObject({ allowed: false, code: 'denied-not-in-public-rule', governedBy: 'key' });
    expect(explanation.fixes[0]).toMatchObject({ kind: 'add-entry', entry: '203.0.113.99/32', headroomLeft: 47 });
    expect(history.source).toMatchObject({ calls: 2, days: 2, deniedCalls: 2, errorCodes: ['AccessKeyId.AccessPolicyDenied'], services: ['Ecs'] });
    expect(history.neighbours).toMatchObject({ prefix: '203.0.113.0/24', addresses: 2, calls: 120 });
    expect(history.looks.newSource).toBe(true);
    const text = keyfence('explain', '--key', CI, '--ip', '203.0.113.99', '--acl', join(dir, 'acl.json'));
    expect(text.stdout).toContain('verdict: DENIED (denied-not-in-public-rule)');
    expect(text.stdout).toContain('* add 203.0.113.99/32 to the public rule of the key-level ACL (3/50 entries, 47 left)');
  });

  it('says an ACL cannot be the cause for an STS key', () => {
    const r = keyfence('explain', '--key', 'STS.NUsession', '--ip', '192.0.2.1', '--acl', join(dir, 'acl.json'), '--json');
    expect(r.code).toBe(0);
    expect(r.json.explanation.aclCannotBeCause).toMatch(/STS/);
  });

  it('refuses an unparseable --ip or --vpc with a usage error', () => {
    const r = keyfence('explain', '--key', CI, '--ip', '192.168.XX.XX');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('--ip "192.168.XX.XX" is not an IP address');
    const v = keyfence('explain', '--key', CI, '--ip', '172.16.1.5', '--vpc', 'subnet-1', '--json');
    expect(v.code).toBe(1);
    expect(v.json.error.message).toContain('--vpc "subnet-1" is not a VPC ID');
  });

  it('explains a VPC source against the rule for its VPC', () => {
    const r = keyfence('explain', '--key', CI, '--ip', '172.16.1.5', '--vpc', 'vpc-abc123', '--acl', join(dir, 'acl.json'), '--json');
    expect(r.json.explanation).toMatchObject({ verdict: { allowed: true, code: 'allowed-by-entry', matched: { vpcId: 'vpc-abc123', cidr: '172.16.1.0/24' } }, fixes: [] });
    expect(r.json.history.source).toMatchObject({ calls: 20, days: 20 });
  });
});

describe('keyfence denials', () => {
  it('groups refused calls by key and source, each explained, and asks for a person (exit 4)', () => {
    const r = keyfence('denials', '--since', '7d', '--acl', join(dir, 'acl.json'), '--json');
    expect(r.code).toBe(4);
    expect(r.json.totals).toEqual({ groups: 1, deniedCalls: 2, keys: 1 });
    const [g] = r.json.denials;
    expect(g).toMatchObject({ accessKeyId: CI, ip: '203.0.113.99', deniedCalls: 2, history: { allowedCalls: 0 } });
    expect(g.explanation.fixes[0].entry).toBe('203.0.113.99/32');
  });
});

describe('keyfence denials without refusals', () => {
  it('exits 0 when the window holds no refused call for the key', () => {
    const r = keyfence('denials', '--key', APP, '--json');
    expect(r.code).toBe(0);
    expect(r.json.totals).toEqual({ groups: 0, deniedCalls: 0, keys: 0 });
  });
});

describe('the replay aggregates', () => {
  it('keep governed addresses, fold STS and exempt traffic, and count days per source', async () => {
    const store = await Store.open(db, { readOnly: true });
    try {
      const rows = await loadReplayRows(store, { window: { from: '2026-11-01T00:00:00Z', to: '2026-11-21T00:00:00Z' } });
      const pick = (key: string, ip: string | null, exempt = false) => rows.find((r) => r.accessKeyId === key && r.ip === ip && r.exempt === exempt);
      expect(pick(CI, '203.0.113.10')).toMatchObject({ sourceKind: 'public', calls: 100, days: 20, deniedCalls: 0, firstSeen: '2026-11-01T00:00:00Z', lastSeen: '2026-11-20T04:00:00Z' });
      expect(pick(CI, '172.16.1.5')).toMatchObject({ sourceKind: 'vpc', vpcId: 'vpc-abc123', calls: 20 });
      expect(pick(CI, '203.0.113.99')).toMatchObject({ deniedCalls: 2, errorCalls: 2, days: 2 });
      expect(pick(CI, '192.0.2.200')).toMatchObject({ calls: 5, errorCalls: 5, sensitiveCalls: 5, days: 1 });
      expect(pick(CI, null, true)).toMatchObject({ calls: 1, sourceKind: 'public' });
      expect(rows.filter((r) => r.keyKind === 'sts')).toEqual([expect.objectContaining({ accessKeyId: 'STS.*', ip: null, calls: 20 })]);
    } finally {
      store.close();
    }
  });
});

describe('keyfence simulate', () => {
  it('exits 0 when only a leak-looking source would be denied', () => {
    const r = keyfence('simulate', file('wide.json', proposal(['203.0.113.10', '203.0.113.11', '203.0.113.99'])), '--since', '30d', '--json');
    expect(r.code).toBe(0);
    expect(r.json.breaksLegitimateTraffic).toBe(false);
    expect(r.json.totals).toMatchObject({ deniedCalls: 5, legitimateDeniedCalls: 0, suspectDeniedCalls: 5 });
    const ci = r.json.keys.find((k: any) => k.accessKeyId === CI);
    expect(ci.examples[0]).toMatchObject({ ip: '192.0.2.200', legitimate: false, suspicion: expect.stringMatching(/possible leak/) });
    expect(r.json.notGoverned).toMatchObject({ 'not-governed-sts': 20, 'not-governed-exempt-service': 1 });
  });

  it('exits 4 and names the sources that would break', () => {
    const r = keyfence('simulate', file('narrow.json', proposal(['203.0.113.10'])));
    expect(r.code).toBe(4);
    expect(r.stdout).toContain('BREAKS public 203.0.113.11: 20 calls on 20 days');
    expect(r.stdout).toContain('RESULT: legitimate traffic would break (exit 4)');
  });

  it('exits 0 when the only breaks are sources the proposal excludes on purpose', () => {
    const narrow = proposal(['203.0.113.10']);
    (narrow.accessKeys[0] as Record<string, unknown>).excluded = [
      { source: '203.0.113.11', code: 'below-min-days', reason: 'active on 1 day (minimum 2): looks like a one-off', calls: 20 },
      { source: '203.0.113.99', code: 'below-min-calls', reason: 'fewer calls than the minimum', calls: 2 },
    ];
    const r = keyfence('simulate', file('narrow-excluded.json', narrow), '--json');
    expect(r.code).toBe(0);
    expect(r.json.totals).toMatchObject({ legitimateDeniedCalls: 0, excludedDeniedCalls: 22, suspectDeniedCalls: 5 });
  });

  it('replays the ACLs in force alone, and a proposal over them', () => {
    const inForce = keyfence('simulate', '--acl', join(dir, 'acl.json'), '--json');
    expect(inForce.code).toBe(4);
    expect(inForce.json.keys.find((k: any) => k.accessKeyId === APP)).toMatchObject({ governedBy: 'account', deniedCalls: 0 });
    const overlay = keyfence('simulate', join(dir, 'wide.json'), '--acl', join(dir, 'acl.json'), '--json');
    expect(overlay.code).toBe(0);
  });

  it('rejects a bad proposal with the path of the offending entry', () => {
    const bad = proposal(['203.0.113.10']);
    bad.accessKeys[1]!.public.cidrs = ['198.51.100.7', '10.0.0.0/8'];
    const r = keyfence('simulate', file('bad.json', bad), '--json');
    expect(r.code).toBe(1);
    expect(r.json.error).toMatchObject({ type: 'InvalidInputError', context: { path: 'accessKeys[1].public.cidrs[1]' } });
    const unknown = proposal(['203.0.113.10']);
    unknown.accessKeys[1]!.accessKeyId = 'LTAInobody99';
    const u = keyfence('simulate', file('unknown.json', unknown));
    expect(u.code).toBe(1);
    expect(u.stderr).toContain('accessKeys[1].accessKeyId: unknown AccessKey LTAInobody99');
  });

  it('reads IMS documents that name a key the store never saw (an unused key), with a note on stderr and in aclNotes', () => {
    const unusedKey = 'LTAIunused0001';
    const dump = file('dump-with-unused-key.json', { ...ACL_IN_FORCE, [unusedKey]: { Version: 1, Status: 'Active', Statements: [{ Type: 'ClassicWhiteList', IPList: ['192.0.2.0/24'] }] } });
    const note = `${unusedKey}: AccessKey ${unusedKey} has no event in the store`;
    const sim = keyfence('simulate', '--acl', dump, '--json');
    expect(sim.code).toBe(4);
    expect(sim.stderr).toContain(`keyfence: note: ${note}`);
    expect(sim.json.keys.find((k: any) => k.accessKeyId === APP)).toMatchObject({ governedBy: 'account', deniedCalls: 0 });
    const explained = keyfence('explain', '--key', CI, '--ip', '203.0.113.99', '--acl', dump, '--json');
    expect(explained.code).toBe(0);
    expect(explained.json.aclNotes).toEqual([expect.stringContaining(note)]);
    expect(explained.json.explanation.verdict).toMatchObject({ allowed: false, code: 'denied-not-in-public-rule' });
    const overlay = keyfence('simulate', join(dir, 'wide.json'), '--acl', dump);
    expect(overlay.code).toBe(0);
  });

  it('needs something to simulate', () => {
    expect(keyfence('simulate').code).toBe(1);
  });
});

describe('keyfence drift', () => {
  it('reports new denied sources, unused entries, dormant and new keys from an approval record (exit 4)', () => {
    const approved = proposal(['203.0.113.10', '203.0.113.11', '198.18.0.0/24']);
    approved.accessKeys = [approved.accessKeys[0]!];
    const record = { kind: 'keyfence-approval', version: 1, approvedBy: 'ana', approvedAt: '2026-11-19T00:00:00Z', sha256: 'x', scopes: [CI], proposal: approved };
    const r = keyfence('drift', '--approved', file('approved.json', record), '--since', '2d', '--unused-days', '10', '--json');
    expect(r.code).toBe(4);
    expect(r.json.newDeniedSources.map((s: any) => [s.ip, s.legitimate])).toEqual([['203.0.113.99', true], ['192.0.2.200', false]]);
    expect(r.json.unusedEntries.map((u: any) => u.cidr)).toEqual(['198.18.0.0/24']);
    expect(r.json.newKeysWithoutAcl).toEqual([{ accessKeyId: APP, governedCalls: 2, governedBy: null }]);
    expect(r.json.dormantKeys).toEqual([]);
    // Over the ACLs in force, the account level covers the app key, and only the approval's entries are checked.
    const over = keyfence('drift', '--approved', join(dir, 'approved.json'), '--since', '2d', '--unused-days', '10', '--acl', join(dir, 'acl.json'), '--json');
    expect(over.json.newKeysWithoutAcl).toEqual([{ accessKeyId: APP, governedCalls: 2, governedBy: 'account' }]);
    expect(over.json.unusedEntries.map((u: any) => `${u.scope} ${u.cidr}`)).toEqual([`${CI} 198.18.0.0/24`]);
  });
});

describe('keyfence backtest', () => {
  it('recommends on the training window and replays the test window, with the ground-truth view', () => {
    const truth = file('truth.json', { keys: [
      { accessKeyId: CI, leakSources: ['192.0.2.200'], publicNetworks: ['203.0.113.10/31', '203.0.113.99/32'] },
      { accessKeyId: APP, leakSources: [], publicNetworks: ['198.51.100.7/32'] },
    ] });
    const r = keyfence('backtest', '--train', '14d', '--test', '6d', '--truth', truth, '--json');
    expect(r.code).toBe(0);
    expect(r.json.test).toEqual({ from: '2026-11-14T11:00:01Z', to: '2026-11-20T11:00:01Z' });
    expect(r.json.proposal.keys).toBeGreaterThan(0);
    expect(r.json.replay.governedCalls).toBeGreaterThan(0);
    // The refused 203.0.113.99 was never in training: the only legitimate break.
    expect(r.json.broken.map((b: any) => b.ip)).toEqual(['203.0.113.99']);
    expect(r.json.truth).toMatchObject({ leakSources: 1, leakSourcesAdmitted: 0, trueIpv4: '4', trueIpv6Slash64: '0' });
    expect(Number(r.json.truth.admittedPublicIpv4)).toBeGreaterThanOrEqual(3);
    expect(r.json.truth.falseDenyCalls).toBe(2);
  });
});
