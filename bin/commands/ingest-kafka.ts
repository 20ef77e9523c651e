// `keyfence ingest --kafka …`: reads a topic of ActionTrail events into one database file. Each Kafka batch
// becomes one store transaction (events, quarantined values, the partition's next offset); the offsets are
// committed to the consumer group only after that transaction. See docs/kafka.md.
import { hostname } from 'node:os';
import { normalizeRecord } from '../../ingest/actiontrail.ts';
import { Store } from '../../ingest/store.ts';
import { createKafkaSource, parseBrokerList, SASL_MECHANISMS, type KafkaBatch, type KafkaConsumeResult, type KafkaSource, type KafkaSourceOptions, type SaslMechanism } from '../../ingest/sources/kafka.ts';
import { EXIT, UsageError } from '../../model/errors.ts';
import type { IngestSummary, RecordLocation, Rejection, RejectionReason } from '../../model/types.ts';
import { Progress, resolveDbPaths } from '../common.ts';
import { printIngestSummary } from './ingest.ts';
import { countBatch, emptySummary, recordedRun } from '../../ingest/run-summary.ts';

/** The SASL password is read from this environment variable only: never a flag, never printed. */
export const KAFKA_PASSWORD_ENV = 'KEYFENCE_KAFKA_PASSWORD';
/** Tuning knobs (documented in docs/kafka.md): fetch size per partition, consumer session timeout. */
export const KAFKA_FETCH_BYTES_ENV = 'KEYFENCE_KAFKA_FETCH_BYTES';
export const KAFKA_SESSION_TIMEOUT_ENV = 'KEYFENCE_KAFKA_SESSION_TIMEOUT_MS';


export interface IngestKafkaOptions {
  kafka?: string;
  topic?: string;
  group?: string;
  untilCaughtUp?: boolean;
  follow?: boolean;
  ssl?: boolean;
  saslMechanism?: string;
  saslUsername?: string;
  db?: string[];
  json?: boolean;
}

/** The checkpoint key of one partition in the store. */
export function kafkaCheckpointKey(topic: string, partition: number): string {
  return `kafka:${topic}:${partition}`;
}

/** Validates the options into source settings; throws UsageError naming the flag to fix. */
export function kafkaSourceSettings(opts: IngestKafkaOptions, env: NodeJS.ProcessEnv = process.env): Omit<KafkaSourceOptions, 'storedPositions' | 'log'> {
  if (!opts.kafka) throw new UsageError('--kafka needs host:port[,host:port…]');
  const brokers = parseBrokerList(opts.kafka);
  if (!opts.topic) throw new UsageError('--kafka needs --topic', { hint: 'the topic the ActionTrail events are written to' });
  if (!opts.group) throw new UsageError('--kafka needs --group', { hint: 'a consumer group ID; keep it the same from run to run (it holds the committed offsets)' });
  if (opts.untilCaughtUp && opts.follow) throw new UsageError('--until-caught-up and --follow exclude each other');
  let sasl: KafkaSourceOptions['sasl'];
  if (opts.saslMechanism !== undefined || opts.saslUsername !== undefined) {
    const mechanism = opts.saslMechanism?.toLowerCase();
    if (!mechanism || !(SASL_MECHANISMS as readonly string[]).includes(mechanism)) {
      throw new UsageError(`--sasl-mechanism must be one of ${SASL_MECHANISMS.join(', ')}`, { hint: '--sasl-username needs --sasl-mechanism' });
    }
    if (!opts.saslUsername) throw new UsageError('--sasl-mechanism needs --sasl-username');
    const password = env[KAFKA_PASSWORD_ENV];
    if (!password) throw new UsageError(`SASL needs the password in the ${KAFKA_PASSWORD_ENV} environment variable`, { hint: 'it is never taken from a flag' });
    sasl = { mechanism: mechanism as SaslMechanism, username: opts.saslUsername, password };
  }
  return {
    brokers,
    topic: opts.topic,
    groupId: opts.group,
    ssl: opts.ssl === true,
    sasl,
    mode: opts.follow ? 'follow' : 'until-caught-up',
    maxBytesPerPartition: positiveInt(env, KAFKA_FETCH_BYTES_ENV),
    sessionTimeoutMs: positiveInt(env, KAFKA_SESSION_TIMEOUT_ENV),
  };
}

function positiveInt(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const text = env[name];
  if (text === undefined || text === '') return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) throw new UsageError(`${name}=${JSON.stringify(text)} is not a positive whole number`);
  return n;
}

export async function ingestFromKafka(opts: IngestKafkaOptions): Promise<number> {
  const settings = kafkaSourceSettings(opts);
  const dbPaths = resolveDbPaths(opts.db);
  if (dbPaths.length !== 1) {
    throw new UsageError('ingest writes one database file', { hint: 'to scale out, run one `keyfence ingest` per --db part-N.duckdb in the same --group' });
  }
  const { topic } = settings;
  const started = process.hrtime.bigint();
  const store = await Store.open(dbPaths[0]!);
  const summary = emptySummary('kafka');
  const progress = new Progress(`ingest ${topic}`);
  /** The run gave up waiting with partitions it held short of the start's high-water marks: exit 4. */
  let stalledShort = false;
  let source: KafkaSource | null = null;
  // A signal finishes the batch in hand (committed to the store, then to the group) and ends the run cleanly.
  let signalled = false;
  const onSignal = (): void => {
    signalled = true;
    source?.stop();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await recordedRun(store, 'kafka', summary, async () => {
      const storedPositions = new Map<number, string>();
      const prefix = kafkaCheckpointKey(topic, 0).slice(0, -1);
      for (const row of await store.query<{ source: string; position: string }>(`SELECT source, position FROM checkpoints WHERE starts_with(source, ?)`, [prefix])) {
        const partition = Number(row.source.slice(prefix.length));
        if (Number.isInteger(partition) && /^\d+$/.test(row.position)) storedPositions.set(partition, row.position);
      }
      // The client ID names the host and process, so the group's description shows who holds which partitions.
      const clientId = `keyfence-${hostname()}-${process.pid}`;
      source = createKafkaSource({ ...settings, clientId, storedPositions, debug: Boolean(process.env.KEYFENCE_DEBUG), log: (m) => process.stderr.write(`keyfence: ${m}\n`) });
      // A signal that came before the source existed: end the run before reading anything.
      if (signalled) source.stop();

      // KEYFENCE_DEBUG=1 prints where the time went (decoding in JS versus the store's transactions) on stderr.
      const timing = { decode: 0, store: 0 };
      const outcome = await source.consume({
        prepare: (batch) => {
          const t0 = performance.now();
          const decoded = decodeBatch(batch);
          timing.decode += performance.now() - t0;
          return decoded;
        },
        write: async ({ events, rejections }, batch) => {
          const t0 = performance.now();
          const written = await store.writeBatch({
            runId: summary.runId,
            events,
            rejections,
            checkpoints: [{ source: kafkaCheckpointKey(batch.topic, batch.partition), position: batch.nextOffset }],
          });
          countBatch(summary, batch.records.length, written, rejections);
          timing.store += performance.now() - t0;
          progress.update(summary.read, null, `${summary.read} read, ${summary.inserted} new`);
        },
      });
      summary.notes = [describeOutcome(outcome)];
      // Stalled with partitions left behind: everything read is stored, but this run did not finish its share.
      stalledShort = outcome.reason === 'stalled' && outcome.incomplete.length > 0;
      if (stalledShort) {
        summary.errors.push(`stopped waiting with ${topic} partition${outcome.incomplete.length > 1 ? 's' : ''} ${outcome.incomplete.join(', ')} short of the high-water mark seen at start; run again (it resumes)`);
      }
      if (process.env.KEYFENCE_DEBUG) process.stderr.write(`keyfence: kafka timing: decode ${(timing.decode / 1000).toFixed(2)} s, store ${(timing.store / 1000).toFixed(2)} s\n`);
    }, { started, settle: () => progress.done() });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    store.close();
  }
  const code = printIngestSummary(summary, opts.json === true);
  return stalledShort ? EXIT.ATTENTION : code;
}

/** Normalizes every value of a batch; a bad value is quarantined at `topic/partition/offset`. */
export function decodeBatch(batch: KafkaBatch): { events: ReturnType<typeof normalizeRecord>['events']; rejections: Array<Rejection & RecordLocation> } {
  const events: ReturnType<typeof normalizeRecord>['events'] = [];
  const rejections: Array<Rejection & RecordLocation> = [];
  const source = `kafka:${batch.topic}`;
  for (const record of batch.records) {
    const location = `${batch.topic}/${batch.partition}/${record.offset}`;
    if (record.value === null || record.value.length === 0) {
      rejections.push({ reason: 'not-an-object' satisfies RejectionReason, detail: record.value === null ? 'message without a value (tombstone)' : 'empty message', raw: '', source, location });
      continue;
    }
    const result = normalizeRecord(record.value.toString('utf8'));
    for (const e of result.events) events.push(e);
    for (const r of result.rejections) rejections.push({ ...r, source, location });
  }
  return { events, rejections };
}

function describeOutcome(outcome: KafkaConsumeResult): string {
  const held = outcome.assigned.length === 0 ? 'no partition' : `partition${outcome.assigned.length > 1 ? 's' : ''} ${outcome.assigned.join(', ')}`;
  const total = outcome.partitions.length;
  switch (outcome.reason) {
    case 'caught-up':
      return `caught up with the high-water marks seen at start; this process last held ${held} of ${total}`;
    case 'stalled':
      return outcome.incomplete.length === 0
        ? `stopped waiting (no progress and no rebalance for a while) with every partition it held caught up; this process last held ${held} of ${total}`
        : `stopped waiting (no progress and no rebalance for a while); this process last held ${held} of ${total}`;
    case 'stopped':
      return `stopped on request; this process last held ${held} of ${total}`;
  }
}

