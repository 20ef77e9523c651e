// The benchmark harness: sections measure, this module times whole processes and writes bench/RESULTS.md.
// Figures compare side by side in one run (ratios): the machine is shared and noisy.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface BenchContext {
  /** `full` runs the targets' sizes; `quick` a small smoke version of each section. */
  scale: 'full' | 'quick';
  /** A scratch directory for generated data and databases, removed at the end. */
  dataDir: string;
  /** The project root. */
  root: string;
  log(message: string): void;
}

export interface BenchSection {
  title: string;
  /** First row is the header. */
  table: string[][];
  /** Lines of prose under the table: targets met or missed, caveats. */
  notes: string[];
}

export interface ProcessFigures {
  wallSeconds: number;
  /** Peak resident set size of the process, in MiB (GNU time's %M). */
  peakRssMiB: number;
  /** User + system CPU seconds of the process and the children it waited for (GNU time's %U + %S). */
  cpuSeconds: number;
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion under GNU time, returning wall time and peak RSS. */
export async function measureProcess(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<ProcessFigures> {
  const dir = mkdtempSync(join(tmpdir(), 'kf-time-'));
  const timeFile = join(dir, 'time.txt');
  try {
    const child = spawn('/usr/bin/time', ['-f', '%e %M %U %S', '-o', timeFile, command, ...args], {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exitCode: number = await new Promise((resolve) => child.on('close', (code) => resolve(code ?? -1)));
    const lines = readFileSync(timeFile, 'utf8').trim().split('\n');
    const [wall, rssKb, user, system] = lines[lines.length - 1]!.split(' ').map(Number);
    return { wallSeconds: wall!, peakRssMiB: rssKb! / 1024, cpuSeconds: user! + system!, exitCode, stdout, stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Times an in-process async function, in seconds. */
export async function timeIt<T>(fn: () => Promise<T>): Promise<{ seconds: number; result: T }> {
  const start = process.hrtime.bigint();
  const result = await fn();
  return { seconds: Number(process.hrtime.bigint() - start) / 1e9, result };
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function fmt(n: number, digits = 2): string {
  return Number.isFinite(n) ? n.toFixed(digits) : String(n);
}

export function verdict(ok: boolean): string {
  return ok ? 'met' : '**missed**';
}

export function renderSection(section: BenchSection): string {
  const [header, ...rows] = section.table;
  const lines = [`## ${section.title}`, ''];
  if (header) {
    lines.push(`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`);
    for (const row of rows) lines.push(`| ${row.join(' | ')} |`);
    lines.push('');
  }
  for (const note of section.notes) lines.push(`- ${note}`);
  lines.push('');
  return lines.join('\n');
}
