// The file source: finds the input files (paths, directory trees as OSS delivers them, globs), tells what
// each holds (NDJSON, a JSON array, gzip or plain, binary, empty), and yields batches of raw records with the
// position to resume after each. Memory stays bounded: records are streamed, and an over-long record is
// kept only up to the cap. It knows nothing about DuckDB or ActionTrail.
import { createReadStream, type Stats } from 'node:fs';
import { open, readdir, stat } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import { createGunzip } from 'node:zlib';

export interface FileInput {
  /** As the operator named it (or as found under a named directory). */
  path: string;
  absPath: string;
  size: number;
  /** size + mtime: a changed file is read again. */
  fingerprint: string;
  /** Checkpoint key: `file:<absolute path>`. */
  source: string;
}

export interface MissingInput {
  path: string;
  message: string;
}

/** Files whose names say they hold events; other files under a directory are left alone. */
const EVENT_FILE_RE = /\.(json|jsonl|ndjson|log|txt)(\.gz)?$|\.gz$/i;
const GLOB_CHARS_RE = /[*?[]/;

/** Expands paths, directories (recursively, sorted) and globs into files, in a stable order, without repeats. */
export async function expandInputs(paths: string[]): Promise<{ files: FileInput[]; missing: MissingInput[] }> {
  const files: FileInput[] = [];
  const missing: MissingInput[] = [];
  const seen = new Set<string>();
  const add = (path: string, st: Stats): void => {
    const absPath = resolve(path);
    if (seen.has(absPath)) return;
    seen.add(absPath);
    files.push({ path, absPath, size: st.size, fingerprint: `${st.size}:${Math.trunc(st.mtimeMs)}`, source: `file:${absPath}` });
  };
  for (const p of paths) {
    if (GLOB_CHARS_RE.test(p)) {
      const matches = await expandGlob(p);
      if (matches.length === 0) missing.push({ path: p, message: `${p}: no file matches this pattern` });
      for (const m of matches) add(m, await stat(m));
      continue;
    }
    let st: Stats;
    try {
      st = await stat(p);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      missing.push({ path: p, message: code === 'ENOENT' ? `${p}: no such file or directory` : `${p}: cannot read (${code ?? (e as Error).message})` });
      continue;
    }
    if (st.isDirectory()) {
      const found = await walk(p);
      for (const f of found) add(f, await stat(f));
    } else {
      add(p, st);
    }
  }
  return { files, missing };
}

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  const entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of entries) {
    if (entry.name.startsWith('.')) continue;
    const full = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await walk(full)));
    else if (entry.isFile() && EVENT_FILE_RE.test(entry.name)) out.push(full);
  }
  return out;
}

/** `*` and `?` within a path segment, `**` across directories, `[…]` classes. */
async function expandGlob(pattern: string): Promise<string[]> {
  const parts = pattern.split(/[\\/]/);
  const firstGlob = parts.findIndex((s) => GLOB_CHARS_RE.test(s));
  const base = parts.slice(0, firstGlob).join(sep) || (pattern.startsWith(sep) ? sep : '.');
  const regex = new RegExp(`^${globToRegex(parts.slice(firstGlob).join('/'))}$`);
  let all: string[];
  try {
    all = await walkAll(base);
  } catch {
    return [];
  }
  return all.filter((f) => regex.test(f.slice(base === '.' ? 0 : base.length + (base.endsWith(sep) ? 0 : 1)).split(sep).join('/')));
}

async function walkAll(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  const entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of entries) {
    const full = dir === '.' ? entry.name : join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await walkAll(full, prefix)));
    else if (entry.isFile()) out.push(full);
  }
  return out;
}

function globToRegex(glob: string): string {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') {
      if (glob[i + 1] === '*') {
        re += glob[i + 2] === '/' ? '(?:.*/)?' : '.*';
        i += glob[i + 2] === '/' ? 2 : 1;
      } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = glob.indexOf(']', i);
      if (end < 0) re += '\\[';
      else {
        re += `[${glob.slice(i + 1, end).replace(/^!/, '^').replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return re;
}

// ---------------------------------------------------------------- what a file holds

/** `json-values`: one or more JSON documents spread over lines (a pretty-printed event, as in the vendor's samples). */
export type FileFormat = 'ndjson' | 'json-array' | 'json-values' | 'binary' | 'empty';

export interface FileKind {
  gzip: boolean;
  format: FileFormat;
}

const SNIFF_BYTES = 64 * 1024;

/** Looks at the start of a file (decompressed when gzip): NDJSON, one JSON array, binary or empty. */
export async function sniffFile(absPath: string): Promise<FileKind> {
  const handle = await open(absPath, 'r');
  let head: Buffer;
  try {
    const buf = Buffer.alloc(SNIFF_BYTES);
    const { bytesRead } = await handle.read(buf, 0, SNIFF_BYTES, 0);
    head = buf.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
  const gzip = head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b;
  if (gzip) head = await gunzipHead(absPath);
  return { gzip, format: formatOf(head) };
}

function formatOf(head: Buffer): FileFormat {
  let i = 0;
  if (head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf) i = 3;
  while (i < head.length && (head[i] === 0x20 || head[i] === 0x0a || head[i] === 0x0d || head[i] === 0x09)) i++;
  if (i >= head.length) return 'empty';
  // NUL bytes never occur in JSON text (in any encoding keyfence reads): this is a binary file.
  if (head.includes(0)) return 'binary';
  if (head[i] === 0x5b /* [ */) return 'json-array';
  return head[i] === 0x7b /* { */ && spansLines(head.subarray(i).toString('utf8')) ? 'json-values' : 'ndjson';
}

/** Whether the first line is not a JSON document by itself but the first document, read across lines, is. */
function spansLines(text: string): boolean {
  const nl = text.indexOf('\n');
  const firstLine = nl < 0 ? text : text.slice(0, nl);
  try {
    JSON.parse(firstLine);
    return false;
  } catch {
    // read on
  }
  let first: string | null = null;
  const splitter = new ValueSplitter(SNIFF_BYTES, 'values');
  splitter.push(text, 0, (r) => (first ??= r.text));
  if (first === null) return false;
  try {
    JSON.parse(first);
    return true;
  } catch {
    return false;
  }
}

async function gunzipHead(absPath: string): Promise<Buffer> {
  return new Promise((resolvePromise) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const input = createReadStream(absPath, { end: SNIFF_BYTES * 4 });
    const gunzip = createGunzip();
    const finish = (): void => {
      input.destroy();
      gunzip.destroy();
      resolvePromise(Buffer.concat(chunks).subarray(0, SNIFF_BYTES));
    };
    gunzip.on('data', (d: Buffer) => {
      chunks.push(d);
      size += d.length;
      if (size >= SNIFF_BYTES) finish();
    });
    gunzip.on('end', finish);
    gunzip.on('error', finish);
    input.on('error', finish);
    input.pipe(gunzip);
  });
}

/**
 * Reads a gzip file to its end and says whether it is whole. DuckDB takes a truncated gzip stream for a
 * shorter file without a word, so a gzip file is checked before DuckDB reads it.
 */
export async function gzipIsWhole(absPath: string): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const input = createReadStream(absPath, { highWaterMark: 1 << 20 });
    const gunzip = createGunzip();
    gunzip.on('data', () => undefined);
    gunzip.on('end', () => resolvePromise(true));
    gunzip.on('error', () => {
      input.destroy();
      resolvePromise(false);
    });
    input.on('error', () => resolvePromise(false));
    input.pipe(gunzip);
  });
}

/**
 * Finds where lines with the given texts are in a file: for each text, the 1-based numbers of the lines
 * equal to it, in file order. Reads the file once, comparing only lines of a matching byte length, and
 * stops when every text has been found as often as asked.
 */
export async function locateLines(absPath: string, gzip: boolean, texts: string[]): Promise<Map<string, number[]>> {
  const wanted = new Map<number, Array<{ text: string; bytes: Buffer }>>();
  const remaining = new Map<string, number>();
  for (const text of texts) {
    if (!remaining.has(text)) {
      const bytes = Buffer.from(text, 'utf8');
      const list = wanted.get(bytes.length) ?? [];
      list.push({ text, bytes });
      wanted.set(bytes.length, list);
    }
    remaining.set(text, (remaining.get(text) ?? 0) + 1);
  }
  let left = texts.length;
  const found = new Map<string, number[]>();
  if (left === 0) return found;
  const input = createReadStream(absPath, { highWaterMark: 4 << 20 });
  const stream: AsyncIterable<Buffer> = gzip ? input.pipe(createGunzip()) : input;
  let line = 1;
  let carry: Buffer | null = null;
  const check = (bytes: Buffer): boolean => {
    const candidates = wanted.get(bytes.length);
    if (candidates) {
      for (const c of candidates) {
        if ((remaining.get(c.text) ?? 0) > 0 && c.bytes.equals(bytes)) {
          remaining.set(c.text, remaining.get(c.text)! - 1);
          const list = found.get(c.text) ?? [];
          list.push(line);
          found.set(c.text, list);
          return --left === 0;
        }
      }
    }
    return false;
  };
  try {
    for await (const chunk of stream) {
      let pos = 0;
      for (;;) {
        const nl = chunk.indexOf(10, pos);
        if (nl < 0) {
          carry = carry ? Buffer.concat([carry, chunk.subarray(pos)]) : Buffer.from(chunk.subarray(pos));
          break;
        }
        const bytes = carry ? Buffer.concat([carry, chunk.subarray(pos, nl)]) : chunk.subarray(pos, nl);
        carry = null;
        if (check(bytes)) return found;
        line++;
        pos = nl + 1;
      }
    }
    if (carry && carry.length > 0) check(carry);
    return found;
  } finally {
    input.destroy();
  }
}

// ---------------------------------------------------------------- reading records

export interface RawRecord {
  /** The record's text, cut at the cap when it was longer. */
  text: string;
  /** 1-based line where the record starts. */
  line: number;
  /** Set when the record was longer than the cap: its full length in characters… */
  fullLength?: number;
  /** …and in bytes (UTF-8). */
  fullBytes?: number;
}

/** Where to resume: records consumed, and for plain NDJSON the byte offset just after the last one. */
export interface FilePosition {
  records: number;
  /** Lines consumed (the next record starts on line `lines + 1`). */
  lines: number;
  byte: number | null;
}

export interface RecordBatch {
  records: RawRecord[];
  /** Position after this batch. */
  position: FilePosition;
  /** Bytes of the file read so far (compressed bytes for gzip). */
  bytesRead: number;
  /** The input ended early (truncated gzip, read error): what happened and where. */
  failure?: { reason: 'truncated-input' | 'unreadable-file'; detail: string; line: number; partial: string };
}

export function encodePosition(p: FilePosition): string {
  return JSON.stringify(p);
}

export function decodePosition(text: string): FilePosition | null {
  try {
    const p = JSON.parse(text) as FilePosition;
    return typeof p.records === 'number' && typeof p.lines === 'number' ? p : null;
  } catch {
    return null;
  }
}

export interface ReadOptions {
  kind: FileKind;
  /** Resume after this position. */
  from?: FilePosition | null;
  batchRecords?: number;
  /** Longer records are cut to this many characters and flagged (their full length is counted, not kept). */
  maxRecordChars: number;
}

/** Streams a file's records in batches. Errors of the underlying stream end the stream with `failure`. */
export async function* readFileBatches(file: FileInput, options: ReadOptions): AsyncGenerator<RecordBatch> {
  const batchRecords = options.batchRecords ?? 5000;
  const from = options.from ?? null;
  const seekable = !options.kind.gzip && options.kind.format === 'ndjson' && from !== null && from.byte !== null;
  const startByte = seekable ? from!.byte! : 0;
  const input = createReadStream(file.absPath, { start: startByte, highWaterMark: 1 << 20 });
  let compressedRead = startByte;
  input.on('data', (d) => (compressedRead += (d as Buffer).length));
  const stream: AsyncIterable<Buffer> = options.kind.gzip ? input.pipe(createGunzip()) : input;
  const splitter =
    options.kind.format === 'json-array' || options.kind.format === 'json-values'
      ? new ValueSplitter(options.maxRecordChars, options.kind.format === 'json-array' ? 'array' : 'values')
      : new LineSplitter(options.maxRecordChars, seekable ? from!.lines : 0, startByte);
  const skipRecords = seekable ? 0 : (from?.records ?? 0);
  let records = seekable ? from!.records : 0;
  let batch: RawRecord[] = [];
  const decoder = new TextDecoder('utf-8');
  const position = (): FilePosition => ({
    records,
    lines: splitter.linesDone,
    byte: !options.kind.gzip && options.kind.format === 'ndjson' ? splitter.bytesDone : null,
  });
  const take = (rec: RawRecord): void => {
    records++;
    if (records > skipRecords) batch.push(rec);
  };
  try {
    for await (const chunk of stream) {
      splitter.push(decoder.decode(chunk, { stream: true }), chunk.length, take);
      if (batch.length >= batchRecords) {
        yield { records: batch, position: position(), bytesRead: compressedRead };
        batch = [];
      }
    }
    splitter.push(decoder.decode(), 0, take);
    splitter.end(take);
    yield { records: batch, position: position(), bytesRead: compressedRead };
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const truncated = options.kind.gzip && (err.code === 'Z_BUF_ERROR' || err.code === 'Z_DATA_ERROR' || /unexpected end|incorrect header|invalid/i.test(err.message));
    const line = splitter.linesDone + 1;
    yield {
      records: batch,
      position: position(),
      bytesRead: compressedRead,
      failure: {
        reason: truncated ? 'truncated-input' : 'unreadable-file',
        detail: truncated
          ? `gzip stream is truncated or corrupt (${err.message}) at line ${line}: records up to line ${splitter.linesDone} were read`
          : `read failed at line ${line}: ${err.message}`,
        line,
        partial: splitter.pending(),
      },
    };
  } finally {
    input.destroy();
  }
}

interface Splitter {
  linesDone: number;
  bytesDone: number;
  push(text: string, bytes: number, emit: (r: RawRecord) => void): void;
  end(emit: (r: RawRecord) => void): void;
  pending(): string;
}

/** NDJSON: one record per non-blank line; CR before LF is dropped. Tracks byte offsets for plain files. */
class LineSplitter implements Splitter {
  private parts: string[] = [];
  private partLength = 0;
  private fullLength = 0;
  private pendingBytes = 0;
  constructor(private readonly cap: number, public linesDone: number, public bytesDone: number) {}

  push(text: string, _bytes: number, emit: (r: RawRecord) => void): void {
    let start = 0;
    for (;;) {
      const nl = text.indexOf('\n', start);
      const piece = nl < 0 ? text.slice(start) : text.slice(start, nl);
      this.append(piece);
      if (nl < 0) return;
      this.flushLine(emit, true);
      start = nl + 1;
    }
  }

  private append(piece: string): void {
    if (piece.length === 0) return;
    this.fullLength += piece.length;
    this.pendingBytes += Buffer.byteLength(piece);
    if (this.partLength < this.cap + 1) {
      const room = this.cap + 1 - this.partLength;
      const kept = piece.length <= room ? piece : piece.slice(0, room);
      this.parts.push(kept);
      this.partLength += kept.length;
    }
  }

  private flushLine(emit: (r: RawRecord) => void, newline: boolean): void {
    this.linesDone++;
    this.bytesDone += this.pendingBytes + (newline ? 1 : 0);
    let text = this.parts.length === 1 ? this.parts[0]! : this.parts.join('');
    let full = this.fullLength;
    const fullBytes = this.pendingBytes;
    if (text.endsWith('\r') && full <= this.cap + 1) {
      text = text.slice(0, -1);
      full--;
    }
    this.parts = [];
    this.partLength = 0;
    this.fullLength = 0;
    this.pendingBytes = 0;
    if (full === 0 || (full <= this.cap && text.trim() === '')) return;
    if (full > this.cap) emit({ text: text.slice(0, this.cap), line: this.linesDone, fullLength: full, fullBytes });
    else emit({ text, line: this.linesDone });
  }

  end(emit: (r: RawRecord) => void): void {
    if (this.fullLength > 0) this.flushLine(emit, false);
  }

  pending(): string {
    return this.parts.join('');
  }
}

/**
 * One JSON array of records (`array`), or JSON documents one after another (`values`): yields each element's
 * or document's text, tracking strings and nesting.
 */
class ValueSplitter implements Splitter {
  linesDone = 0;
  bytesDone = 0;
  private line = 1;
  private state: 'before' | 'between' | 'in' | 'after' = 'before';
  private depth = 0;
  private inString = false;
  private escape = false;
  private parts: string[] = [];
  private partLength = 0;
  private fullLength = 0;
  private startLine = 1;
  constructor(private readonly cap: number, private readonly mode: 'array' | 'values') {
    if (mode === 'values') this.state = 'between';
  }

  push(text: string, _bytes: number, emit: (r: RawRecord) => void): void {
    let segStart = -1;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === 10) this.line++;
      if (this.state === 'in') {
        if (segStart < 0) segStart = i;
        if (this.inString) {
          if (this.escape) this.escape = false;
          else if (c === 92) this.escape = true;
          else if (c === 34) this.inString = false;
          continue;
        }
        if (c === 34) this.inString = true;
        else if (c === 123 || c === 91) this.depth++;
        else if (this.mode === 'values' && (c === 125 || c === 93) && this.depth === 1) {
          // the document closes: it ends here, and the next one may start
          this.appendSeg(text, segStart, i + 1);
          segStart = -1;
          this.emitElement(emit);
          this.state = 'between';
        } else if (this.mode === 'values' && this.depth === 0 && (c === 32 || c === 10 || c === 13 || c === 9)) {
          this.appendSeg(text, segStart, i);
          segStart = -1;
          this.emitElement(emit);
          this.state = 'between';
        } else if (c === 125 || c === 93) {
          if (this.depth === 0) {
            // the closing bracket of the array ends the element
            this.appendSeg(text, segStart, i);
            segStart = -1;
            this.emitElement(emit);
            this.state = 'after';
            continue;
          }
          this.depth--;
        } else if (this.mode === 'array' && c === 44 && this.depth === 0) {
          this.appendSeg(text, segStart, i);
          segStart = -1;
          this.emitElement(emit);
          this.state = 'between';
        }
        continue;
      }
      if (c === 32 || c === 10 || c === 13 || c === 9 || c === 0xfeff) continue;
      if (this.state === 'before') {
        if (c === 91) this.state = 'between';
        continue;
      }
      if (this.state === 'between') {
        if (this.mode === 'array' && c === 44) continue;
        if (this.mode === 'array' && c === 93) {
          this.state = 'after';
          continue;
        }
        this.state = 'in';
        this.startLine = this.line;
        segStart = i;
        i--; // re-read this character as part of the element
      }
    }
    if (this.state === 'in' && segStart >= 0) this.appendSeg(text, segStart, text.length);
    this.linesDone = this.line - 1;
  }

  private droppedBytes = 0;

  private appendSeg(text: string, from: number, to: number): void {
    if (to <= from) return;
    this.fullLength += to - from;
    let keptTo = from;
    if (this.partLength <= this.cap) {
      keptTo = Math.min(to, from + this.cap + 1 - this.partLength);
      const piece = text.slice(from, keptTo);
      this.parts.push(piece);
      this.partLength += piece.length;
    }
    if (keptTo < to) this.droppedBytes += Buffer.byteLength(text.slice(keptTo, to));
  }

  private emitElement(emit: (r: RawRecord) => void): void {
    const kept = this.parts.join('');
    const text = kept.trim();
    const full = this.fullLength;
    const fullBytes = full > this.cap ? Buffer.byteLength(kept) + this.droppedBytes : 0;
    this.droppedBytes = 0;
    this.parts = [];
    this.partLength = 0;
    this.fullLength = 0;
    this.depth = 0;
    this.inString = false;
    this.escape = false;
    if (text === '') return;
    if (full > this.cap) emit({ text: text.slice(0, this.cap), line: this.startLine, fullLength: full, fullBytes });
    else emit({ text, line: this.startLine });
  }

  end(emit: (r: RawRecord) => void): void {
    // An array cut short: what was read of the last element is a record of its own (it will not parse).
    if (this.state === 'in') this.emitElement(emit);
    this.linesDone = this.line - 1;
  }

  pending(): string {
    return this.parts.join('');
  }
}
