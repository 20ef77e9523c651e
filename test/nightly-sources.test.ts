// `keyfence nightly` reading SLS: the real CLI process against the project's local SLS server (which checks
// every request's signature), credentials from the environment, resuming from the stored cursors.
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NightlySummary } from '../review/nightly.ts';
import { loadRecordedLogstore, startSlsServer, type SlsServer } from './sls-server.ts';
import { CLI, ROOT, tempDir } from './report-helpers.ts';

const TEST_KEY_ID = 'LTAI5tKeyfenceNightly01';
const TEST_SECRET = 'keyfence-nightly-secret-2b7e';
const fixture = loadRecordedLogstore(join(ROOT, 'fixtures', 'sls'));
let server: SlsServer;
let dir: string;

beforeAll(async () => {
  dir = tempDir('nightly-sls');
  server = await startSlsServer({ logstore: fixture, accessKeyId: TEST_KEY_ID, accessKeySecret: TEST_SECRET, faults: [], lifetimeMs: 60_000 });
});

afterAll(async () => {
  await server?.close();
});

/** Async on purpose: the SLS server runs in this process and must keep answering. */
function nightly(config: string, date: string): Promise<{ code: number; summary: NightlySummary; stderr: string }> {
  const env = { PATH: process.env.PATH, HOME: dir, CI: '1', ALIBABA_CLOUD_ACCESS_KEY_ID: TEST_KEY_ID, ALIBABA_CLOUD_ACCESS_KEY_SECRET: TEST_SECRET, ALIBABA_CLOUD_ECS_METADATA_DISABLED: 'true' };
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [CLI, 'nightly', '--config', config, '--date', date, '--json'], { cwd: dir, env, timeout: 50_000, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      try {
        resolve({ code: error ? Number(error.code ?? 1) : 0, summary: JSON.parse(stdout) as NightlySummary, stderr });
      } catch (e) {
        reject(new Error(`no summary (${String(e)}): ${stdout}\n${stderr}`));
      }
    });
  });
}

describe('nightly with an SLS source', () => {
  it('ingests the logstore, then resumes with nothing new', async () => {
    const config = join(dir, 'keyfence.config.json');
    writeFileSync(config, JSON.stringify({ db: 'k.duckdb', output: 'out', sources: { sls: { endpoint: server.endpoint, project: fixture.project, logstore: fixture.logstore } } }));
    const first = await nightly(config, '2026-11-20');
    expect(first.summary.ingest).toHaveLength(1);
    expect(first.summary.ingest[0]).toMatchObject({ source: 'sls', ok: true });
    expect(first.summary.ingest[0]!.read).toBeGreaterThan(0);
    expect(first.summary.ingest[0]!.inserted).toBeGreaterThan(0);
    expect(first.summary.artifacts.report).not.toBeNull();
    expect([2, 4]).toContain(first.code);
    expect(first.stderr).not.toContain(TEST_SECRET);
    const second = await nightly(config, '2026-11-21');
    expect(second.summary.ingest[0]).toMatchObject({ source: 'sls', ok: true, read: 0, inserted: 0 });
    expect(second.code).toBe(0);
  });
});
