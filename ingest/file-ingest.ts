// File ingest: files → records → events/rejections → store, resumable and exactly-once per event.
// NDJSON files take the SQL fast path: DuckDB reads, parses and classifies a group of files (~1 GiB) in one
// transaction with their checkpoints; lines the SQL does not vouch for go through `normalizeRecord`. Other
// files (JSON arrays and documents, files DuckDB cannot read, a partly read file) are streamed in batches,
// each batch committed with its checkpoint.
import { SUMMARY_REJECTION_SAMPLES } from './run-summary.ts';
import { BOOLEAN, DuckDBScalarFunction, VARCHAR } from '@duckdb/node-api';
import { classifySource, encodeSourceClass, FAST_PATH_MARK, fastPathSelectSql, MAX_RECORD_CHARS, normalizeRecord, SOURCE_CLASSIFIER_FUNCTION } from './actiontrail.ts';
import { CLEANUP_PENDING_KEY, sqlString, type Checkpoint, type Store } from './store.ts';
import {
  decodePosition,
  encodePosition,
  expandInputs,
  gzipIsWhole,
  locateLines,
  readFileBatches,
  sniffFile,
  type FileInput,
  type FileKind,
  type FilePosition,
  type RawRecord,
} from './sources/file.ts';
import type { AuditEvent, IngestSummary, RecordLocation, Rejection, RejectionReason } from '../model/types.ts';
import { StoreError } from '../model/errors.ts';

export interface IngestFilesOptions {
  onProgress?: (doneBytes: number, totalBytes: number) => void;
  /** Let DuckDB read NDJSON files itself (default true); false streams every file through `normalizeRecord`. */
  fastPath?: boolean;
  /** Records per committed batch on the streaming path. */
  batchRecords?: number;
  /** Read files again even when their checkpoint says they were fully ingested. */
  ignoreCheckpoints?: boolean;
  /** Called after each file is committed, with how it was read. */
  onFileDone?: (path: string, how: FileOutcome) => void;
}

export type FileOutcome = 'fast' | 'stream' | 'skipped' | 'empty' | 'rejected';

/** How many rejected records the summary names (all of them are in quarantine). */

type Located = Rejection & RecordLocation;

class Tally {
  read = 0;
  inserted = 0;
  duplicates = 0;
  quarantined = 0;
  skipped = 0;
  byReason: Partial<Record<RejectionReason, number>> = {};
  errors: string[] = [];
  notes: string[] = [];
  samples: Array<RecordLocation & { reason: RejectionReason; detail: string }> = [];

  /** Counts rejections; keeps the first SUMMARY_REJECTION_SAMPLES in input order (file, then line), whatever order they came in. */
  reject(rejections: Located[]): void {
    for (const r of rejections) {
      this.byReason[r.reason] = (this.byReason[r.reason] ?? 0) + 1;
      this.samples.push({ source: r.source, location: r.location, reason: r.reason, detail: r.detail });
    }
    if (this.samples.length > SUMMARY_REJECTION_SAMPLES) {
      this.samples.sort(inputOrder);
      this.samples.length = SUMMARY_REJECTION_SAMPLES;
    }
  }
}

function inputOrder(a: RecordLocation, b: RecordLocation): number {
  if (a.source !== b.source) return a.source < b.source ? -1 : 1;
  const la = Number(/\d+/.exec(a.location)?.[0] ?? 0);
  const lb = Number(/\d+/.exec(b.location)?.[0] ?? 0);
  return la - lb || (a.location < b.location ? -1 : a.location > b.location ? 1 : 0);
}

/** Ingests files, directories and globs into the store; returns what happened (never throws for bad input). */
export async function ingestFiles(store: Store, paths: string[], options: IngestFilesOptions = {}): Promise<IngestSummary> {
  const started = process.hrtime.bigint();
  const tally = new Tally();
  const { files, missing } = await expandInputs(paths);
  const runId = await store.beginRun('file');
  let status: 'ok' | 'partial' | 'failed' = 'failed';
  try {
    await configureForIngest(store);
    if (missing.length > 0) {
      const rejections: Located[] = missing.map((m) => ({ source: m.path, location: 'path', reason: 'unreadable-file', detail: m.message, raw: '' }));
      await store.writeBatch({ runId, events: [], rejections, checkpoints: [] });
      tally.quarantined += rejections.length;
      tally.reject(rejections);
      tally.errors.push(...missing.map((m) => m.message));
    }
    const totalBytes = files.reduce((n, f) => n + f.size, 0);
    let doneBytes = 0;
    const groupLimit = Number(process.env.KEYFENCE_FAST_GROUP_BYTES ?? FAST_GROUP_BYTES);
    const checkpoints = await store.getCheckpoints('file:');
    let group: FileInput[] = [];
    let groupBytes = 0;
    const flushGroup = async (): Promise<void> => {
      if (group.length === 0) return;
      const batch = group;
      group = [];
      groupBytes = 0;
      const batchBytes = batch.reduce((n, f) => n + f.size, 0);
      const groupProgress = (share: number): void => options.onProgress?.(doneBytes + Math.round(share * batchBytes), totalBytes);
      for (const streamed of await fastPathGroup(store, runId, batch, tally, options, groupProgress)) {
        await streamFile(store, runId, streamed, await sniffFile(streamed.absPath), null, options, tally, () => undefined);
        fileDone(options, streamed, 'stream');
      }
      for (const f of batch) doneBytes += f.size;
      options.onProgress?.(doneBytes, totalBytes);
    };
    for (const file of files) {
      const plan = await planFile(store, runId, file, checkpoints.get(file.source) ?? null, options, tally);
      if (plan.how === 'fast') {
        group.push(file);
        groupBytes += file.size;
        if (groupBytes >= groupLimit) await flushGroup();
        continue;
      }
      await flushGroup();
      if (plan.how === 'stream') {
        await streamFile(store, runId, file, plan.kind, plan.resumeFrom, options, tally, (bytes) => options.onProgress?.(doneBytes + bytes, totalBytes));
        fileDone(options, file, 'stream');
      }
      doneBytes += file.size;
      options.onProgress?.(doneBytes, totalBytes);
    }
    await flushGroup();
    status = tally.quarantined > 0 || tally.errors.length > 0 ? 'partial' : 'ok';
  } finally {
    const summary = summarize(tally, runId, started);
    await store.finishRun(runId, summary, status).catch(() => undefined);
    await restoreAfterIngest(store);
  }
  return summarize(tally, runId, started);
}

function summarize(t: Tally, runId: number, started: bigint): IngestSummary {
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return {
    source: 'file',
    runId,
    read: t.read,
    inserted: t.inserted,
    duplicates: t.duplicates,
    quarantined: t.quarantined,
    quarantinedByReason: Object.fromEntries(Object.entries(t.byReason).sort(([a], [b]) => (a < b ? -1 : 1))),
    skipped: t.skipped,
    seconds,
    eventsPerSecond: seconds > 0 ? t.read / seconds : 0,
    errors: t.errors,
    notes: t.notes,
    rejected: [...t.samples].sort(inputOrder),
  };
}

/** Bounded memory on a shared machine. */
async function configureForIngest(store: Store): Promise<void> {
  const memory = process.env.KEYFENCE_MEMORY_LIMIT ?? '1GB';
  await store.run(`SET memory_limit = ${sqlString(memory)}`);
  // Row order is not needed (rejected lines are located by their text); dropping it saves memory.
  await store.run(`SET preserve_insertion_order = false`);
  // DuckDB tracks how far a statement got (for the progress bar) without printing anything itself.
  await store.run(`SET enable_progress_bar = true`);
  await store.run(`SET enable_progress_bar_print = false`);
  if (process.env.KEYFENCE_THREADS) await store.run(`SET threads = ${Number(process.env.KEYFENCE_THREADS)}`);
}

/** Puts back what `configureForIngest` changed, for whoever uses the store next. */
async function restoreAfterIngest(store: Store): Promise<void> {
  for (const setting of ['memory_limit', 'preserve_insertion_order', 'enable_progress_bar', 'enable_progress_bar_print', ...(process.env.KEYFENCE_THREADS ? ['threads'] : [])]) {
    await store.run(`RESET ${setting}`).catch(() => undefined);
  }
}

type FilePlan = { how: 'done' } | { how: 'fast' } | { how: 'stream'; kind: FileKind; resumeFrom: FilePosition | null };

function fileDone(options: IngestFilesOptions, file: FileInput, how: FileOutcome): void {
  if (process.env.KEYFENCE_DEBUG) process.stderr.write(`file done (${how}): ${file.path}\n`);
  options.onFileDone?.(file.path, how);
}

/** Decides how a file is read; files with nothing to read (skipped, empty, binary, unreadable) are settled here. */
async function planFile(store: Store, runId: number, file: FileInput, checkpoint: Checkpoint | null, options: IngestFilesOptions, tally: Tally): Promise<FilePlan> {
  const sameFile = checkpoint !== null && checkpoint.fingerprint === file.fingerprint && !options.ignoreCheckpoints;
  if (sameFile && checkpoint.complete) {
    tally.skipped++;
    fileDone(options, file, 'skipped');
    return { how: 'done' };
  }
  const resumeFrom = sameFile ? decodePosition(checkpoint.position) : null;
  let kind: FileKind;
  try {
    kind = await sniffFile(file.absPath);
  } catch (e) {
    await rejectWholeFile(store, runId, file, tally, 'unreadable-file', `${file.path}: cannot read (${(e as Error).message})`, '');
    fileDone(options, file, 'rejected');
    return { how: 'done' };
  }
  if (kind.format === 'empty') {
    tally.notes.push(`${file.path}: empty file, nothing to ingest`);
    await store.writeBatch({ runId, events: [], rejections: [], checkpoints: [{ source: file.source, position: encodePosition({ records: 0, lines: 0, byte: 0 }), complete: true, fingerprint: file.fingerprint }] });
    fileDone(options, file, 'empty');
    return { how: 'done' };
  }
  if (kind.format === 'binary') {
    const preview = await readPreview(file.absPath);
    await rejectWholeFile(store, runId, file, tally, 'binary-data', `${file.path}: binary file (NUL bytes at the start), not JSON text`, preview);
    fileDone(options, file, 'rejected');
    return { how: 'done' };
  }
  const fast = options.fastPath !== false && kind.format === 'ndjson' && resumeFrom === null && (!kind.gzip || (await gzipIsWhole(file.absPath)));
  return fast ? { how: 'fast' } : { how: 'stream', kind, resumeFrom };
}

async function rejectWholeFile(store: Store, runId: number, file: FileInput, tally: Tally, reason: RejectionReason, detail: string, raw: string): Promise<void> {
  const rejection: Located = { source: file.path, location: 'line 1', reason, detail, raw };
  await store.writeBatch({ runId, events: [], rejections: [rejection], checkpoints: [{ source: file.source, position: encodePosition({ records: 0, lines: 0, byte: null }), complete: true, fingerprint: file.fingerprint }] });
  tally.quarantined++;
  tally.reject([rejection]);
  tally.errors.push(detail);
}

async function readPreview(absPath: string): Promise<string> {
  const { open } = await import('node:fs/promises');
  const handle = await open(absPath, 'r');
  try {
    const buf = Buffer.alloc(1024);
    const { bytesRead } = await handle.read(buf, 0, 1024, 0);
    return buf.subarray(0, bytesRead).toString('latin1');
  } finally {
    await handle.close();
  }
}

// ---------------------------------------------------------------- streaming path

function recordToResult(rec: RawRecord, file: FileInput): { events: AuditEvent[]; rejections: Located[] } {
  const location = `line ${rec.line}`;
  if (rec.fullLength !== undefined) {
    return {
      events: [],
      rejections: [{
        source: file.path,
        location,
        reason: 'line-too-long',
        detail: `${file.path}:${rec.line}: record is ${rec.fullLength} characters, over the ${MAX_RECORD_CHARS} limit`,
        raw: rec.text,
        rawBytes: rec.fullBytes,
      }],
    };
  }
  const result = normalizeRecord(rec.text);
  return {
    events: result.events,
    rejections: result.rejections.map((r) => ({ ...r, detail: `${file.path}:${rec.line}: ${r.detail}`, source: file.path, location })),
  };
}

async function streamFile(
  store: Store,
  runId: number,
  file: FileInput,
  kind: FileKind,
  from: ReturnType<typeof decodePosition>,
  options: IngestFilesOptions,
  tally: Tally,
  progress: (bytes: number) => void,
): Promise<void> {
  let lastPosition = from ?? { records: 0, lines: 0, byte: 0 };
  for await (const batch of readFileBatches(file, { kind, from, batchRecords: options.batchRecords ?? 5000, maxRecordChars: MAX_RECORD_CHARS })) {
    const events: AuditEvent[] = [];
    const rejections: Located[] = [];
    for (const rec of batch.records) {
      const r = recordToResult(rec, file);
      events.push(...r.events);
      rejections.push(...r.rejections);
    }
    if (batch.failure) {
      rejections.push({ source: file.path, location: `line ${batch.failure.line}`, reason: batch.failure.reason, detail: `${file.path}: ${batch.failure.detail}`, raw: batch.failure.partial });
      tally.errors.push(`${file.path}: ${batch.failure.detail}`);
    }
    const written = await store.writeBatch({
      runId,
      events,
      rejections,
      checkpoints: [{ source: file.source, position: encodePosition(batch.position), complete: false, fingerprint: file.fingerprint }],
    });
    tally.read += batch.records.length;
    tally.inserted += written.inserted;
    tally.duplicates += written.duplicates;
    tally.quarantined += written.quarantined;
    tally.reject(rejections);
    lastPosition = batch.position;
    if (process.env.KEYFENCE_DEBUG) process.stderr.write(`batch committed: ${file.path} after record ${batch.position.records}\n`);
    progress(Math.min(batch.bytesRead, file.size));
  }
  await store.writeBatch({ runId, events: [], rejections: [], checkpoints: [{ source: file.source, position: encodePosition(lastPosition), complete: true, fingerprint: file.fingerprint }] });
}

// ---------------------------------------------------------------- SQL fast path

/** Largest line DuckDB is asked to read; a longer one makes the file take the streaming path. */
const FAST_PATH_MAX_LINE_BYTES = 2 * MAX_RECORD_CHARS;

/** A fast-path group with more lines than this for normalizeRecord (or more bytes of them) is streamed instead
 *  (KEYFENCE_FAST_MAX_DEFERRED overrides the count). */
const MAX_DEFERRED_LINES = 100_000;
const MAX_DEFERRED_BYTES = 128 * 1024 * 1024;

/** Files read by the SQL fast path are committed in groups of about this many bytes (one transaction each). */
export const FAST_GROUP_BYTES = 1024 * 1024 * 1024;

/**
 * Every non-empty line of the files (DuckDB's CSV reader skips empty ones), read in one scan, with the file's
 * path as its tag. Lines carry no number: the few that need one (rejected lines) are located afterwards by
 * their text, so DuckDB keeps its freedom to read in parallel and out of order.
 */
function linesRelation(files: FileInput[], compression: 'gzip' | 'none' | 'auto'): string {
  const list = `[${files.map((f) => sqlString(f.absPath)).join(', ')}]`;
  return `(SELECT filename AS file_tag, line FROM read_csv(${list}, columns = {'line': 'VARCHAR'}, filename = true,
      delim = chr(1), quote = '', escape = '', header = false, auto_detect = false, new_line = '\\n', strict_mode = false,
      compression = '${compression}', max_line_size = ${FAST_PATH_MAX_LINE_BYTES}) WHERE line IS NOT NULL)`;
}

/**
 * One transaction for a group of NDJSON files: DuckDB reads every line and inserts it into events, the lines it
 * does not vouch for as marked placeholders (`classifySource` answers for source texts only it can classify);
 * `normalizeRecord` decides the marked lines, and the group's quarantine and checkpoints commit with it. A
 * second transaction deletes the placeholders and repeated events (see docs/ingest.md). When DuckDB cannot read a file of a group,
 * nothing of the group is committed and its files are retried one by one; returns the files DuckDB cannot
 * read at all, for the streaming path.
 */
async function fastPathGroup(
  store: Store,
  runId: number,
  files: FileInput[],
  tally: Tally,
  options: IngestFilesOptions,
  progress: (share: number) => void = () => undefined,
): Promise<FileInput[]> {
  try {
    const started = performance.now();
    const counts = await fastPathTransaction(store, runId, files, progress);
    if (process.env.KEYFENCE_DEBUG) process.stderr.write(`  group of ${files.length} files committed after ${((performance.now() - started) / 1000).toFixed(2)}s\n`);
    tally.read += counts.read;
    tally.inserted += counts.inserted;
    tally.duplicates += counts.duplicates;
    tally.quarantined += counts.rejections.length;
    tally.reject(counts.rejections);
    for (const f of files) fileDone(options, f, 'fast');
    return [];
  } catch (e) {
    if (e instanceof StoreError) throw e;
    const reason = ((e as Error).message.split('\n')[0] ?? '').slice(0, 200);
    if (process.env.KEYFENCE_DEBUG) process.stderr.write(`fast path declined ${files.map((f) => f.path).join(', ')}: ${reason}\n`);
    if (files.length === 1) {
      tally.notes.push(`${files[0]!.path}: read record by record (DuckDB could not read it: ${reason})`);
      return files;
    }
    const unreadable: FileInput[] = [];
    for (const f of files) unreadable.push(...(await fastPathGroup(store, runId, [f], tally, options)));
    return unreadable;
  }
}

async function fastPathTransaction(
  store: Store,
  runId: number,
  files: FileInput[],
  progress: (share: number) => void,
): Promise<{ read: number; inserted: number; duplicates: number; rejections: Located[] }> {
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const lap = (label: string): void => {
    if (!process.env.KEYFENCE_DEBUG) return;
    const cpu = process.cpuUsage(cpu0);
    process.stderr.write(`  ${label}: ${((performance.now() - t0) / 1000).toFixed(2)}s (CPU ${((cpu.user + cpu.system) / 1e6).toFixed(2)}s)\n`);
  };
  registerSourceClassifier(store);
  // Rows this group adds are told apart by rowid: every one lies at or above the first free rowid.
  const [{ next }] = (await store.query<{ next: number }>(`SELECT coalesce(max(rowid) + 1, 0) AS next FROM events`)) as [{ next: number }];
  const added = `rowid >= ${Number(next)}`;
  const deferredMark = sqlString(FAST_PATH_MARK.deferred);
  const committed = await store.transaction(async () => {
    const gzipByFile: boolean[] = [];
    for (const file of files) gzipByFile.push((await sniffFile(file.absPath)).gzip);
    // DuckDB picks each file's compression by its name: files whose name says otherwise are read one by one.
    const byName = files.filter((f, i) => gzipByFile[i] === f.absPath.endsWith('.gz'));
    // Every line goes straight into events, marked lines and repeated events included: deleting rows appended
    // in this transaction would make DuckDB write all of them again at COMMIT, so the few unwanted rows are
    // deleted by a second transaction (and by the next run's start if this process dies in between).
    let total = 0;
    const poll = setInterval(() => progress(Math.min(1, Math.max(0, store.connection.progress.percentage / 100))), 250);
    try {
      if (byName.length > 0) total += await insertCount(store, `INSERT INTO events ${fastPathSelectSql(linesRelation(byName, 'auto'))}`, runId);
    } finally {
      clearInterval(poll);
    }
    for (const [i, f] of files.entries()) {
      if (!byName.includes(f)) total += await insertCount(store, `INSERT INTO events ${fastPathSelectSql(linesRelation([f], gzipByFile[i] ? 'gzip' : 'none'))}`, runId);
    }
    lap(`inserted ${files.length} files`);
    const [mark] = await store.query<{ n: number; bytes: number }>(
      `SELECT count(*) AS n, coalesce(sum(strlen(error_message)), 0) AS bytes FROM events WHERE ${added} AND source_kind = ${deferredMark}`,
    );
    const deferredCount = mark?.n ?? 0;
    const maxLines = Number(process.env.KEYFENCE_FAST_MAX_DEFERRED ?? MAX_DEFERRED_LINES);
    if (deferredCount > maxLines || (mark?.bytes ?? 0) > MAX_DEFERRED_BYTES) {
      // Mostly not SLS/bare NDJSON (or mostly bad): the streaming path reads it with bounded memory.
      throw new Error(`${deferredCount} lines the SQL cannot vouch for: too many to normalize in one transaction`);
    }
    const deferred =
      deferredCount === 0
        ? []
        : await store.query<{ id: string; file: string; line: string }>(
            `SELECT event_id AS id, event_source AS file, error_message AS line FROM events WHERE ${added} AND source_kind = ${deferredMark} ORDER BY rowid`,
          );
    // Deferred lines: the JS normalizer decides, exactly as on the streaming path. Their events are stored while
    // JS finds the rejected ones' line numbers in the files.
    const locating = locateDeferred(files, gzipByFile, deferred);
    locating.catch(() => undefined);
    const lines = deferred.flatMap((d) => {
      const text = d.line.endsWith('\r') ? d.line.slice(0, -1) : d.line;
      return text.trim() === '' ? [] : [{ ...d, text }];
    });
    const blank = deferred.length - lines.length;
    const events = lines.flatMap((d) => normalizeRecord(d.text).events);
    const insertedDeferred = await store.insertEventsInTransaction(runId, events);
    lap('deferred events stored');
    // The event IDs this group stored twice (already stored before, or repeated within the group).
    // Compared by hash first (a collision only makes a candidate the cleanup then finds alone under its ID).
    await store.run(`CREATE OR REPLACE TEMP TABLE ${REPEATED} AS
      WITH new_ids AS (SELECT event_id, hash(event_id) AS h FROM events WHERE ${added} AND source_kind <> ${deferredMark}),
      candidates AS (
        SELECT h FROM new_ids GROUP BY h HAVING count(*) > 1
        UNION
        SELECT hash(event_id) FROM events WHERE NOT (${added}) AND hash(event_id) IN (SELECT h FROM new_ids))
      SELECT DISTINCT event_id FROM new_ids WHERE h IN (SELECT h FROM candidates)`);
    await store.putCheckpointsInTransaction(
      files.map((file) => ({ source: file.source, position: encodePosition({ records: -1, lines: -1, byte: null }), complete: true, fingerprint: file.fingerprint })),
    );
    await store.markCleanupPendingInTransaction(runId);
    lap('repeats and checkpoints');
    const lineOf = await locating;
    const fileByPath = new Map(files.map((f) => [f.absPath, f]));
    const rejections: Located[] = [];
    for (const d of lines) {
      // identical lines get their numbers in file order; which copy is which does not matter
      const line = lineOf.get(d.file)?.get(d.line)?.shift() ?? 0;
      rejections.push(...recordToResult({ text: d.text, line }, fileByPath.get(d.file)!).rejections);
    }
    await store.quarantineInTransaction(runId, rejections);
    lap('rejected lines located and quarantined');
    return { total, deferredCount, blank, events: events.length, insertedDeferred, rejections };
  });
  if (process.env.KEYFENCE_TEST_CRASH === 'after-fast-commit') process.kill(process.pid, 'SIGKILL');
  // The cleanup: placeholder rows and every copy of an event but the first stored one. The group is committed
  // by now: a failure here is the store's, not the files' (no retry file by file), and the next run finishes it.
  const removed = await store.transaction(async () => {
    await store.run(`DELETE FROM events WHERE source_kind = ${deferredMark}`);
    const repeats = await store.deleteCount(`DELETE FROM events WHERE rowid IN (
      SELECT rid FROM (
        SELECT rowid AS rid, row_number() OVER (PARTITION BY event_id ORDER BY rowid) AS rn
        FROM events WHERE event_id IN (SELECT event_id FROM ${REPEATED}))
      WHERE rn > 1)`);
    await store.run(`DROP TABLE ${REPEATED}`);
    await store.run(`DELETE FROM meta WHERE key = ?`, [CLEANUP_PENDING_KEY]);
    return repeats;
  }).catch((e: unknown) => {
    throw new StoreError(`the files were stored, but removing their placeholder rows and repeated events failed: ${(e as Error).message}`, {
      cause: e,
      hint: 'run the same ingest again: it finishes the cleanup before reading anything',
    });
  });
  lap('cleaned up');
  const written = committed.total - committed.deferredCount + committed.insertedDeferred;
  const inserted = written - removed;
  return {
    read: committed.total - committed.blank,
    inserted,
    duplicates: committed.total - committed.deferredCount + committed.events - inserted,
    rejections: committed.rejections,
  };
}

/** Runs an INSERT with the run ID as `$1` and returns how many rows it inserted. */
async function insertCount(store: Store, sql: string, runId: number): Promise<number> {
  const reader = await store.connection.runAndReadAll(sql, [runId] as never);
  return Number(reader.getRowsJS()[0]?.[0] ?? 0);
}

/** For each file holding deferred lines: each line's text → its line numbers in file order. */
async function locateDeferred(files: FileInput[], gzipByFile: boolean[], deferred: Array<{ file: string; line: string }>): Promise<Map<string, Map<string, number[]>>> {
  const lineOf = new Map<string, Map<string, number[]>>();
  const linesByFile = new Map<string, string[]>();
  for (const d of deferred) {
    const list = linesByFile.get(d.file);
    if (list) list.push(d.line);
    else linesByFile.set(d.file, [d.line]);
  }
  const toLocate = files.flatMap((file, i) => (linesByFile.has(file.absPath) ? [{ file, gzip: gzipByFile[i]! }] : []));
  for (let i = 0; i < toLocate.length; i += 4) {
    const slice = toLocate.slice(i, i + 4);
    const found = await Promise.all(slice.map(({ file, gzip }) => locateLines(file.absPath, gzip, linesByFile.get(file.absPath)!)));
    slice.forEach(({ file }, j) => lineOf.set(file.absPath, found[j]!));
  }
  return lineOf;
}

const classifierRegistered = new WeakSet<Store>();

/**
 * Registers `classifySource` as the SQL function the fast path calls for source texts the SQL cannot
 * classify; distinct texts are few, so answers are cached. DuckDB runs it on the JS thread.
 */
function registerSourceClassifier(store: Store): void {
  if (classifierRegistered.has(store)) return;
  const cache = new Map<string, string>();
  store.connection.registerScalarFunction(
    DuckDBScalarFunction.create({
      name: SOURCE_CLASSIFIER_FUNCTION,
      returnType: VARCHAR,
      parameterTypes: [VARCHAR, BOOLEAN],
      mainFunction: (_info, input, output) => {
        const ips = input.getColumnVector(0);
        const vpcs = input.getColumnVector(1);
        for (let row = 0; row < input.rowCount; row++) {
          const ip = ips.getItem(row) as string | null;
          const hasVpc = vpcs.getItem(row) === true;
          const key = `${hasVpc ? 'v' : '-'}${ip}`;
          let answer = cache.get(key);
          if (answer === undefined) {
            answer = encodeSourceClass(classifySource(ip, hasVpc ? 'vpc' : null));
            if (cache.size < 1_000_000) cache.set(key, answer);
          }
          output.setItem(row, answer);
        }
        output.flush();
      },
    }),
  );
  classifierRegistered.add(store);
}

/** The temp table naming the event IDs a fast-path group stored twice, until its cleanup. */
const REPEATED = 'keyfence_fast_repeated';
