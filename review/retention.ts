// Retention: events older than (newest event − keep) leave the store, but what drift and dormancy need from
// them stays: before deleting, the pruned events are rolled up into `source_rollup` with the same grouping as
// a replay row (analyze/replay.ts), so "first seen", "last seen" and "unused for N days" stay answerable.
// This file writes the rollup; analyze/rollup.ts reads it.
import { StoreError } from '../model/errors.ts';
import type { TimeWindow } from '../model/types.ts';
import { isoSeconds } from '../model/window.ts';
import { sqlString, type Store } from '../ingest/store.ts';
import { replaySql } from '../analyze/replay.ts';
import { hasRollup } from '../analyze/rollup.ts';

const DAY_MS = 86_400_000;

/**
 * One row per key × key kind × source kind × address × VPC × exempt, summed over every pruned event (STS keys
 * folded into `STS.*`, addresses kept only for governed material: exactly a replay row's grouping).
 * The pruned ranges never share a UTC day (the cutoff is a day boundary), so `days` add up exactly.
 */
export const ROLLUP_SQL = `
CREATE TABLE IF NOT EXISTS source_rollup (
  access_key_id  VARCHAR,
  key_kind       VARCHAR NOT NULL,
  source_kind    VARCHAR NOT NULL,
  source_ip      VARCHAR,
  vpc_id         VARCHAR,
  exempt         BOOLEAN NOT NULL,
  calls          BIGINT NOT NULL,
  denied_calls   BIGINT NOT NULL,
  error_calls    BIGINT NOT NULL,
  sensitive_calls BIGINT NOT NULL,
  days           BIGINT NOT NULL,
  first_seen     TIMESTAMP NOT NULL,
  last_seen      TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS retention_log (
  pruned_at      TIMESTAMP NOT NULL,
  cutoff         TIMESTAMP NOT NULL,   -- events before this were pruned
  events         BIGINT NOT NULL,
  rollup_rows    BIGINT NOT NULL
);
`;

export interface PruneResult {
  /** Events before this instant were removed (a UTC day boundary); null when nothing was old enough. */
  cutoff: string | null;
  newestEvent: string | null;
  prunedEvents: number;
  /** Rows of `source_rollup` after the prune. */
  rollupRows: number;
  remainingEvents: number;
}

/** The cutoff for `keepMs` back from the newest event, floored to the start of its UTC day. */
export function pruneCutoff(newestEvent: Date, keepMs: number): Date {
  const t = newestEvent.getTime() - keepMs;
  return new Date(Math.floor(t / DAY_MS) * DAY_MS);
}

/**
 * Rolls up, then deletes, the events before the cutoff, in one transaction (all or nothing). The store must
 * be open read-write on one file.
 */
export async function pruneEvents(store: Store, keepMs: number): Promise<PruneResult> {
  if (store.readOnly) throw new StoreError(`database ${store.paths.join(', ')} is open read-only`, { hint: 'retention needs the one database file open read-write' });
  if (!(keepMs > 0)) throw new StoreError('keep must be a positive duration');
  await store.run(ROLLUP_SQL);
  const [span] = await store.query<{ oldest: string | null; newest: string | null }>('SELECT min(event_time) AS oldest, max(event_time) AS newest FROM events');
  if (!span?.newest || !span.oldest) return { cutoff: null, newestEvent: null, prunedEvents: 0, rollupRows: await countRollup(store), remainingEvents: 0 };
  const cutoff = pruneCutoff(new Date(span.newest), keepMs);
  const newestEvent = isoSeconds(new Date(span.newest));
  if (new Date(span.oldest).getTime() >= cutoff.getTime()) {
    const [n] = await store.query<{ n: number }>('SELECT count(*) AS n FROM events');
    return { cutoff: null, newestEvent, prunedEvents: 0, rollupRows: await countRollup(store), remainingEvents: n?.n ?? 0 };
  }
  const pruned: TimeWindow = { from: isoSeconds(new Date(new Date(span.oldest).getTime() - 1000)), to: isoSeconds(cutoff) };
  const before = `event_time < CAST(${sqlString(pruned.to)} AS TIMESTAMP)`;
  const prunedEvents = await store.transaction(async () => {
    await store.run(`
      CREATE OR REPLACE TEMP TABLE rollup_incoming AS
      SELECT "accessKeyId" AS access_key_id, "keyKind" AS key_kind, "sourceKind" AS source_kind, ip AS source_ip, "vpcId" AS vpc_id, exempt,
        calls, "deniedCalls" AS denied_calls, "errorCalls" AS error_calls, "sensitiveCalls" AS sensitive_calls, days,
        "firstSeen" AS first_seen, "lastSeen" AS last_seen
      FROM (${replaySql({ window: pruned })})`);
    // Merge: rows already rolled up by an earlier prune get their sums and bounds widened.
    await store.run(`
      CREATE OR REPLACE TEMP TABLE rollup_merged AS
      SELECT access_key_id, key_kind, source_kind, source_ip, vpc_id, exempt,
        sum(calls) AS calls, sum(denied_calls) AS denied_calls, sum(error_calls) AS error_calls, sum(sensitive_calls) AS sensitive_calls,
        sum(days) AS days, min(first_seen) AS first_seen, max(last_seen) AS last_seen
      FROM (SELECT * FROM source_rollup UNION ALL SELECT * FROM rollup_incoming)
      GROUP BY access_key_id, key_kind, source_kind, source_ip, vpc_id, exempt`);
    await store.run('DELETE FROM source_rollup');
    await store.run('INSERT INTO source_rollup SELECT * FROM rollup_merged');
    const [n] = await store.query<{ n: number }>(`SELECT count(*) AS n FROM events WHERE ${before}`);
    await store.run(`DELETE FROM events WHERE ${before}`);
    const rows = await countRollup(store);
    await store.run(`INSERT INTO retention_log VALUES ((now() AT TIME ZONE 'UTC'), CAST(${sqlString(pruned.to)} AS TIMESTAMP), ?, ?)`, [n?.n ?? 0, rows]);
    await store.run('DROP TABLE rollup_incoming');
    await store.run('DROP TABLE rollup_merged');
    return n?.n ?? 0;
  });
  await store.run('CHECKPOINT');
  const [left] = await store.query<{ n: number }>('SELECT count(*) AS n FROM events');
  return { cutoff: pruned.to, newestEvent, prunedEvents, rollupRows: await countRollup(store), remainingEvents: left?.n ?? 0 };
}

async function countRollup(store: Store): Promise<number> {
  if (!(await hasRollup(store))) return 0;
  const [n] = await store.query<{ n: number }>('SELECT count(*) AS n FROM source_rollup');
  return n?.n ?? 0;
}
