// The store owns DuckDB: the handle, the schema, and the edge where DuckDB values become domain values
// (BIGINT → number, TIMESTAMP → ISO string). Nothing else in keyfence opens a database.
import { existsSync } from 'node:fs';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { StoreError } from '../model/errors.ts';
import { insertEventsAppend } from './event-writer.ts';
import { FAST_PATH_MARK } from './actiontrail.ts';
import type { AuditEvent, IngestSummary, RecordLocation, Rejection, RejectionReason } from '../model/types.ts';

export const SCHEMA_VERSION = 1;

/**
 * The schema analysts query directly (documented in README). `events.event_id` is the primary key in
 * meaning: the writers keep it unique (see `ingest/`), so a redelivered event changes nothing.
 */
export const SCHEMA_SQL = `
CREATE TABLE IF NOT EXISTS events (
  event_id       VARCHAR NOT NULL,
  event_time     TIMESTAMP NOT NULL,   -- UTC
  event_name     VARCHAR,
  event_source   VARCHAR,
  service_name   VARCHAR,
  event_type     VARCHAR,
  region         VARCHAR,
  source_ip      VARCHAR,              -- normalized address text; raw text when source_kind is invalid/service/internal
  source_kind    VARCHAR NOT NULL,     -- public | vpc | internal | service | invalid
  ip_family      UTINYINT,             -- 4 | 6 | NULL
  vpc_id         VARCHAR,
  user_agent     VARCHAR,
  error_code     VARCHAR,
  error_message  VARCHAR,
  access_key_id  VARCHAR,
  key_kind       VARCHAR NOT NULL,     -- permanent | sts | none
  identity_type  VARCHAR,
  account_id     VARCHAR,
  principal_id   VARCHAR,
  user_name      VARCHAR,
  exempt         BOOLEAN NOT NULL,     -- service not governed by network ACLs
  acl_denied     BOOLEAN NOT NULL,     -- refused by a network ACL
  request_id     VARCHAR,
  run_id         BIGINT                -- ingest_runs.run_id that inserted it
);
CREATE TABLE IF NOT EXISTS quarantine (
  source       VARCHAR NOT NULL,       -- file path, kafka topic, sls project/logstore
  location     VARCHAR NOT NULL,       -- line N / byte offset, partition:offset, shard:cursor
  reason       VARCHAR NOT NULL,       -- RejectionReason
  detail       VARCHAR,
  raw          VARCHAR,                -- size-capped raw text
  raw_bytes    BIGINT,                 -- size of the raw record before capping
  run_id       BIGINT,
  quarantined_at TIMESTAMP DEFAULT current_timestamp
);
CREATE TABLE IF NOT EXISTS checkpoints (
  source     VARCHAR PRIMARY KEY,      -- e.g. file:/abs/path, kafka:topic:partition, sls:project/logstore:shard
  position   VARCHAR NOT NULL,         -- byte offset / line, offset, cursor (opaque to the store)
  complete   BOOLEAN NOT NULL DEFAULT false,
  fingerprint VARCHAR,                 -- size+mtime (files) so a changed file is read again
  updated_at TIMESTAMP DEFAULT current_timestamp
);
CREATE TABLE IF NOT EXISTS ingest_runs (
  run_id       BIGINT PRIMARY KEY,
  source_kind  VARCHAR,                -- file | kafka | sls
  started_at   TIMESTAMP,
  finished_at  TIMESTAMP,
  read         BIGINT,
  inserted     BIGINT,
  duplicates   BIGINT,
  quarantined  BIGINT,
  status       VARCHAR                 -- running | ok | partial | failed | interrupted (killed before it finished)
);
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR);
`;

export type Row = Record<string, unknown>;

/** Quarantine keeps at most this much of a rejected record's raw text (`raw_bytes` keeps the full size). */
export const QUARANTINE_RAW_CAP_CHARS = 64 * 1024;

export type IngestSourceKind = 'file' | 'kafka' | 'sls';

export interface CheckpointWrite {
  /** e.g. `file:/abs/path`, `kafka:topic:partition`, `sls:project/logstore:shard`. */
  source: string;
  /** Where to resume after this batch (opaque to the store). */
  position: string;
  /** The input is fully ingested (a file read to its end). */
  complete?: boolean;
  /** Identity of the input's content (size+mtime for files), so a changed input is read again. */
  fingerprint?: string;
}

export interface Checkpoint {
  position: string;
  complete: boolean;
  fingerprint: string | null;
}

export interface WriteBatch {
  runId: number;
  events: AuditEvent[];
  rejections: Array<Rejection & RecordLocation>;
  checkpoints: CheckpointWrite[];
}

/** Every RejectionReason, for flags and documentation. */
export const QUARANTINE_REASONS: readonly RejectionReason[] = [
  'bad-event-time', 'bad-source-ip', 'binary-data', 'line-too-long', 'malformed-json', 'missing-event-id', 'missing-event-time',
  'missing-user-identity', 'not-an-object', 'truncated-input', 'unknown-shape', 'unreadable-file',
];

/** One quarantined record as `keyfence quarantine` shows it. */
export type QuarantineRecord = {
  source: string;
  location: string;
  reason: RejectionReason;
  detail: string | null;
  /** Raw text, capped at QUARANTINE_RAW_CAP_CHARS. */
  raw: string;
  /** Size of the raw record before capping, in bytes. */
  rawBytes: number;
  capped: boolean;
  runId: number | null;
  quarantinedAt: string | null;
};

export interface WriteResult {
  inserted: number;
  /** Events of the batch already stored, or repeated within the batch. */
  duplicates: number;
  quarantined: number;
}

export interface OpenOptions {
  /** Open without write access (analysis). Several paths are always read-only. */
  readOnly?: boolean;
}

/** A handle on one database file, or on several read together (scale-out parts). */
export class Store {
  private constructor(
    private readonly instance: DuckDBInstance,
    readonly connection: DuckDBConnection,
    readonly paths: string[],
    readonly readOnly: boolean,
  ) {}

  /**
   * Opens one database file read-write (created with the schema when missing), or read-only; or several
   * files read-only, attached side by side behind views named like the tables, so analysis reads them as one.
   */
  static async open(paths: string | string[], options: OpenOptions = {}): Promise<Store> {
    const list = Array.isArray(paths) ? paths : [paths];
    if (list.length === 0) throw new StoreError('no database given', { hint: 'pass --db FILE' });
    const readOnly = options.readOnly === true || list.length > 1;
    for (const p of list) {
      if (readOnly && p !== ':memory:' && !existsSync(p)) {
        throw new StoreError(`database ${p} does not exist`, { hint: 'run `keyfence ingest …` first, or pass the right --db', context: { path: p } });
      }
    }
    try {
      if (list.length === 1) {
        const instance = await DuckDBInstance.create(list[0]!, readOnly ? { access_mode: 'READ_ONLY' } : {});
        const connection = await instance.connect();
        const store = new Store(instance, connection, list, readOnly);
        if (!readOnly) await store.ensureSchema();
        else {
          await store.checkSchema();
          await store.hideUnfinishedCleanup();
        }
        return store;
      }
      const instance = await DuckDBInstance.create(':memory:');
      const connection = await instance.connect();
      const store = new Store(instance, connection, list, true);
      await store.attachParts(list);
      return store;
    } catch (e) {
      if (e instanceof StoreError) throw e;
      const msg = e instanceof Error ? e.message : String(e);
      const locked = /lock/i.test(msg);
      throw new StoreError(`cannot open database ${list.join(', ')}: ${msg}`, {
        cause: e,
        hint: locked ? 'another keyfence process holds it read-write; wait for it, or read a copy' : 'check the path and that it is a keyfence database',
      });
    }
  }

  private async ensureSchema(): Promise<void> {
    await this.connection.run(SCHEMA_SQL);
    await this.connection.run(`INSERT INTO meta VALUES ('schema_version', '${SCHEMA_VERSION}') ON CONFLICT DO NOTHING`);
  }

  private async checkSchema(): Promise<void> {
    const tables = await this.query<{ name: string }>(`SELECT table_name AS name FROM information_schema.tables WHERE table_name = 'events'`);
    if (tables.length === 0) {
      throw new StoreError(`${this.paths[0]} is not a keyfence database (no events table)`, { hint: 'run `keyfence ingest …` first' });
    }
  }

  private async attachParts(paths: string[]): Promise<void> {
    const aliases = paths.map((_, i) => `part${i}`);
    for (const [i, p] of paths.entries()) {
      await this.connection.run(`ATTACH ${sqlString(p)} AS ${aliases[i]} (READ_ONLY)`);
    }
    // A rebalance can hand one event to two parts: keep one copy per event_id.
    const union = aliases.map((a) => `SELECT * FROM ${a}.events`).join(' UNION ALL ');
    await this.connection.run(`CREATE TEMP VIEW events AS SELECT * FROM (${union}) QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY run_id) = 1`);
    for (const table of ['quarantine', 'checkpoints', 'ingest_runs']) {
      await this.connection.run(`CREATE TEMP VIEW ${table} AS ${aliases.map((a) => `SELECT * FROM ${a}.${table}`).join(' UNION ALL ')}`);
    }
    await this.attachRollups(aliases);
  }

  /**
   * The parts' pruned history (`source_rollup`, `retention_log`, written by `keyfence prune`) as one, when any
   * part was pruned. A key × source rolled up in two parts is one row: calls summed, first/last seen widened,
   * days summed (an upper bound when both parts saw it on one day, as a rollup's days already are for a window).
   */
  private async attachRollups(aliases: string[]): Promise<void> {
    const pruned: string[] = [];
    for (const alias of aliases) {
      const [row] = await this.query<{ n: number }>(
        `SELECT count(*) AS n FROM information_schema.tables WHERE table_catalog = ? AND table_name IN ('source_rollup', 'retention_log')`,
        [alias],
      );
      if (row?.n === 2) pruned.push(alias);
    }
    if (pruned.length === 0) return;
    const rollups = pruned.map((a) => `SELECT * FROM ${a}.source_rollup`).join(' UNION ALL ');
    await this.connection.run(`CREATE TEMP VIEW source_rollup AS
      SELECT access_key_id, key_kind, source_kind, source_ip, vpc_id, exempt,
        sum(calls)::BIGINT AS calls, sum(denied_calls)::BIGINT AS denied_calls, sum(error_calls)::BIGINT AS error_calls,
        sum(sensitive_calls)::BIGINT AS sensitive_calls, sum(days)::BIGINT AS days, min(first_seen) AS first_seen, max(last_seen) AS last_seen
      FROM (${rollups}) GROUP BY ALL`);
    await this.connection.run(`CREATE TEMP VIEW retention_log AS ${pruned.map((a) => `SELECT * FROM ${a}.retention_log`).join(' UNION ALL ')}`);
  }

  /** Runs a query and returns plain rows: BIGINT/HUGEINT → number (string when unsafe), TIMESTAMP/DATE → ISO string. */
  async query<T extends Row = Row>(sql: string, params: unknown[] = []): Promise<T[]> {
    const reader = params.length === 0 ? await this.connection.runAndReadAll(sql) : await this.connection.runAndReadAll(sql, params as never);
    return reader.getRowObjectsJS().map((row) => toPlain(row) as T);
  }

  async run(sql: string, params: unknown[] = []): Promise<void> {
    if (params.length === 0) await this.connection.run(sql);
    else await this.connection.run(sql, params as never);
  }

  /** Runs `work` in one transaction: all of it commits, or none. */
  async transaction<T>(work: () => Promise<T>): Promise<T> {
    await this.connection.run('BEGIN TRANSACTION');
    try {
      const result = await work();
      await this.connection.run('COMMIT');
      return result;
    } catch (e) {
      await this.connection.run('ROLLBACK').catch(() => undefined);
      throw e;
    }
  }

  // ---------------------------------------------------------------- writes (ingest)

  /** Starts an ingest run and returns its ID (recorded in `ingest_runs` with status `running`). */
  async beginRun(sourceKind: IngestSourceKind): Promise<number> {
    this.assertWritable();
    await this.finishInterruptedCleanup();
    // One writer per database file: a run still marked running was cut short (killed, crashed).
    await this.run(`UPDATE ingest_runs SET status = 'interrupted' WHERE status = 'running'`);
    const [row] = await this.query<{ id: number }>(`SELECT coalesce(max(run_id), 0) + 1 AS id FROM ingest_runs`);
    const runId = row!.id;
    await this.run(`INSERT INTO ingest_runs (run_id, source_kind, started_at, read, inserted, duplicates, quarantined, status)
      VALUES (?, ?, (now() AT TIME ZONE 'UTC'), 0, 0, 0, 0, 'running')`, [runId, sourceKind]);
    return runId;
  }

  /**
   * Commits one batch in ONE transaction: its new events (deduplicated by event_id against the store and
   * within the batch: a redelivered event changes nothing), its quarantined records (raw text capped) and
   * its checkpoints. On failure nothing of the batch is stored.
   */
  async writeBatch(batch: WriteBatch): Promise<WriteResult> {
    this.assertWritable();
    return this.transaction(async () => {
      const inserted = await this.insertEventsInTransaction(batch.runId, batch.events);
      const quarantined = await this.quarantineInTransaction(batch.runId, batch.rejections);
      await this.putCheckpointsInTransaction(batch.checkpoints);
      return { inserted, duplicates: batch.events.length - inserted, quarantined };
    });
  }

  /** Inserts events not stored yet; call inside a transaction. Returns how many were inserted. */
  async insertEventsInTransaction(runId: number, events: AuditEvent[]): Promise<number> {
    return (await insertEventsAppend(this.connection, runId, events)).inserted;
  }

  /** Stores rejected records with their raw text capped; call inside a transaction. */
  async quarantineInTransaction(runId: number, rejections: Array<Rejection & RecordLocation>): Promise<number> {
    if (rejections.length === 0) return 0;
    const rows = rejections.map((r) => ({
      source: r.source,
      location: r.location,
      reason: r.reason,
      detail: r.detail,
      raw: capRaw(r.raw),
      rawBytes: r.rawBytes ?? Buffer.byteLength(r.raw),
    }));
    await this.run(
      `INSERT INTO quarantine (source, location, reason, detail, raw, raw_bytes, run_id)
       SELECT q.source, q.location, q.reason, q.detail, q.raw, q.rawBytes, ?
       FROM (SELECT unnest(from_json(?::JSON, '[{"source":"VARCHAR","location":"VARCHAR","reason":"VARCHAR","detail":"VARCHAR","raw":"VARCHAR","rawBytes":"BIGINT"}]'), recursive := true)) q`,
      [runId, JSON.stringify(rows)],
    );
    return rows.length;
  }

  /** Writes many checkpoints in one statement; call inside a transaction. */
  async putCheckpointsInTransaction(cps: CheckpointWrite[]): Promise<void> {
    if (cps.length === 0) return;
    const rows = cps.map((cp) => ({ source: cp.source, position: cp.position, complete: cp.complete ?? false, fingerprint: cp.fingerprint ?? null }));
    await this.run(
      `INSERT INTO checkpoints (source, position, complete, fingerprint, updated_at)
       SELECT c.source, c.position, c.complete, c.fingerprint, (now() AT TIME ZONE 'UTC')
       FROM (SELECT unnest(from_json(?::JSON, '[{"source":"VARCHAR","position":"VARCHAR","complete":"BOOLEAN","fingerprint":"VARCHAR"}]'), recursive := true)) c
       ON CONFLICT (source) DO UPDATE SET position = excluded.position, complete = excluded.complete,
         fingerprint = excluded.fingerprint, updated_at = excluded.updated_at`,
      [JSON.stringify(rows)],
    );
  }

  /** Every checkpoint whose source starts with `prefix` (e.g. `file:`), by source. */
  async getCheckpoints(prefix: string): Promise<Map<string, Checkpoint>> {
    const rows = await this.query<{ source: string; position: string; complete: boolean; fingerprint: string | null }>(
      `SELECT source, position, complete, fingerprint FROM checkpoints WHERE starts_with(source, ?)`,
      [prefix],
    );
    return new Map(rows.map((r) => [r.source, { position: r.position, complete: r.complete, fingerprint: r.fingerprint }]));
  }

  async putCheckpointInTransaction(cp: CheckpointWrite): Promise<void> {
    await this.run(
      `INSERT INTO checkpoints (source, position, complete, fingerprint, updated_at) VALUES (?, ?, ?, ?, (now() AT TIME ZONE 'UTC'))
       ON CONFLICT (source) DO UPDATE SET position = excluded.position, complete = excluded.complete,
         fingerprint = excluded.fingerprint, updated_at = excluded.updated_at`,
      [cp.source, cp.position, cp.complete ?? false, cp.fingerprint ?? null],
    );
  }

  /** Where a source resumes, or null when it was never read. */
  async getCheckpoint(source: string): Promise<Checkpoint | null> {
    const rows = await this.query<{ position: string; complete: boolean; fingerprint: string | null }>(
      `SELECT position, complete, fingerprint FROM checkpoints WHERE source = ?`,
      [source],
    );
    return rows[0] ?? null;
  }

  /**
   * True when a writer committed rows that still await their cleanup (see `CLEANUP_PENDING_KEY`): placeholder
   * rows and repeated events are in `events` until the next ingest finishes the cleanup.
   */
  async cleanupPending(): Promise<boolean> {
    const rows = await this.query<{ n: number }>(`SELECT count(*) AS n FROM meta WHERE key = ?`, [CLEANUP_PENDING_KEY]);
    return (rows[0]?.n ?? 0) > 0;
  }

  /**
   * Read-only, the cleanup cannot be done: when it is pending, `events` is shadowed by a view without the
   * placeholder rows and with one copy of each event, so analysis reads what the cleanup will leave.
   */
  private async hideUnfinishedCleanup(): Promise<void> {
    const [meta] = await this.query<{ n: number }>(`SELECT count(*) AS n FROM information_schema.tables WHERE table_name = 'meta' AND table_catalog = current_database()`);
    if (!meta?.n || !(await this.cleanupPending())) return;
    const [db] = await this.query<{ name: string }>(`SELECT current_database() AS name`);
    const table = `"${db!.name.replaceAll('"', '""')}".main.events`;
    await this.connection.run(
      `CREATE TEMP VIEW events AS SELECT * FROM ${table} WHERE source_kind <> ${sqlString(FAST_PATH_MARK.deferred)}
       QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY rowid) = 1`,
    );
  }

  /** Marks (inside the caller's transaction) that rows just written need `finishInterruptedCleanup`'s work. */
  async markCleanupPendingInTransaction(runId: number): Promise<void> {
    await this.run(`INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, [CLEANUP_PENDING_KEY, String(runId)]);
  }

  /**
   * Finishes the cleanup a writer was killed before doing: removes placeholder rows and every repeated copy of
   * an event (the first stored copy stays), in one transaction with the mark. Costs one pass over event IDs,
   * and only after a crash. Returns how many rows it removed.
   */
  async finishInterruptedCleanup(): Promise<number> {
    if (!(await this.cleanupPending())) return 0;
    return this.transaction(async () => {
      const placeholders = await this.deleteCount(`DELETE FROM events WHERE source_kind = ?`, [FAST_PATH_MARK.deferred]);
      const repeated = await this.deleteCount(
        `DELETE FROM events WHERE rowid IN (
           SELECT rid FROM (
             SELECT rowid AS rid, row_number() OVER (PARTITION BY event_id ORDER BY rowid) AS rn FROM events
             WHERE hash(event_id) IN (SELECT h FROM (SELECT hash(event_id) AS h FROM events) GROUP BY h HAVING count(*) > 1))
           WHERE rn > 1)`,
      );
      await this.run(`DELETE FROM meta WHERE key = ?`, [CLEANUP_PENDING_KEY]);
      return placeholders + repeated;
    });
  }

  /** Runs a DELETE and returns how many rows it removed. */
  async deleteCount(sql: string, params: unknown[] = []): Promise<number> {
    const reader = params.length === 0 ? await this.connection.runAndReadAll(sql) : await this.connection.runAndReadAll(sql, params as never);
    return Number(reader.getRowsJS()[0]?.[0] ?? 0);
  }

  /** Records the run's counts and outcome. */
  async finishRun(runId: number, summary: IngestSummary, status: 'ok' | 'partial' | 'failed'): Promise<void> {
    this.assertWritable();
    await this.run(
      `UPDATE ingest_runs SET finished_at = (now() AT TIME ZONE 'UTC'), read = ?, inserted = ?, duplicates = ?, quarantined = ?, status = ? WHERE run_id = ?`,
      [summary.read, summary.inserted, summary.duplicates, summary.quarantined, status, runId],
    );
  }

  /** Quarantined records, oldest run first, in file order within a source. */
  async listQuarantine(options: { limit: number; reason: string | null }): Promise<{ total: number; records: QuarantineRecord[] }> {
    const where = options.reason === null ? '' : 'WHERE reason = ?';
    const params = options.reason === null ? [] : [options.reason];
    const [count] = await this.query<{ n: number }>(`SELECT count(*) AS n FROM quarantine ${where}`, params);
    const records = await this.query<QuarantineRecord>(
      `SELECT source, location, reason, detail, coalesce(raw, '') AS raw, coalesce(raw_bytes, 0) AS "rawBytes",
         coalesce(raw_bytes, 0) > strlen(coalesce(raw, '')) AS capped, run_id AS "runId", quarantined_at AS "quarantinedAt"
       FROM quarantine ${where}
       ORDER BY run_id, source, try_cast(regexp_extract(location, '[0-9]+') AS BIGINT) NULLS FIRST, location, reason
       LIMIT ${Math.max(1, Math.trunc(options.limit))}`,
      params,
    );
    return { total: count?.n ?? 0, records };
  }

  private assertWritable(): void {
    if (this.readOnly) throw new StoreError(`database ${this.paths.join(', ')} is open read-only`, { hint: 'ingest opens one database file read-write' });
  }

  close(): void {
    this.connection.closeSync();
    this.instance.closeSync();
  }
}

/**
 * The `meta` key a writer sets in the transaction that commits rows needing a cleanup afterwards (the file fast
 * path's placeholder rows and repeated events: deleting them in the same transaction would make DuckDB write
 * every new row again at COMMIT), and removes in the cleanup's own transaction. Found set at the next run's
 * start, the cleanup is done then (`Store.finishInterruptedCleanup`).
 */
export const CLEANUP_PENDING_KEY = 'ingest_cleanup_pending';

/** Caps raw text for quarantine without splitting a surrogate pair. */
export function capRaw(raw: string): string {
  if (raw.length <= QUARANTINE_RAW_CAP_CHARS) return raw;
  let end = QUARANTINE_RAW_CAP_CHARS;
  const code = raw.charCodeAt(end - 1);
  if (code >= 0xd800 && code <= 0xdbff) end -= 1;
  return raw.slice(0, end);
}

export function sqlString(s: string): string {
  return `'${s.replaceAll("'", "''")}'`;
}

function toPlain(value: unknown): unknown {
  if (typeof value === 'bigint') {
    return value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(value) : value.toString();
  }
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString().replace('.000Z', 'Z');
  if (Array.isArray(value)) return value.map(toPlain);
  if (value && typeof value === 'object') {
    const out: Row = {};
    for (const [k, v] of Object.entries(value)) out[k] = toPlain(v);
    return out;
  }
  return value;
}
