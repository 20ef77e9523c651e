// Kafka ingest through a real broker, side by side with a consume-and-discard kafkajs loop on the same topic.
// Targets: keyfence ≥ 0.7× the discard loop's rate, and ≥ 50 k events/s.
import { join } from 'node:path';
import { Kafka, logLevel, Partitioners, type EachBatchPayload } from 'kafkajs';
import { DEFAULT_MAX_BYTES, DEFAULT_MAX_BYTES_PER_PARTITION } from '../ingest/sources/kafka.ts';
import { startKafkaBroker } from '../scripts/kafka/broker.ts';
import { asSlsLog, createTopic, testEvent } from '../test/kafka-broker.ts';
import { fmt, measureProcess, timeIt, verdict, type BenchContext, type BenchSection } from './harness.ts';

const PARTITIONS = 4;
/** The same fetch sizing for both consumers: keyfence's defaults. */
const FETCH = { maxBytes: DEFAULT_MAX_BYTES, maxBytesPerPartition: DEFAULT_MAX_BYTES_PER_PARTITION, maxWaitTimeInMs: 250 };

export default async function kafkaSection(ctx: BenchContext): Promise<BenchSection> {
  const events = ctx.scale === 'full' ? 1_000_000 : 100_000;
  const cli = join(ctx.root, 'bin', 'keyfence.js');
  const broker = await startKafkaBroker({ log: ctx.log, heapMiB: 768 });
  try {
    const topic = 'bench-trail';
    await createTopic(broker.brokers, topic, PARTITIONS);
    const produced = await timeIt(() => produceEvents(broker.brokers, topic, events));
    ctx.log(`produced ${events} events in ${fmt(produced.seconds)} s (${produced.result} bytes)`);

    const discard = await timeIt(() => consumeAndDiscard(broker.brokers, topic, 'bench-discard', events));
    const discardRate = events / discard.seconds;
    ctx.log(`kafkajs consume-and-discard: ${fmt(discard.seconds)} s`);

    const db = join(ctx.dataDir, 'kafka-bench.duckdb');
    const run = await measureProcess(process.execPath, [cli, 'ingest', '--kafka', broker.brokers, '--topic', topic, '--group', 'bench-keyfence', '--until-caught-up', '--db', db, '--json'], {
      cwd: ctx.root,
      env: { ...process.env, KEYFENCE_DEBUG: '1' },
    });
    if (run.exitCode !== 0) throw new Error(`keyfence ingest --kafka exited ${run.exitCode}: ${run.stderr.slice(-2000)}`);
    const summary = JSON.parse(run.stdout) as { read: number; inserted: number; seconds: number };
    if (summary.inserted !== events) throw new Error(`keyfence stored ${summary.inserted} of ${events} events`);
    const keyfenceRate = events / summary.seconds;
    const wallRate = events / run.wallSeconds;
    const ratio = keyfenceRate / discardRate;
    const timing = /kafka timing: decode ([\d.]+) s, store ([\d.]+) s/.exec(run.stderr);
    const decodeSeconds = timing ? Number(timing[1]) : NaN;
    const storeSeconds = timing ? Number(timing[2]) : NaN;

    return {
      title: `Kafka ingest through a real broker (${events.toLocaleString('en')} events, ${PARTITIONS} partitions)`,
      table: [
        ['consumer', 'seconds', 'events/s', 'vs discard', 'peak RSS MiB'],
        ['kafkajs consume-and-discard (eachBatch, in process)', fmt(discard.seconds), fmt(discardRate, 0), '1.00', '—'],
        ['keyfence ingest --kafka (normalize + DuckDB + commit)', fmt(summary.seconds), fmt(keyfenceRate, 0), fmt(ratio), fmt(run.peakRssMiB, 0)],
        ['same, whole process wall clock (incl. Node/tsx start)', fmt(run.wallSeconds), fmt(wallRate, 0), fmt(wallRate / discardRate), fmt(run.peakRssMiB, 0)],
      ],
      notes: [
        `Target ≥ 0.7× the discard loop: ${verdict(ratio >= 0.7)} (${fmt(ratio)}×).`,
        `Target ≥ 50 k events/s: ${verdict(keyfenceRate >= 50_000)} (${fmt(keyfenceRate / 1000, 1)} k/s).`,
        'keyfence events/s is read over its own run time (from opening the store to the last commit, as in its summary); both consumers join a fresh group and read the topic from the beginning with the same fetch sizes.',
        `Where keyfence's time went: ${fmt(decodeSeconds)} s decoding values in JS (normalizeRecord), ${fmt(storeSeconds)} s in the store's batch transactions (Store.writeBatch), overlapped by up to ${2} batches in flight; the rest is kafkajs fetching and decoding, as in the discard loop. Both are wall time on the one JS thread: a transaction's time includes its statements waiting for that thread while it normalizes the next batch (and for a core, on a loaded machine), so it is not DuckDB's own cost.`,
        `Values alternate between a bare event and a trail log as JSON (\`{"__topic__", "event": "<event JSON>"}\`), about ${fmt(produced.result / events, 0)} bytes each; one broker (KRaft, JVM heap 768 MiB) on the same 2 cores as the consumer.`,
      ],
    };
  } finally {
    await broker.stop();
  }
}

function client(brokers: string): Kafka {
  return new Kafka({ clientId: 'keyfence-bench', brokers: [brokers], logLevel: logLevel.NOTHING });
}

async function produceEvents(brokers: string, topic: string, count: number): Promise<number> {
  const producer = client(brokers).producer({ createPartitioner: Partitioners.DefaultPartitioner, allowAutoTopicCreation: false });
  await producer.connect();
  let bytes = 0;
  try {
    const chunk = 2_000;
    for (let start = 0; start < count; start += chunk) {
      const messages = [];
      for (let i = start; i < Math.min(count, start + chunk); i += 1) {
        const event = testEvent(i);
        const value = i % 2 ? asSlsLog(event) : JSON.stringify(event);
        bytes += value.length;
        messages.push({ partition: i % PARTITIONS, value });
      }
      await producer.send({ topic, acks: 1, messages });
    }
  } finally {
    await producer.disconnect();
  }
  return bytes;
}

/** The reference: a kafkajs group consumer that reads every value and throws it away. */
async function consumeAndDiscard(brokers: string, topic: string, groupId: string, expected: number): Promise<void> {
  const consumer = client(brokers).consumer({ groupId, ...FETCH, allowAutoTopicCreation: false });
  let seen = 0;
  let bytes = 0;
  try {
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`discard loop saw ${seen} of ${expected} values in 10 minutes`)), 600_000);
      consumer
        .run({
          autoCommit: false,
          eachBatch: async ({ batch, resolveOffset }: EachBatchPayload) => {
            for (const m of batch.messages) bytes += m.value?.length ?? 0;
            seen += batch.messages.length;
            resolveOffset(batch.lastOffset());
            if (seen >= expected) {
              clearTimeout(timer);
              resolve();
            }
          },
        })
        .catch(reject);
    });
  } finally {
    await consumer.disconnect();
  }
  if (bytes === 0) throw new Error('discard loop read no bytes');
}
