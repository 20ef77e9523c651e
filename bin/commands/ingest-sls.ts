// `keyfence ingest --sls --endpoint … --project … --logstore … [--from … --to …]`: reads every shard of a trail's
// logstore into one database file. Each batch (one shard's logs and the cursor after them) is one store
// transaction, so a run cut anywhere resumes exactly where its last commit stopped. See docs/sls.md.
import { normalizeRecord } from '../../ingest/actiontrail.ts';
import { Store } from '../../ingest/store.ts';
// The SLS SDK costs ~0.5 s to load: ingest/sources/sls.ts is imported inside the handler, never at start-up
// (bin/commands/review.ts imports this module for nightly).
import type { SlsBatch, SlsSourceStats } from '../../ingest/sources/sls.ts';
import type { RetryPolicy } from '../../ingest/sources/sls-retry.ts';
import { UsageError } from '../../model/errors.ts';
import type { AuditEvent, IngestSummary, RecordLocation, Rejection } from '../../model/types.ts';
import { parseDuration, parseInstant } from '../../model/window.ts';
import { Progress, resolveDbPaths } from '../common.ts';
import { printIngestSummary } from './ingest.ts';
import { countBatch, emptySummary, recordedRun } from '../../ingest/run-summary.ts';

export interface IngestSlsOptions {
  sls?: boolean;
  endpoint?: string;
  project?: string;
  logstore?: string;
  /** ISO date/time, or a duration back from now (`7d`). */
  from?: string;
  to?: string;
  db?: string[];
  json?: boolean;
}

/** Knobs for tests and the benchmark; the CLI uses the defaults. */
export interface SlsIngestTuning {
  retry?: RetryPolicy;
  batchRecords?: number;
  pullGroups?: number;
  concurrency?: number;
  now?: Date;
}

export interface SlsIngestResult {
  summary: IngestSummary;
  source: SlsSourceStats;
}

function timeOption(flag: string, text: string | undefined, now: Date): Date | null {
  if (text === undefined) return null;
  const ms = parseDuration(text);
  if (ms !== null) return new Date(now.getTime() - ms);
  const d = parseInstant(text);
  if (!d) throw new UsageError(`${flag} ${JSON.stringify(text)} is neither a date nor a duration`, { hint: 'e.g. 2026-11-01, 2026-11-01T00:00:00Z, or 7d (seven days ago)' });
  return d;
}

/** Normalizes a batch; a rejected log is quarantined at its shard, pull cursor and index. */
export function decodeSlsBatch(batch: SlsBatch, source: string): { events: AuditEvent[]; rejections: Array<Rejection & RecordLocation> } {
  const events: AuditEvent[] = [];
  const rejections: Array<Rejection & RecordLocation> = [];
  for (const record of batch.records) {
    const result = normalizeRecord(record.raw);
    for (const e of result.events) events.push(e);
    for (const r of result.rejections) rejections.push({ ...r, source, location: record.location });
  }
  return { events, rejections };
}

/** The ingest loop, without printing: returns the summary (thrown errors leave every committed batch checkpointed). */
export async function runSlsIngest(opts: IngestSlsOptions, tuning: SlsIngestTuning = {}): Promise<SlsIngestResult> {
  if (!opts.endpoint) throw new UsageError('--sls needs --endpoint', { hint: 'e.g. cn-hangzhou.log.aliyuncs.com (the region of the trail\'s project)' });
  if (!opts.project) throw new UsageError('--sls needs --project', { hint: 'the SLS project the trail delivers to' });
  if (!opts.logstore) throw new UsageError('--sls needs --logstore', { hint: 'the logstore the trail delivers to' });
  const now = tuning.now ?? new Date();
  const from = timeOption('--from', opts.from, now);
  const to = timeOption('--to', opts.to, now);
  if (from && to && from.getTime() >= to.getTime()) throw new UsageError('--from must be before --to');
  const dbPaths = resolveDbPaths(opts.db);
  if (dbPaths.length !== 1) throw new UsageError('ingest writes one database file', { hint: 'pass one --db' });
  const { connectSls, createSlsSource, logstoreSource } = await import('../../ingest/sources/sls.ts');
  const connection = connectSls({ endpoint: opts.endpoint, project: opts.project, logstore: opts.logstore });
  const quarantineSource = logstoreSource(connection);

  const started = process.hrtime.bigint();
  const store = await Store.open(dbPaths[0]!);
  const summary = emptySummary('sls');
  const source = createSlsSource({
    connection,
    resume: async (key) => {
      const cp = await store.getCheckpoint(key);
      return cp ? { position: cp.position, complete: cp.complete } : null;
    },
    from,
    to,
    batchRecords: tuning.batchRecords,
    pullGroups: tuning.pullGroups,
    concurrency: tuning.concurrency,
    retry: tuning.retry,
  });
  const progress = new Progress(`ingest ${quarantineSource}`);
  try {
    await recordedRun(store, 'sls', summary, async () => {
      for await (const batch of source.batches()) {
        const { events, rejections } = decodeSlsBatch(batch, quarantineSource);
        const written = await store.writeBatch({ runId: summary.runId, events, rejections, checkpoints: [batch.checkpoint] });
        countBatch(summary, batch.records.length, written, rejections);
        progress.update(summary.read, null, `${summary.read} read, ${summary.inserted} new, shard ${batch.shardId}`);
      }
      summary.skipped = source.stats.skippedShards;
      const { shards, resumedShards, skippedShards, pulls } = source.stats;
      summary.notes!.push(`${shards} shard(s): ${resumedShards} resumed from their checkpoint, ${skippedShards} complete (readonly, read to the end before), ${pulls} PullLogs call(s)`);
    }, { started, settle: () => progress.done() });
  } finally {
    store.close();
  }
  return { summary, source: source.stats };
}


/** The command handler: runs the ingest and prints its summary; the exit code says whether input was quarantined. */
export async function ingestFromSls(opts: IngestSlsOptions): Promise<number> {
  const { summary } = await runSlsIngest(opts);
  return printIngestSummary(summary, opts.json === true);
}
