// A local Simple Log Service of the project's own, for tests and the benchmark: it speaks the wire contract the
// real SDK uses for exactly the calls keyfence makes (ListShards, GetCursor, PullLogs, GetLogs), verifies the
// version-1 request signature with a test key, serves a recorded logstore (shards → log groups → logs), and
// injects faults on a deterministic schedule (throttling, 5xx, a connection cut mid-body, an Incomplete query).
// GetLogs runs the SQL part of an analytic query with DuckDB over the logstore's indexed fields.
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { encodeLogGroupEntry } from '../ingest/sources/sls-protobuf.ts';
import type { RecordedGroup, RecordedLogstore } from '../fixtures/sls/build.ts';

export type { RecordedGroup, RecordedLogstore, RecordedShard } from '../fixtures/sls/build.ts';

// ---------------------------------------------------------------- the recorded logstore

/** Reads `fixtures/sls/`: `logstore.json` (project, logstore, shards with status) and one `shard-<id>.ndjson` per shard, a log group per line. */
export function loadRecordedLogstore(dir: string): RecordedLogstore {
  const manifest = JSON.parse(readFileSync(join(dir, 'logstore.json'), 'utf8')) as { project: string; logstore: string; shards: Array<{ shardId: number; status: 'readwrite' | 'readonly' }> };
  const files = new Set(readdirSync(dir));
  return {
    project: manifest.project,
    logstore: manifest.logstore,
    shards: manifest.shards.map((s) => {
      const name = `shard-${s.shardId}.ndjson`;
      if (!files.has(name)) throw new Error(`${dir}/${name} is missing`);
      const groups = readFileSync(join(dir, name), 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as RecordedGroup);
      return { shardId: s.shardId, status: s.status, groups };
    }),
  };
}

/** Every log of the logstore, in shard and group order, as the SLS record keyfence builds (`__time__`, `__topic__`, `__source__`, tags, contents). */
export function allRecords(store: RecordedLogstore): Array<Record<string, string>> {
  const out: Array<Record<string, string>> = [];
  for (const shard of store.shards) {
    for (const g of shard.groups) {
      for (const log of g.logs) {
        const r: Record<string, string> = { __time__: String(log.time), __topic__: g.topic, __source__: g.source };
        for (const [k, v] of g.tags) r[`__tag__:${k}`] = v;
        for (const [k, v] of log.contents) r[k] = v;
        out.push(r);
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------- faults

export type FaultKind =
  /** 403 ReadQuotaExceed, the SLS throttling answer. */
  | 'throttle'
  /** 503 ServerBusy (JSON). */
  | 'server-busy'
  /** 500 InternalServerError (JSON). */
  | 'internal-error'
  /** 502 with an HTML body, as a proxy in front of the service would answer. */
  | 'bad-gateway'
  /** Headers and half the body, then the connection is destroyed. */
  | 'reset'
  /** GetLogs: `x-log-progress: Incomplete` with part of the rows. */
  | 'incomplete'
  /** GetLogs: says `Complete` but leaves out a row (a broken page the client must catch by its own checks). */
  | 'lose-rows';

export interface Fault {
  call: 'ListShards' | 'GetCursor' | 'PullLogs' | 'GetLogs';
  /** 1-based: the nth call of that kind (counting every call, faulted or not). */
  nth: number;
  kind: FaultKind;
}

export interface RequestRecord {
  call: string;
  status: number;
  fault: FaultKind | null;
  /** For PullLogs: the shard and the number of log groups served. */
  shardId?: number;
  groups?: number;
  acceptEncoding?: string;
  compressType?: string;
}

export interface SlsServerOptions {
  logstore: RecordedLogstore;
  accessKeyId: string;
  accessKeySecret: string;
  faults?: Fault[];
  /** `auto` answers PullLogs in the encoding the client asks first among lz4, deflate, gzip (the SDK asks lz4); `none` never compresses. */
  compression?: 'auto' | 'none';
  /** The server refuses more requests than this (a runaway client loop fails instead of spinning). */
  maxRequests?: number;
  /** The server closes itself after this long. */
  lifetimeMs?: number;
  /** Fields of `event` indexed for analytic SQL, as a trail logstore's JSON index would have them. */
  indexedEventFields?: string[];
}

export interface SlsServer {
  /** `http://127.0.0.1:<port>`: pass as `--endpoint`. */
  endpoint: string;
  requests: RequestRecord[];
  /** Faults of the schedule that have fired. */
  firedFaults: Fault[];
  /** Analytic SQL as received (the search part included). */
  queries: string[];
  close(): Promise<void>;
}

export const DEFAULT_INDEXED_EVENT_FIELDS = [
  'eventId', 'eventTime', 'eventName', 'eventSource', 'serviceName', 'eventType', 'acsRegion', 'sourceIpAddress', 'vpcId',
  'userAgent', 'errorCode', 'errorMessage', 'userIdentity.type', 'userIdentity.accessKeyId', 'userIdentity.accountId',
  'userIdentity.principalId', 'userIdentity.userName',
];

const CURSOR_BASE = 1_700_000_000_000_000n;
function encodeCursor(index: number): string {
  return Buffer.from(String(CURSOR_BASE + BigInt(index))).toString('base64');
}
function decodeCursor(cursor: string, max: number): number | null {
  const text = Buffer.from(cursor, 'base64').toString('utf8');
  if (!/^\d+$/.test(text) || encodeCursor(Number(BigInt(text) - CURSOR_BASE)) !== cursor) return null;
  const index = Number(BigInt(text) - CURSOR_BASE);
  return index >= 0 && index <= max ? index : null;
}

class WireError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

/** lz4 block compression from the gateway's own dependency (lz4-napi prefixes the raw size; the wire does not). */
function loadLz4(): ((data: Buffer) => Buffer) | null {
  try {
    const requireFromGateway = createRequire(createRequire(import.meta.url).resolve('@alicloud/gateway-sls-util'));
    const lz4 = requireFromGateway('lz4-napi') as { compressSync(data: Buffer): Buffer };
    return (data) => lz4.compressSync(data).subarray(4);
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------- signature (version 1)

function expectedSignature(req: IncomingMessage, url: URL, secret: string): string {
  const h = req.headers;
  const one = (v: string | string[] | undefined): string => (Array.isArray(v) ? v.join(',') : v ?? '');
  const signed = Object.keys(h).filter((k) => k.includes('x-log-') || k.includes('x-acs-')).sort();
  let text = `${req.method}\n${one(h['content-md5'])}\n${one(h['content-type'])}\n${one(h.date)}\n`;
  for (const k of signed) text += `${k}:${one(h[k])}\n`;
  const params = [...url.searchParams.keys()].sort();
  text += url.pathname;
  params.forEach((k, i) => {
    text += `${i === 0 ? '?' : '&'}${k}=${url.searchParams.get(k)}`;
  });
  return createHmac('sha256', secret).update(text).digest('base64');
}

function verifySignature(req: IncomingMessage, url: URL, options: SlsServerOptions): void {
  const auth = req.headers.authorization ?? '';
  const m = /^LOG ([^:]+):(.+)$/.exec(auth);
  if (!m) throw new WireError(401, 'Unauthorized', 'no LOG authorization header');
  if (req.headers['x-log-signaturemethod'] !== 'hmac-sha256') throw new WireError(400, 'InvalidSignatureMethod', 'x-log-signaturemethod must be hmac-sha256');
  if (req.headers['x-log-apiversion'] !== '0.6.0') throw new WireError(400, 'InvalidAPIVersion', 'x-log-apiversion must be 0.6.0');
  const date = Date.parse(req.headers.date ?? '');
  if (!Number.isFinite(date) || Math.abs(Date.now() - date) > 15 * 60_000) throw new WireError(400, 'RequestTimeExpired', 'Date header missing or more than 15 minutes off');
  if (m[1] !== options.accessKeyId) throw new WireError(401, 'Unauthorized', `AccessKeyId not found: ${m[1]}`);
  const want = Buffer.from(expectedSignature(req, url, options.accessKeySecret));
  const got = Buffer.from(m[2]!);
  if (want.length !== got.length || !timingSafeEqual(want, got)) {
    throw new WireError(401, 'SignatureNotMatch', `signature ${m[2]} not match`);
  }
}

// ---------------------------------------------------------------- analytic SQL over DuckDB

function eventFieldValue(event: unknown, path: string): string | null {
  let v: unknown = event;
  for (const part of path.split('.')) {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return null;
    v = (v as Record<string, unknown>)[part];
  }
  if (v === null || v === undefined) return null;
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

async function buildLogTable(store: RecordedLogstore, fields: string[]): Promise<{ instance: DuckDBInstance; connection: DuckDBConnection }> {
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  const columns = ['__time__', '__topic__', '__source__', ...fields.map((f) => `event.${f}`)];
  const rows: Array<Record<string, string | number | null>> = [];
  for (const shard of store.shards) {
    for (const g of shard.groups) {
      for (const log of g.logs) {
        const contents = Object.fromEntries(log.contents);
        let event: unknown = null;
        try {
          event = JSON.parse(contents.event ?? 'null');
        } catch {
          event = null; // not JSON: the JSON index extracts nothing, as SLS would
        }
        const row: Record<string, string | number | null> = { __time__: log.time, __topic__: g.topic, __source__: g.source };
        for (const f of fields) row[`event.${f}`] = eventFieldValue(event, f);
        rows.push(row);
      }
    }
  }
  const dir = mkdtempSync(join(tmpdir(), 'kf-sls-index-'));
  try {
    const file = join(dir, 'log.ndjson');
    writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const spec = columns.map((c) => `'${c}': '${c === '__time__' ? 'BIGINT' : 'VARCHAR'}'`).join(', ');
    await connection.run(`CREATE TABLE log_all AS SELECT * FROM read_json('${file}', format='newline_delimited', columns={${spec}})`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  // The few Presto/SLS functions keyfence's queries use that DuckDB spells differently.
  await connection.run(`CREATE MACRO from_iso8601_timestamp(s) AS CAST(s AS TIMESTAMPTZ)`);
  return { instance, connection };
}

/** SLS dialect → DuckDB, minimally: `<search> | <sql>`, `LIMIT offset, count`, no FROM means FROM log. */
export function translateAnalyticQuery(query: string): { search: string; sql: string } {
  const bar = query.indexOf('|');
  if (bar < 0) throw new WireError(400, 'ParameterInvalid', 'only analytic queries (search | SQL) are served');
  const search = query.slice(0, bar).trim();
  let sql = query.slice(bar + 1).trim();
  sql = sql.replace(/\bLIMIT\s+(\d+)\s*,\s*(\d+)\s*$/i, (_m, offset: string, count: string) => {
    if (Number(count) > 10_000) throw new WireError(400, 'ParameterInvalid', 'LIMIT y, x: x must be at most 10000');
    if (Number(offset) + Number(count) > 1_000_000) throw new WireError(400, 'ParameterInvalid', 'LIMIT y, x: x + y must be at most 1000000');
    return `LIMIT ${count} OFFSET ${offset}`;
  });
  if (!/\bLIMIT\s+\d+\s*$/i.test(sql) && !/\bOFFSET\s+\d+\s*$/i.test(sql)) sql += ' LIMIT 100'; // the service's default
  return { search, sql };
}

// ---------------------------------------------------------------- the server

export async function startSlsServer(options: SlsServerOptions): Promise<SlsServer> {
  const store = options.logstore;
  const shards = new Map(store.shards.map((s) => [s.shardId, s]));
  const encoded = new Map(store.shards.map((s) => [s.shardId, s.groups.map((g) => Buffer.from(encodeLogGroupEntry(g)))]));
  const faults = [...(options.faults ?? [])];
  const counts = new Map<string, number>();
  const requests: RequestRecord[] = [];
  const firedFaults: Fault[] = [];
  const queries: string[] = [];
  const maxRequests = options.maxRequests ?? 200_000;
  const lz4 = loadLz4();
  let sqlEngine: Promise<{ instance: DuckDBInstance; connection: DuckDBConnection }> | null = null;
  const sockets = new Set<Socket>();

  const sendJson = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'x-log-requestid': randomUUID().toUpperCase(), ...headers });
    res.end(text);
  };

  const faultFor = (call: string, nth: number): Fault | undefined => faults.find((f) => f.call === call && f.nth === nth);

  /** Answers with the fault and returns true, or returns false when this call is not faulted. */
  const injectFault = (res: ServerResponse, fault: Fault | undefined, record: RequestRecord): boolean => {
    if (!fault || fault.kind === 'incomplete' || fault.kind === 'lose-rows' || fault.kind === 'reset') return false;
    firedFaults.push(fault);
    record.fault = fault.kind;
    const answers: Record<string, [number, string, string]> = {
      throttle: [403, 'ReadQuotaExceed', 'shard read quota exceed'],
      'server-busy': [503, 'ServerBusy', 'server is busy, please try again later'],
      'internal-error': [500, 'InternalServerError', 'internal server error'],
    };
    const answer = answers[fault.kind];
    if (answer) {
      record.status = answer[0];
      sendJson(res, answer[0], { errorCode: answer[1], errorMessage: answer[2] });
      return true;
    }
    record.status = 502;
    const html = '<html><body><h1>502 Bad Gateway</h1></body></html>';
    res.writeHead(502, { 'content-type': 'text/html', 'content-length': html.length });
    res.end(html);
    return true;
  };

  const pullLogs = (req: IncomingMessage, res: ServerResponse, url: URL, shardId: number, record: RequestRecord, fault: Fault | undefined): void => {
    const shard = shards.get(shardId);
    if (!shard) throw new WireError(404, 'ShardNotExist', `shard ${shardId} does not exist`);
    const groups = encoded.get(shardId)!;
    const cursor = decodeCursor(url.searchParams.get('cursor') ?? '', groups.length);
    if (cursor === null) throw new WireError(400, 'InvalidCursor', 'cursor is invalid');
    const endParam = url.searchParams.get('end_cursor');
    const end = endParam === null ? groups.length : decodeCursor(endParam, groups.length);
    if (end === null) throw new WireError(400, 'InvalidCursor', 'end_cursor is invalid');
    const count = Number(url.searchParams.get('count'));
    if (!Number.isInteger(count) || count < 1 || count > 1000) throw new WireError(400, 'ParameterInvalid', 'count must be 1..1000');
    const stop = Math.max(cursor, Math.min(cursor + count, end));
    const raw = Buffer.concat(groups.slice(cursor, stop));
    const accept = String(req.headers['accept-encoding'] ?? '').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
    let body: Buffer = raw;
    const headers: Record<string, string> = {
      'content-type': 'application/x-protobuf',
      'x-log-cursor': encodeCursor(stop),
      'x-log-count': String(stop - cursor),
      'x-log-bodyrawsize': String(raw.length),
      'x-log-requestid': randomUUID().toUpperCase(),
    };
    record.acceptEncoding = accept.join(',');
    const choice = options.compression === 'none' ? undefined : accept.find((a) => (a === 'lz4' && lz4) || a === 'deflate' || a === 'gzip');
    if (choice === 'lz4') body = lz4!(raw);
    else if (choice === 'deflate' || choice === 'gzip') body = deflateSync(raw); // SLS "deflate" is zlib-wrapped
    if (choice && raw.length > 0) {
      headers['x-log-compresstype'] = choice;
      record.compressType = choice;
    } else body = raw;
    headers['content-length'] = String(body.length);
    record.shardId = shardId;
    record.groups = stop - cursor;
    if (fault?.kind === 'reset' && body.length > 1) {
      firedFaults.push(fault);
      record.fault = 'reset';
      res.writeHead(200, headers);
      res.write(body.subarray(0, body.length >> 1), () => res.socket?.destroy());
      return;
    }
    res.writeHead(200, headers);
    res.end(body);
  };

  const getLogs = async (res: ServerResponse, url: URL, record: RequestRecord, fault: Fault | undefined): Promise<void> => {
    const query = url.searchParams.get('query') ?? '';
    const from = Number(url.searchParams.get('from'));
    const to = Number(url.searchParams.get('to'));
    if (!Number.isInteger(from) || !Number.isInteger(to) || from >= to) throw new WireError(400, 'ParameterInvalid', 'from and to must be unix seconds, from < to');
    queries.push(query);
    const { search, sql } = translateAnalyticQuery(query);
    if (search !== '*') throw new WireError(400, 'ParameterInvalid', `this test server serves the search "*" only, not ${JSON.stringify(search)}`);
    sqlEngine ??= buildLogTable(store, options.indexedEventFields ?? DEFAULT_INDEXED_EVENT_FIELDS);
    const { connection } = await sqlEngine;
    let rows: Array<Record<string, unknown>>;
    try {
      const reader = await connection.runAndReadAll(`WITH log AS (SELECT * FROM log_all WHERE __time__ >= ${from} AND __time__ < ${to}) ${sql}`);
      rows = reader.getRowObjectsJS() as Array<Record<string, unknown>>;
    } catch (e) {
      throw new WireError(400, 'ParameterInvalid', `line 1:1: ${(e as Error).message.split('\n')[0]}`);
    }
    // The service sends every value as text, null as "null", and adds __source__ / __time__ to each row.
    let out = rows.map((r) => {
      const o: Record<string, string> = {};
      for (const [k, v] of Object.entries(r)) o[k] = v === null || v === undefined ? 'null' : String(v);
      o.__source__ = '';
      o.__time__ = String(from);
      return o;
    });
    let progress = 'Complete';
    if (fault?.kind === 'incomplete') {
      firedFaults.push(fault);
      record.fault = 'incomplete';
      progress = 'Incomplete';
      out = out.slice(0, out.length >> 1);
    } else if (fault?.kind === 'lose-rows' && out.length > 0) {
      firedFaults.push(fault);
      record.fault = 'lose-rows';
      out = out.slice(1);
    }
    sendJson(res, 200, out, { 'x-log-progress': progress, 'x-log-count': String(out.length), 'x-log-has-sql': 'true', 'x-log-processed-rows': String(rows.length) });
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const record: RequestRecord = { call: 'unknown', status: 200, fault: null };
    requests.push(record);
    try {
      if (requests.length > maxRequests) throw new WireError(503, 'ServerBusy', `test server request budget of ${maxRequests} exhausted`);
      const base = `/logstores/${store.logstore}`;
      const path = url.pathname;
      const shardMatch = path.startsWith(`${base}/shards/`) ? /^\/shards\/(\d+)$/.exec(path.slice(base.length)) : null;
      const type = url.searchParams.get('type');
      if (req.method !== 'GET') throw new WireError(405, 'MethodNotAllowed', `${req.method} is not served`);
      if (path === `${base}/shards`) record.call = 'ListShards';
      else if (shardMatch && type === 'cursor') record.call = 'GetCursor';
      else if (shardMatch && type === 'log') record.call = 'PullLogs';
      else if (path === base && type === 'log') record.call = 'GetLogs';
      else if (path.startsWith('/logstores/') && !path.startsWith(`${base}/`) && path !== base) throw new WireError(404, 'LogStoreNotExist', `logstore ${path.split('/')[2]} does not exist`);
      else throw new WireError(404, 'NotFound', `${path} is not served`);
      verifySignature(req, url, options);
      const nth = (counts.get(record.call) ?? 0) + 1;
      counts.set(record.call, nth);
      const fault = faultFor(record.call, nth);
      if (injectFault(res, fault, record)) return;
      if (record.call === 'ListShards') {
        sendJson(res, 200, store.shards.map((s) => ({ shardID: s.shardId, status: s.status, inclusiveBeginKey: '00000000000000000000000000000000', exclusiveEndKey: 'ffffffffffffffffffffffffffffffff', createTime: 1_700_000_000 })));
      } else if (record.call === 'GetCursor') {
        const shardId = Number(shardMatch![1]);
        const shard = shards.get(shardId);
        if (!shard) throw new WireError(404, 'ShardNotExist', `shard ${shardId} does not exist`);
        const from = url.searchParams.get('from') ?? '';
        let index: number;
        if (from === 'begin') index = 0;
        else if (from === 'end') index = shard.groups.length;
        else if (/^\d+$/.test(from)) {
          const t = Number(from);
          index = shard.groups.findIndex((g) => g.receiveTime >= t);
          if (index < 0) index = shard.groups.length;
        } else throw new WireError(400, 'ParameterInvalid', 'from must be begin, end or unix seconds');
        sendJson(res, 200, { cursor: encodeCursor(index) });
      } else if (record.call === 'PullLogs') {
        pullLogs(req, res, url, Number(shardMatch![1]), record, fault);
      } else {
        await getLogs(res, url, record, fault);
      }
    } catch (e) {
      const err = e instanceof WireError ? e : new WireError(500, 'InternalServerError', (e as Error).message);
      record.status = err.status;
      if (!res.headersSent) sendJson(res, err.status, { errorCode: err.code, errorMessage: err.message });
      else res.destroy();
    }
  };

  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => void handle(req, res));
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    clearTimeout(lifetime);
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    if (sqlEngine) {
      const { connection, instance } = await sqlEngine;
      connection.closeSync();
      instance.closeSync();
    }
  };
  const lifetime = setTimeout(() => void close(), options.lifetimeMs ?? 10 * 60_000);
  lifetime.unref();
  return { endpoint: `http://127.0.0.1:${port}`, requests, firedFaults, queries, close };
}
