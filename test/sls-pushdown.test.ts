// The push-down path (`analyze --engine sls`): per-key aggregates computed by the logstore's analytic SQL
// must give the same profiles, and so the same proposal, as ingesting the same logstore and analyzing locally.
// The local SLS server runs the SQL part with DuckDB over the recorded fixture.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { foldSlsAggregates, loadProfilesViaSls, loadSourceAggregatesViaSls, type SlsAggregateQuery } from '../analyze/sls-pushdown.ts';
import { loadProfiles, loadSourceAggregates, type SourceAggregateRow } from '../analyze/profiles.ts';
import { runSlsIngest } from '../bin/commands/ingest-sls.ts';
import { connectSls, type SlsConnection } from '../ingest/sources/sls.ts';
import { Store } from '../ingest/store.ts';
import { SourceError } from '../model/errors.ts';
import type { KeyProfile, TimeWindow } from '../model/types.ts';
import { DEFAULT_RECOMMEND_OPTIONS, recommend } from '../recommend/proposal.ts';
import { loadRecordedLogstore, startSlsServer, type Fault, type SlsServer } from './sls-server.ts';

const FIXTURE_DIR = join(import.meta.dirname, '..', 'fixtures', 'sls');
const TEST_KEY_ID = 'LTAI5tKeyfencePushdown1';
const TEST_SECRET = 'keyfence-pushdown-secret-41d7';
const WINDOW: TimeWindow = { from: '2026-11-01T00:00:00Z', to: '2026-11-21T00:00:00Z' };
const FAST_RETRY = { attempts: 5, baseDelayMs: 1, maxDelayMs: 4 };

const fixture = loadRecordedLogstore(FIXTURE_DIR);
let dir: string;
let db: string;
let server: SlsServer;
let localRows: SourceAggregateRow[];
let localProfiles: KeyProfile[];
const savedEnv = { ...process.env };

async function withServer<T>(faults: Fault[], work: (conn: SlsConnection, s: SlsServer) => Promise<T>): Promise<T> {
  const s = await startSlsServer({ logstore: fixture, accessKeyId: TEST_KEY_ID, accessKeySecret: TEST_SECRET, faults, lifetimeMs: 60_000 });
  try {
    return await work(connectSls({ endpoint: s.endpoint, project: fixture.project, logstore: fixture.logstore }), s);
  } finally {
    await s.close();
  }
}

const sortRows = (rows: SourceAggregateRow[]): SourceAggregateRow[] =>
  [...rows].sort((a, b) => {
    const ka = JSON.stringify([a.accessKeyId, a.keyKind, a.sourceKind, a.vpcId, a.sourceIp, a.exempt]);
    const kb = JSON.stringify([b.accessKeyId, b.keyKind, b.sourceKind, b.vpcId, b.sourceIp, b.exempt]);
    return ka < kb ? -1 : ka > kb ? 1 : 0;
  });

beforeAll(async () => {
  process.env.ALIBABA_CLOUD_ACCESS_KEY_ID = TEST_KEY_ID;
  process.env.ALIBABA_CLOUD_ACCESS_KEY_SECRET = TEST_SECRET;
  process.env.ALIBABA_CLOUD_ECS_METADATA_DISABLED = 'true';
  dir = mkdtempSync(join(tmpdir(), 'kf-sls-pushdown-'));
  db = join(dir, 'local.duckdb');
  server = await startSlsServer({ logstore: fixture, accessKeyId: TEST_KEY_ID, accessKeySecret: TEST_SECRET, lifetimeMs: 60_000 });
  await runSlsIngest({ endpoint: server.endpoint, project: fixture.project, logstore: fixture.logstore, db: [db] }, { retry: FAST_RETRY });
  const store = await Store.open(db, { readOnly: true });
  try {
    localRows = await loadSourceAggregates(store, { window: WINDOW });
    localProfiles = await loadProfiles(store, { window: WINDOW });
  } finally {
    store.close();
  }
});

afterAll(async () => {
  await server?.close();
  process.env = savedEnv;
  rmSync(dir, { recursive: true, force: true });
});

describe('analyze --engine sls (push-down)', () => {
  it('computes the same source aggregates as the local store, row for row', async () => {
    const conn = connectSls({ endpoint: server.endpoint, project: fixture.project, logstore: fixture.logstore });
    const remote = await loadSourceAggregatesViaSls(conn, { window: WINDOW, retry: FAST_RETRY });
    expect(localRows.length).toBeGreaterThan(5);
    expect(sortRows(remote)).toEqual(sortRows(localRows));
    // Only aggregates crossed the wire: SQL with GROUP BY, never the raw events.
    expect(server.queries.every((q) => q.startsWith('* | SELECT') && /GROUP BY/.test(q))).toBe(true);
  });

  it('gives the same proposal as ingesting the logstore and recommending locally', async () => {
    const conn = connectSls({ endpoint: server.endpoint, project: fixture.project, logstore: fixture.logstore });
    const remoteProfiles = await loadProfilesViaSls(conn, { window: WINDOW, retry: FAST_RETRY });
    expect(remoteProfiles).toEqual(localProfiles);
    const options = { ...DEFAULT_RECOMMEND_OPTIONS, scope: 'auto' as const, window: WINDOW, generatedAt: '2026-11-21T00:00:00Z' };
    const local = recommend(localProfiles, options);
    const remote = recommend(remoteProfiles, options);
    expect(local.accessKeys.length).toBeGreaterThan(0);
    expect(local.accessKeys.some((k) => (k.public?.cidrs.length ?? 0) > 0 || k.vpc.length > 0)).toBe(true);
    expect(JSON.stringify(remote)).toBe(JSON.stringify(local));
  });

  it('pages with LIMIT offset, n and gets the same rows; an Incomplete answer is asked again, never used', async () => {
    const faults: Fault[] = [{ call: 'GetLogs', nth: 1, kind: 'incomplete' }, { call: 'GetLogs', nth: 4, kind: 'throttle' }];
    const { rows, s } = await withServer(faults, async (conn, s) => ({ rows: await loadSourceAggregatesViaSls(conn, { window: WINDOW, pageSize: 7, retry: FAST_RETRY }), s }));
    expect(s.firedFaults).toHaveLength(2);
    expect(s.queries.filter((q) => /LIMIT \d+, 7$/.test(q)).length).toBeGreaterThan(4);
    expect(sortRows(rows)).toEqual(sortRows(localRows));
  });

  it('refuses a result whose rows do not add up to the events counted, instead of analyzing part of it', async () => {
    const err = await withServer([{ call: 'GetLogs', nth: 1, kind: 'lose-rows' }], (conn) => loadSourceAggregatesViaSls(conn, { window: WINDOW, retry: FAST_RETRY })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SourceError);
    expect((err as Error).message).toMatch(/do not add up/);
  });

  it('`keyfence analyze --engine sls --json` prints the same profiles, with the key taken from the environment chain', async () => {
    const root = join(import.meta.dirname, '..');
    const args = ['bin/keyfence.js', 'analyze', '--engine', 'sls', '--endpoint', server.endpoint, '--project', fixture.project, '--logstore', fixture.logstore, '--from', WINDOW.from, '--to', WINDOW.to, '--json'];
    const env = { PATH: process.env.PATH, HOME: dir, ALIBABA_CLOUD_ACCESS_KEY_ID: TEST_KEY_ID, ALIBABA_CLOUD_ACCESS_KEY_SECRET: TEST_SECRET, ALIBABA_CLOUD_ECS_METADATA_DISABLED: 'true' };
    const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, args, { cwd: root, env, timeout: 50_000 }, (error, out, err) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout: out, stderr: err }));
    });
    expect(stderr).not.toContain(TEST_SECRET);
    expect(code).toBe(0);
    const printed = JSON.parse(stdout) as { window: TimeWindow; profiles: KeyProfile[] };
    expect(printed.window).toEqual(WINDOW);
    expect(printed.profiles).toEqual(localProfiles);
  });

  it('restricted to named keys, matches the local analysis of those keys', async () => {
    const keys = localProfiles.slice(0, 2).map((p) => p.accessKeyId);
    const store = await Store.open(db, { readOnly: true });
    let local: SourceAggregateRow[];
    try {
      local = await loadSourceAggregates(store, { window: WINDOW, keys });
    } finally {
      store.close();
    }
    const query: SlsAggregateQuery = { window: WINDOW, keys, retry: FAST_RETRY };
    const remote = await withServer([], (conn) => loadSourceAggregatesViaSls(conn, query));
    expect(new Set(remote.map((r) => r.accessKeyId))).toEqual(new Set(keys));
    expect(sortRows(remote)).toEqual(sortRows(local));
  });
});

describe('folding SLS rows (pure)', () => {
  it('ranks user agents as the local engine does: calls summed over services, most first, ties by text, at most five', () => {
    const group = { k_ak: 'LTAItie', k_itype: 'ram-user', k_ip: '203.0.113.5', k_vpc: 'null', k_esrc: 'null' };
    const daily = ['Ecs', 'Ram'].map((svc) => ({
      ...group, k_svc: svc, k_day: '2026-11-02', calls: '8', first_seen: '2026-11-02T01:00:00Z', last_seen: '2026-11-02T02:00:00Z',
      error_calls: '0', denied_calls: '0', sensitive_calls: '0', user_name: 'tie', account_id: '1',
    }));
    const agent = (svc: string, ua: string, calls: number) => ({ ...group, k_svc: svc, k_ua: ua, calls: String(calls) });
    const agents = [
      agent('Ecs', 'c-agent', 3), agent('Ram', 'b-agent', 2), agent('Ecs', 'b-agent', 2), agent('Ram', 'a-agent', 3),
      agent('Ram', 'f-agent', 1), agent('Ecs', 'e-agent', 1), agent('Ecs', 'd-agent', 1),
    ];
    const [row] = foldSlsAggregates(daily, agents, {});
    expect(row!.calls).toBe(16);
    expect(row!.services).toEqual(['Ecs', 'Ram']);
    expect(row!.userAgents).toEqual(['b-agent', 'a-agent', 'c-agent', 'd-agent', 'e-agent']);
  });
});
