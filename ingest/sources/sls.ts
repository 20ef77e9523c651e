// The Simple Log Service source: the only module (with its sls-*.ts helpers) that knows the SLS SDK.
//
// Why cursor pulling (ListShards → GetCursor → PullLogs) and not time-windowed GetLogs paging:
// - completeness: a cursor walks every log of a shard, in order, once; GetLogs answers from the index, may say
//   `Incomplete`, only sees indexed logs, and pages by offset inside a window that keeps changing while logs arrive;
// - exactness of resume: a cursor per shard is an exact position; a window + offset is not (late logs land inside
//   windows already read);
// - no index needed, so it works on any trail logstore.
// Each batch carries the cursor to resume after it (`sls:<project>/<logstore>:<shard>`), committed with its events.
// `--from/--to` become cursors by time (GetCursor `from=<unix seconds>`): SLS positions cursors by the time a log
// was received, which for a trail is seconds to minutes after the event.
//
// `client.pullLogs` is unusable as shipped (no project in the host, JSON body declared while the service answers
// protobuf): PullLogs goes through `client.execute` with `bodyType: 'byte'`; the gateway decompresses (it asks for
// lz4) and we decode the `LogGroupList` (sls-protobuf.ts).
import SlsModule, { GetCursorRequest, GetLogsRequest } from '@alicloud/sls20201230';
import { $OpenApiUtil } from '@alicloud/openapi-core';
import CredentialsModule from '@alicloud/credentials';
import { SourceError, UsageError } from '../../model/errors.ts';
import { cjsDefault, KeyfenceSlsGateway, SlsServiceError } from './sls-gateway.ts';
import { decodeFlatLogs, type SlsFlatLog } from './sls-protobuf.ts';
import { DEFAULT_RETRY_POLICY, withRetries, type RetryPolicy } from './sls-retry.ts';

const SlsClient = cjsDefault(SlsModule);
const Credential = cjsDefault(CredentialsModule);
type SlsClientInstance = InstanceType<typeof SlsClient>;
type Runtime = Parameters<SlsClientInstance['execute']>[2];

export interface SlsTarget {
  /** `cn-hangzhou.log.aliyuncs.com` (HTTPS), or with a scheme: `http://127.0.0.1:8080`. */
  endpoint: string;
  project: string;
  logstore: string;
}

/** The SDK client and where it points. Credentials come only from the default chain, resolved on first use. */
export interface SlsConnection extends SlsTarget {
  client: SlsClientInstance;
  runtime: Runtime;
}

export interface ConnectOptions {
  readTimeoutMs?: number;
  connectTimeoutMs?: number;
}

/** A project name becomes a host label (`<project>.<endpoint>`); a logstore name a path segment. */
const PROJECT_NAME = /^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/;
const LOGSTORE_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,126}[a-zA-Z0-9]$/;

/** Builds the SDK client: `credential: new Credential()` is the default chain (env, OIDC, CLI/profile config, ECS RAM role, URI). */
export function connectSls(target: SlsTarget, options: ConnectOptions = {}): SlsConnection {
  const match = /^(https?):\/\/(.+?)\/?$/i.exec(target.endpoint.trim());
  const protocol = match ? match[1]!.toLowerCase() : 'https';
  const endpoint = match ? match[2]! : target.endpoint.trim();
  if (!endpoint || /[/\s]/.test(endpoint)) throw new UsageError(`--endpoint ${JSON.stringify(target.endpoint)} is not a host`, { hint: 'e.g. cn-hangzhou.log.aliyuncs.com' });
  if (!PROJECT_NAME.test(target.project)) throw new UsageError(`--project ${JSON.stringify(target.project)} is not an SLS project name`, { hint: 'lowercase letters, digits and hyphens, 3-63 characters' });
  if (!LOGSTORE_NAME.test(target.logstore)) throw new UsageError(`--logstore ${JSON.stringify(target.logstore)} is not a logstore name`, { hint: 'letters, digits, hyphens and underscores' });
  const config = new $OpenApiUtil.Config({
    endpoint,
    protocol,
    credential: new Credential(),
    readTimeout: options.readTimeoutMs ?? 60_000,
    connectTimeout: options.connectTimeoutMs ?? 10_000,
    userAgent: 'keyfence',
  });
  const client = new SlsClient(config);
  client.setGatewayClient(new KeyfenceSlsGateway());
  const runtime = { readTimeout: options.readTimeoutMs ?? 60_000, connectTimeout: options.connectTimeoutMs ?? 10_000 } as Runtime;
  return { ...target, endpoint, client, runtime };
}

/** The checkpoint name of one shard. */
export function shardCheckpointSource(target: Pick<SlsTarget, 'project' | 'logstore'>, shardId: number): string {
  return `sls:${target.project}/${target.logstore}:${shardId}`;
}

/** The quarantine `source` of records from this logstore. */
export function logstoreSource(target: Pick<SlsTarget, 'project' | 'logstore'>): string {
  return `sls:${target.project}/${target.logstore}`;
}

// ---------------------------------------------------------------- the four calls, each inside the retry loop

export interface ShardInfo {
  shardId: number;
  /** `readwrite`, or `readonly` once split or merged: a readonly shard read to its end is complete for good. */
  status: string;
}

export async function listShards(conn: SlsConnection, retry: RetryPolicy = DEFAULT_RETRY_POLICY): Promise<ShardInfo[]> {
  const res = await withRetries('ListShards', () => conn.client.listShardsWithOptions(conn.project, conn.logstore, {}, conn.runtime), retry);
  const shards = (res.body ?? []).map((s) => ({ shardId: Number(s.shardID), status: String(s.status ?? 'readwrite').toLowerCase() }));
  if (shards.some((s) => !Number.isInteger(s.shardId))) throw new SourceError('ListShards answered a shard without an ID', { context: { call: 'ListShards' } });
  return shards.sort((a, b) => a.shardId - b.shardId);
}

/** `from`: `begin`, `end`, or a time (cursor of the first log received at or after it). */
export async function getCursor(conn: SlsConnection, shardId: number, from: 'begin' | 'end' | Date, retry: RetryPolicy = DEFAULT_RETRY_POLICY): Promise<string> {
  const fromParam = from instanceof Date ? String(Math.floor(from.getTime() / 1000)) : from;
  const res = await withRetries(`GetCursor(shard ${shardId})`, () => conn.client.getCursorWithOptions(conn.project, conn.logstore, String(shardId), new GetCursorRequest({ from: fromParam }), {}, conn.runtime), retry);
  const cursor = res.body?.cursor;
  if (!cursor) throw new SourceError(`GetCursor(shard ${shardId}) answered no cursor`, { context: { call: 'GetCursor' } });
  return cursor;
}

export interface PulledLogs {
  /** Log groups in the answer (what x-log-count counts). */
  groups: number;
  /** Every log of the answer, in order, as the normalizer takes it. */
  logs: SlsFlatLog[];
  nextCursor: string;
  /** Bytes of the decoded body. */
  bytes: number;
}

function pullParams(logstore: string, shardId: number): InstanceType<typeof $OpenApiUtil.Params> {
  return new $OpenApiUtil.Params({
    action: 'PullLogs',
    version: '2020-12-30',
    protocol: 'HTTPS',
    pathname: `/logstores/${logstore}/shards/${shardId}?type=log`,
    method: 'GET',
    authType: 'AK',
    style: 'ROA',
    reqBodyType: 'none',
    bodyType: 'byte',
  });
}

/** One PullLogs call: up to `count` log groups from `cursor`, not past `endCursor`. Checks the answer is whole. */
export async function pullLogs(conn: SlsConnection, shardId: number, cursor: string, endCursor: string, count: number, retry: RetryPolicy = DEFAULT_RETRY_POLICY): Promise<PulledLogs> {
  const params = pullParams(conn.logstore, shardId);
  return withRetries(`PullLogs(shard ${shardId})`, async () => {
    const request = new $OpenApiUtil.OpenApiRequest({
      hostMap: { project: conn.project },
      headers: {},
      query: { type: 'log', cursor, count: String(count), end_cursor: endCursor },
    });
    const res = (await conn.client.execute(params, request, conn.runtime)) as { headers?: Record<string, string>; body?: unknown };
    const headers = res.headers ?? {};
    const nextCursor = headers['x-log-cursor'];
    const declared = Number(headers['x-log-count']);
    if (!nextCursor || !Number.isInteger(declared)) throw new SlsServiceError('IncompleteAnswer', 'PullLogs answer without x-log-cursor / x-log-count', 0, headers['x-log-requestid'] ?? null);
    const body = res.body === undefined || res.body === null ? Buffer.alloc(0) : (res.body as Buffer);
    const { groups, logs } = decodeFlatLogs(body);
    // x-log-count counts log groups: a body cut short decodes to fewer, and must not pass for the whole answer.
    if (groups !== declared) throw new SlsServiceError('IncompleteAnswer', `PullLogs body holds ${groups} log groups, x-log-count says ${declared}`, 0, headers['x-log-requestid'] ?? null);
    if (groups === 0 && nextCursor === cursor && cursor !== endCursor) {
      throw new SlsServiceError('ShardStalled', `shard ${shardId} answered no logs and no progress before its end cursor`, 0, headers['x-log-requestid'] ?? null);
    }
    return { groups, logs, nextCursor, bytes: body.length };
  }, retry);
}

// ---------------------------------------------------------------- the source

/** One raw SLS log as the ActionTrail normalizer takes it: `__time__`, `__topic__`, `__source__`, `__tag__:*`, and the log's fields (`event` holds the event JSON). */
export type SlsRawRecord = SlsFlatLog;

export interface SlsRecord {
  raw: SlsRawRecord;
  /** Where it came from, stable across re-reads: shard, the cursor of the pull that returned it, index within that pull. */
  location: string;
}

export interface SlsCheckpoint {
  source: string;
  position: string;
  complete: boolean;
}

export interface SlsBatch {
  shardId: number;
  records: SlsRecord[];
  /** Resume after this batch: commit it in the same transaction as the batch's events. */
  checkpoint: SlsCheckpoint;
}

export interface StoredPosition {
  position: string;
  complete: boolean;
}

export interface SlsSourceOptions {
  connection: SlsConnection;
  /** The stored checkpoint of a shard, if any (`sls:<project>/<logstore>:<shard>`). A stored cursor wins over `from`. */
  resume: (source: string) => Promise<StoredPosition | null>;
  /** Start of a first read (shards without a checkpoint); default: the beginning of the logstore. */
  from?: Date | null;
  /** Stop at logs received before this time; default: whatever was in the shard when the run started. */
  to?: Date | null;
  /** Records per batch (a batch is one store transaction). */
  batchRecords?: number;
  /** Log groups per PullLogs call (the service caps it at 1000). */
  pullGroups?: number;
  /** Shards read at once. */
  concurrency?: number;
  retry?: RetryPolicy;
}

export interface SlsSourceStats {
  shards: number;
  /** Shards a checkpoint marks complete (readonly and fully read): not read again. */
  skippedShards: number;
  resumedShards: number;
  pulls: number;
  logGroups: number;
  bytes: number;
}

export interface SlsSource {
  readonly stats: SlsSourceStats;
  batches(): AsyncIterable<SlsBatch>;
}

interface ShardPlan {
  shard: ShardInfo;
  checkpointSource: string;
  start: string;
  end: string;
  stored: StoredPosition | null;
  /** The read covers the shard to its end for good (readonly, no --to). */
  finishesShard: boolean;
}

function toRawRecords(logs: SlsRawRecord[], shardId: number, cursor: string): SlsRecord[] {
  return logs.map((raw, index) => ({ raw, location: `shard ${shardId} cursor ${cursor} log ${index}` }));
}

export function createSlsSource(options: SlsSourceOptions): SlsSource {
  const conn = options.connection;
  const retry = options.retry ?? DEFAULT_RETRY_POLICY;
  const batchRecords = options.batchRecords ?? 20_000;
  const pullGroups = Math.min(1000, Math.max(1, options.pullGroups ?? 1000));
  const concurrency = Math.max(1, options.concurrency ?? 4);
  if (options.from && options.to && options.from.getTime() >= options.to.getTime()) {
    throw new UsageError('--from must be before --to');
  }
  const stats: SlsSourceStats = { shards: 0, skippedShards: 0, resumedShards: 0, pulls: 0, logGroups: 0, bytes: 0 };
  let stopped = false;

  async function plan(shard: ShardInfo): Promise<ShardPlan | null> {
    const checkpointSource = shardCheckpointSource(conn, shard.shardId);
    const stored = await options.resume(checkpointSource);
    if (stored?.complete) {
      stats.skippedShards++;
      return null;
    }
    if (stored) stats.resumedShards++;
    const start = stored ? stored.position : await getCursor(conn, shard.shardId, options.from ?? 'begin', retry);
    const end = await getCursor(conn, shard.shardId, options.to ?? 'end', retry);
    return { shard, checkpointSource, start, end, stored, finishesShard: shard.status === 'readonly' && !options.to };
  }

  async function* readShard(p: ShardPlan): AsyncGenerator<SlsBatch> {
    const id = p.shard.shardId;
    let cursor = p.start;
    let pending: SlsRecord[] = [];
    let emittedPosition = p.stored?.position ?? null;
    // Log groups vary in size: the count per call adapts so one answer stays near a batch (bounded memory).
    let count = pullGroups;
    while (cursor !== p.end && !stopped) {
      const pulled = await pullLogs(conn, id, cursor, p.end, count, retry);
      const logs = pulled.logs.length;
      if (logs > batchRecords) count = Math.max(1, count >> 1);
      else if (logs * 4 < batchRecords && count < pullGroups) count = Math.min(pullGroups, count * 2);
      stats.pulls++;
      stats.logGroups += pulled.groups;
      stats.bytes += pulled.bytes;
      const records = toRawRecords(pulled.logs, id, cursor);
      for (const r of records) pending.push(r);
      cursor = pulled.nextCursor;
      if (pending.length >= batchRecords && cursor !== p.end) {
        yield { shardId: id, records: pending, checkpoint: { source: p.checkpointSource, position: cursor, complete: false } };
        emittedPosition = cursor;
        pending = [];
      }
    }
    if (stopped) return;
    const complete = p.finishesShard;
    if (pending.length > 0 || emittedPosition !== cursor || complete) {
      yield { shardId: id, records: pending, checkpoint: { source: p.checkpointSource, position: cursor, complete } };
    }
  }

  async function* batches(): AsyncGenerator<SlsBatch> {
    stopped = false;
    const shards = await listShards(conn, retry);
    stats.shards = shards.length;
    const queue = [...shards];
    type Pending = Promise<{ gen: AsyncGenerator<SlsBatch>; result: IteratorResult<SlsBatch> }>;
    const active = new Map<AsyncGenerator<SlsBatch>, Pending>();
    const pull = (gen: AsyncGenerator<SlsBatch>): Pending => {
      const p = gen.next().then((result) => ({ gen, result }));
      p.catch(() => undefined); // observed through Promise.race; keeps a sibling's failure from going unhandled
      return p;
    };
    const startNext = async (): Promise<void> => {
      while (active.size < concurrency && queue.length > 0) {
        const p = await plan(queue.shift()!);
        if (!p) continue;
        const gen = readShard(p);
        active.set(gen, pull(gen));
      }
    };
    try {
      await startNext();
      while (active.size > 0) {
        const { gen, result } = await Promise.race(active.values());
        if (result.done) {
          active.delete(gen);
          await startNext();
          continue;
        }
        active.set(gen, pull(gen)); // prefetch this shard's next batch while the caller stores this one
        yield result.value;
      }
    } finally {
      stopped = true;
      await Promise.allSettled([...active.values()]);
    }
  }

  return { stats, batches };
}

// ---------------------------------------------------------------- analytic queries (push-down)

export interface AnalyticQuery {
  /** `<search> | <SQL>`. */
  query: string;
  /** Log time range, inclusive from, exclusive to (seconds resolution). */
  from: Date;
  to: Date;
}

/**
 * Runs an analytic query with GetLogs and returns its rows (every value a string as the service sends them, `null`
 * kept as the service's own `"null"` text: the caller knows which columns can be null).
 * An answer whose `x-log-progress` is not `Complete` is asked again (bounded, with backoff) and never returned.
 */
export async function runAnalyticQuery(conn: SlsConnection, q: AnalyticQuery, retry: RetryPolicy = DEFAULT_RETRY_POLICY): Promise<Array<Record<string, string | null>>> {
  const from = Math.floor(q.from.getTime() / 1000);
  const to = Math.ceil(q.to.getTime() / 1000);
  return withRetries('GetLogs', async () => {
    const res = await conn.client.getLogsWithOptions(conn.project, conn.logstore, new GetLogsRequest({ from, to, query: q.query }), {}, conn.runtime);
    const progress = res.headers?.['x-log-progress'];
    if (progress !== 'Complete') {
      throw new SlsServiceError('QueryIncomplete', `GetLogs answered progress ${progress ?? '(none)'}: the result is not whole yet`, 0, res.headers?.['x-log-requestid'] ?? null);
    }
    const rows = res.body ?? [];
    return rows.map((row) => {
      const out: Record<string, string | null> = {};
      for (const [k, v] of Object.entries(row)) out[k] = v === null || v === undefined ? null : String(v);
      return out;
    });
  }, retry);
}
