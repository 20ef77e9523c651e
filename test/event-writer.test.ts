import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EVENT_STAGE_TABLE, insertEventsAppend } from '../ingest/event-writer.ts';
import { Store } from '../ingest/store.ts';
import type { AuditEvent } from '../model/types.ts';

let dir: string;
let viaJson: Store; // the JSON insert Store.writeBatch used before the appender (referenceJsonInsert)
let viaAppender: Store; // insertEventsAppend inside Store.transaction

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kf-event-writer-'));
  viaJson = await Store.open(join(dir, 'json.duckdb'));
  viaAppender = await Store.open(join(dir, 'appender.duckdb'));
});
afterAll(() => {
  viaJson.close();
  viaAppender.close();
  rmSync(dir, { recursive: true, force: true });
});

function event(id: string, over: Partial<AuditEvent> = {}): AuditEvent {
  return {
    eventId: id,
    eventTime: '2026-11-01T02:03:04Z',
    eventName: 'DescribeInstances',
    eventSource: 'ecs.aliyuncs.com',
    serviceName: 'Ecs',
    eventType: 'ApiCall',
    acsRegion: 'cn-hangzhou',
    sourceIp: '203.0.113.7',
    sourceKind: 'public',
    ipFamily: 4,
    vpcId: null,
    userAgent: 'aliyun-sdk-go/1.0',
    errorCode: null,
    errorMessage: null,
    accessKeyId: 'LTAI5tAbc',
    keyKind: 'permanent',
    identityType: 'ram-user',
    accountId: '1234567890',
    principalId: '2345678901',
    userName: 'deploy',
    exemptService: false,
    aclDenied: false,
    requestId: `req-${id}`,
    ...over,
  };
}

/**
 * The reference: Store.insertEventsInTransaction as it was before insertEventsAppend (from_json + unnest + an
 * anti-join over every stored event), kept here verbatim so the comparison still means something once
 * Store.writeBatch calls insertEventsAppend itself.
 */
const JSON_FIELDS: Array<[column: string, field: keyof AuditEvent, type: string]> = [
  ['event_id', 'eventId', 'VARCHAR'], ['event_time', 'eventTime', 'VARCHAR'], ['event_name', 'eventName', 'VARCHAR'],
  ['event_source', 'eventSource', 'VARCHAR'], ['service_name', 'serviceName', 'VARCHAR'], ['event_type', 'eventType', 'VARCHAR'],
  ['region', 'acsRegion', 'VARCHAR'], ['source_ip', 'sourceIp', 'VARCHAR'], ['source_kind', 'sourceKind', 'VARCHAR'],
  ['ip_family', 'ipFamily', 'UTINYINT'], ['vpc_id', 'vpcId', 'VARCHAR'], ['user_agent', 'userAgent', 'VARCHAR'],
  ['error_code', 'errorCode', 'VARCHAR'], ['error_message', 'errorMessage', 'VARCHAR'], ['access_key_id', 'accessKeyId', 'VARCHAR'],
  ['key_kind', 'keyKind', 'VARCHAR'], ['identity_type', 'identityType', 'VARCHAR'], ['account_id', 'accountId', 'VARCHAR'],
  ['principal_id', 'principalId', 'VARCHAR'], ['user_name', 'userName', 'VARCHAR'], ['exempt', 'exemptService', 'BOOLEAN'],
  ['acl_denied', 'aclDenied', 'BOOLEAN'], ['request_id', 'requestId', 'VARCHAR'],
];
const JSON_STRUCT = JSON.stringify([Object.fromEntries(JSON_FIELDS.map(([, field, type]) => [field, type]))]);
const JSON_SELECT = JSON_FIELDS.map(([column, field]) => (column === 'event_time' ? `CAST(n."${field}" AS TIMESTAMP) AS event_time` : `n."${field}" AS ${column}`)).join(', ');

async function referenceJsonInsert(store: Store, runId: number, events: AuditEvent[]): Promise<{ inserted: number; duplicates: number }> {
  if (events.length === 0) return { inserted: 0, duplicates: 0 };
  const unique = new Map<string, AuditEvent>();
  for (const e of events) if (!unique.has(e.eventId)) unique.set(e.eventId, e);
  const rows = [...unique.values()].map((e) => ({ ...e, requestId: e.requestId ?? null }));
  const reader = await store.connection.runAndReadAll(
    `INSERT INTO events
     SELECT ${JSON_SELECT}, ? AS run_id
     FROM (SELECT unnest(from_json(?::JSON, '${JSON_STRUCT}'), recursive := true)) n
     WHERE NOT EXISTS (SELECT 1 FROM events o WHERE o.event_id = n."eventId")`,
    [runId, JSON.stringify(rows)] as never,
  );
  const inserted = Number(reader.getRowsJS()[0]?.[0] ?? 0);
  return { inserted, duplicates: events.length - inserted };
}

/** Writes the same batch through both paths and returns both counts. */
async function writeBoth(runId: number, events: AuditEvent[]) {
  const json = await viaJson.transaction(() => referenceJsonInsert(viaJson, runId, events));
  const appended = await viaAppender.transaction(() => insertEventsAppend(viaAppender.connection, runId, events));
  return { json: { inserted: json.inserted, duplicates: json.duplicates }, appended };
}

/** Every column as DuckDB's own text, so equal output means equal stored values (timestamps to the microsecond). */
async function eventRows(store: Store): Promise<unknown[]> {
  return store.query(`SELECT COLUMNS(*)::VARCHAR FROM events ORDER BY event_id, run_id`);
}

async function stageCount(store: Store): Promise<number> {
  const [row] = await store.query<{ n: number }>(`SELECT count(*) AS n FROM temp.main.${EVENT_STAGE_TABLE}`);
  return row!.n;
}

async function eventCount(store: Store): Promise<number> {
  const [row] = await store.query<{ n: number }>(`SELECT count(*) AS n FROM events`);
  return row!.n;
}

describe('insertEventsAppend stores what the JSON insert stores', () => {
  it('stages every column of events but run_id, in table order', async () => {
    await writeBoth(0, [event('z0')]);
    const columns = async (table: string) =>
      (await viaAppender.query<{ name: string; type: string }>(
        `SELECT column_name AS name, data_type AS type FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position`, [table],
      )).map((c) => `${c.name} ${c.name === 'event_time' ? 'TIMESTAMP' : c.type}`);
    expect(await columns(EVENT_STAGE_TABLE)).toEqual((await columns('events')).filter((c) => c !== 'run_id BIGINT'));
  });


  it('keeps the first of an eventId repeated within a batch and counts the rest as duplicates', async () => {
    const batch = [event('a1'), event('a2', { eventName: 'first' }), event('a2', { eventName: 'second' }), event('a3'), event('a1')];
    const counts = await writeBoth(1, batch);
    expect(counts.appended).toEqual({ inserted: 3, duplicates: 2 });
    expect(counts.appended).toEqual(counts.json);
    const rows = await viaAppender.query<{ event_name: string }>(`SELECT event_name FROM events WHERE event_id = 'a2'`);
    expect(rows).toEqual([{ event_name: 'first' }]);
    expect(await eventRows(viaAppender)).toEqual(await eventRows(viaJson));
  });

  it('stores null, IPv6, unicode, quotes and control characters exactly as the JSON path does', async () => {
    const batch = [
      event('b1', {
        eventName: null, eventSource: null, serviceName: null, eventType: null, acsRegion: null, vpcId: null, userAgent: null,
        errorCode: null, errorMessage: null, accessKeyId: null, keyKind: 'none', identityType: null, accountId: null,
        principalId: null, userName: null, requestId: null, sourceIp: null, sourceKind: 'invalid', ipFamily: null,
      }),
      event('b2', { sourceIp: '2001:db8::1', ipFamily: 6, vpcId: 'vpc-bp1', sourceKind: 'vpc' }),
      event('b3', { userAgent: `Mozilla/5.0 "quoted" 'single' \\back\\slash 中文 ✓ 😀 é`, userName: 'Ünïcødé', errorMessage: 'line1\nline2\ttab\r' }),
      event('b4', { userAgent: '', errorCode: 'AccessKeyId.AccessPolicyDenied', aclDenied: true, exemptService: true }),
      event('b5', { requestId: undefined, sourceIp: 'sls.aliyuncs.com', sourceKind: 'service', ipFamily: null }),
      event('b6', { eventTime: '2026-11-01T02:03:04.123Z' }),
      event('b7', { eventTime: '2024-02-29T23:59:59Z' }),
    ];
    const counts = await writeBoth(2, batch);
    expect(counts.appended).toEqual({ inserted: 7, duplicates: 0 });
    expect(counts.appended).toEqual(counts.json);
    expect(await eventRows(viaAppender)).toEqual(await eventRows(viaJson));
    const [b3] = await viaAppender.query<{ user_agent: string }>(`SELECT user_agent FROM events WHERE event_id = 'b3'`);
    expect(b3!.user_agent).toBe(`Mozilla/5.0 "quoted" 'single' \\back\\slash 中文 ✓ 😀 é`);
  });

  it('changes nothing when a batch is delivered again, and inserts only the new events of an overlapping batch', async () => {
    const first = Array.from({ length: 300 }, (_, i) => event(`c${String(i).padStart(4, '0')}`, { eventTime: `2026-11-02T00:${String(i % 60).padStart(2, '0')}:00Z` }));
    expect((await writeBoth(3, first)).appended).toEqual({ inserted: 300, duplicates: 0 });
    const again = await writeBoth(4, first);
    expect(again.appended).toEqual({ inserted: 0, duplicates: 300 });
    expect(again.appended).toEqual(again.json);
    const overlap = [...first.slice(250), ...Array.from({ length: 20 }, (_, i) => event(`d${i}`, { eventTime: '2026-11-03T00:00:00Z' }))];
    const counts = await writeBoth(5, overlap);
    expect(counts.appended).toEqual({ inserted: 20, duplicates: 50 });
    expect(counts.appended).toEqual(counts.json);
    expect(await eventRows(viaAppender)).toEqual(await eventRows(viaJson));
  });

  it('recognizes a redelivered event whose eventTime is written in another form of the same instant', async () => {
    const counts = await writeBoth(6, [
      event('b6', { eventTime: '2026-11-01T02:03:04.1230Z' }), // stored in an earlier batch as …04.123Z
      event('c0001', { eventTime: '2026-11-02T00:01:00.000Z' }), // stored as …00:01:00Z
      event('e1', { eventTime: '2026-11-04T00:00:00Z' }),
      event('e1', { eventTime: '2026-11-04T00:00:00.000Z' }),
    ]);
    expect(counts.appended).toEqual({ inserted: 1, duplicates: 3 });
    expect(counts.appended).toEqual(counts.json);
    expect(await eventRows(viaAppender)).toEqual(await eventRows(viaJson));
  });

  it('dedupes against stored events at the edges of the batch time range', async () => {
    // A batch whose only events sit exactly on its min and max: the range is inclusive at both ends.
    const counts = await writeBoth(7, [event('c0000', { eventTime: '2026-11-02T00:00:00Z' }), event('c0059', { eventTime: '2026-11-02T00:59:00Z' }), event('f1', { eventTime: '2026-11-02T00:30:00Z' })]);
    expect(counts.appended).toEqual({ inserted: 1, duplicates: 2 });
    expect(counts.appended).toEqual(counts.json);
    expect(await eventRows(viaAppender)).toEqual(await eventRows(viaJson));
  });

  it('dedupes at millisecond edges of the range, and when a time is not in the canonical form', async () => {
    const stored = [event('ms0', { eventTime: '2026-11-05T00:00:00.001Z' }), event('ms9', { eventTime: '2026-11-05T00:00:09.999Z' }), event('tz0', { eventTime: '2026-11-06T00:00:00Z' })];
    expect((await writeBoth(20, stored)).appended).toEqual({ inserted: 3, duplicates: 0 });
    // Range bounded in JS: its ends are exactly the stored times, to the millisecond.
    const edges = await writeBoth(21, [event('ms0', { eventTime: '2026-11-05T00:00:00.001Z' }), event('ms9', { eventTime: '2026-11-05T00:00:09.999Z' }), event('ms5', { eventTime: '2026-11-05T00:00:05Z' })]);
    expect(edges.appended).toEqual({ inserted: 1, duplicates: 2 });
    expect(edges.appended).toEqual(edges.json);
    // A time written without the zone letter: the range comes from DuckDB's reading of every staged time.
    const mixed = await writeBoth(22, [event('tz0', { eventTime: '2026-11-06 00:00:00' }), event('ms9', { eventTime: '2026-11-05T00:00:09.999Z' }), event('tz1', { eventTime: '2026-11-05T12:00:00Z' })]);
    expect(mixed.appended).toEqual({ inserted: 1, duplicates: 2 });
    expect(mixed.appended).toEqual(mixed.json);
    expect(await eventRows(viaAppender)).toEqual(await eventRows(viaJson));
  });

  it('returns zero counts for an empty batch', async () => {
    const counts = await writeBoth(8, []);
    expect(counts.appended).toEqual({ inserted: 0, duplicates: 0 });
    expect(counts.appended).toEqual(counts.json);
  });
});

describe('insertEventsAppend inside a failed transaction', () => {
  it('leaves nothing of the batch, in events or in the stage, when the transaction throws after the insert', async () => {
    const before = await eventRows(viaAppender);
    await expect(
      viaAppender.transaction(async () => {
        const counts = await insertEventsAppend(viaAppender.connection, 9, [event('g1'), event('g2')]);
        expect(counts.inserted).toBe(2);
        throw new Error('later step of the batch failed');
      }),
    ).rejects.toThrow('later step of the batch failed');
    expect(await eventRows(viaAppender)).toEqual(before);
    expect(await stageCount(viaAppender)).toBe(0);
  });

  it('leaves the stage empty when the insert itself fails, and the next batch is stored normally', async () => {
    const before = await eventCount(viaAppender);
    await expect(
      viaAppender.transaction(() => insertEventsAppend(viaAppender.connection, 10, [event('h1'), event('h2', { eventTime: 'not a time' })])),
    ).rejects.toThrow();
    expect(await eventCount(viaAppender)).toBe(before);
    expect(await stageCount(viaAppender)).toBe(0);
    const counts = await viaAppender.transaction(() => insertEventsAppend(viaAppender.connection, 11, [event('h1')]));
    expect(counts).toEqual({ inserted: 1, duplicates: 0 });
    const [row] = await viaAppender.query<{ run_id: number }>(`SELECT run_id FROM events WHERE event_id = 'h1'`);
    expect(row!.run_id).toBe(11);
  });

  it('fails the batch on a value its column cannot hold, keeping none of the rows appended before it', async () => {
    const before = await eventCount(viaAppender);
    const bad = event('m3', { ipFamily: 300 as unknown as 4 });
    await expect(viaAppender.transaction(() => insertEventsAppend(viaAppender.connection, 12, [event('m1'), event('m2'), bad]))).rejects.toThrow(/range/);
    expect(await eventCount(viaAppender)).toBe(before);
    expect(await stageCount(viaAppender)).toBe(0);
    expect(await viaAppender.transaction(() => insertEventsAppend(viaAppender.connection, 13, [event('m1')]))).toEqual({ inserted: 1, duplicates: 0 });
    expect(await stageCount(viaAppender)).toBe(0);
  });

  it('recreates the stage when the transaction that created it was rolled back', async () => {
    const fresh = await Store.open(join(dir, 'fresh.duckdb'));
    try {
      await expect(
        fresh.transaction(async () => {
          await insertEventsAppend(fresh.connection, 1, [event('k1')]);
          throw new Error('first batch failed');
        }),
      ).rejects.toThrow('first batch failed');
      expect(await eventCount(fresh)).toBe(0);
      const counts = await fresh.transaction(() => insertEventsAppend(fresh.connection, 2, [event('k1'), event('k2')]));
      expect(counts).toEqual({ inserted: 2, duplicates: 0 });
      expect(await stageCount(fresh)).toBe(0);
    } finally {
      fresh.close();
    }
  });
});
