// The Kafka source: kafkajs stays behind this one file. It hands out batches of raw values with the
// partition offsets to resume after them, and commits a batch's offsets to the consumer group only after the
// caller's write (the store's transaction) has resolved: at-least-once from Kafka, made exact by event IDs.
//
// Where a partition resumes: the caller passes the positions its store holds (written in the same DuckDB
// transaction as the events, so they are the truth about that store). When the store is ahead of the group's
// committed offset (a crash between the store's commit and Kafka's), records below the store's position are
// skipped and the partition is moved to it; otherwise the group's committed offset is where reading starts.
import { Kafka, logLevel, type Consumer, type EachBatchPayload, type LogEntry, type SASLOptions } from 'kafkajs';
import { SourceError, UsageError } from '../../model/errors.ts';

export const SASL_MECHANISMS = ['plain', 'scram-sha-256', 'scram-sha-512'] as const;
export type SaslMechanism = (typeof SASL_MECHANISMS)[number];

export interface KafkaSourceOptions {
  /** `host:port` of each bootstrap broker. */
  brokers: string[];
  topic: string;
  groupId: string;
  clientId?: string;
  ssl?: boolean;
  sasl?: { mechanism: SaslMechanism; username: string; password: string };
  /**
   * `until-caught-up`: stop once every partition assigned to this process has reached the high-water mark
   * seen at start (the nightly batch mode). `follow`: run until `stop()`.
   */
  mode: 'until-caught-up' | 'follow';
  /** Next offset to read per partition, as the caller's store records it (checkpoints). */
  storedPositions?: ReadonlyMap<number, string>;
  /** Fetch sizing; large fetches make large batches (one store transaction each). */
  maxBytes?: number;
  maxBytesPerPartition?: number;
  maxWaitTimeMs?: number;
  sessionTimeoutMs?: number;
  /** How long to keep retrying an unreachable cluster before giving up. */
  connectTimeoutMs?: number;
  /** Receives one line per broker warning or error (stderr in the CLI). */
  log?: (message: string) => void;
  /** Also log group membership (joins, rebalances, assignments) and how the run ended (KEYFENCE_DEBUG). */
  debug?: boolean;
}

export interface KafkaRecord {
  offset: string;
  /** The message value; null for a tombstone. */
  value: Buffer | null;
}

export interface KafkaBatch {
  topic: string;
  partition: number;
  records: KafkaRecord[];
  /** The offset to resume from after this batch (last offset + 1): the checkpoint to store with it. */
  nextOffset: string;
}

export interface PartitionProgress {
  partition: number;
  /** Next offset this process knows to be stored (by it, or committed by the group), or null if unknown. */
  position: string | null;
  /** The high-water mark seen at start. */
  highWatermark: string;
}

export interface KafkaConsumeResult {
  /**
   * `stalled`: `until-caught-up` saw neither progress nor an assignment change for STALL_SESSIONS session
   * timeouts and gave up waiting (see `incomplete`).
   */
  reason: 'caught-up' | 'stopped' | 'stalled';
  /** Partitions this process held at the end that had not reached the high-water mark seen at start, sorted. */
  incomplete: number[];
  /** Partitions assigned to this process at the end, sorted. */
  assigned: number[];
  partitions: PartitionProgress[];
}

/**
 * What the caller does with each batch, in two steps so the next batch can be decoded while the previous one
 * is being written: `prepare` runs as soon as a batch arrives (CPU work, e.g. parsing), `write` runs strictly
 * one at a time, in arrival order (the store's transaction). A batch's offsets are committed to the group only
 * after its `write` resolved.
 */
export interface BatchHandler<T> {
  prepare(batch: KafkaBatch): T;
  write(prepared: T, batch: KafkaBatch): Promise<void>;
}

export interface KafkaSource {
  /**
   * Delivers every batch to `handler`. Resolves when caught up (`until-caught-up`) or after `stop()`, once every
   * delivered batch is written and committed; rejects with a SourceError when the cluster is unreachable or the
   * topic missing, or with the error of a failed `write` (nothing after it is written or committed).
   */
  consume<T>(handler: BatchHandler<T>): Promise<KafkaConsumeResult>;
  /** Stops taking batches, finishes and commits the ones in hand, leaves the group. Safe to call any time. */
  stop(): void;
}

const CHECK_INTERVAL_MS = 250;
/**
 * `until-caught-up` gives up after this many session timeouts (at least STALL_MIN_MS) with no record stored, no
 * offset committed and no assignment change: a nightly run must end even if the group stops handing it work.
 */
export const STALL_SESSIONS = 5;
const STALL_MIN_MS = 30_000;
/** How long committing the last offsets, and then leaving the group, may take when the run ends. */
const FINISH_TIMEOUT_MS = 15_000;
/** `follow`: how often a partition's refused commit is tried again while no new batch arrives. */
const FOLLOW_RECOMMIT_MS = 5_000;
/**
 * Up to about 20,000 ActionTrail events per partition batch, one store transaction each: against 4 MiB (5,000),
 * ~15 % less time and ~8 % less CPU per event at +70 MiB peak RSS (fewer commits; bench/kafka.ts). The whole
 * fetch is capped at the same size: a larger cap bought no speed for more memory.
 */
export const DEFAULT_MAX_BYTES_PER_PARTITION = 16 * 1024 * 1024;
export const DEFAULT_MAX_BYTES = 16 * 1024 * 1024;
/** Batches decoded ahead of the one being written: enough to overlap decoding with writing, bounded memory. */
const MAX_BATCHES_IN_FLIGHT = 2;

/** Parses `host:port[,host:port…]`. */
export function parseBrokerList(text: string): string[] {
  const brokers = text.split(',').map((s) => s.trim()).filter(Boolean);
  if (brokers.length === 0) throw new UsageError('--kafka needs at least one broker', { hint: 'e.g. --kafka 127.0.0.1:9092,10.0.0.2:9092' });
  for (const b of brokers) {
    const m = /^(\[[0-9a-fA-F:.]+\]|[^\s:[\]]+):(\d{1,5})$/.exec(b);
    if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) {
      throw new UsageError(`broker ${JSON.stringify(b)} is not host:port`, { hint: 'e.g. --kafka kafka-1.internal:9092' });
    }
  }
  return brokers;
}

type Watermarks = Map<number, { low: bigint; high: bigint }>;

export function createKafkaSource(options: KafkaSourceOptions): KafkaSource {
  const { topic, groupId, mode } = options;
  const log = options.log ?? (() => undefined);
  const debug = options.debug === true ? (m: string) => log(`kafka debug: ${m}`) : () => undefined;
  const kafka = new Kafka({
    clientId: options.clientId ?? 'keyfence',
    brokers: options.brokers,
    ssl: options.ssl === true,
    sasl: options.sasl ? toKafkaSasl(options.sasl) : undefined,
    connectionTimeout: 5_000,
    authenticationTimeout: 10_000,
    requestTimeout: 30_000,
    retry: { retries: retriesFor(options.connectTimeoutMs ?? 30_000), initialRetryTime: 300, maxRetryTime: 5_000 },
    logLevel: logLevel.WARN,
    logCreator: () => (entry: LogEntry) => {
      if (entry.level > logLevel.WARN) return;
      // Rebalances and a coordinator still starting are announced as errors by kafkajs while being routine.
      const text = `${entry.log.message} ${String(entry.log.error ?? '')}`;
      if (/rebalanc|re-joining|not aware of this member|coordinator is not available|coordinator is loading|not the correct coordinator/i.test(text)) return;
      log(`kafka ${entry.level === logLevel.ERROR ? 'error' : 'warning'}: ${entry.log.message}${entry.log.error ? ` (${String(entry.log.error)})` : ''}`);
    },
  });

  // Offsets are int64: compared as bigint, passed as decimal strings.
  /** Per partition, the next offset known to be stored (here, or committed by the group): for "caught up". */
  const position = new Map<number, bigint>();
  /** Per partition, the next offset after the last record handed to the caller (or in the store at start). */
  const delivered = new Map<number, bigint>();
  for (const [p, o] of options.storedPositions ?? []) {
    position.set(p, BigInt(o));
    delivered.set(p, BigInt(o));
  }
  /** When this process last saw progress: a position moved, an offset committed, an assignment changed. */
  let lastProgressAt = Date.now();
  const advance = (partition: number, next: bigint): void => {
    if ((position.get(partition) ?? -1n) < next) {
      position.set(partition, next);
      lastProgressAt = Date.now();
    }
  };
  let assigned: number[] = [];
  let joined = false;
  /**
   * Between a rebalance being announced and the next join, `assigned` may name partitions already handed to
   * another member: no "caught up" is decided on it.
   */
  let rebalancing = false;
  /** Per partition, the offset the group is known to hold as committed (fetched, or committed here). */
  const groupCommitted = new Map<number, bigint>();
  const sessionTimeoutMs = options.sessionTimeoutMs ?? 10_000;
  const stallMs = Math.max(STALL_MIN_MS, STALL_SESSIONS * sessionTimeoutMs);
  let stopRequested = false;
  let wakeStop: (() => void) | null = null;

  const stop = (): void => {
    stopRequested = true;
    wakeStop?.();
  };

  const consume = async <T>(handler: BatchHandler<T>): Promise<KafkaConsumeResult> => {
    const admin = kafka.admin();
    let consumer: Consumer | null = null;
    let checkTimer: NodeJS.Timeout | null = null;
    let failure: { error: unknown } | null = null;
    /** Batches delivered and not yet written, oldest first; each write waits for the one before. */
    const inFlight: Array<Promise<void>> = [];
    let tail: Promise<void> = Promise.resolve();
    let watermarks: Watermarks = new Map();
    let reason: KafkaConsumeResult['reason'] = 'stopped';

    const ended = new Promise<void>((resolve) => {
      wakeStop = resolve;
      if (stopRequested) resolve();
    });
    const failWith = (error: unknown): void => {
      failure ??= { error };
      stop();
    };

    const commit = async (partition: number, next: bigint): Promise<void> => {
      try {
        await consumer!.commitOffsets([{ topic, partition, offset: next.toString() }]);
        // Progress only when the offset moves: the same offset committed again and again is not.
        if ((groupCommitted.get(partition) ?? -1n) < next) {
          groupCommitted.set(partition, next);
          lastProgressAt = Date.now();
        }
      } catch (e) {
        // The store holds the batch: a refused commit (a rebalance moved the partition) only means its next
        // owner reads it again, and event IDs make that harmless.
        log(`kafka warning: offset ${next} of ${topic}/${partition} not committed (${e instanceof Error ? e.message : String(e)}); it will be read again`);
      }
    };

    let checking = false;
    /** `until-caught-up`: stops the run once every assigned partition has reached the high-water mark seen at start. */
    const checkCaughtUp = (): void => {
      if (checking || stopRequested || !joined || rebalancing) return;
      checking = true;
      caughtUp(admin, watermarks)
        .then((yes) => {
          if (yes && !rebalancing && !stopRequested) {
            debug(`caught up on [${assigned.join(', ')}]`);
            reason = 'caught-up';
            stop();
          }
        })
        .catch(() => undefined)
        .finally(() => (checking = false));
    };

    let commits: Promise<void> = Promise.resolve();
    /**
     * On "caught up" or stop (and now and then in `follow`), commits each held partition's position where the group's committed offset is behind it (a
     * commit refused during a rebalance, or records skipped as already stored), so the group does not hand them
     * to the next member to read again. A refused commit here is harmless too.
     */
    const bringGroupForward = async (): Promise<void> => {
      const held = [...assigned];
      // Asked afresh: another member may have moved the offset on while it held the partition; never go back.
      noteGroupCommitted(await admin.fetchOffsets({ groupId, topics: [topic] }));
      for (const p of held) {
        const at = position.get(p);
        const low = watermarks.get(p)?.low ?? 0n;
        if (at !== undefined && at > low && at > (groupCommitted.get(p) ?? -1n)) commits = commits.then(() => commit(p, at));
      }
    };
    /**
     * Queues a write (or none, to move the committed offset only) behind the ones in flight; once it is written,
     * its commit is queued behind the earlier commits. Commits never hold up fetching: during a rebalance kafkajs
     * retries a refused commit for seconds, and the group must not wait for that.
     */
    const enqueue = (partition: number, next: bigint, write: (() => Promise<void>) | null): void => {
      const entry = tail.then(async () => {
        if (failure) return;
        try {
          if (write) await write();
        } catch (e) {
          failWith(e);
          return;
        }
        const high = watermarks.get(partition)?.high ?? 0n;
        const reachesHigh = (position.get(partition) ?? -1n) < high && next >= high;
        advance(partition, next);
        commits = commits.then(() => commit(partition, next));
        // The write that brings a partition to the high-water mark may end the run: decide now, not at the next tick.
        if (mode === 'until-caught-up' && reachesHigh) checkCaughtUp();
      });
      tail = entry;
      inFlight.push(entry);
      void entry.finally(() => inFlight.splice(inFlight.indexOf(entry), 1));
    };

    try {
      await admin.connect().catch((e) => {
        throw unreachable(options.brokers, e);
      });
      const topics = await admin.listTopics().catch((e) => {
        throw unreachable(options.brokers, e);
      });
      if (!topics.includes(topic)) {
        throw new SourceError(`topic ${JSON.stringify(topic)} does not exist on ${options.brokers.join(',')}`, {
          hint: 'check --topic (topic names are case-sensitive)',
          context: { topic },
        });
      }
      watermarks = new Map((await admin.fetchTopicOffsets(topic)).map((o) => [o.partition, { low: BigInt(o.low), high: BigInt(o.high) }]));
      if (stopRequested) return result('stopped', watermarks);

      const c = kafka.consumer({
        groupId,
        sessionTimeout: sessionTimeoutMs,
        heartbeatInterval: Math.max(500, Math.floor(sessionTimeoutMs / 5)),
        rebalanceTimeout: 60_000,
        maxBytes: options.maxBytes ?? DEFAULT_MAX_BYTES,
        maxBytesPerPartition: options.maxBytesPerPartition ?? DEFAULT_MAX_BYTES_PER_PARTITION,
        maxWaitTimeInMs: options.maxWaitTimeMs ?? 250,
        allowAutoTopicCreation: false,
        // Give up rather than restart forever: the caller reports the failure and the next run resumes.
        retry: { retries: 5, restartOnFailure: async () => false },
      });
      consumer = c;
      c.on(c.events.GROUP_JOIN, (e) => {
        assigned = [...(e.payload.memberAssignment[topic] ?? [])].sort((a, b) => a - b);
        joined = true;
        rebalancing = false;
        lastProgressAt = Date.now();
        debug(`joined the group, holding ${topic} partitions [${assigned.join(', ')}]`);
      });
      c.on(c.events.REBALANCING, () => {
        rebalancing = true;
        debug('the group is rebalancing');
      });
      c.on(c.events.CRASH, (e) => {
        if (!e.payload.restart) failWith(unreachable(options.brokers, e.payload.error));
      });
      // Batches made only of transaction markers never reach eachBatch: follow them here so a partition ending in
      // a marker still counts as caught up.
      c.on(c.events.END_BATCH_PROCESS, (e) => {
        if (e.payload.topic === topic && e.payload.batchSize === 0) advance(e.payload.partition, BigInt(e.payload.lastOffset) + 1n);
      });

      await c.connect().catch((e) => {
        throw unreachable(options.brokers, e);
      });
      await c.subscribe({ topic, fromBeginning: true });
      await c.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: 1,
        eachBatch: async (payload: EachBatchPayload) => {
          const { batch } = payload;
          if (stopRequested || !payload.isRunning() || payload.isStale()) return;
          const partition = batch.partition;
          const from = delivered.get(partition);
          const records: KafkaRecord[] = [];
          for (const m of batch.messages) {
            if (from === undefined || BigInt(m.offset) >= from) records.push({ offset: m.offset, value: m.value });
          }
          const next = BigInt(batch.lastOffset()) + 1n;
          if (records.length === 0) {
            // Already stored (or on its way): typically a partition that came back after a rebalance refused its
            // commit, so kafkajs fetches again from the group's offset. Move kafkajs past the batch (without
            // this it fetches the same batch forever and the run never catches up), jump to where this process
            // already is, and bring the group's offset forward to it once the writes before it are done.
            payload.resolveOffset(batch.lastOffset());
            const resumeAt = from !== undefined && from > next ? from : next;
            if (resumeAt > next) c.seek({ topic, partition, offset: resumeAt.toString() });
            enqueue(partition, resumeAt, null);
            return;
          }
          const kafkaBatch: KafkaBatch = { topic, partition, records, nextOffset: next.toString() };
          let prepared: T;
          try {
            prepared = handler.prepare(kafkaBatch);
          } catch (e) {
            failWith(e);
            return;
          }
          delivered.set(partition, next);
          payload.resolveOffset(batch.lastOffset());
          enqueue(partition, next, () => handler.write(prepared, kafkaBatch));
          // Back-pressure: wait for the oldest write, heartbeating so a slow write does not cost the membership.
          while (inFlight.length >= MAX_BATCHES_IN_FLIGHT && payload.isRunning() && !payload.isStale()) {
            const beat = setInterval(() => void payload.heartbeat().catch(() => undefined), 1_000);
            try {
              await inFlight[0];
            } finally {
              clearInterval(beat);
            }
          }
        },
      });

      if (mode === 'follow') {
        // No new batch may come to carry a refused commit forward: retry it now and then.
        checkTimer = setInterval(() => {
          if (joined && !rebalancing && !stopRequested) void bringGroupForward().catch(() => undefined);
        }, FOLLOW_RECOMMIT_MS);
      } else {
        checkTimer = setInterval(() => {
          if (checking || stopRequested) return;
          if (Date.now() - lastProgressAt > stallMs) {
            log(`kafka warning: no progress and no assignment change for ${Math.round(stallMs / 1000)} s; stopping (the next run resumes)`);
            reason = 'stalled';
            stop();
            return;
          }
          checkCaughtUp();
        }, CHECK_INTERVAL_MS);
      }
      await ended;
    } catch (e) {
      failWith(e);
    } finally {
      stopRequested = true;
      if (checkTimer) clearInterval(checkTimer);
      // Every batch handed out is written and committed before the group is left. Writes are awaited to the
      // end (the store must not close under them); commits and leaving the group are bounded, so the run ends
      // even if the cluster stops answering (an offset left uncommitted is read again and deduplicated).
      await tail;
      if (!failure && joined && !rebalancing) await settlesWithin(bringGroupForward(), FINISH_TIMEOUT_MS);
      if (!(await settlesWithin(commits, FINISH_TIMEOUT_MS))) log(`kafka warning: offset commits still unanswered after ${FINISH_TIMEOUT_MS / 1000} s; leaving them (those records will be read again)`);
      if (consumer && !(await settlesWithin(consumer.disconnect(), FINISH_TIMEOUT_MS))) log(`kafka warning: leaving the group took over ${FINISH_TIMEOUT_MS / 1000} s; the group drops this process after the session timeout`);
      await settlesWithin(admin.disconnect(), FINISH_TIMEOUT_MS);
      debug(`finished: ${reason}`);
    }
    if (failure) {
      const e = (failure as { error: unknown }).error;
      if (e instanceof Error && e.name.startsWith('KafkaJS')) throw unreachable(options.brokers, e);
      throw e;
    }
    return result(reason, watermarks);
  };

  const noteGroupCommitted = (fetched: Array<{ partitions: Array<{ partition: number; offset: string }> }>): void => {
    for (const t of fetched) {
      for (const p of t.partitions) {
        const offset = BigInt(p.offset);
        if ((groupCommitted.get(p.partition) ?? -1n) < offset) groupCommitted.set(p.partition, offset);
      }
    }
  };

  /** Every assigned partition at or past the high-water mark seen at start (by this process or the group). */
  const caughtUp = async (admin: ReturnType<Kafka['admin']>, watermarks: Watermarks): Promise<boolean> => {
    const behind = assigned.filter((p) => (position.get(p) ?? -1n) < (watermarks.get(p)?.high ?? 0n));
    if (behind.length === 0) return true;
    // A partition handed over by a rebalance may have been finished by its previous owner.
    noteGroupCommitted(await admin.fetchOffsets({ groupId, topics: [topic] }));
    for (const [p, offset] of groupCommitted) advance(p, offset);
    // Nothing below the low-water mark can be read any more (retention): it counts as done.
    for (const p of behind) advance(p, watermarks.get(p)?.low ?? 0n);
    return assigned.every((p) => (position.get(p) ?? -1n) >= (watermarks.get(p)?.high ?? 0n));
  };

  const result = (reason: KafkaConsumeResult['reason'], watermarks: Watermarks): KafkaConsumeResult => ({
    reason,
    incomplete: assigned.filter((p) => (position.get(p) ?? -1n) < (watermarks.get(p)?.high ?? 0n)),
    assigned: [...assigned],
    partitions: [...watermarks.entries()]
      .sort(([a], [b]) => a - b)
      .map(([partition, w]) => ({ partition, position: position.get(partition)?.toString() ?? null, highWatermark: w.high.toString() })),
  });

  return { consume, stop };
}

/** Waits for `promise` (ignoring its outcome) at most `ms`; true if it settled in time. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true, () => true), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

function toKafkaSasl(sasl: NonNullable<KafkaSourceOptions['sasl']>): SASLOptions {
  const { username, password } = sasl;
  switch (sasl.mechanism) {
    case 'plain':
      return { mechanism: 'plain', username, password };
    case 'scram-sha-256':
      return { mechanism: 'scram-sha-256', username, password };
    case 'scram-sha-512':
      return { mechanism: 'scram-sha-512', username, password };
  }
}

/** kafkajs retries with exponential backoff from 300 ms capped at 5 s: enough retries to span `ms`. */
function retriesFor(ms: number): number {
  let total = 0;
  let wait = 300;
  let n = 0;
  while (total < ms && n < 30) {
    total += wait;
    wait = Math.min(wait * 2, 5_000);
    n += 1;
  }
  return n;
}

function unreachable(brokers: string[], e: unknown): SourceError {
  const message = e instanceof Error ? e.message : String(e);
  const auth = /SASL|authenticat/i.test(message);
  const certificate = /certificate|self.signed|CERT_|altnames/i.test(message);
  return new SourceError(`cannot read from Kafka at ${brokers.join(',')}: ${message}`, {
    cause: e,
    retriable: !auth && !certificate,
    hint: auth
      ? 'check --sasl-mechanism, --sasl-username and the password in KEYFENCE_KAFKA_PASSWORD'
      : certificate
        ? "the broker's TLS certificate is not trusted: add its CA with NODE_EXTRA_CA_CERTS=/path/to/ca.pem"
        : 'check --kafka host:port, that the broker is up and reachable, and --ssl if the listener uses TLS',
    context: { brokers },
  });
}
