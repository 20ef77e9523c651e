// The SLS source end to end: the real SDK (@alicloud/sls20201230 through its gateway, credentials from the
// default chain) against the project's local SLS server, which verifies every request's signature and serves
// the recorded logstore in fixtures/sls/ across three shards and many pages.
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runSlsIngest, type IngestSlsOptions } from '../bin/commands/ingest-sls.ts';
import { normalizeRecord } from '../ingest/actiontrail.ts';
import { SlsServiceError } from '../ingest/sources/sls-gateway.ts';
import { classifySlsError, withRetries, type RetryPolicy } from '../ingest/sources/sls-retry.ts';
import { Store } from '../ingest/store.ts';
import { SourceError } from '../model/errors.ts';
import type { RecordedLogstore } from '../fixtures/sls/build.ts';
import { allRecords, loadRecordedLogstore, startSlsServer, type Fault, type SlsServer } from './sls-server.ts';

const FIXTURE_DIR = join(import.meta.dirname, '..', 'fixtures', 'sls');
const TEST_KEY_ID = 'LTAI5tKeyfenceTestKey01';
const TEST_SECRET = 'keyfence-test-secret-6f1c9a';
const FAST_RETRY: RetryPolicy = { attempts: 6, baseDelayMs: 1, maxDelayMs: 4 };
const SMALL_PAGES = { pullGroups: 7, batchRecords: 25, retry: FAST_RETRY };

const fixture = loadRecordedLogstore(FIXTURE_DIR);
let dir: string;
let dbCount = 0;
const servers: SlsServer[] = [];
const savedEnv = { ...process.env };

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'kf-sls-test-'));
  process.env.ALIBABA_CLOUD_ACCESS_KEY_ID = TEST_KEY_ID;
  process.env.ALIBABA_CLOUD_ACCESS_KEY_SECRET = TEST_SECRET;
  process.env.ALIBABA_CLOUD_ECS_METADATA_DISABLED = 'true';
});

afterEach(async () => {
  process.env.ALIBABA_CLOUD_ACCESS_KEY_SECRET = TEST_SECRET;
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

afterAll(() => {
  process.env = savedEnv;
  rmSync(dir, { recursive: true, force: true });
});

async function serve(logstore: RecordedLogstore = fixture, faults: Fault[] = []): Promise<SlsServer> {
  const server = await startSlsServer({ logstore, accessKeyId: TEST_KEY_ID, accessKeySecret: TEST_SECRET, faults, lifetimeMs: 60_000 });
  servers.push(server);
  return server;
}

function freshDb(): string {
  return join(dir, `sls-${++dbCount}.duckdb`);
}

function options(server: SlsServer, db: string, extra: Partial<IngestSlsOptions> = {}): IngestSlsOptions {
  return { sls: true, endpoint: server.endpoint, project: fixture.project, logstore: fixture.logstore, db: [db], ...extra };
}

/** What the store must hold after reading `records`: computed from the fixture files, not from the source. */
function expectedFrom(records: Array<Record<string, string>>): { eventIds: string[]; rejections: string[]; duplicates: number } {
  const ids = new Set<string>();
  const rejections: string[] = [];
  let events = 0;
  for (const r of records) {
    const result = normalizeRecord(r);
    for (const e of result.events) {
      ids.add(e.eventId);
      events++;
    }
    for (const x of result.rejections) rejections.push(x.reason);
  }
  return { eventIds: [...ids].sort(), rejections: rejections.sort(), duplicates: events - ids.size };
}

async function stored(db: string): Promise<{ eventIds: string[]; rejections: string[]; locations: string[]; checkpoints: Array<{ source: string; position: string; complete: boolean }> }> {
  const store = await Store.open(db, { readOnly: true });
  try {
    const events = await store.query<{ id: string }>('SELECT event_id AS id FROM events ORDER BY event_id');
    const quarantine = await store.query<{ reason: string; location: string; source: string }>('SELECT reason, location, source FROM quarantine ORDER BY reason, location');
    const checkpoints = await store.query<{ source: string; position: string; complete: boolean }>('SELECT source, position, complete FROM checkpoints ORDER BY source');
    return {
      eventIds: events.map((e) => e.id),
      rejections: quarantine.map((q) => q.reason).sort(),
      locations: quarantine.map((q) => `${q.source} ${q.location}`),
      checkpoints,
    };
  } finally {
    store.close();
  }
}

const logCount = (store: RecordedLogstore): number => store.shards.reduce((n, s) => n + s.groups.reduce((m, g) => m + g.logs.length, 0), 0);

describe('SLS ingest through the real SDK', () => {
  it('stores every valid event of every shard once and quarantines exactly the malformed logs, through throttling, 5xx and a reset', async () => {
    const faults: Fault[] = [
      { call: 'ListShards', nth: 1, kind: 'server-busy' },
      { call: 'GetCursor', nth: 2, kind: 'throttle' },
      { call: 'PullLogs', nth: 2, kind: 'throttle' },
      { call: 'PullLogs', nth: 5, kind: 'reset' },
      { call: 'PullLogs', nth: 9, kind: 'internal-error' },
      { call: 'PullLogs', nth: 13, kind: 'bad-gateway' },
      { call: 'PullLogs', nth: 14, kind: 'reset' },
    ];
    const server = await serve(fixture, faults);
    const db = freshDb();
    const { summary, source } = await runSlsIngest(options(server, db), SMALL_PAGES);

    const expected = expectedFrom(allRecords(fixture));
    const got = await stored(db);
    expect(server.firedFaults).toEqual(expect.arrayContaining(faults));
    expect(server.firedFaults).toHaveLength(faults.length);
    expect(got.eventIds).toEqual(expected.eventIds);
    expect(got.rejections).toEqual(expected.rejections);
    expect(expected.rejections.length).toBeGreaterThanOrEqual(3);
    expect(new Set(got.locations).size).toBe(got.locations.length);
    expect(summary.read).toBe(logCount(fixture));
    expect(summary.inserted).toBe(expected.eventIds.length);
    expect(summary.duplicates).toBe(expected.duplicates);
    expect(summary.quarantined).toBe(expected.rejections.length);
    expect(source.shards).toBe(3);
    // Many pages per shard, each answer lz4-compressed as the gateway asked.
    const pulls = server.requests.filter((r) => r.call === 'PullLogs' && r.status === 200 && r.fault === null);
    expect(pulls.length).toBeGreaterThan(fixture.shards.length * 3);
    expect(pulls.filter((r) => (r.groups ?? 0) > 0).every((r) => r.compressType === 'lz4')).toBe(true);
  });

  it('checkpoints each shard at its end cursor, marks the read-through readonly shard complete, and skips it next time', async () => {
    const server = await serve();
    const db = freshDb();
    await runSlsIngest(options(server, db), SMALL_PAGES);
    const first = await stored(db);
    const bySource = Object.fromEntries(first.checkpoints.map((c) => [c.source, c]));
    expect(Object.keys(bySource).sort()).toEqual(fixture.shards.map((s) => `sls:${fixture.project}/${fixture.logstore}:${s.shardId}`).sort());
    for (const shard of fixture.shards) {
      const cp = bySource[`sls:${fixture.project}/${fixture.logstore}:${shard.shardId}`]!;
      expect(cp.complete).toBe(shard.status === 'readonly');
    }

    const pullsBefore = server.requests.filter((r) => r.call === 'PullLogs').length;
    const { summary } = await runSlsIngest(options(server, db), SMALL_PAGES);
    expect(summary.read).toBe(0);
    expect(summary.skipped).toBe(1);
    expect(server.requests.filter((r) => r.call === 'PullLogs').length).toBe(pullsBefore);
    expect((await stored(db)).eventIds).toEqual(first.eventIds);
  });

  it('picks up exactly the logs appended since the last run', async () => {
    const db = freshDb();
    const before = await serve();
    await runSlsIngest(options(before, db), SMALL_PAGES);
    await before.close();

    // The same logstore a day later: new log groups at the end of the readwrite shards.
    const later: RecordedLogstore = structuredClone(fixture);
    const extra: Array<Record<string, string>> = [];
    for (const shard of later.shards.filter((s) => s.status === 'readwrite')) {
      const last = shard.groups[shard.groups.length - 1]!;
      for (let i = 0; i < 3; i++) {
        const eventId = `appended-${shard.shardId}-${i}`;
        const event = { eventId, eventTime: '2026-11-20T01:00:00Z', eventName: 'DescribeInstances', serviceName: 'Ecs', eventSource: 'ecs.aliyuncs.com', sourceIpAddress: '198.51.100.20', userIdentity: { type: 'ram-user', accessKeyId: 'LTAI5tAppended0000001', accountId: '1234567890123456', userName: 'late' } };
        const group = { topic: last.topic, source: last.source, tags: [] as Array<[string, string]>, logs: [{ time: last.receiveTime + 60 * (i + 1), contents: [['event', JSON.stringify(event)]] as Array<[string, string]> }], receiveTime: last.receiveTime + 60 * (i + 1) + 30 };
        shard.groups.push(group);
        extra.push({ __time__: String(group.logs[0]!.time), __topic__: group.topic, __source__: group.source, event: JSON.stringify(event) });
      }
    }
    const after = await serve(later);
    const { summary } = await runSlsIngest(options(after, db), SMALL_PAGES);
    expect(summary.read).toBe(extra.length);
    expect(summary.inserted).toBe(extra.length);
    expect((await stored(db)).eventIds).toEqual(expectedFrom(allRecords(later)).eventIds);
  });

  it('after a run that failed mid-way, the next run completes the store with nothing lost or doubled', async () => {
    const db = freshDb();
    // Throttled longer than the retries last: the run must fail, not pass a partial read off as whole.
    const stubborn: Fault[] = [5, 6, 7].map((nth) => ({ call: 'PullLogs', nth, kind: 'throttle' }));
    const failing = await serve(fixture, stubborn);
    const err = await runSlsIngest(options(failing, db), { ...SMALL_PAGES, concurrency: 1, retry: { attempts: 3, baseDelayMs: 1, maxDelayMs: 2 } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SourceError);
    expect((err as SourceError).retriable).toBe(true);
    expect((err as SourceError).context.code).toBe('ReadQuotaExceed');
    const partial = await stored(db);
    const expected = expectedFrom(allRecords(fixture));
    expect(partial.eventIds.length).toBeGreaterThan(0);
    expect(partial.eventIds.length).toBeLessThan(expected.eventIds.length);
    expect(partial.checkpoints.some((c) => c.complete)).toBe(false);
    await failing.close();

    const healthy = await serve();
    await runSlsIngest(options(healthy, db), SMALL_PAGES);
    const done = await stored(db);
    expect(done.eventIds).toEqual(expected.eventIds);
    expect(done.rejections).toEqual(expected.rejections);
  });

  it('--from/--to read exactly the log groups received in that window, and leave shards open', async () => {
    const server = await serve();
    const db = freshDb();
    const times = fixture.shards.flatMap((s) => s.groups.map((g) => g.receiveTime)).sort((a, b) => a - b);
    const from = times[Math.floor(times.length * 0.3)]!;
    const to = times[Math.floor(times.length * 0.7)]!;
    const iso = (t: number): string => new Date(t * 1000).toISOString();
    await runSlsIngest(options(server, db, { from: iso(from), to: iso(to) }), SMALL_PAGES);

    const inWindow: RecordedLogstore = { ...fixture, shards: fixture.shards.map((s) => ({ ...s, groups: s.groups.filter((g) => g.receiveTime >= from && g.receiveTime < to) })) };
    const got = await stored(db);
    expect(got.eventIds).toEqual(expectedFrom(allRecords(inWindow)).eventIds);
    expect(got.eventIds.length).toBeGreaterThan(0);
    expect(got.checkpoints.every((c) => !c.complete)).toBe(true);
  });

  it('a wrong secret fails on the first call with SignatureNotMatch, is not retried, and the secret is written nowhere', async () => {
    const server = await serve();
    const db = freshDb();
    const wrongSecret = 'not-the-right-secret-93b2';
    process.env.ALIBABA_CLOUD_ACCESS_KEY_SECRET = wrongSecret;
    const err = await runSlsIngest({ ...options(server, db), json: true }, SMALL_PAGES).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SourceError);
    const e = err as SourceError;
    expect(e.context.code).toBe('SignatureNotMatch');
    expect(e.context.statusCode).toBe(401);
    expect(e.retriable).toBe(false);
    expect(server.requests).toHaveLength(1);
    const said = JSON.stringify({ message: e.message, hint: e.hint, context: e.context });
    for (const secret of [wrongSecret, TEST_SECRET]) {
      expect(said).not.toContain(secret);
      for (const file of readdirSync(dir).filter((f) => join(dir, f).startsWith(db))) {
        expect(readFileSync(join(dir, file)).includes(Buffer.from(secret))).toBe(false);
      }
    }
  });

  it('`keyfence ingest --sls --json` runs in a real process with the key from the environment: exit 2 with quarantine, then 0', async () => {
    const server = await serve();
    const db = freshDb();
    const root = join(import.meta.dirname, '..');
    const env = { PATH: process.env.PATH, HOME: dir, ALIBABA_CLOUD_ACCESS_KEY_ID: TEST_KEY_ID, ALIBABA_CLOUD_ACCESS_KEY_SECRET: TEST_SECRET, ALIBABA_CLOUD_ECS_METADATA_DISABLED: 'true' };
    const run = (): Promise<{ code: number; stdout: string; stderr: string }> => new Promise((resolve) => {
      execFile(process.execPath, ['bin/keyfence.js', 'ingest', '--sls', '--endpoint', server.endpoint, '--project', fixture.project, '--logstore', fixture.logstore, '--db', db, '--json'],
        { cwd: root, env, timeout: 50_000 }, (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }));
    });
    const first = await run();
    expect(first.stderr).not.toContain(TEST_SECRET);
    expect(first.stdout).not.toContain(TEST_SECRET);
    expect(first.code).toBe(2);
    const summary = JSON.parse(first.stdout) as { source: string; read: number; quarantined: number; rejected: Array<{ location: string }> };
    expect(summary.source).toBe('sls');
    expect(summary.read).toBe(logCount(fixture));
    expect(summary.quarantined).toBe(expectedFrom(allRecords(fixture)).rejections.length);
    expect(summary.rejected.every((r) => /^shard \d+ cursor \S+ log \d+$/.test(r.location))).toBe(true);
    const second = await run();
    expect(second.code).toBe(0);
    expect((JSON.parse(second.stdout) as { read: number; skipped: number }).read).toBe(0);
  });

  it('a logstore that does not exist is a clear error, not retried', async () => {
    const server = await serve();
    const err = await runSlsIngest({ ...options(server, freshDb()), logstore: 'no_such_logstore' }, SMALL_PAGES).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SourceError);
    expect((err as SourceError).context.code).toBe('LogStoreNotExist');
    expect(server.requests).toHaveLength(1);
  });
});

describe('SLS retry policy', () => {
  it('retries throttling, busy servers, 5xx and cut connections, and never credential or not-found errors', () => {
    const cut = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    expect(classifySlsError(new SlsServiceError('ReadQuotaExceed', 'x', 403, null))).toBe('transient');
    expect(classifySlsError(new SlsServiceError('ServerBusy', 'x', 503, null))).toBe('transient');
    expect(classifySlsError(new SlsServiceError('HTTP502', 'x', 502, null))).toBe('transient');
    expect(classifySlsError(cut)).toBe('transient');
    expect(classifySlsError(new SlsServiceError('SignatureNotMatch', 'x', 401, null))).toBe('auth');
    expect(classifySlsError(new SlsServiceError('Unauthorized', 'x', 403, null))).toBe('auth');
    expect(classifySlsError(new SlsServiceError('LogStoreNotExist', 'x', 404, null))).toBe('fatal');
    expect(classifySlsError(new Error('unable to get credentials from any of the providers in the chain: …'))).toBe('auth');
  });

  it('backs off exponentially with jitter, capped, for a bounded number of attempts', async () => {
    const delays: number[] = [];
    let calls = 0;
    const policy: RetryPolicy = { attempts: 6, baseDelayMs: 100, maxDelayMs: 1000, random: () => 1, sleep: async (ms) => void delays.push(ms) };
    const err = await withRetries('PullLogs', async () => {
      calls++;
      throw new SlsServiceError('ReadQuotaExceed', 'quota', 403, null);
    }, policy).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SourceError);
    expect(calls).toBe(6);
    expect(delays).toEqual([100, 200, 400, 800, 1000]);
    const low: number[] = [];
    await withRetries('PullLogs', async () => {
      if (low.length < 2) throw new SlsServiceError('ServerBusy', 'busy', 503, null);
      return 1;
    }, { ...policy, random: () => 0, sleep: async (ms) => void low.push(ms) });
    expect(low).toEqual([50, 100]);
  });
});
