import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAclText } from '../model/acl-file.ts';
import { EXIT } from '../model/errors.ts';
import type { AclProposal, AuditEvent } from '../model/types.ts';
import { Store } from '../ingest/store.ts';
import { DEFAULT_RECOMMEND_OPTIONS, recommend } from '../recommend/proposal.ts';
import { render } from '../recommend/render.ts';
import { WINDOW, profile, src, vsrc } from './helpers-recommend.ts';

const KEY_A = 'LTAI5tAaaaaaaaaaaaaaaaaa';
const KEY_B = 'LTAI5tBbbbbbbbbbbbbbbbbb';
const KEY_V = 'LTAI5tVvvvvvvvvvvvvvvvvv';

function sample(scope: 'key' | 'auto' = 'key'): AclProposal {
  const office = ['203.0.113.1', '203.0.113.2', '203.0.113.3', '203.0.113.5'].map((ip) => src(ip, 50, 20));
  return recommend(
    [
      profile(KEY_A, [...office, src('198.51.100.80', 40, 12), src('192.0.2.9', 2, 1, 3), src('45.33.10.10', 300, 2, 20, { errorCalls: 260 })]),
      profile(KEY_B, office.map((s) => ({ ...s }))),
      profile(KEY_V, [], [vsrc('vpc-bp1abc', '172.16.1.5', 90, 25), vsrc('vpc-bp1abc', '172.16.1.6', 30, 20)]),
    ],
    { ...DEFAULT_RECOMMEND_OPTIONS, scope, window: WINDOW, generatedAt: '2026-10-31T00:00:00Z' },
  );
}

describe('renderers', () => {
  it('json is the proposal contract, byte for byte', () => {
    const p = sample();
    expect(JSON.parse(render(p, 'json'))).toEqual(p);
    expect(Object.keys(JSON.parse(render(p, 'json')))).toEqual(['version', 'generatedAt', 'window', 'accountLevel', 'accessKeys', 'keysWithoutAcl', 'settings', 'warnings']);
  });

  it('api gives the AccessKeyPolicy documents, which read back as the same ACLs', () => {
    const p = sample('auto');
    const text = render(p, 'api');
    const docs = JSON.parse(text);
    expect(docs.account).toEqual({ Version: 1, Status: 'Active', Statements: [{ Type: 'ClassicWhiteList', IPList: ['203.0.113.0/29'] }] });
    expect(docs[KEY_V].Statements).toEqual([{ Type: 'VPCWhiteList', Value: 'vpc-bp1abc', IPList: ['172.16.1.4/30'] }]); // 2 of 4 seen: headroom 2 widens
    const loaded = parseAclText(text, { source: 'api output' });
    expect(loaded.shape).toBe('ims');
    expect(loaded.accountLevel?.public?.cidrs).toEqual(p.accountLevel!.public!.cidrs);
    for (const k of p.accessKeys) expect(loaded.keyLevel.get(k.accessKeyId)).toMatchObject({ public: k.public, vpc: k.vpc });
  });

  it('terraform declares one alicloud_ram_access_key_policy per key and says the account level is not confirmed', () => {
    const tf = render(sample('auto'), 'terraform');
    expect(tf).toMatch(/resource "alicloud_ram_access_key_policy" "key_ltai5taaaaaaaaaaaaaaaaaa" \{/);
    expect(tf).toMatch(/user_access_key_id = "LTAI5tAaaaaaaaaaaaaaaaaa"/);
    expect(tf).toMatch(/access_key_policy = jsonencode\(\{/);
    expect(tf).toMatch(/Type   = "VPCWhiteList"\n\s+Value  = "vpc-bp1abc"/);
    expect(tf).toMatch(/NOT CONFIRMED/);
    expect(tf).toMatch(/SetAccessKeyPolicyForAccount/);
  });

  it('console text lists each field comma-separated and warns where a rule is missing', () => {
    const text = render(sample(), 'console');
    expect(text).toMatch(/AccessKey LTAI5tAaaaaaaaaaaaaaaaaa \(RAM user user-aaaa\)\n {2}Public network: 198\.51\.100\.80\/32,203\.0\.113\.0\/29/);
    expect(text).toMatch(/AccessKey LTAI5tVvvvvvvvvvvvvvvvvv[^\n]*\n {2}Public network: \(no public rule[^\n]*EVERY call from a public address is denied\)\n {2}VPC vpc-bp1abc: 172\.16\.1\.4\/30\n/);
  });

  it('policy carries public entries only in an acs:SourceIp condition, with the VPC caveat', () => {
    const doc = JSON.parse(render(sample(), 'policy'));
    expect(doc.caveats.join(' ')).toMatch(/cannot express VPC private sources/);
    const a = doc.policies.find((x: { accessKeyIds: string[] }) => x.accessKeyIds.includes(KEY_A));
    expect(a.policyDocument.Statement[0]).toEqual({ Effect: 'Deny', Action: '*', Resource: '*', Condition: { NotIpAddress: { 'acs:SourceIp': ['198.51.100.80/32', '203.0.113.0/29'] } } });
    const v = doc.policies.find((x: { accessKeyIds: string[] }) => x.accessKeyIds.includes(KEY_V));
    expect(v.notes.join(' ')).toMatch(/VPC endpoints: this policy would deny those calls/);
  });

  it('markdown shows each entry with its evidence, what was excluded and why, and the warnings', () => {
    const md = render(sample(), 'markdown');
    expect(md).toMatch(/^# AccessKey network ACL proposal \(draft for review\)/);
    expect(md).toMatch(/\| public \| `203\.0\.113\.0\/29` \| 200 \| 20 \| 2026-10-01 \| 2026-10-20 \| 4 \|/);
    expect(md).toMatch(/\| `45\.33\.10\.10` \|  \| 300 \| [^|]*possible leak[^|]* \| possible-leak \|/);
    expect(md).toMatch(/\| `192\.0\.2\.9` \|  \| 2 \| [^|]*one-off[^|]* \| below-min-days \|/);
    expect(md).toMatch(/⚠ no public rule: the key was used only from VPCs/);
  });
});

describe('keyfence recommend (CLI, real store)', () => {
  let dir: string;
  let db: string;
  const cli = (...args: string[]) => spawnSync(process.execPath, [join(process.cwd(), 'bin/keyfence.js'), 'recommend', '--db', db, ...args], { encoding: 'utf8', env: { ...process.env, CI: '1' } });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kf-recommend-'));
    db = join(dir, 'events.duckdb');
    const events: AuditEvent[] = [];
    const add = (n: number, day: number, ip: string, extra: Partial<AuditEvent> = {}) => {
      const time = new Date(Date.parse('2026-10-01T08:00:00Z') + day * 86_400_000 + n * 60_000).toISOString().replace(/\.\d{3}Z$/, 'Z');
      events.push({
        eventId: `ev-${events.length}`, eventTime: time, eventName: 'DescribeInstances', eventSource: 'ecs.aliyuncs.com', serviceName: 'Ecs', eventType: 'ApiCall', acsRegion: 'cn-hangzhou',
        sourceIp: ip, sourceKind: 'public', ipFamily: 4, vpcId: null, userAgent: 'aliyun-sdk-go', errorCode: null, errorMessage: null, accessKeyId: KEY_A, keyKind: 'permanent',
        identityType: 'ram-user', accountId: '1234567890123456', principalId: '2', userName: 'ops', exemptService: false, aclDenied: false, ...extra,
      });
    };
    for (let d = 0; d < 20; d++) for (let n = 0; n < 3; n++) add(n, d, `203.0.113.${1 + n}`);
    for (let n = 0; n < 40; n++) add(n, 18, '45.33.10.10', { errorCode: 'Forbidden.RAM', errorMessage: 'denied' });
    for (let d = 0; d < 10; d++) add(0, d, '172.16.1.5', { accessKeyId: KEY_V, sourceKind: 'vpc', vpcId: 'vpc-bp1abc' });
    const store = await Store.open(db);
    try {
      const runId = await store.beginRun('file');
      await store.writeBatch({ runId, events, rejections: [], checkpoints: [] });
    } finally {
      store.close();
    }
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('prints the proposal JSON and exits 4 when a possible leak was excluded', () => {
    const r = cli('--json');
    expect(r.status).toBe(EXIT.ATTENTION);
    const p = JSON.parse(r.stdout) as AclProposal;
    expect(p.accessKeys.map((k) => k.accessKeyId)).toEqual([KEY_A, KEY_V]);
    expect(p.accessKeys[0]!.excluded.map((e) => e.code)).toContain('possible-leak');
  });

  it('writes the chosen format to -o and exits 0 when nothing needs attention', () => {
    const out = join(dir, 'acl.tf');
    const r = cli('--key', KEY_V, '--format', 'terraform', '-o', out);
    expect(r.status).toBe(EXIT.OK);
    expect(r.stdout).toBe('');
    expect(readFileSync(out, 'utf8')).toMatch(/resource "alicloud_ram_access_key_policy"/);
  });

  it('treats contradictory flags, bad numbers and unknown keys as usage errors', () => {
    expect(cli('--json', '--format', 'markdown').status).toBe(EXIT.USAGE);
    expect(cli('--window', '7d', '--from', '2026-10-01').status).toBe(EXIT.USAGE);
    expect(cli('--min-days', '0').status).toBe(EXIT.USAGE);
    expect(cli('--headroom', '0.5').status).toBe(EXIT.USAGE);
    expect(cli('--include', '010.1.1.1').status).toBe(EXIT.USAGE);
    const unknown = cli('--key', 'LTAI5tNotInTheStore0000', '--json');
    expect(unknown.status).toBe(EXIT.USAGE);
    expect(JSON.parse(unknown.stdout).error.message).toMatch(/LTAI5tNotInTheStore0000/);
  });
});
