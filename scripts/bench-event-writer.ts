// Micro-bench (not a test, not a bench section): µs per event of Store.writeBatch's JSON insert against
// insertEventsAppend, 5,000-event batches into a store already holding BASE events.
// Run: node --import tsx scripts/bench-event-writer.ts [baseEvents=1000000] [batches=10]
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { insertEventsAppend } from '../ingest/event-writer.ts';
import { Store } from '../ingest/store.ts';
import type { AuditEvent } from '../model/types.ts';

const BASE = Number(process.argv[2] ?? 1_000_000);
const BATCHES = Number(process.argv[3] ?? 10);
const BATCH_SIZE = 5_000;
const BASE_START_MS = Date.UTC(2026, 9, 1);

const dir = mkdtempSync(join(tmpdir(), 'kf-bench-event-writer-'));

function liveEvent(i: number, timeMs: number): AuditEvent {
  return {
    eventId: `live-${i}`,
    eventTime: new Date(timeMs).toISOString().replace('.000Z', 'Z'),
    eventName: i % 7 === 0 ? 'CreateAccessKey' : 'DescribeInstances',
    eventSource: 'ecs.aliyuncs.com',
    serviceName: 'Ecs',
    eventType: 'ApiCall',
    acsRegion: 'cn-hangzhou',
    sourceIp: i % 5 === 0 ? `2001:db8::${(i % 65535).toString(16)}` : `203.0.${(i >> 8) & 255}.${i & 255}`,
    sourceKind: 'public',
    ipFamily: i % 5 === 0 ? 6 : 4,
    vpcId: null,
    userAgent: `aliyun-sdk-java/4.${i % 13}.0 Java/1.8 "Linux"`,
    errorCode: i % 11 === 0 ? 'Forbidden' : null,
    errorMessage: i % 11 === 0 ? 'not allowed' : null,
    accessKeyId: `LTAI5t${String(i % 500).padStart(6, '0')}`,
    keyKind: 'permanent',
    identityType: 'ram-user',
    accountId: '1234567890',
    principalId: `2${i % 500}`,
    userName: `user-${i % 500}`,
    exemptService: false,
    aclDenied: false,
    requestId: `req-live-${i}`,
  };
}

async function seed(path: string): Promise<void> {
  const store = await Store.open(path);
  // Two events a second, in time order, like a store fed by a live source.
  await store.run(`INSERT INTO events
    SELECT 'base-' || i, TIMESTAMP '2026-10-01 00:00:00' + to_milliseconds(i * 500), 'DescribeInstances', 'ecs.aliyuncs.com', 'Ecs', 'ApiCall',
      'cn-hangzhou', '198.51.' || (i % 256) || '.' || (i // 256 % 256), 'public', 4, NULL, 'aliyun-sdk-go/1.0', NULL, NULL,
      'LTAI5t' || lpad(CAST(i % 500 AS VARCHAR), 6, '0'), 'permanent', 'ram-user', '1234567890', '2' || (i % 500), 'user-' || (i % 500),
      false, false, 'req-base-' || i, 1
    FROM range(${BASE}) t(i)`);
  await store.run('CHECKPOINT');
  store.close();
}

type Writer = (store: Store, runId: number, events: AuditEvent[]) => Promise<number>;
const viaJson: Writer = async (store, runId, events) => (await store.writeBatch({ runId, events, rejections: [], checkpoints: [] })).inserted;
const viaAppender: Writer = async (store, runId, events) => (await store.transaction(() => insertEventsAppend(store.connection, runId, events))).inserted;

async function measure(label: string, path: string, write: Writer, setup: string | null): Promise<void> {
  const store = await Store.open(path);
  if (setup) await store.run(setup);
  const liveStartMs = BASE_START_MS + BASE * 500;
  const batches = Array.from({ length: BATCHES }, (_, b) =>
    Array.from({ length: BATCH_SIZE }, (_, j) => liveEvent(b * BATCH_SIZE + j, liveStartMs + (b * BATCH_SIZE + j) * 10)));
  let inserted = 0;
  const t0 = performance.now();
  for (const [b, batch] of batches.entries()) inserted += await write(store, 100 + b, batch);
  const liveMs = performance.now() - t0;
  // The last batch again (all duplicates), then a batch spread over the whole stored range (back-fill: the
  // event_time range cannot prune anything).
  const t1 = performance.now();
  const redelivered = await write(store, 200, batches.at(-1)!);
  const redeliveredMs = performance.now() - t1;
  const spread = Array.from({ length: BATCH_SIZE }, (_, j) => ({ ...liveEvent(10_000_000 + j, BASE_START_MS + Math.floor((j / BATCH_SIZE) * BASE) * 500 + 250), eventId: `fill-${j}` }));
  const t2 = performance.now();
  const filled = await write(store, 201, spread);
  const spreadMs = performance.now() - t2;
  store.close();
  const us = (ms: number, n: number) => ((ms * 1000) / n).toFixed(1);
  console.log(`| ${label} | ${us(liveMs, BATCHES * BATCH_SIZE)} | ${us(redeliveredMs, BATCH_SIZE)} | ${us(spreadMs, BATCH_SIZE)} | ${inserted}/${redelivered}/${filled} |`);
}

try {
  const seeded = join(dir, 'seed.duckdb');
  const t = performance.now();
  await seed(seeded);
  console.error(`seeded ${BASE} events in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  console.log(`${BASE} stored events, ${BATCHES} live batches of ${BATCH_SIZE}; µs per event (each transaction included)\n`);
  console.log('| writer | live batches | redelivered batch | back-fill batch | inserted live/redelivered/back-fill |');
  console.log('|---|---|---|---|---|');
  const runs: Array<[string, Writer, string | null]> = [
    ['writeBatch (from_json + unnest, full anti-join)', viaJson, null],
    ['insertEventsAppend (appender + ranged anti-join)', viaAppender, null],
    ['insertEventsAppend + checkpoint_threshold 256MB', viaAppender, `SET checkpoint_threshold = '256MB'`],
  ];
  for (const [i, [label, write, setup]] of runs.entries()) {
    const path = join(dir, `run${i}.duckdb`);
    copyFileSync(seeded, path);
    await measure(label, path, write, setup);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
