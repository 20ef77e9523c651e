import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { normalizeRecord } from '../ingest/actiontrail.ts';
import { QUARANTINE_RAW_CAP_CHARS, Store } from '../ingest/store.ts';
import type { AuditEvent, IngestSummary } from '../model/types.ts';

let dir: string;
let store: Store;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kf-store-'));
  store = await Store.open(join(dir, 'store.duckdb'));
});
afterAll(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

function event(id: string, extra: Record<string, unknown> = {}): AuditEvent {
  const r = normalizeRecord({
    eventId: id,
    eventTime: '2026-11-01T02:03:04Z',
    sourceIpAddress: '203.0.113.7',
    userIdentity: { type: 'ram-user', accessKeyId: 'LTAI5tAbc' },
    ...extra,
  });
  return r.events[0]!;
}

const summary = (runId: number, over: Partial<IngestSummary> = {}): IngestSummary => ({
  source: 'file', runId, read: 0, inserted: 0, duplicates: 0, quarantined: 0, quarantinedByReason: {}, skipped: 0, seconds: 0, eventsPerSecond: 0, errors: [], ...over,
});

describe('Store writes', () => {
  it('numbers runs and records their outcome', async () => {
    const a = await store.beginRun('file');
    const b = await store.beginRun('kafka');
    expect(b).toBe(a + 1);
    await store.finishRun(a, summary(a, { read: 10, inserted: 7, duplicates: 2, quarantined: 1 }), 'partial');
    const [row] = await store.query(`SELECT source_kind, read, inserted, duplicates, quarantined, status, finished_at IS NOT NULL AS finished FROM ingest_runs WHERE run_id = ?`, [a]);
    expect(row).toEqual({ source_kind: 'file', read: 10, inserted: 7, duplicates: 2, quarantined: 1, status: 'partial', finished: true });
    await store.finishRun(b, summary(b), 'ok');
  });

  it('commits events, quarantined records and the checkpoint of a batch together, deduplicating by event_id', async () => {
    const runId = await store.beginRun('file');
    const first = await store.writeBatch({
      runId,
      events: [event('a'), event('b'), event('a')],
      rejections: [{ source: 'f.ndjson', location: 'line 3', reason: 'malformed-json', detail: 'f.ndjson:3: bad', raw: '{bad' }],
      checkpoints: [{ source: 'file:/f.ndjson', position: '3', fingerprint: '10:1' }],
    });
    expect(first).toEqual({ inserted: 2, duplicates: 1, quarantined: 1 });
    const again = await store.writeBatch({ runId, events: [event('b'), event('c')], rejections: [], checkpoints: [{ source: 'file:/f.ndjson', position: '5', complete: true, fingerprint: '10:1' }] });
    expect(again).toEqual({ inserted: 1, duplicates: 1, quarantined: 0 });
    expect(await store.query(`SELECT event_id, run_id FROM events WHERE event_id IN ('a', 'b', 'c') ORDER BY event_id`)).toEqual([
      { event_id: 'a', run_id: runId },
      { event_id: 'b', run_id: runId },
      { event_id: 'c', run_id: runId },
    ]);
    expect(await store.getCheckpoint('file:/f.ndjson')).toEqual({ position: '5', complete: true, fingerprint: '10:1' });
    expect(await store.getCheckpoint('file:/never-seen')).toBeNull();
    expect(await store.query(`SELECT source, location, reason, raw, raw_bytes FROM quarantine WHERE source = 'f.ndjson'`)).toEqual([
      { source: 'f.ndjson', location: 'line 3', reason: 'malformed-json', raw: '{bad', raw_bytes: 4 },
    ]);
  });

  it('stores every AuditEvent field in its column', async () => {
    const runId = await store.beginRun('file');
    const e = event('full', { vpcId: 'vpc-1', sourceIpAddress: '172.16.0.9', serviceName: 'Mns', errorCode: 'AccessKeyId.AccessPolicyDenied', requestId: 'R9', eventName: 'SendMessage' });
    await store.writeBatch({ runId, events: [e], rejections: [], checkpoints: [] });
    const [row] = await store.query(`SELECT * EXCLUDE (run_id) FROM events WHERE event_id = 'full'`);
    expect(row).toEqual({
      event_id: 'full', event_time: '2026-11-01T02:03:04Z', event_name: 'SendMessage', event_source: null, service_name: 'Mns', event_type: null,
      region: null, source_ip: '172.16.0.9', source_kind: 'vpc', ip_family: 4, vpc_id: 'vpc-1', user_agent: null, error_code: 'AccessKeyId.AccessPolicyDenied',
      error_message: null, access_key_id: 'LTAI5tAbc', key_kind: 'permanent', identity_type: 'ram-user', account_id: null, principal_id: null, user_name: null,
      exempt: true, acl_denied: true, request_id: 'R9',
    });
  });

  it('commits nothing of a batch that fails', async () => {
    const runId = await store.beginRun('file');
    const broken = { ...event('never-stored'), eventTime: 'not a time' };
    await expect(
      store.writeBatch({
        runId,
        events: [event('also-not-stored'), broken],
        rejections: [{ source: 'g.ndjson', location: 'line 1', reason: 'malformed-json', detail: 'x', raw: 'x' }],
        checkpoints: [{ source: 'file:/g.ndjson', position: '1' }],
      }),
    ).rejects.toThrow();
    expect(await store.query(`SELECT event_id FROM events WHERE event_id IN ('never-stored', 'also-not-stored')`)).toEqual([]);
    expect(await store.query(`SELECT * FROM quarantine WHERE source = 'g.ndjson'`)).toEqual([]);
    expect(await store.getCheckpoint('file:/g.ndjson')).toBeNull();
  });

  it('caps quarantined raw text but keeps its full size', async () => {
    const runId = await store.beginRun('file');
    const raw = 'é'.repeat(QUARANTINE_RAW_CAP_CHARS + 10);
    await store.writeBatch({ runId, events: [], rejections: [{ source: 'big', location: 'line 1', reason: 'line-too-long', detail: 'long', raw }], checkpoints: [] });
    const { records } = await store.listQuarantine({ limit: 10, reason: 'line-too-long' });
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ source: 'big', capped: true, rawBytes: Buffer.byteLength(raw) });
    expect(records[0]!.raw.length).toBe(QUARANTINE_RAW_CAP_CHARS);
  });

  it('refuses writes on a read-only handle', async () => {
    const path = join(dir, 'ro.duckdb');
    (await Store.open(path)).close();
    const ro = await Store.open(path, { readOnly: true });
    try {
      await expect(ro.beginRun('file')).rejects.toThrow(/read-only/);
    } finally {
      ro.close();
    }
  });
});
