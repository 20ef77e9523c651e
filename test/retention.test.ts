// Retention on a real DuckDB file of the demo history: pruned events are rolled up so that drift, dormancy
// and first/last seen stay answerable, and two prunes add up exactly.
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Store } from '../ingest/store.ts';
import { ingestFiles } from '../ingest/file-ingest.ts';
import { analyzeStore } from '../analyze/analysis.ts';
import { loadReplayRows } from '../analyze/replay.ts';
import { DEFAULT_RECOMMEND_OPTIONS, recommend } from '../recommend/proposal.ts';
import { approve } from '../review/approve.ts';
import { driftSinceApproval } from '../analyze/drift.ts';
import { loadRollupLastSeen, loadRollupRows, prunedBefore } from '../analyze/rollup.ts';
import { readApproval } from '../review/report-collect.ts';
import { pruneCutoff, pruneEvents } from '../review/retention.ts';
import { DEMO_TRAIL, tempDir } from './report-helpers.ts';

const DAY = 86_400_000;
let dir: string;
let original: string;
let approvedFile: string;
let reference: Store;

function copyOf(name: string): string {
  const file = join(dir, name);
  copyFileSync(original, file);
  return file;
}

beforeAll(async () => {
  dir = tempDir('retention');
  original = join(dir, 'original.duckdb');
  const store = await Store.open(original);
  try {
    await ingestFiles(store, [DEMO_TRAIL]);
    const analysis = await analyzeStore(store, { since: '60d' });
    const proposal = recommend(analysis.profiles, { ...DEFAULT_RECOMMEND_OPTIONS, window: analysis.window, generatedAt: '2026-11-20T00:00:00Z' });
    approvedFile = join(dir, 'approved.json');
    writeFileSync(approvedFile, JSON.stringify(approve(proposal, { approvedBy: 'retention-test', now: new Date('2026-11-20T00:00:00Z') })));
    await store.run('CHECKPOINT');
  } finally {
    store.close();
  }
  reference = await Store.open(copyOf('reference.duckdb'), { readOnly: true });
});

afterAll(() => reference?.close());

async function span(store: Store): Promise<{ oldest: string; newest: string }> {
  const [row] = await store.query<{ oldest: string; newest: string }>('SELECT min(event_time) AS oldest, max(event_time) AS newest FROM events');
  return row!;
}

const byIdentity = (rows: Array<{ accessKeyId: string | null; sourceKind: string; ip: string | null; vpcId: string | null; exempt: boolean; keyKind: string }>) =>
  [...rows].sort((a, b) => JSON.stringify([a.accessKeyId, a.keyKind, a.sourceKind, a.ip, a.vpcId, a.exempt]).localeCompare(JSON.stringify([b.accessKeyId, b.keyKind, b.sourceKind, b.ip, b.vpcId, b.exempt])));

describe('retention', () => {
  it('cuts at the start of a UTC day', () => {
    expect(pruneCutoff(new Date('2026-11-19T22:30:43Z'), 10 * DAY).toISOString()).toBe('2026-11-09T00:00:00.000Z');
  });

  it('prunes only what is older than the cutoff and rolls it up exactly as replay rows', async () => {
    const store = await Store.open(copyOf('once.duckdb'));
    try {
      const { oldest, newest } = await span(reference);
      const result = await pruneEvents(store, 10 * DAY);
      const cutoff = pruneCutoff(new Date(newest), 10 * DAY).toISOString().replace('.000Z', 'Z');
      expect(result.cutoff).toBe(cutoff);
      const expected = await loadReplayRows(reference, { window: { from: oldest, to: cutoff } });
      expect(result.prunedEvents).toBe(expected.reduce((n, r) => n + r.calls, 0));
      expect(byIdentity(await loadRollupRows(store, { from: oldest, to: cutoff }))).toEqual(byIdentity(expected));
      expect((await span(store)).oldest >= cutoff).toBe(true);
      const kept = await loadReplayRows(reference, { window: { from: cutoff, to: '2100-01-01T00:00:00Z' } });
      expect(result.remainingEvents).toBe(kept.reduce((n, r) => n + r.calls, 0));
      expect(await prunedBefore(store)).toBe(cutoff);
    } finally {
      store.close();
    }
  });

  it('two prunes add up to one prune of the whole span (days included)', async () => {
    const store = await Store.open(copyOf('twice.duckdb'));
    try {
      const { oldest, newest } = await span(reference);
      await pruneEvents(store, 20 * DAY);
      const second = await pruneEvents(store, 8 * DAY);
      const cutoff = pruneCutoff(new Date(newest), 8 * DAY).toISOString().replace('.000Z', 'Z');
      expect(second.cutoff).toBe(cutoff);
      const expected = await loadReplayRows(reference, { window: { from: oldest, to: cutoff } });
      expect(byIdentity(await loadRollupRows(store, { from: oldest, to: cutoff }))).toEqual(byIdentity(expected));
    } finally {
      store.close();
    }
  });

  it('does nothing when no event is older than the cutoff', async () => {
    const store = await Store.open(copyOf('young.duckdb'));
    try {
      const result = await pruneEvents(store, 400 * DAY);
      expect(result.cutoff).toBeNull();
      expect(result.prunedEvents).toBe(0);
      const [n] = await store.query<{ n: number }>('SELECT count(*) AS n FROM events');
      const [m] = await reference.query<{ n: number }>('SELECT count(*) AS n FROM events');
      expect(n!.n).toBe(m!.n);
    } finally {
      store.close();
    }
  });

  it('refuses a read-only store', async () => {
    await expect(pruneEvents(reference, 10 * DAY)).rejects.toThrow(/read-only/);
  });

  it('keeps the pruned history when the pruned database is read together with another (several --db)', async () => {
    const prunedFile = copyOf('part-pruned.duckdb');
    const store = await Store.open(prunedFile);
    const emptyFile = join(dir, 'part-empty.duckdb');
    const empty = await Store.open(emptyFile);
    empty.close();
    try {
      await pruneEvents(store, 5 * DAY);
    } finally {
      store.close();
    }
    const single = await Store.open(prunedFile, { readOnly: true });
    const together = await Store.open([prunedFile, emptyFile]);
    try {
      expect(await prunedBefore(together)).toBe(await prunedBefore(single));
      expect(await loadRollupLastSeen(together)).toEqual(await loadRollupLastSeen(single));
      const approvalAlone = (await readApproval(single, approvedFile)).acls;
      expect(await driftSinceApproval(together, (await readApproval(together, approvedFile)).acls, { since: '1d', unusedDays: 30 })).toEqual(
        await driftSinceApproval(single, approvalAlone, { since: '1d', unusedDays: 30 }),
      );
    } finally {
      single.close();
      together.close();
    }
  });

  it('keeps drift answerable: unused entries, dormant keys and last calls as before the prune', async () => {
    const store = await Store.open(copyOf('drift.duckdb'));
    try {
      await pruneEvents(store, 5 * DAY);
      // Some approved keys now have no event left: the approval must still be readable against the store.
      const pruned = await readApproval(store, approvedFile);
      const before = await driftSinceApproval(reference, (await readApproval(reference, approvedFile)).acls, { since: '1d', unusedDays: 30 });
      const after = await driftSinceApproval(store, pruned.acls, { since: '1d', unusedDays: 30 });
      expect(after.unusedEntries).toEqual(before.unusedEntries);
      expect(after.dormantKeys).toEqual(before.dormantKeys);
      expect(after.newDeniedSources).toEqual(before.newDeniedSources);
      const [gone] = await store.query<{ n: number }>(`SELECT count(*) AS n FROM (SELECT DISTINCT access_key_id FROM source_rollup WHERE key_kind = 'permanent' EXCEPT SELECT DISTINCT access_key_id FROM events)`);
      expect(gone!.n).toBeGreaterThan(0);
      const lastSeen = await loadRollupLastSeen(store);
      const [refLast] = await reference.query<{ key: string; last: string }>(`SELECT access_key_id AS key, max(event_time) AS last FROM events WHERE key_kind = 'permanent' AND access_key_id IN (SELECT access_key_id FROM events GROUP BY 1 HAVING max(event_time) < TIMESTAMP '${(await prunedBefore(store))!}') GROUP BY 1 ORDER BY 1 LIMIT 1`);
      expect(lastSeen.get(refLast!.key)).toBe(refLast!.last);
    } finally {
      store.close();
    }
  });
});
