// Inserts a batch of AuditEvents into `events` through DuckDB's appender: rows go into a per-connection
// TEMP staging table, then one anti-join INSERT moves the new ones into `events`. Same rows and counts as
// the JSON path it replaces (from_json + unnest), without building and parsing one JSON document per batch.
import type { DuckDBAppender, DuckDBConnection } from '@duckdb/node-api';
import { StoreError } from '../model/errors.ts';
import type { AuditEvent } from '../model/types.ts';

/** The events columns in table order (run_id last, from the caller), with the AuditEvent field each comes from. */
const STAGED_COLUMNS: ReadonlyArray<readonly [column: string, field: keyof AuditEvent, type: 'VARCHAR' | 'UTINYINT' | 'BOOLEAN']> = [
  ['event_id', 'eventId', 'VARCHAR'],
  // Staged as text and cast in SQL, exactly as the JSON path did, so a timestamp is parsed one way only.
  ['event_time', 'eventTime', 'VARCHAR'],
  ['event_name', 'eventName', 'VARCHAR'],
  ['event_source', 'eventSource', 'VARCHAR'],
  ['service_name', 'serviceName', 'VARCHAR'],
  ['event_type', 'eventType', 'VARCHAR'],
  ['region', 'acsRegion', 'VARCHAR'],
  ['source_ip', 'sourceIp', 'VARCHAR'],
  ['source_kind', 'sourceKind', 'VARCHAR'],
  ['ip_family', 'ipFamily', 'UTINYINT'],
  ['vpc_id', 'vpcId', 'VARCHAR'],
  ['user_agent', 'userAgent', 'VARCHAR'],
  ['error_code', 'errorCode', 'VARCHAR'],
  ['error_message', 'errorMessage', 'VARCHAR'],
  ['access_key_id', 'accessKeyId', 'VARCHAR'],
  ['key_kind', 'keyKind', 'VARCHAR'],
  ['identity_type', 'identityType', 'VARCHAR'],
  ['account_id', 'accountId', 'VARCHAR'],
  ['principal_id', 'principalId', 'VARCHAR'],
  ['user_name', 'userName', 'VARCHAR'],
  ['exempt', 'exemptService', 'BOOLEAN'],
  ['acl_denied', 'aclDenied', 'BOOLEAN'],
  ['request_id', 'requestId', 'VARCHAR'],
];

/** The TEMP table (catalog `temp`, schema `main`) the appender fills; empty between batches. */
export const EVENT_STAGE_TABLE = 'keyfence_event_stage';

const CREATE_STAGE_SQL = `CREATE TEMP TABLE IF NOT EXISTS ${EVENT_STAGE_TABLE} (${STAGED_COLUMNS.map(([column, , type]) => `${column} ${type}`).join(', ')})`;
const STAGE_TIME_RANGE_SQL = `SELECT CAST(min(CAST(event_time AS TIMESTAMP)) AS VARCHAR) AS lo, CAST(max(CAST(event_time AS TIMESTAMP)) AS VARCHAR) AS hi FROM temp.main.${EVENT_STAGE_TABLE}`;
const STAGE_SELECT = STAGED_COLUMNS.map(([column]) => (column === 'event_time' ? 'CAST(n.event_time AS TIMESTAMP)' : `n.${column}`)).join(', ');
const CLEAR_STAGE_SQL = `DELETE FROM temp.main.${EVENT_STAGE_TABLE}`;

/**
 * Inserts the events not stored yet and returns how many were inserted and how many were duplicates (already
 * stored, or repeated within the batch: the first occurrence of an eventId wins). Call it inside a transaction:
 * the staged rows and the insert commit or roll back with it, and when it throws the caller must roll back.
 *
 * The check against stored events looks only at events whose event_time lies within the batch's range: a
 * redelivered event is the same event (same eventId, same eventTime), and the range lets DuckDB skip row
 * groups instead of scanning every stored event_id. Times are compared as TIMESTAMPs, not as text. The one
 * case this lets through: an eventId already stored with a different event_time outside the batch's range.
 */
export async function insertEventsAppend(
  connection: DuckDBConnection,
  runId: number,
  events: readonly AuditEvent[],
): Promise<{ inserted: number; duplicates: number }> {
  if (events.length === 0) return { inserted: 0, duplicates: 0 };
  // Every batch, not once: a rollback of the transaction that created the table drops it again.
  await connection.run(CREATE_STAGE_SQL);
  const staged = await stageUniqueEvents(connection, events);
  const [lo, hi] = staged.range ?? (await stagedTimeRange(connection));
  const reader = await connection.runAndReadAll(
    `INSERT INTO events
     SELECT ${STAGE_SELECT}, ? AS run_id
     FROM temp.main.${EVENT_STAGE_TABLE} n
     WHERE NOT EXISTS (
       SELECT 1 FROM events o
       WHERE o.event_id = n.event_id AND o.event_time BETWEEN ${timestampLiteral(lo)} AND ${timestampLiteral(hi)}
     )`,
    [runId] as never,
  );
  await connection.run(CLEAR_STAGE_SQL);
  const inserted = Number(reader.getRowsJS()[0]?.[0] ?? 0);
  return { inserted, duplicates: events.length - inserted };
}

/** DuckDB's reading of the staged event_time range, as `timestampLiteral` takes it. */
async function stagedTimeRange(connection: DuckDBConnection): Promise<[lo: string, hi: string]> {
  const range = await connection.runAndReadAll(STAGE_TIME_RANGE_SQL);
  return range.getRowsJS()[0] as [string, string];
}

/**
 * `YYYY-MM-DDTHH:MM:SS[.fff]Z` (what `normalizeRecord` writes) in milliseconds, or NaN for any other text: only
 * a time both JS and DuckDB's CAST read the same way is bounded in JS.
 */
const CANONICAL_EVENT_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$/;
function canonicalMillis(eventTime: string): number {
  return CANONICAL_EVENT_TIME.test(eventTime) ? Date.parse(eventTime) : Number.NaN;
}

/** Milliseconds → `YYYY-MM-DD HH:MM:SS.fff`, as `timestampLiteral` takes it. */
function millisText(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace('Z', '');
}

/**
 * Appends each eventId's first occurrence to the stage. Returns the batch's event_time range when every time
 * is canonical (saving DuckDB a pass over the stage), else null.
 */
async function stageUniqueEvents(connection: DuckDBConnection, events: readonly AuditEvent[]): Promise<{ range: [lo: string, hi: string] | null }> {
  const appender = await connection.createAppender(EVENT_STAGE_TABLE, 'main', 'temp');
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  try {
    const seen = new Set<string>();
    for (const event of events) {
      if (seen.has(event.eventId)) continue;
      seen.add(event.eventId);
      appendEvent(appender, event);
      // One time JS cannot bound (NaN) leaves the whole range to DuckDB.
      const ms = canonicalMillis(event.eventTime);
      if (Number.isNaN(ms)) lo = Number.NaN;
      else if (!Number.isNaN(lo)) {
        if (ms < lo) lo = ms;
        if (ms > hi) hi = ms;
      }
    }
    appender.flushSync();
  } catch (e) {
    // Drop what is still buffered: closing would flush it into the stage.
    try {
      appender.clear();
    } catch {
      // the appender is unusable already; the caller's rollback undoes anything flushed
    }
    closeQuietly(appender);
    throw e;
  }
  appender.closeSync();
  return { range: Number.isFinite(lo) && Number.isFinite(hi) ? [millisText(lo), millisText(hi)] : null };
}

function appendEvent(appender: DuckDBAppender, event: AuditEvent): void {
  for (const [, field, type] of STAGED_COLUMNS) {
    const value = event[field];
    if (value === null || value === undefined) appender.appendNull();
    else if (type === 'VARCHAR') appender.appendVarchar(value as string);
    else if (type === 'BOOLEAN') appender.appendBoolean(value as boolean);
    else appender.appendUTinyInt(value as number);
  }
  appender.endRow();
}

function closeQuietly(appender: DuckDBAppender): void {
  try {
    appender.closeSync();
  } catch {
    // already failed; the original error is the one to report
  }
}

/** DuckDB's own VARCHAR rendering of a TIMESTAMP, back as a literal (digits, '-', ':', '.', ' ' only). */
function timestampLiteral(text: string): string {
  if (!/^[0-9: .-]+$/.test(text)) throw new StoreError(`DuckDB rendered a batch's event_time bound as ${JSON.stringify(text)}, not a plain timestamp`, { hint: 'report this: the batch was not stored' });
  return `TIMESTAMP '${text}'`;
}
