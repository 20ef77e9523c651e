// What every command shares at the CLI edge: error → exit code mapping, --json output, --db handling,
// durations, and progress on stderr. Handlers return an exit code; nothing below bin/ calls process.exit.
import { Option, type Command } from 'commander';
import { EXIT, isKeyfenceError, UsageError, type ExitCode } from '../model/errors.ts';
import { parseDuration, parseInstant } from '../model/window.ts';

export const DEFAULT_DB = 'keyfence.duckdb';

/** Flags override the environment (KEYFENCE_DB), which overrides the default. */
export function resolveDbPaths(flag: string[] | undefined, env: NodeJS.ProcessEnv = process.env): string[] {
  if (flag && flag.length > 0) return flag;
  if (env.KEYFENCE_DB) return env.KEYFENCE_DB.split(',').map((s) => s.trim()).filter(Boolean);
  return [DEFAULT_DB];
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** `--db FILE` (repeatable: several files are read together) and `--json`. */
export function withCommonOptions(cmd: Command, options: { multiDb?: boolean } = {}): Command {
  return cmd
    .addOption(new Option('--db <file>', options.multiDb ? 'database file (repeat to read several parts together)' : 'database file').argParser(collect))
    .option('--json', 'print one JSON object on stdout instead of text');
}

export function durationOption(name: string, text: string): number {
  const ms = parseDuration(text);
  if (ms === null) throw new UsageError(`${name} ${JSON.stringify(text)} is not a duration`, { hint: 'use e.g. 30d, 12h, 2w' });
  return ms;
}

export function instantOption(name: string, text: string | undefined): Date | null {
  if (text === undefined) return null;
  const d = parseInstant(text);
  if (!d) throw new UsageError(`${name} ${JSON.stringify(text)} is not a date`, { hint: 'use ISO 8601, e.g. 2026-11-01 or 2026-11-01T00:00:00Z' });
  return d;
}

/** Deterministic JSON: two-space indent, object keys in insertion order (types fix it), arrays sorted by producers. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Wraps a handler: its return value becomes the exit code; a thrown error is printed (as JSON with --json) and mapped. */
export function action<A extends unknown[]>(handler: (...args: A) => Promise<ExitCode | number>) {
  return async (...args: A): Promise<void> => {
    const cmd = args[args.length - 1] as Command | undefined;
    const json = Boolean(cmd && typeof cmd.opts === 'function' && cmd.opts().json);
    try {
      process.exitCode = await handler(...args);
    } catch (e) {
      process.exitCode = reportError(e, json);
    }
  };
}

/**
 * `action()` for a handler that lives in a module of its own, imported only when its command runs: registering
 * every command stays cheap, and a command never loads what another one needs (DuckDB, Kafka, report code).
 */
export function lazyAction<A extends unknown[]>(load: () => Promise<(...args: A) => Promise<ExitCode | number>>) {
  return action(async (...args: A) => (await load())(...args));
}

export function reportError(e: unknown, json: boolean): ExitCode {
  if (isKeyfenceError(e)) {
    if (json) {
      printJson({ error: { type: e.name, message: e.message, hint: e.hint ?? null, context: e.context } });
    } else {
      process.stderr.write(`keyfence: ${e.message}\n`);
      if (e.hint) process.stderr.write(`  hint: ${e.hint}\n`);
    }
    return e.exitCode;
  }
  const err = e instanceof Error ? e : new Error(String(e));
  if (json) printJson({ error: { type: 'InternalError', message: err.message, hint: null, context: {} } });
  process.stderr.write(`keyfence: unexpected error: ${err.stack ?? err.message}\n`);
  return EXIT.FATAL;
}

/** A one-line progress indicator on stderr, drawn only when stderr is a terminal. */
export class Progress {
  private readonly enabled: boolean;
  private lastDraw = 0;

  constructor(private readonly label: string, stream: NodeJS.WriteStream = process.stderr) {
    this.enabled = Boolean(stream.isTTY) && !process.env.CI;
    this.stream = stream;
  }

  private readonly stream: NodeJS.WriteStream;

  /** `done` of `total` units (total may be unknown); redraws at most 10 times a second. */
  update(done: number, total: number | null, note = ''): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (now - this.lastDraw < 100) return;
    this.lastDraw = now;
    const width = 30;
    let bar = '';
    if (total && total > 0) {
      const share = Math.min(1, done / total);
      const filled = Math.round(share * width);
      bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(share * 100).toFixed(0).padStart(3)}% `;
    }
    this.stream.write(`\r${this.label} ${bar}${note}`.slice(0, (this.stream.columns ?? 100) - 1).padEnd(Math.min(100, (this.stream.columns ?? 100) - 1)));
  }

  done(): void {
    if (this.enabled) this.stream.write('\r\x1b[K');
  }
}
