// Scale-out: two `keyfence ingest --kafka` processes in one consumer group, each writing its own part file,
// read together by analysis, give the same profiles as one database holding every event.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadProfiles } from '../analyze/profiles.ts';
import { Store } from '../ingest/store.ts';
import { asSlsLog, committedOffsets, createTopic, groupAssignments, produce, useTestBroker, waitFor, testEvent, type TestMessage } from './kafka-broker.ts';

const ROOT = join(import.meta.dirname, '..');
const CLI = join(ROOT, 'bin', 'keyfence.js');
const WINDOW = { from: '2026-10-01T00:00:00Z', to: '2026-11-01T00:00:00Z' };

const setup = useTestBroker('kf-scale-out-');

interface Run {
  child: ChildProcess;
  done: Promise<{ code: number | null; stdout: string; stderr: string }>;
}

function start(args: string[], timeoutMs = 90_000): Run {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`keyfence ${args[0]} did not finish within ${timeoutMs} ms:\n${stderr}`));
    }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
  return { child, done };
}

function keyfence(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return start(args).done;
}


async function profilesOf(dbs: string[]): Promise<unknown> {
  const store = await Store.open(dbs.length === 1 ? dbs[0]! : dbs, { readOnly: true });
  try {
    return await loadProfiles(store, { window: WINDOW });
  } finally {
    store.close();
  }
}

async function eventCount(db: string): Promise<number> {
  const store = await Store.open(db, { readOnly: true });
  try {
    const [row] = await store.query<{ n: number }>('SELECT count(*) AS n FROM events');
    return row!.n;
  } finally {
    store.close();
  }
}

describe('scale-out: one consumer group, one database part per process', () => {
  it('two parts read together give the same profiles, analysis and proposal as one database with every event', async () => {
    const topic = 'trail-scale-out';
    await createTopic(setup.broker.brokers, topic, 4);
    // 4,000 events; every 10th is also written to another partition, so both parts can hold the same event.
    const messages: TestMessage[] = [];
    for (let i = 0; i < 4_000; i += 1) {
      const event = testEvent(i);
      messages.push({ partition: i % 4, value: i % 3 ? JSON.stringify(event) : asSlsLog(event) });
      if (i % 10 === 0) messages.push({ partition: (i + 1) % 4, value: JSON.stringify(event) });
    }

    const ingestArgs = (group: string, db: string, mode: string): string[] => ['ingest', '--kafka', setup.broker.brokers, '--topic', topic, '--group', group, mode, '--db', db, '--json'];
    const part1 = join(setup.dir, 'part-1.duckdb');
    const part2 = join(setup.dir, 'part-2.duckdb');
    const whole = join(setup.dir, 'whole.duckdb');
    // Both part processes join the group before any event exists, so the group surely shares the partitions.
    const followers = [start(ingestArgs('scale-out', part1, '--follow')), start(ingestArgs('scale-out', part2, '--follow'))];
    await waitFor('both processes to hold partitions', async () => {
      const assignments = await groupAssignments(setup.broker.brokers, 'scale-out', topic);
      return assignments.size === 2 && [...assignments.values()].every((partitions) => partitions.length === 2);
    });
    await produce(setup.broker.brokers, topic, messages);
    await waitFor('the group to commit every message', async () => {
      const offsets = await committedOffsets(setup.broker.brokers, 'scale-out', topic);
      return [...offsets.values()].reduce((a, b) => a + b, 0) === messages.length;
    });
    for (const f of followers) f.child.kill('SIGTERM');
    const runs = [...(await Promise.all(followers.map((f) => f.done))), await keyfence(ingestArgs('single', whole, '--until-caught-up'))];
    for (const r of runs) expect(r.code, `${r.stderr}${r.stdout}`).toBe(0);

    expect(await eventCount(whole)).toBe(4_000);
    // Each process stored its own share.
    const [n1, n2] = [await eventCount(part1), await eventCount(part2)];
    expect(n1).toBeGreaterThan(0);
    expect(n2).toBeGreaterThan(0);
    expect(n1 + n2).toBeGreaterThanOrEqual(4_000);

    const together = await profilesOf([part1, part2]);
    const alone = await profilesOf([whole]);
    expect((alone as unknown[]).length).toBeGreaterThan(2);
    expect(together).toEqual(alone);

    const window = ['--from', WINDOW.from, '--to', WINDOW.to, '--json'];
    const [fromParts, fromWhole] = await Promise.all([
      keyfence(['analyze', '--db', part1, '--db', part2, ...window]),
      keyfence(['analyze', '--db', whole, ...window]),
    ]);
    expect(fromParts.code, `${fromParts.stderr}${fromParts.stdout}`).toBe(0);
    expect(fromWhole.code, `${fromWhole.stderr}${fromWhole.stdout}`).toBe(0);
    expect(JSON.parse(fromParts.stdout)).toEqual(JSON.parse(fromWhole.stdout));

    const [proposalFromParts, proposalFromWhole] = await Promise.all([
      keyfence(['recommend', '--db', part1, '--db', part2, ...window]),
      keyfence(['recommend', '--db', whole, ...window]),
    ]);
    expect(proposalFromParts.code, proposalFromParts.stderr).toBe(proposalFromWhole.code);
    const withoutClock = (text: string): unknown => ({ ...JSON.parse(text), generatedAt: null });
    const proposal = withoutClock(proposalFromWhole.stdout) as { accessKeys: unknown[] };
    expect(proposal.accessKeys.length).toBeGreaterThan(0);
    expect(withoutClock(proposalFromParts.stdout)).toEqual(proposal);
  }, 150_000);
});
