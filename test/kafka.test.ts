// The Kafka live source against a real Apache Kafka broker (KRaft, single node, 127.0.0.1), driven through
// real `keyfence ingest --kafka` processes: crash and restart, rebalances, the store's position versus the
// group's committed offset, nightly increments, --follow with a signal, and SASL.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Store } from '../ingest/store.ts';
import { kafkaSourceSettings } from '../bin/commands/ingest-kafka.ts';
import { UsageError } from '../model/errors.ts';
import { asSlsLog, committedOffsets, createTopic, groupAssignments, produce, setCommittedOffsets, useTestBroker, waitFor, testEvent, TEST_SASL_USER, type TestMessage } from './kafka-broker.ts';

const ROOT = join(import.meta.dirname, '..');
const CLI = join(ROOT, 'bin', 'keyfence.js');

const setup = useTestBroker('kf-kafka-test-');

interface Run {
  child: ChildProcess;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
}

function ingest(args: string[], env: NodeJS.ProcessEnv = {}): Run {
  const child = spawn(process.execPath, [CLI, 'ingest', ...args], {
    cwd: ROOT,
    env: { ...process.env, KEYFENCE_KAFKA_PASSWORD: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  return { child, done };
}

async function finished(run: Run, timeoutMs = 60_000): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  const timer = setTimeout(() => run.child.kill('SIGKILL'), timeoutMs);
  try {
    const result = await run.done;
    if (result.signal === 'SIGKILL') throw new Error(`ingest did not finish within ${timeoutMs} ms:\n${result.stderr}`);
    return result;
  } finally {
    clearTimeout(timer);
  }
}


function kafkaArgs(topic: string, group: string, db: string, ...more: string[]): string[] {
  return ['--kafka', setup.broker.brokers, '--topic', topic, '--group', group, '--db', db, '--json', ...more];
}

async function storedRows<T>(dbs: string[], sql: string): Promise<T[]> {
  const store = await Store.open(dbs.length === 1 ? dbs[0]! : dbs, { readOnly: true });
  try {
    return (await store.query(sql)) as T[];
  } finally {
    store.close();
  }
}

/**
 * `valid` distinct events spread over `partitions`, in both value shapes; every 20th value repeats an earlier
 * event (on another partition); `malformed` bad values interleaved. Returns the messages and what a correct
 * ingest must end with.
 */
function workload(valid: number, partitions: number, malformed: number, firstEvent = 0): { messages: TestMessage[]; eventIds: string[]; badValues: Array<{ partition: number; index: number }> } {
  const messages: TestMessage[] = [];
  const eventIds: string[] = [];
  const badValues: Array<{ partition: number; index: number }> = [];
  const BAD: Array<string | Buffer | null> = ['{"eventId": "cut-off', '{"foo": 1}', '[1, 2', null, Buffer.from([0xff, 0xfe, 0x00, 0x01]), '"just a string"'];
  const badEvery = Math.max(1, Math.floor(valid / Math.max(1, malformed)));
  for (let i = 0; i < valid; i += 1) {
    const n = firstEvent + i;
    const event = testEvent(n);
    eventIds.push(String(event.eventId));
    messages.push({ partition: n % partitions, value: n % 2 ? asSlsLog(event) : JSON.stringify(event) });
    if (i % 20 === 19) messages.push({ partition: (n + 1) % partitions, value: JSON.stringify(testEvent(n - 7)) });
    if (i % badEvery === badEvery - 1 && badValues.length < malformed) {
      badValues.push({ partition: (n + 2) % partitions, index: messages.length });
      messages.push({ partition: (n + 2) % partitions, value: BAD[badValues.length % BAD.length]! });
    }
  }
  return { messages, eventIds, badValues };
}

/** `topic/partition/offset` of the bad values, given that offsets count up from 0 per partition in send order. */
function badLocations(topic: string, messages: TestMessage[], badValues: Array<{ index: number }>, startOffsets = new Map<number, number>()): string[] {
  const next = new Map(startOffsets);
  const offsetOf: number[] = [];
  for (const m of messages) {
    const o = next.get(m.partition) ?? 0;
    offsetOf.push(o);
    next.set(m.partition, o + 1);
  }
  return badValues.map((b) => `${topic}/${messages[b.index]!.partition}/${offsetOf[b.index]}`).sort();
}

describe('keyfence ingest --kafka', () => {
  it('two consumers in one group, one SIGKILLed mid-stream and restarted, store exactly the distinct valid events and quarantine exactly the bad values', async () => {
    const topic = 'trail-crash';
    const group = 'nightly-crash';
    await createTopic(setup.broker.brokers, topic, 4);
    const { messages, eventIds, badValues } = workload(4_000, 4, 30);
    await produce(setup.broker.brokers, topic, messages, 40);
    const part1 = join(setup.dir, 'crash-part-1.duckdb');
    const part2 = join(setup.dir, 'crash-part-2.duckdb');
    // Small record batches and small fetches make many small store transactions: the second process joins
    // long before the first could finish, and the kill lands with work still to do.
    const env = { KEYFENCE_KAFKA_FETCH_BYTES: '16384', KEYFENCE_KAFKA_SESSION_TIMEOUT_MS: '6000' };

    const first = ingest(kafkaArgs(topic, group, part1, '--until-caught-up'), env);
    const second = ingest(kafkaArgs(topic, group, part2, '--until-caught-up'), env);
    // Kill the first process once the group is shared and it has committed work of its own on its partitions.
    const firstId = `-${first.child.pid}`;
    let firstPartitions: number[] = [];
    let baseline: number | null = null;
    let committedAtKill = 0;
    await waitFor('the first process to be part way through its partitions', async () => {
      const assignments = await groupAssignments(setup.broker.brokers, group, topic);
      const mine = [...assignments].find(([clientId]) => clientId.endsWith(firstId))?.[1] ?? [];
      if (assignments.size !== 2 || mine.length === 0) return false;
      const offsets = await committedOffsets(setup.broker.brokers, group, topic);
      const committed = mine.reduce((sum, p) => sum + (offsets.get(p) ?? 0), 0);
      if (baseline === null || mine.join() !== firstPartitions.join()) {
        firstPartitions = mine;
        baseline = committed;
        return false;
      }
      committedAtKill = committed;
      return committed > baseline;
    });
    first.child.kill('SIGKILL');
    const killed = await first.done;
    expect(killed.signal).toBe('SIGKILL');
    expect(committedAtKill).toBeLessThan(messages.filter((m) => firstPartitions.includes(m.partition)).length);
    // The killed process had stored work of its own: the restart has something to resume from.
    const [before] = await storedRows<{ n: number }>([part1], 'SELECT count(*) AS n FROM events');
    expect(before!.n).toBeGreaterThan(0);

    const restarted = ingest(kafkaArgs(topic, group, part1, '--until-caught-up'), env);
    const [a, b] = await Promise.all([finished(restarted, 90_000), finished(second, 90_000)]);
    for (const r of [a, b]) expect([0, 2], `${r.stderr}${r.stdout}`).toContain(r.code);

    const offsets = await committedOffsets(setup.broker.brokers, group, topic);
    const perPartition = [0, 1, 2, 3].map((p) => messages.filter((m) => m.partition === p).length);
    expect([0, 1, 2, 3].map((p) => offsets.get(p) ?? 0)).toEqual(perPartition);

    const stored = await storedRows<{ event_id: string }>([part1, part2], 'SELECT event_id FROM events ORDER BY event_id');
    expect(stored.map((r) => r.event_id)).toEqual([...eventIds].sort());
    for (const part of [part1, part2]) {
      const [dupes] = await storedRows<{ n: number }>([part], 'SELECT count(*) - count(DISTINCT event_id) AS n FROM events');
      expect(dupes!.n).toBe(0);
    }
    // A value may be quarantined by two parts when a rebalance hands its batch over before the commit; never lost.
    const quarantined = await storedRows<{ location: string }>([part1, part2], 'SELECT DISTINCT location FROM quarantine ORDER BY location');
    expect(quarantined.map((r) => r.location)).toEqual(badLocations(topic, messages, badValues));
  }, 150_000);

  it("resumes from the store's position when the store is ahead of the group's committed offset", async () => {
    const topic = 'trail-store-ahead';
    const group = 'nightly-store-ahead';
    await createTopic(setup.broker.brokers, topic, 2);
    const { messages, eventIds, badValues } = workload(400, 2, 4);
    await produce(setup.broker.brokers, topic, messages);
    const db = join(setup.dir, 'store-ahead.duckdb');
    const firstRun = await finished(ingest(kafkaArgs(topic, group, db, '--until-caught-up')));
    expect(firstRun.code, firstRun.stderr).toBe(2);
    expect(JSON.parse(firstRun.stdout)).toMatchObject({ source: 'kafka', read: messages.length, quarantined: badValues.length });

    // As after a crash between the store's commit and Kafka's: the group forgets partition 0's progress.
    await setCommittedOffsets(setup.broker.brokers, group, topic, new Map([[0, 0]]));
    const again = await finished(ingest(kafkaArgs(topic, group, db, '--until-caught-up')));
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ read: 0, inserted: 0, quarantined: 0 });
    const offsets = await committedOffsets(setup.broker.brokers, group, topic);
    expect(offsets.get(0)).toBe(messages.filter((m) => m.partition === 0).length);

    const [counts] = await storedRows<{ events: number; quarantined: number }>([db], 'SELECT (SELECT count(*) FROM events) AS events, (SELECT count(*) FROM quarantine) AS quarantined');
    expect(counts).toEqual({ events: eventIds.length, quarantined: badValues.length });
    const checkpoints = await storedRows<{ source: string; position: string }>([db], "SELECT source, position FROM checkpoints WHERE source LIKE 'kafka:%' ORDER BY source");
    expect(checkpoints).toEqual([0, 1].map((p) => ({ source: `kafka:${topic}:${p}`, position: String(messages.filter((m) => m.partition === p).length) })));
  }, 90_000);

  it('reads on past a stored batch that the group still has to commit (the crash test\'s rebalance hang)', async () => {
    // After a rebalance refused a commit, the partition comes back and kafkajs fetches again from the group's
    // offset: the first batch it gets is exactly the one the store already holds. The run must skip it and read
    // on, not fetch that batch forever.
    const topic = 'trail-refetch';
    const group = 'nightly-refetch';
    await createTopic(setup.broker.brokers, topic, 1);
    const night1 = workload(60, 1, 0);
    await produce(setup.broker.brokers, topic, night1.messages);
    const db = join(setup.dir, 'refetch.duckdb');
    const first = await finished(ingest(kafkaArgs(topic, group, db, '--until-caught-up')));
    expect(first.code, first.stderr).toBe(0);

    await setCommittedOffsets(setup.broker.brokers, group, topic, new Map([[0, 0]]));
    const night2 = workload(40, 1, 0, 10_000);
    await produce(setup.broker.brokers, topic, night2.messages);
    // Fetches smaller than one produced record batch: the first fetch ends exactly where the store stands.
    const second = await finished(ingest(kafkaArgs(topic, group, db, '--until-caught-up'), { KEYFENCE_KAFKA_FETCH_BYTES: '1024' }));
    expect(second.code, second.stderr).toBe(0);
    expect(JSON.parse(second.stdout)).toMatchObject({ read: night2.messages.length, inserted: night2.eventIds.length });
    const offsets = await committedOffsets(setup.broker.brokers, group, topic);
    expect(offsets.get(0)).toBe(night1.messages.length + night2.messages.length);
    const [n] = await storedRows<{ n: number }>([db], 'SELECT count(*) AS n FROM events');
    expect(n!.n).toBe(night1.eventIds.length + night2.eventIds.length);
  }, 90_000);

  it('a nightly run reads only what arrived since the last one', async () => {
    const topic = 'trail-nightly';
    const group = 'nightly-increment';
    await createTopic(setup.broker.brokers, topic, 3);
    const night1 = workload(300, 3, 0);
    await produce(setup.broker.brokers, topic, night1.messages);
    const db = join(setup.dir, 'nightly.duckdb');
    const first = await finished(ingest(kafkaArgs(topic, group, db, '--until-caught-up')));
    expect(first.code, first.stderr).toBe(0);

    const night2 = workload(200, 3, 0, 10_000);
    await produce(setup.broker.brokers, topic, night2.messages);
    const second = await finished(ingest(kafkaArgs(topic, group, db)));
    expect(second.code, second.stderr).toBe(0);
    expect(JSON.parse(second.stdout)).toMatchObject({ read: night2.messages.length, inserted: night2.eventIds.length, duplicates: night2.messages.length - night2.eventIds.length });
    const [n] = await storedRows<{ n: number }>([db], 'SELECT count(*) AS n FROM events');
    expect(n!.n).toBe(night1.eventIds.length + night2.eventIds.length);
  }, 90_000);

  it('--follow keeps reading new values until SIGTERM, then finishes its batch and exits cleanly', async () => {
    const topic = 'trail-follow';
    const group = 'follow';
    await createTopic(setup.broker.brokers, topic, 2);
    const db = join(setup.dir, 'follow.duckdb');
    const run = ingest(kafkaArgs(topic, group, db, '--follow'));
    const { messages, eventIds } = workload(500, 2, 0);
    await produce(setup.broker.brokers, topic, messages);
    await waitFor('the follower to commit everything', async () => {
      const offsets = await committedOffsets(setup.broker.brokers, group, topic);
      return [...offsets.values()].reduce((a, b) => a + b, 0) === messages.length;
    });
    run.child.kill('SIGTERM');
    const result = await finished(run);
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ read: messages.length, inserted: eventIds.length });
    const [runRow] = await storedRows<{ status: string }>([db], 'SELECT status FROM ingest_runs ORDER BY run_id DESC LIMIT 1');
    expect(runRow!.status).toBe('ok');
  }, 90_000);

  it('--ssl reads over TLS from a listener whose certificate the process trusts (NODE_EXTRA_CA_CERTS)', async () => {
    const topic = 'trail-tls';
    await createTopic(setup.broker.brokers, topic, 1);
    const { messages, eventIds } = workload(50, 1, 0);
    await produce(setup.broker.brokers, topic, messages);
    const args = ['--kafka', setup.broker.sslBrokers, '--ssl', '--topic', topic, '--group', 'tls', '--db', join(setup.dir, 'tls.duckdb'), '--json'];
    const result = await finished(ingest(args, { NODE_EXTRA_CA_CERTS: setup.broker.caFile }));
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ read: messages.length, inserted: eventIds.length });
  }, 60_000);

  describe('SASL with the password from KEYFENCE_KAFKA_PASSWORD', () => {
    for (const mechanism of ['plain', 'scram-sha-256', 'scram-sha-512']) {
      it(`reads through ${mechanism}`, async () => {
        const topic = `trail-sasl-${mechanism}`;
        await createTopic(setup.broker.brokers, topic, 1);
        const { messages, eventIds } = workload(50, 1, 0);
        await produce(setup.broker.brokers, topic, messages);
        const db = join(setup.dir, `sasl-${mechanism}.duckdb`);
        const args = ['--kafka', setup.broker.saslBrokers, '--topic', topic, '--group', `sasl-${mechanism}`, '--db', db, '--json', '--sasl-mechanism', mechanism, '--sasl-username', TEST_SASL_USER.username];
        const result = await finished(ingest(args, { KEYFENCE_KAFKA_PASSWORD: TEST_SASL_USER.password }));
        expect(result.code, result.stderr).toBe(0);
        expect(JSON.parse(result.stdout)).toMatchObject({ inserted: eventIds.length });
      }, 60_000);
    }

    it('a wrong password fails with exit 3, naming what to check and never printing the password', async () => {
      const topic = 'trail-sasl-wrong';
      await createTopic(setup.broker.brokers, topic, 1);
      const wrong = 'not-the-password-4711';
      const args = ['--kafka', setup.broker.saslBrokers, '--topic', topic, '--group', 'sasl-wrong', '--db', join(setup.dir, 'sasl-wrong.duckdb'), '--json', '--sasl-mechanism', 'scram-sha-256', '--sasl-username', TEST_SASL_USER.username];
      const result = await finished(ingest(args, { KEYFENCE_KAFKA_PASSWORD: wrong }));
      expect(result.code).toBe(3);
      const error = JSON.parse(result.stdout).error;
      expect(error.hint).toContain('KEYFENCE_KAFKA_PASSWORD');
      expect(result.stdout + result.stderr).not.toContain(wrong);
    }, 60_000);

    it('SASL without the environment variable is a usage error', async () => {
      const args = ['--kafka', setup.broker.saslBrokers, '--topic', 'x', '--group', 'g', '--db', join(setup.dir, 'sasl-none.duckdb'), '--json', '--sasl-mechanism', 'plain', '--sasl-username', 'keyfence'];
      const result = await finished(ingest(args));
      expect(result.code).toBe(1);
      expect(JSON.parse(result.stdout).error.message).toContain('KEYFENCE_KAFKA_PASSWORD');
    }, 30_000);
  });

  it('a topic that does not exist fails with exit 3 and names the topic', async () => {
    const result = await finished(ingest(kafkaArgs('no-such-topic', 'g-missing', join(setup.dir, 'missing.duckdb'), '--until-caught-up')));
    expect(result.code).toBe(3);
    expect(JSON.parse(result.stdout).error.message).toContain('no-such-topic');
  }, 60_000);
});

describe('ingest --kafka options', () => {
  const base = { kafka: '127.0.0.1:9092', topic: 't', group: 'g' };

  it('defaults to --until-caught-up and takes every broker of the list', () => {
    const settings = kafkaSourceSettings({ ...base, kafka: 'kafka-1:9092, 10.0.0.2:9093,[::1]:9094' }, {});
    expect(settings.mode).toBe('until-caught-up');
    expect(settings.brokers).toEqual(['kafka-1:9092', '10.0.0.2:9093', '[::1]:9094']);
    expect(settings.sasl).toBeUndefined();
  });

  it.each([
    [{ ...base, kafka: 'kafka-1' }, 'host:port'],
    [{ ...base, kafka: 'kafka-1:99999' }, 'host:port'],
    [{ ...base, topic: undefined }, '--topic'],
    [{ ...base, group: undefined }, '--group'],
    [{ ...base, untilCaughtUp: true, follow: true }, 'exclude each other'],
    [{ ...base, saslMechanism: 'gssapi', saslUsername: 'u' }, '--sasl-mechanism'],
    [{ ...base, saslMechanism: 'plain' }, '--sasl-username'],
    [{ ...base, saslUsername: 'u' }, '--sasl-mechanism'],
  ])('rejects %j naming what to fix', (opts, message) => {
    expect(() => kafkaSourceSettings(opts, { KEYFENCE_KAFKA_PASSWORD: 'x' })).toThrow(UsageError);
    expect(() => kafkaSourceSettings(opts, { KEYFENCE_KAFKA_PASSWORD: 'x' })).toThrow(message);
  });

  it('takes the SASL password from KEYFENCE_KAFKA_PASSWORD only', () => {
    const settings = kafkaSourceSettings({ ...base, saslMechanism: 'SCRAM-SHA-512', saslUsername: 'u' }, { KEYFENCE_KAFKA_PASSWORD: 'p' });
    expect(settings.sasl).toEqual({ mechanism: 'scram-sha-512', username: 'u', password: 'p' });
    expect(() => kafkaSourceSettings({ ...base, saslMechanism: 'plain', saslUsername: 'u' }, {})).toThrow('KEYFENCE_KAFKA_PASSWORD');
  });

  it('reads the tuning knobs from the environment and refuses nonsense', () => {
    expect(kafkaSourceSettings(base, { KEYFENCE_KAFKA_FETCH_BYTES: '65536', KEYFENCE_KAFKA_SESSION_TIMEOUT_MS: '6000' })).toMatchObject({ maxBytesPerPartition: 65536, sessionTimeoutMs: 6000 });
    expect(() => kafkaSourceSettings(base, { KEYFENCE_KAFKA_FETCH_BYTES: '-1' })).toThrow('KEYFENCE_KAFKA_FETCH_BYTES');
  });
});
