// The IngestSummary every source fills the same way: counts per committed batch, a few named rejections,
// and the run's rate. One place, so file, Kafka and SLS summaries cannot drift apart.
import type { IngestSummary, RecordLocation, Rejection } from '../model/types.ts';
import type { IngestSourceKind, Store } from './store.ts';

/** How many rejected records a summary names (all of them are in quarantine). */
export const SUMMARY_REJECTION_SAMPLES = 20;

export function emptySummary(source: IngestSummary['source']): IngestSummary {
  return {
    source, runId: 0, read: 0, inserted: 0, duplicates: 0, quarantined: 0, quarantinedByReason: {}, skipped: 0,
    seconds: 0, eventsPerSecond: 0, errors: [], rejected: [], notes: [],
  };
}

/** Adds one committed batch: `records` raw records read, what the store wrote, and the rejections it quarantined. */
export function countBatch(
  summary: IngestSummary,
  records: number,
  written: { inserted: number; duplicates: number; quarantined: number },
  rejections: ReadonlyArray<Rejection & RecordLocation>,
): void {
  summary.read += records;
  summary.inserted += written.inserted;
  summary.duplicates += written.duplicates;
  summary.quarantined += written.quarantined;
  const named = (summary.rejected ??= []);
  for (const r of rejections) {
    summary.quarantinedByReason[r.reason] = (summary.quarantinedByReason[r.reason] ?? 0) + 1;
    if (named.length < SUMMARY_REJECTION_SAMPLES) named.push({ source: r.source, location: r.location, reason: r.reason, detail: r.detail });
  }
}

/** Sets the run's duration and rate from its start (`process.hrtime.bigint()`). */
export function finishTiming(summary: IngestSummary, started: bigint): void {
  summary.seconds = Number(process.hrtime.bigint() - started) / 1e9;
  summary.eventsPerSecond = summary.seconds > 0 ? Math.round(summary.read / summary.seconds) : 0;
}

/**
 * Runs one live-source ingest as a recorded run: begins it (`summary.runId`), does `work`, then records the
 * outcome, `ok` or `partial` (something was quarantined), or `failed` when `work` throws (rethrown). `settle`
 * runs first either way (e.g. clearing a progress line); the summary's timing, from `started` (default: now),
 * is set either way.
 */
export async function recordedRun(
  store: Store,
  kind: IngestSourceKind,
  summary: IngestSummary,
  work: () => Promise<void>,
  { started = process.hrtime.bigint(), settle = () => undefined }: { started?: bigint; settle?: () => void } = {},
): Promise<void> {
  try {
    summary.runId = await store.beginRun(kind);
    await work();
    settle();
    finishTiming(summary, started);
    await store.finishRun(summary.runId, summary, summary.quarantined > 0 ? 'partial' : 'ok');
  } catch (e) {
    settle();
    finishTiming(summary, started);
    if (summary.runId > 0) await store.finishRun(summary.runId, summary, 'failed').catch(() => undefined);
    throw e;
  }
}
