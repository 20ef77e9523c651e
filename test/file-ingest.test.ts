import { spawnSync } from 'node:child_process';
import { SAMPLES_DIR } from './samples.ts';
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ingestFiles, type FileOutcome } from '../ingest/file-ingest.ts';
import { QUARANTINE_RAW_CAP_CHARS, Store } from '../ingest/store.ts';
import { encodePosition, expandInputs } from '../ingest/sources/file.ts';
import { printIngestSummary } from '../bin/commands/ingest.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const SAMPLES = SAMPLES_DIR;
let dir: string;
let dbCount = 0;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'kf-file-ingest-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function freshStore(): Promise<Store> {
  return Store.open(join(dir, `db${++dbCount}.duckdb`));
}

function event(id: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    eventId: id,
    eventTime: '2026-11-01T02:03:04Z',
    eventName: 'DescribeInstances',
    eventSource: 'ecs.cn-hangzhou.aliyuncs.com',
    serviceName: 'Ecs',
    acsRegion: 'cn-hangzhou',
    sourceIpAddress: '203.0.113.7',
    errorCode: '',
    errorMessage: '',
    requestId: `R-${id}`,
    userIdentity: { type: 'ram-user', accessKeyId: 'LTAI5tAbc', accountId: '1001', principalId: '2002', userName: 'ci-bot' },
    ...extra,
  };
}
const slsLine = (e: Record<string, unknown>): string => JSON.stringify({ __topic__: 'actiontrail_audit_event', __source__: 'actiontrail', __time__: '1762000000', event: JSON.stringify(e) });

function write(name: string, text: string | Buffer): string {
  const p = join(dir, name);
  mkdirSync(dirname(p), { recursive: true });
  writeFileSync(p, text);
  return p;
}

/** Ingests with a per-file record of how each file was read. */
async function ingest(store: Store, paths: string[], options: { fastPath?: boolean; batchRecords?: number; ignoreCheckpoints?: boolean } = {}) {
  const how = new Map<string, FileOutcome>();
  const summary = await ingestFiles(store, paths, { ...options, onFileDone: (p, h) => how.set(p, h) });
  return { summary, how };
}

const eventsTable = (store: Store) => store.query(`SELECT * EXCLUDE (run_id) FROM events ORDER BY event_id`);
const quarantineTable = (store: Store) => store.query(`SELECT source, location, reason, detail, raw, raw_bytes FROM quarantine ORDER BY source, location`);

/** Lines covering every shape and classification edge the fast path must agree with normalizeRecord on. */
function edgeCaseLines(): string[] {
  const ips: Array<[string | number | undefined, string | undefined]> = [
    ['203.0.113.7', undefined], ['10.1.2.3', undefined], ['100.100.80.1', undefined], ['100.64.0.1', undefined], ['100.128.0.1', undefined],
    ['172.16.1.5', 'vpc-a'], ['172.32.0.1', undefined], ['192.168.1.1', undefined], ['169.254.1.1', undefined], ['127.0.0.1', undefined],
    ['0.1.2.3', undefined], ['224.0.0.1', undefined], ['255.255.255.255', undefined], ['1.2.3.4', ''],
    ['2001:DB8:0:0:0:0:0:1', undefined], ['2408:4000::5', 'vpc-a'], ['::ffff:203.0.113.9', undefined], ['::ffff:10.0.0.1', 'vpc-b'], ['fd00::1', undefined],
    ['fe80::1%eth0', undefined], ['internal', undefined], ['Internal', 'vpc-a'], [' internal', undefined], ['ecs.aliyuncs.com', undefined],
    ['ecs.aliyuncs.com', 'vpc-a'], ['ECS.Aliyuncs.COM', undefined], ['192.168.XX.XX', undefined], ['XX.XX.XX.XX', undefined], ['010.1.1.1', undefined],
    ['1.2.3.256', undefined], [' 1.2.3.4 ', undefined], ['1.2.3', undefined], ['not an ip', undefined], ['', undefined], [undefined, undefined],
    [undefined, 'vpc-a'], [12345, undefined], ['1.2.3.4', 'vpc-c'],
  ];
  const lines: string[] = [];
  ips.forEach(([ip, vpc], i) => lines.push(slsLine(event(`ip-${i}`, { sourceIpAddress: ip, vpcId: vpc }))));
  const identities: unknown[] = [
    { type: 'assumed-role', accessKeyId: 'STS.NUQ' }, { type: 'ram-user', accessKeyId: 'STS.x' }, { type: 'assumed-role' }, { type: 'root-account', accessKeyId: 'f6IzzFZMmzNwEI4d' },
    { type: 'ram-user' }, { type: 'ram-user', accessKeyId: '' }, {}, 'alice', ['x'], null, { type: 'ram-user', accessKeyId: 'LTAI1', accountId: 1234567890123456 },
  ];
  identities.forEach((u, i) => lines.push(slsLine(event(`id-${i}`, { userIdentity: u }))));
  const services: Array<[string | undefined, string | undefined]> = [
    ['Mns', undefined], [' mns ', undefined], ['X', 'eventbridge.cn-hangzhou.aliyuncs.com'], ['Hologres', 'x'], ['Ecs', 'ecs.aliyuncs.com'], [undefined, 'MNS-open.cn.aliyuncs.com'], ['', ''],
  ];
  services.forEach(([serviceName, eventSource], i) => lines.push(slsLine(event(`svc-${i}`, { serviceName, eventSource }))));
  const errors: Array<[string, string]> = [
    ['AccessKeyId.AccessPolicyDenied', ''], ['', 'Specified access key DENIED due to access policy.'], ['Forbidden.RAM', 'no'], ['accesskeyid.accesspolicydenied', 'x'],
  ];
  errors.forEach(([errorCode, errorMessage], i) => lines.push(slsLine(event(`err-${i}`, { errorCode, errorMessage }))));
  const times = ['2021-01-01T08:00:00+08:00', '2021-02-30T00:00:00Z', '2021-01-01 00:00:00', '2021-01-01T00:00:00.5Z', 'never', 1609459200, ''];
  times.forEach((eventTime, i) => lines.push(slsLine(event(`time-${i}`, { eventTime }))));
  lines.push(
    JSON.stringify({ __topic__: 'actiontrail_event', owner_id: '1', event: event('shape-object') }),
    JSON.stringify(event('shape-bare')),
    JSON.stringify({ 'event.eventId': 'shape-flat', 'event.eventTime': '2026-11-01T02:03:04Z', 'event.userIdentity.accessKeyId': 'LTAI9', 'event.sourceIpAddress': '198.51.100.1' }),
    JSON.stringify({ Events: [event('shape-lookup-1'), event('shape-lookup-2', { sourceIpAddress: '2001:db8::7' })] }),
    JSON.stringify([event('shape-array-1'), event('shape-array-2')]),
    JSON.stringify({ ...event('shape-bare-flat'), 'event.eventId': 'shape-flat-wins' }),
    JSON.stringify({ __topic__: 'x', event: '{"eventId": ' }),
    JSON.stringify({ __topic__: 'x', event: 5 }),
    JSON.stringify({ __topic__: 'x', event: '[1,2]' }),
    JSON.stringify({ __topic__: 'x', event: null, eventId: 'shape-null-event', eventTime: '2026-11-01T02:03:04Z', userIdentity: {} }),
    slsLine(event(' padded-id')),
    slsLine(event('   ')),
    slsLine(event('')),
    slsLine({ ...event('x'), eventId: undefined }),
    slsLine({ ...event('x'), eventId: 42 }),
    slsLine(event('dup-1')),
    slsLine(event('dup-1', { sourceIpAddress: '198.51.100.99' })),
    slsLine(event('unicode-ué', { userAgent: 'agent \u2603 \ud83d\ude00', serviceName: '\u00a0Mns\u3000' })),
    slsLine(event('replacement', { userAgent: 'bad \ufffd byte' })),
    '{"eventId": "broken", ',
    '{"eventId": "trailing-comma", "eventTime": "2026-11-01T02:03:04Z", "userIdentity": {"type": "ram-user",}}',
    '{"eventId": "nan", "eventTime": "2026-11-01T02:03:04Z", "userIdentity": {}, "eventVersion": NaN}',
    JSON.stringify({ __topic__: 'x', event: '{"eventId": "inner-comma", "eventTime": "2026-11-01T02:03:04Z", "userIdentity": {}, }' }),
    slsLine(event('comma-in-value', { userAgent: 'a,} b', errorMessage: 'x: NaN' })),
    '"just a string"',
    '42',
    '{}',
    '   ',
    '',
    `${slsLine(event('crlf'))}\r`,
  );
  return lines;
}

describe('the SQL fast path and normalizeRecord agree', () => {
  it('on every shape and classification edge case, line for line', async () => {
    const file = write('edge/edge.ndjson', `${edgeCaseLines().join('\n')}\n`);
    const fast = await freshStore();
    const slow = await freshStore();
    try {
      const a = await ingest(fast, [file]);
      const b = await ingest(slow, [file], { fastPath: false });
      expect(a.how.get(file)).toBe('fast');
      expect(b.how.get(file)).toBe('stream');
      expect(await eventsTable(fast)).toEqual(await eventsTable(slow));
      expect(await quarantineTable(fast)).toEqual(await quarantineTable(slow));
      const { runId: _a, seconds: _s, eventsPerSecond: _e, ...fastSummary } = a.summary;
      const { runId: _b, seconds: _t, eventsPerSecond: _f, ...slowSummary } = b.summary;
      expect(fastSummary).toEqual(slowSummary);
      // spot checks that the comparison compares something
      expect(await fast.query(`SELECT source_kind, source_ip, ip_family FROM events WHERE event_id IN ('ip-14', 'ip-16', 'ip-26') ORDER BY event_id`)).toEqual([
        { source_kind: 'public', source_ip: '2001:db8::1', ip_family: 6 },
        { source_kind: 'public', source_ip: '203.0.113.9', ip_family: 4 },
        { source_kind: 'invalid', source_ip: '192.168.XX.XX', ip_family: null },
      ]);
      expect(a.summary.duplicates).toBe(1);
    } finally {
      fast.close();
      slow.close();
    }
  });

  it('on random source addresses, VPC IDs, services and error texts', async () => {
    const octet = fc.oneof(fc.integer({ min: 0, max: 255 }).map(String), fc.constantFrom('256', '01', '00', '300', ' 1', 'XX'));
    const v4 = fc.tuple(octet, octet, octet, octet).map((o) => o.join('.'));
    const v6 = fc.array(fc.integer({ min: 0, max: 0xffff }).map((n) => n.toString(16)), { minLength: 8, maxLength: 8 }).map((g) => g.join(':'));
    const v6short = fc.tuple(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 0xffff })).map(([a, b]) => `${a.toString(16).toUpperCase()}::${b.toString(16)}`);
    const ip = fc.oneof(v4, v4, v6, v6short, fc.constantFrom('internal', 'ecs.aliyuncs.com', 'a.b', '1.2.3.4.5', ''), fc.string({ maxLength: 12 }));
    const record = fc.record({
      ip,
      vpc: fc.option(fc.constantFrom('vpc-1', 'vpc-2', ''), { nil: undefined }),
      service: fc.option(fc.constantFrom('Mns', 'ecs', 'EventBridge', 'hologres', 'Ons', 'x'), { nil: undefined }),
      error: fc.option(fc.constantFrom('AccessKeyId.AccessPolicyDenied', 'denied due to access policy', 'Throttling'), { nil: undefined }),
      key: fc.option(fc.constantFrom('LTAIabc', 'STS.abc', 'old16charsKeyId0', ''), { nil: undefined }),
    });
    const records = fc.sample(record, { numRuns: 1500, seed: 20261123 });
    const lines = records.map((r, i) => slsLine(event(`r-${i}`, { sourceIpAddress: r.ip, vpcId: r.vpc, serviceName: r.service, errorCode: r.error, userIdentity: { type: 'ram-user', accessKeyId: r.key } })));
    const file = write('edge/random.ndjson', `${lines.join('\n')}\n`);
    const fast = await freshStore();
    const slow = await freshStore();
    try {
      expect((await ingest(fast, [file])).how.get(file)).toBe('fast');
      await ingest(slow, [file], { fastPath: false });
      const fastRows = await eventsTable(fast);
      expect(fastRows).toHaveLength(records.length);
      expect(fastRows).toEqual(await eventsTable(slow));
    } finally {
      fast.close();
      slow.close();
    }
  });
});

describe('file formats and layouts', () => {
  it('reads gzip, JSON arrays, pretty-printed documents, directory trees and globs, each file once', async () => {
    const tree = join(dir, 'oss');
    write('oss/2026/11/01/a.json.gz', gzipSync(`${[1, 2, 3].map((i) => slsLine(event(`gz-${i}`))).join('\n')}\n`));
    write('oss/2026/11/02/b.json', JSON.stringify([event('arr-1'), event('arr-2')], null, 2));
    write('oss/2026/11/02/c.json', `${JSON.stringify(event('doc-1'), null, 2)}\n${JSON.stringify(event('doc-2'), null, 2)}\n`);
    write('oss/2026/11/03/notes.md', 'not events');
    const store = await freshStore();
    try {
      const { summary, how } = await ingest(store, [tree, join(tree, '**/*.gz')]);
      expect(summary).toMatchObject({ read: 7, inserted: 7, quarantined: 0, errors: [] });
      expect([...how.values()].sort()).toEqual(['fast', 'stream', 'stream']);
      expect((await store.query(`SELECT count(*) AS n FROM events`))[0]).toEqual({ n: 7 });
    } finally {
      store.close();
    }
    const { files } = await expandInputs([join(tree, '2026/*/0?/*.json')]);
    expect(files.map((f) => f.path.slice(tree.length))).toEqual(['/2026/11/02/b.json', '/2026/11/02/c.json']);
  });

  it('ingests the real samples with the classification their README gives', async () => {
    const store = await freshStore();
    try {
      const { summary } = await ingest(store, [SAMPLES]);
      expect(summary).toMatchObject({ read: 3, inserted: 3, quarantined: 0 });
      expect(await store.query(`SELECT access_key_id, key_kind, source_kind, source_ip, exempt, error_code FROM events ORDER BY key_kind`)).toEqual([
        { access_key_id: null, key_kind: 'none', source_kind: 'public', source_ip: '42.120.74.96', exempt: false, error_code: null },
        { access_key_id: 'f6IzzFZMmzNwEI4d', key_kind: 'permanent', source_kind: 'public', source_ip: '42.120.74.96', exempt: false, error_code: null },
        { access_key_id: 'STS.NUQNP4PiGyckMsNiGELCs****', key_kind: 'sts', source_kind: 'invalid', source_ip: '192.168.XX.XX', exempt: false, error_code: null },
      ]);
    } finally {
      store.close();
    }
  });
});

describe('files read together by the fast path', () => {
  it('store an event repeated across files of one group once, and name the right line after blank lines', async () => {
    const a = write('group/a.ndjson', `${slsLine(event('g-1'))}\n${slsLine(event('g-2'))}\n`);
    const b = write('group/b.ndjson', `\n\n${slsLine(event('g-2'))}\n   \nnot json\n${slsLine(event('g-3'))}\n`);
    const store = await freshStore();
    try {
      const { summary, how } = await ingest(store, [a, b]);
      expect([how.get(a), how.get(b)]).toEqual(['fast', 'fast']);
      expect(summary).toMatchObject({ read: 5, inserted: 3, duplicates: 1, quarantined: 1 });
      expect(await store.query(`SELECT event_id FROM events ORDER BY event_id`)).toEqual([{ event_id: 'g-1' }, { event_id: 'g-2' }, { event_id: 'g-3' }]);
      expect(await store.query(`SELECT source, location FROM quarantine`)).toEqual([{ source: b, location: 'line 5' }]);
    } finally {
      store.close();
    }
  });
});

describe('re-ingest and resume', () => {
  it('skips files already fully ingested, and reads a changed file again without storing anything twice', async () => {
    const file = write('again/a.ndjson', `${[1, 2, 3].map((i) => slsLine(event(`again-${i}`))).join('\n')}\n`);
    const store = await freshStore();
    try {
      expect((await ingest(store, [file])).summary).toMatchObject({ read: 3, inserted: 3 });
      expect((await ingest(store, [file])).summary).toMatchObject({ read: 0, inserted: 0, skipped: 1 });
      appendFileSync(file, `${slsLine(event('again-4'))}\n`);
      utimesSync(file, new Date(), new Date(Date.now() + 5000));
      expect((await ingest(store, [file])).summary).toMatchObject({ read: 4, inserted: 1, duplicates: 3, skipped: 0 });
      expect((await store.query(`SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM events`))[0]).toEqual({ n: 4, d: 4 });
    } finally {
      store.close();
    }
  });

  it('resumes a partly ingested file after its checkpoint', async () => {
    const lines = [1, 2, 3, 4, 5].map((i) => slsLine(event(`resume-${i}`)));
    const file = write('resume/r.ndjson', `${lines.join('\n')}\n`);
    const store = await freshStore();
    try {
      const { files } = await expandInputs([file]);
      const byte = Buffer.byteLength(`${lines.slice(0, 2).join('\n')}\n`);
      const runId = await store.beginRun('file');
      await store.writeBatch({ runId, events: [], rejections: [], checkpoints: [{ source: files[0]!.source, position: encodePosition({ records: 2, lines: 2, byte }), fingerprint: files[0]!.fingerprint }] });
      const { summary, how } = await ingest(store, [file]);
      expect(how.get(file)).toBe('stream');
      expect(summary).toMatchObject({ read: 3, inserted: 3 });
      expect(await store.query(`SELECT event_id FROM events ORDER BY event_id`)).toEqual([3, 4, 5].map((i) => ({ event_id: `resume-${i}` })));
      expect(await store.getCheckpoint(files[0]!.source)).toMatchObject({ complete: true });
    } finally {
      store.close();
    }
  });
});

describe('bad input', () => {
  it('quarantines each bad record with its file, line, reason and raw text, and ingests everything else', async () => {
    const big = slsLine(event('big', { userAgent: 'x'.repeat(10 * 1024 * 1024) }));
    const file = write('bad/mixed.ndjson', [
      slsLine(event('good-1')),
      '{"__topic__": "x", "event": "{\\"eventId\\": ',
      slsLine({ ...event('x'), eventId: undefined }),
      slsLine({ ...event('no-identity'), userIdentity: undefined }),
      slsLine(event('bad-ip', { sourceIpAddress: '999.1.2.3' })),
      big,
      slsLine(event('good-2')),
    ].join('\n'));
    const store = await freshStore();
    try {
      const { summary } = await ingest(store, [file]);
      expect(summary).toMatchObject({ read: 7, inserted: 3, quarantined: 4 });
      expect(summary.quarantinedByReason).toEqual({ 'line-too-long': 1, 'malformed-json': 1, 'missing-event-id': 1, 'missing-user-identity': 1 });
      expect(await store.query(`SELECT event_id, source_kind, source_ip FROM events ORDER BY event_id`)).toEqual([
        { event_id: 'bad-ip', source_kind: 'invalid', source_ip: '999.1.2.3' },
        { event_id: 'good-1', source_kind: 'public', source_ip: '203.0.113.7' },
        { event_id: 'good-2', source_kind: 'public', source_ip: '203.0.113.7' },
      ]);
      const q = await store.query<{ location: string; reason: string; detail: string; raw: string; raw_bytes: number }>(`SELECT location, reason, detail, raw, raw_bytes FROM quarantine ORDER BY location`);
      expect(q.map((r) => [r.location, r.reason])).toEqual([['line 2', 'malformed-json'], ['line 3', 'missing-event-id'], ['line 4', 'missing-user-identity'], ['line 6', 'line-too-long']]);
      for (const r of q) expect(r.detail).toContain(`${file}:${r.location.slice(5)}`);
      expect(q[0]!.raw).toBe('{"__topic__": "x", "event": "{\\"eventId\\": ');
      expect(q[3]!.raw.length).toBe(QUARANTINE_RAW_CAP_CHARS);
      expect(q[3]!.raw_bytes).toBe(Buffer.byteLength(big));
    } finally {
      store.close();
    }
  });

  it('keeps what a truncated gzip file held up to the cut and names the line where it stops', async () => {
    const gz = gzipSync(`${Array.from({ length: 2000 }, (_, i) => slsLine(event(`trunc-${i}`))).join('\n')}\n`);
    const file = write('bad/cut.ndjson.gz', gz.subarray(0, Math.floor(gz.length * 0.6)));
    const store = await freshStore();
    try {
      const { summary } = await ingest(store, [file]);
      expect(summary.inserted).toBeGreaterThan(100);
      expect(summary.inserted).toBeLessThan(2000);
      expect(summary.quarantinedByReason).toEqual({ 'truncated-input': 1 });
      expect(summary.errors).toHaveLength(1);
      expect(summary.errors[0]).toMatch(new RegExp(`^${file}: gzip stream is truncated.* at line ${summary.inserted + 1}`));
      const ids = await store.query<{ event_id: string }>(`SELECT event_id FROM events`);
      expect(new Set(ids.map((r) => r.event_id))).toEqual(new Set(Array.from({ length: summary.inserted }, (_, i) => `trunc-${i}`)));
    } finally {
      store.close();
    }
  });

  it('rejects a binary file, notes an empty file, reports a missing path, and still ingests the rest', async () => {
    const good = write('mix/good.ndjson', `${slsLine(event('mix-good'))}\n`);
    const binary = write('mix/blob.json', Buffer.from([0x7b, 0x00, 0x01, 0xff, 0xfe, 0x00, 0x10, 0x22]));
    const empty = write('mix/empty.json', '');
    const missing = join(dir, 'mix/does-not-exist.json');
    const store = await freshStore();
    try {
      const { summary } = await ingest(store, [binary, empty, missing, good]);
      expect(summary).toMatchObject({ inserted: 1, quarantined: 2, quarantinedByReason: { 'binary-data': 1, 'unreadable-file': 1 } });
      expect(summary.errors).toEqual([`${missing}: no such file or directory`, `${binary}: binary file (NUL bytes at the start), not JSON text`]);
      expect(summary.notes).toEqual([`${empty}: empty file, nothing to ingest`]);
      const q = await store.query(`SELECT source, reason FROM quarantine ORDER BY reason`);
      expect(q).toEqual([{ source: binary, reason: 'binary-data' }, { source: missing, reason: 'unreadable-file' }]);
      expect(printIngestSummary(summary, true)).toBe(2);
    } finally {
      store.close();
    }
  });

  it('falls back to streaming when DuckDB cannot read a file, and loses nothing', async () => {
    const file = write('bad/latin1.ndjson', Buffer.concat([Buffer.from(`${slsLine(event('l1-a'))}\n`), Buffer.from([0x7b, 0xe9, 0x22, 0x0a]), Buffer.from(`${slsLine(event('l1-b'))}\n`)]));
    const store = await freshStore();
    try {
      const { summary } = await ingest(store, [file]);
      expect(summary).toMatchObject({ read: 3, inserted: 2, quarantined: 1, quarantinedByReason: { 'binary-data': 1 } });
      expect(summary.notes).toEqual([expect.stringMatching(new RegExp(`^${file}: read record by record \\(DuckDB could not read it: `))]);
    } finally {
      store.close();
    }
  });
});

describe('files that are mostly not ActionTrail NDJSON', () => {
  it('are streamed with bounded memory instead of pulled into one fast-path transaction', async () => {
    const lines = Array.from({ length: 1_500 }, (_, i) => `plain log line ${i}`);
    lines.splice(500, 0, slsLine(event('among-logs')));
    const file = write('logs/app.log', `${lines.join('\n')}\n`);
    const store = await freshStore();
    process.env.KEYFENCE_FAST_MAX_DEFERRED = '1000';
    try {
      const { summary, how } = await ingest(store, [file]);
      expect(how.get(file)).toBe('stream');
      expect(summary).toMatchObject({ read: 1_501, inserted: 1, quarantined: 1_500 });
      expect(summary.notes?.[0]).toMatch(/too many to normalize in one transaction/);
    } finally {
      delete process.env.KEYFENCE_FAST_MAX_DEFERRED;
      store.close();
    }
  });
});

describe('the ingest command', () => {
  const cli = (args: string[]) => spawnSync(process.execPath, [join(root, 'bin/keyfence.js'), ...args], { encoding: 'utf8', cwd: dir, timeout: 60_000 });

  it('prints a JSON summary and exits 2 when input was partly rejected, 0 when clean, 1 on usage errors', () => {
    const db = join(dir, 'cli.duckdb');
    const file = write('cli/in.ndjson', `${slsLine(event('cli-1'))}\nnot json\n`);
    const partial = cli(['ingest', file, '--db', db, '--json']);
    expect(partial.status).toBe(2);
    expect(JSON.parse(partial.stdout)).toMatchObject({ read: 2, inserted: 1, duplicates: 0, quarantined: 1, quarantinedByReason: { 'malformed-json': 1 } });
    const clean = cli(['ingest', write('cli/ok.ndjson', `${slsLine(event('cli-2'))}\n`), '--db', db]);
    expect(clean.status).toBe(0);
    expect(clean.stdout).toMatch(/inserted +1/);
    expect(cli(['ingest', '--db', db]).status).toBe(1);
    expect(cli(['ingest', file, '--kafka', 'localhost:9092', '--db', db]).status).toBe(1);
    const q = cli(['quarantine', '--db', db, '--json']);
    expect(q.status).toBe(0);
    expect(JSON.parse(q.stdout)).toMatchObject({ total: 1, records: [{ source: file, location: 'line 2', reason: 'malformed-json', raw: 'not json' }] });
  });
});
