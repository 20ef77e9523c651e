// kill -9 in the middle of an ingest, then run it again: the store must hold exactly the input's events.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Store } from '../ingest/store.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cli = join(root, 'bin/keyfence.js');
let dir: string;
const inputIds = new Set<string>();
let badLines = 0;

function event(id: string, i: number): Record<string, unknown> {
  return {
    eventId: id,
    eventTime: new Date(Date.UTC(2026, 10, 1) + i * 1000).toISOString().replace('.000Z', 'Z'),
    eventName: 'DescribeInstances',
    eventSource: 'ecs.cn-hangzhou.aliyuncs.com',
    serviceName: 'Ecs',
    sourceIpAddress: i % 7 === 0 ? `2408:4000:${(i % 50).toString(16)}::${(i % 9000).toString(16)}` : `203.0.${i % 200}.${i % 250}`,
    userAgent: 'AlibabaCloud (Linux; amd64) Go/1.21 Core/1.62 TeaDSL/1',
    requestParameters: { RegionId: 'cn-hangzhou', PageSize: 50, Marker: 'x'.repeat(400) },
    userIdentity: { type: 'ram-user', accessKeyId: `LTAI${i % 40}`, accountId: '1001', userName: `svc-${i % 40}` },
  };
}

/** Input: a JSON-array file (streamed in batches) and NDJSON files (SQL fast path), with repeats and bad lines. */
function writeInput(inputDir: string): void {
  let n = 0;
  const next = (): Record<string, unknown> => {
    const id = `crash-${n}`;
    inputIds.add(id);
    return event(id, n++);
  };
  const array = Array.from({ length: 8_000 }, next);
  writeFileSync(join(inputDir, 'a-array.json'), JSON.stringify(array));
  for (let f = 0; f < 5; f++) {
    const lines: string[] = [];
    for (let i = 0; i < 8_000; i++) {
      lines.push(JSON.stringify({ __topic__: 'actiontrail_audit_event', event: JSON.stringify(next()) }));
      if (i % 2000 === 1) {
        lines.push('{"__topic__": "actiontrail_audit_event", "event": "{\\"eventId');
        badLines++;
      }
      if (i % 4000 === 2) lines.push(lines[lines.length - 1]!); // a redelivered event
    }
    writeFileSync(join(inputDir, `b-part-${f}.ndjson`), `${lines.join('\n')}\n`);
  }
}

/**
 * Starts an ingest and SIGKILLs it when its debug output shows `trigger`, or lets it kill itself at the point
 * KEYFENCE_TEST_CRASH names. Resolves with whether it died by SIGKILL.
 */
function ingestKilledAt(db: string, inputDir: string, trigger: RegExp | { selfKill: string }): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const selfKill = trigger instanceof RegExp ? {} : { KEYFENCE_TEST_CRASH: trigger.selfKill };
    const child = spawn(process.execPath, [cli, 'ingest', inputDir, '--db', db], { env: { ...process.env, KEYFENCE_DEBUG: '1', KEYFENCE_FAST_GROUP_BYTES: '1', ...selfKill }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    let killed = false;
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (!killed && trigger instanceof RegExp && trigger.test(stderr)) {
        killed = true;
        child.kill('SIGKILL');
      }
    });
    child.on('error', reject);
    child.on('close', (_code, signal) => resolve(signal === 'SIGKILL'));
  });
}

async function storedIds(db: string): Promise<{ ids: string[]; storedRows: number; quarantined: number; runs: Array<{ status: string }> }> {
  const store = await Store.open(db, { readOnly: true });
  try {
    const ids = (await store.query<{ event_id: string }>(`SELECT event_id FROM events`)).map((r) => r.event_id);
    const [db] = await store.query<{ name: string }>(`SELECT current_database() AS name`);
    const [stored] = await store.query<{ n: number }>(`SELECT count(*) AS n FROM "${db!.name}".main.events`);
    const [q] = await store.query<{ n: number }>(`SELECT count(*) AS n FROM quarantine`);
    const runs = await store.query<{ status: string }>(`SELECT status FROM ingest_runs ORDER BY run_id`);
    return { ids, storedRows: stored!.n, quarantined: q!.n, runs };
  } finally {
    store.close();
  }
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'kf-crash-'));
  mkdirSync(join(dir, 'input'));
  writeInput(join(dir, 'input'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('kill -9 during ingest, then rerun', () => {
  it.each([
    ['mid-way through a streamed file, after a committed batch', /a-array\.json after record \d+\n[^]*a-array\.json after record/],
    ['while an NDJSON file is being read by the SQL fast path', /file done \(fast\): \S*b-part-1\.ndjson/],
    ["between the SQL fast path's commit and its cleanup (placeholder rows and repeats still stored)", { selfKill: 'after-fast-commit' }],
  ] as const)('leaves exactly the events of the input when killed %s', async (_label, trigger) => {
    const db = join(dir, `${Math.random().toString(36).slice(2)}.duckdb`);
    expect(await ingestKilledAt(db, join(dir, 'input'), trigger)).toBe(true);
    const partial = await storedIds(db);
    const partialEvents = new Set(partial.ids.filter((id) => inputIds.has(id))).size;
    expect(partialEvents).toBeGreaterThan(0);
    expect(partialEvents).toBeLessThan(inputIds.size);
    // killed before its cleanup, the fast path leaves marked lines and a second copy of each repeated event,
    // which a read-only reader does not see
    if (!(trigger instanceof RegExp)) {
      expect(partial.storedRows).toBeGreaterThan(partialEvents);
      expect(partial.ids.length).toBe(partialEvents);
    }
    expect(partial.runs.map((r) => r.status)).toEqual(['running']);

    const rerun = spawnSync(process.execPath, [cli, 'ingest', join(dir, 'input'), '--db', db, '--json'], { encoding: 'utf8', timeout: 120_000 });
    expect(rerun.status).toBe(2); // the bad lines are quarantined, the rest committed
    const after = await storedIds(db);
    expect(after.ids.length).toBe(inputIds.size);
    expect(new Set(after.ids)).toEqual(inputIds);
    expect(after.quarantined).toBe(badLines);
    expect(after.runs.map((r) => r.status)).toEqual(['interrupted', 'partial']);
    expect(JSON.parse(rerun.stdout)).toMatchObject({ inserted: inputIds.size - partialEvents });
  });
});
