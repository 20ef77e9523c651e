// Test helper: a real Apache Kafka broker (scripts/kafka/broker.ts) plus the few producer/admin calls tests
// need. The broker jars install themselves on first use, so `npm test` on a fresh clone needs no manual step.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AssignerProtocol, Kafka, logLevel, Partitioners } from 'kafkajs';
import { afterAll, beforeAll } from 'vitest';
import { startKafkaBroker, type KafkaBroker } from '../scripts/kafka/broker.ts';

export { TEST_SASL_USER, type KafkaBroker } from '../scripts/kafka/broker.ts';

export async function startTestBroker(): Promise<KafkaBroker> {
  return startKafkaBroker({ log: (m) => process.stderr.write(`[kafka-broker] ${m}\n`) });
}

/** A test file's broker and temp directory: started before its tests, stopped and removed after them. */
export function useTestBroker(dirPrefix: string): { broker: KafkaBroker; dir: string } {
  const setup = {} as { broker: KafkaBroker; dir: string };
  beforeAll(async () => {
    setup.broker = await startTestBroker();
    setup.dir = mkdtempSync(join(tmpdir(), dirPrefix));
  }, 180_000);
  afterAll(async () => {
    await setup.broker?.stop();
    if (setup.dir) rmSync(setup.dir, { recursive: true, force: true });
  }, 60_000);
  return setup;
}

/** Polls `check` until it holds; an error thrown by it (a coordinator still loading) counts as "not yet". */
export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function client(brokers: string): Kafka {
  return new Kafka({ clientId: 'keyfence-test', brokers: [brokers], logLevel: logLevel.NOTHING, retry: { retries: 5 } });
}

export async function createTopic(brokers: string, topic: string, partitions: number): Promise<void> {
  const admin = client(brokers).admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions: partitions, replicationFactor: 1 }], waitForLeaders: true, timeout: 30_000 });
  } finally {
    await admin.disconnect();
  }
}

export interface TestMessage {
  partition: number;
  value: string | Buffer | null;
}

/**
 * Produces messages in order (acks from the leader), `chunk` per request. A broker returns whole record
 * batches, so small chunks make small fetches possible (many small store transactions).
 */
export async function produce(brokers: string, topic: string, messages: TestMessage[], chunk = 2_000): Promise<void> {
  const producer = client(brokers).producer({ createPartitioner: Partitioners.DefaultPartitioner, allowAutoTopicCreation: false });
  await producer.connect();
  try {
    for (let i = 0; i < messages.length; i += chunk) {
      await producer.send({ topic, acks: 1, messages: messages.slice(i, i + chunk).map((m) => ({ partition: m.partition, value: m.value })) });
    }
  } finally {
    await producer.disconnect();
  }
}

/** The group's committed offset per partition (partitions without a commit are left out). */
export async function committedOffsets(brokers: string, groupId: string, topic: string): Promise<Map<number, number>> {
  const admin = client(brokers).admin();
  await admin.connect();
  try {
    const [t] = await admin.fetchOffsets({ groupId, topics: [topic] });
    const out = new Map<number, number>();
    for (const p of t?.partitions ?? []) if (Number(p.offset) >= 0) out.set(p.partition, Number(p.offset));
    return out;
  } finally {
    await admin.disconnect();
  }
}

/** Partitions of `topic` assigned to each member of a stable group, by the member's client ID. */
export async function groupAssignments(brokers: string, groupId: string, topic: string): Promise<Map<string, number[]>> {
  const admin = client(brokers).admin();
  await admin.connect();
  try {
    const { groups } = await admin.describeGroups([groupId]);
    const out = new Map<string, number[]>();
    const group = groups[0];
    if (!group || group.state !== 'Stable') return out;
    for (const m of group.members) {
      const assignment = AssignerProtocol.MemberAssignment.decode(m.memberAssignment);
      out.set(m.clientId, [...(assignment?.assignment[topic] ?? [])].sort((a, b) => a - b));
    }
    return out;
  } finally {
    await admin.disconnect();
  }
}

/** Moves the group's committed offset of some partitions (the group must have no active member). */
export async function setCommittedOffsets(brokers: string, groupId: string, topic: string, offsets: Map<number, number>): Promise<void> {
  const admin = client(brokers).admin();
  await admin.connect();
  try {
    await admin.setOffsets({ groupId, topic, partitions: [...offsets].map(([partition, offset]) => ({ partition, offset: String(offset) })) });
  } finally {
    await admin.disconnect();
  }
}

// ---------------------------------------------------------------- deterministic ActionTrail events

const KEYS = ['LTAI5tKfAlpha0000000001', 'LTAI5tKfBravo0000000002', 'LTAI5tKfCharlie00000003', 'f6IzzFZMmzNwEI4d', 'STS.NTempKey00000000005'];
const SERVICES: Array<[service: string, host: string, api: string]> = [
  ['Ecs', 'ecs.aliyuncs.com', 'DescribeInstances'],
  ['Vpc', 'vpc.aliyuncs.com', 'DescribeVpcs'],
  ['Ram', 'ram.aliyuncs.com', 'ListUsers'],
  ['Oss', 'oss-cn-hangzhou.aliyuncs.com', 'GetBucketInfo'],
];

/** Event number `i`: a RAM user's API call, from one of a few public addresses or a VPC, every few a failure. */
export function testEvent(i: number): Record<string, unknown> {
  const key = KEYS[i % KEYS.length]!;
  const [serviceName, eventSource, eventName] = SERVICES[(i >> 2) % SERVICES.length]!;
  const viaVpc = i % 7 === 3;
  const second = i % 86_400;
  const day = 1 + ((i / 86_400) | 0) % 28;
  return {
    apiVersion: '2014-05-26',
    eventId: `0b5c${i.toString(16).padStart(8, '0')}-47df-932f-0ffd1851fc5f`,
    eventName,
    eventSource,
    eventTime: `2026-10-${String(day).padStart(2, '0')}T${String((second / 3600) | 0).padStart(2, '0')}:${String(((second / 60) | 0) % 60).padStart(2, '0')}:${String(second % 60).padStart(2, '0')}Z`,
    eventType: 'ApiCall',
    eventRW: 'Read',
    eventVersion: '1',
    acsRegion: 'cn-hangzhou',
    requestId: `0D690264-0D51-4B4F-8AEE-${i.toString(16).padStart(12, '0')}`,
    requestParameters: { RegionId: 'cn-hangzhou', PageSize: 50, PageNumber: 1 },
    serviceName,
    sourceIpAddress: viaVpc ? `172.16.${(i >> 3) % 4}.${10 + (i % 5)}` : `42.120.${74 + (i % 3)}.${(i * 13) % 200 + 20}`,
    ...(viaVpc ? { vpcId: `vpc-bp1kf${(i >> 3) % 2}` } : {}),
    userAgent: 'AlibabaCloud (linux; x64) Node.js/v20 Core/2.4.0',
    errorCode: i % 11 === 5 ? 'Forbidden.RAM' : '',
    errorMessage: i % 11 === 5 ? 'User not authorized to operate on the specified resource.' : '',
    userIdentity: key.startsWith('STS.')
      ? { type: 'assumed-role', principalId: '300800000000000:ci', accountId: '1234567890123456', accessKeyId: key, userName: 'ci-role:session' }
      : { type: 'ram-user', principalId: `27418064654829238${i % KEYS.length}`, accountId: '1234567890123456', accessKeyId: key, userName: `user-${i % KEYS.length}` },
  };
}

/** The value as a trail's logstore holds it (and as a Kafka consumer of that logstore would read it). */
export function asSlsLog(event: Record<string, unknown>): string {
  const time = Math.floor(Date.parse(String(event.eventTime)) / 1000);
  return JSON.stringify({ __topic__: 'actiontrail_audit_event', __source__: 'actiontrail', __time__: String(time), event: JSON.stringify(event) });
}
