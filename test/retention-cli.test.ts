// After `keyfence prune --keep 10d` on the demo history, the investigation commands still answer from the
// rolled-up history: drift gives what it gives on the unpruned store, explain still knows a key whose every
// event was pruned, simulate accepts an approval naming it. Real processes on real DuckDB files.
import { spawnSync } from 'node:child_process';
import { copyFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Store } from '../ingest/store.ts';
import { ingestFiles } from '../ingest/file-ingest.ts';
import { analyzeStore } from '../analyze/analysis.ts';
import { DEFAULT_RECOMMEND_OPTIONS, recommend } from '../recommend/proposal.ts';
import { approve } from '../review/approve.ts';
import { DEMO_TRAIL, tempDir } from './report-helpers.ts';

const ROOT = join(import.meta.dirname, '..');
let dir: string;
let full: string;
let pruned: string;
let approvedFile: string;
let cutoff: string;
/** An approved key whose every event is older than the cutoff, and its busiest source. */
let goneKey: { accessKeyId: string; ip: string; calls: number; governedFromIp: number };

function keyfence(...args: string[]): { code: number; stdout: string; stderr: string; json: any } {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin/keyfence.js'), ...args], { cwd: dir, encoding: 'utf8', env: { ...process.env, CI: '1' } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, json: args.includes('--json') && r.stdout ? JSON.parse(r.stdout) : null };
}

beforeAll(async () => {
  dir = tempDir('retention-cli');
  full = join(dir, 'full.duckdb');
  pruned = join(dir, 'pruned.duckdb');
  const store = await Store.open(full);
  let approvedKeys: string[];
  try {
    await ingestFiles(store, [DEMO_TRAIL]);
    const analysis = await analyzeStore(store, { since: '60d' });
    const proposal = recommend(analysis.profiles, { ...DEFAULT_RECOMMEND_OPTIONS, window: analysis.window, generatedAt: '2026-11-20T00:00:00Z' });
    approvedKeys = proposal.accessKeys.map((k) => k.accessKeyId);
    approvedFile = join(dir, 'approved.json');
    writeFileSync(approvedFile, JSON.stringify(approve(proposal, { approvedBy: 'retention-cli-test', now: new Date('2026-11-20T00:00:00Z') })));
    await store.run('CHECKPOINT');
  } finally {
    store.close();
  }
  copyFileSync(full, pruned);
  const prune = keyfence('prune', '--keep', '10d', '--db', pruned, '--json');
  expect(prune.code, prune.stderr).toBe(0);
  expect(prune.json.prunedEvents).toBeGreaterThan(0);
  cutoff = prune.json.cutoff;
  const reference = await Store.open(full, { readOnly: true });
  try {
    const [row] = await reference.query<{ key: string; ip: string; calls: number }>(`
      SELECT access_key_id AS key, arg_max(source_ip, n) FILTER (WHERE source_kind = 'public') AS ip, sum(n) AS calls FROM (
        SELECT access_key_id, source_kind, source_ip, count(*) AS n FROM events WHERE key_kind = 'permanent' GROUP BY ALL)
      WHERE access_key_id IN (SELECT access_key_id FROM events GROUP BY 1 HAVING max(event_time) < CAST('${cutoff}' AS TIMESTAMP))
        AND access_key_id IN (${approvedKeys.map((k) => `'${k}'`).join(', ')})
      GROUP BY 1 ORDER BY 1 LIMIT 1`);
    expect(row, 'the demo history has an approved key that went quiet before the cutoff').toBeDefined();
    const [governed] = await reference.query<{ n: number }>(`SELECT count(*) AS n FROM events WHERE access_key_id = '${row!.key}' AND source_ip = '${row!.ip}' AND NOT exempt`);
    goneKey = { accessKeyId: row!.key, ip: row!.ip, calls: Number(row!.calls), governedFromIp: Number(governed!.n) };
  } finally {
    reference.close();
  }
}, 120_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('investigation after keyfence prune --keep 10d', () => {
  it('drift accepts an approval naming a key with no event left, and reports what it reports on the unpruned store', () => {
    const after = keyfence('drift', '--approved', approvedFile, '--db', pruned, '--json');
    const before = keyfence('drift', '--approved', approvedFile, '--db', full, '--json');
    expect(after.stderr).not.toMatch(/unknown AccessKey/);
    expect(after.code).toBe(before.code);
    expect([0, 4]).toContain(after.code);
    expect(after.json).toEqual(before.json);
  });

  it('explain still knows the pruned key and its source, from the rollup, and says the history was rolled up', () => {
    const after = keyfence('explain', '--key', goneKey.accessKeyId, '--ip', goneKey.ip, '--acl', approvedFile, '--db', pruned, '--json');
    const before = keyfence('explain', '--key', goneKey.accessKeyId, '--ip', goneKey.ip, '--acl', approvedFile, '--db', full, '--json');
    expect(after.code, after.stderr).toBe(0);
    expect(after.json.explanation).toEqual(before.json.explanation);
    expect(after.json.history.rolledUpBefore).toBe(cutoff);
    expect(before.json.history.rolledUpBefore).toBeNull();
    expect(after.json.history.key).toEqual(before.json.history.key);
    expect(after.json.history.key).toMatchObject({ seen: true, calls: goneKey.calls });
    // The rollup keeps an address only for governed calls: the source's calls to exempt services are in the key's total only.
    expect(after.json.history.source.calls).toBe(goneKey.governedFromIp);
    expect(after.json.history.source.firstSeen >= before.json.history.source.firstSeen).toBe(true);
    expect(after.json.history.source.lastSeen <= before.json.history.source.lastSeen).toBe(true);
    const text = keyfence('explain', '--key', goneKey.accessKeyId, '--ip', goneKey.ip, '--db', pruned);
    expect(text.stdout).toContain(`events before ${cutoff} were pruned`);
  });

  it('simulate replays the kept history against an approval naming the pruned key', () => {
    const after = keyfence('simulate', approvedFile, '--db', pruned, '--json');
    expect(after.stderr).not.toMatch(/unknown AccessKey/);
    expect([0, 4]).toContain(after.code);
    expect(after.json).not.toBeNull();
  });
});
