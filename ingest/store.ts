// The store owns DuckDB: the handle, the schema, and the edge where DuckDB values become domain values
// (BIGINT → number, TIMESTAMP → ISO string). Nothing else in keyfence opens a database.
import { existsSync } from 'node:fs';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { StoreError } from '../model/errors.ts';

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
  status       VARCHAR                 -- running | ok | partial | failed
);
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR);
`;

export type Row = Record<string, unknown>;

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
        else await store.checkSchema();
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

  close(): void {
    this.connection.closeSync();
    this.instance.closeSync();
  }
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
