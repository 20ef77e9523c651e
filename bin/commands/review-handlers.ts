// The handlers of approve, verify, report, nightly and prune (registered in review.ts).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseAclText } from '../../model/acl-file.ts';
import { EXIT, InvalidInputError, SourceError, UsageError } from '../../model/errors.ts';
import type { IngestSummary } from '../../model/types.ts';
import { approve, parseApprovalRecord, verify } from '../../review/approve.ts';
import { applyArtifacts } from '../../review/apply.ts';
import { Store } from '../../ingest/store.ts';
import type { buildReport as BuildReport } from '../../review/report.ts';
import type { NightlyConfig } from '../../review/config.ts';
import type { NightlyIngestStep } from '../../review/nightly.ts';
import { durationOption, printJson, resolveDbPaths } from '../common.ts';
import type { NightlyFlags, ReportFlags } from './review.ts';

export async function approveCommand(proposalFile: string, opts: { by: string; keys?: string; output: string; artifacts?: string; json?: boolean }): Promise<number> {
  const loaded = parseAclText(readText(proposalFile), { source: proposalFile });
  if (!loaded.proposal) {
    throw new InvalidInputError(`${proposalFile} holds AccessKeyPolicy documents, not a proposal`, { hint: 'approve the JSON written by `keyfence recommend --format json`' });
  }
  const scopes = opts.keys?.split(',').map((s) => s.trim()).filter(Boolean);
  const record = approve(loaded.proposal, { approvedBy: opts.by, scopes, now: new Date() });
  const output = resolve(opts.output);
  mkdirSync(dirname(output), { recursive: true });
  writeFileSync(output, `${JSON.stringify(record, null, 2)}\n`);
  const artifactDir = resolve(opts.artifacts ?? join(dirname(output), `${output.replace(/^.*\//, '').replace(/\.json$/, '')}-apply`));
  const artifacts = applyArtifacts(record);
  mkdirSync(artifactDir, { recursive: true });
  for (const [name, content] of Object.entries(artifacts.files)) writeFileSync(join(artifactDir, name), content);
  if (opts.json) {
    printJson({ approval: output, sha256: record.sha256, approvedBy: record.approvedBy, approvedAt: record.approvedAt, scopes: record.scopes, artifacts: Object.keys(artifacts.files).map((f) => join(artifactDir, f)), firstKey: artifacts.firstKey, commands: artifacts.commands });
  } else {
    process.stdout.write(
      `approved ${record.scopes.length} ACL(s) (${record.scopes.join(', ')}) by ${record.approvedBy} at ${record.approvedAt}\n` +
        `  approval: ${output}\n  sha256:   ${record.sha256}\n  apply artifacts (never run by keyfence): ${artifactDir}/{${Object.keys(artifacts.files).join(',')}}\n` +
        (artifacts.firstKey ? `  vendor advice: try a non-critical key first, e.g. ${artifacts.firstKey} (least traffic)\n` : '') +
        `\nTo apply, a person runs these after review (keyfence never runs them; least traffic first):\n${artifacts.commands.map((c) => `  ${c}`).join('\n')}\n`,
    );
  }
  return EXIT.OK;
}

export async function verifyCommand(file: string, opts: { json?: boolean }): Promise<number> {
  let value: unknown;
  try {
    value = JSON.parse(readText(file));
  } catch (e) {
    if (e instanceof InvalidInputError) throw e;
    throw new InvalidInputError(`${file} is not valid JSON: ${(e as Error).message}`, { context: { file } });
  }
  const result = verify(parseApprovalRecord(value, file));
  if (opts.json) printJson(result);
  else if (result.ok) process.stdout.write(`ok: entries unchanged since approval by ${result.approvedBy} at ${result.approvedAt} (sha256 ${result.actual})\n`);
  else process.stdout.write(`CHANGED since approval by ${result.approvedBy} at ${result.approvedAt}:\n${result.problems.map((p) => `  - ${p}`).join('\n')}\n  approved sha256 ${result.expected}\n  current  sha256 ${result.actual}\n`);
  return result.ok ? EXIT.OK : EXIT.ATTENTION;
}

export async function reportCommand(flags: ReportFlags): Promise<number> {
  durationOption('--window', flags.window);
  durationOption('--drift-since', flags.driftSince);
  const unusedDays = Number(flags.unusedDays);
  if (!Number.isInteger(unusedDays) || unusedDays < 1) throw new UsageError(`--unused-days ${JSON.stringify(flags.unusedDays)} is not a whole number ≥ 1`);
  const paths = resolveDbPaths(flags.db);
  const store = await Store.open(paths.length === 1 ? paths[0]! : paths, { readOnly: true });
  // Report, nightly and prune code (chart.js, zod, the sources) load only for their own commands: start-up stays fast.
  const { buildReport, reportNeedsAttention } = await import('../../review/report.ts');
  let report: Awaited<ReturnType<typeof BuildReport>>;
  try {
    report = await buildReport(store, { window: flags.window, approvedFile: flags.approved, driftSince: flags.driftSince, unusedDays, now: new Date() });
  } finally {
    store.close();
  }
  const output = resolve(flags.output);
  mkdirSync(dirname(output), { recursive: true });
  writeFileSync(output, report.html);
  const attention = reportNeedsAttention(report.data);
  if (flags.json) printJson({ report: output, needsAttention: attention, data: report.data });
  else {
    const s = report.data.summary;
    process.stdout.write(`wrote ${output} (${Math.round(report.html.length / 1024)} KiB): ${s.keys} keys, ${s.protectedKeys} protected, ${s.unprotectedKeys} unprotected, ${s.urgentKeys} urgent, ${s.findings} findings` +
      (report.data.drift ? `, drift: ${report.data.drift.needsAttention ? 'needs a person' : 'none'}` : '') + '\n');
  }
  return attention ? EXIT.ATTENTION : EXIT.OK;
}

export async function nightlyCommand(flags: NightlyFlags): Promise<number> {
  const now = new Date();
  const date = flags.date ?? now.toISOString().slice(0, 10);
  if (!/^\d{4}-\d{2}-\d{2}$/.test(date) || Number.isNaN(Date.parse(`${date}T00:00:00Z`))) throw new UsageError(`--date ${JSON.stringify(date)} is not a date`, { hint: 'use YYYY-MM-DD' });
  if (flags.keep !== undefined) durationOption('--keep', flags.keep);
  const { loadNightlyConfig } = await import('../../review/config.ts');
  const { runNightly } = await import('../../review/nightly.ts');
  const config = loadNightlyConfig(flags.config);
  const summary = await runNightly({
    config, date, now, keep: flags.keep, steps: nightlySteps(config),
    log: (line) => process.stderr.write(`keyfence nightly: ${line}\n`),
  });
  if (flags.json) printJson(summary);
  else {
    process.stdout.write(`nightly ${summary.date}: ${summary.status} (exit ${summary.exitCode})\n${summary.reasons.map((r) => `  - ${r}`).join('\n')}\n`);
    if (summary.artifacts.report) process.stdout.write(`  report: ${summary.artifacts.report}\n`);
  }
  return summary.exitCode;
}

export async function pruneCommand(flags: { keep: string; db?: string; json?: boolean }): Promise<number> {
  const keepMs = durationOption('--keep', flags.keep);
  const paths = resolveDbPaths(flags.db ? [flags.db] : undefined);
  if (paths.length !== 1) throw new UsageError('prune writes one database file', { hint: 'pass one --db' });
  const store = await Store.open(paths[0]!);
  try {
    const { pruneEvents } = await import('../../review/retention.ts');
    const result = await pruneEvents(store, keepMs);
    if (flags.json) printJson(result);
    else process.stdout.write(result.cutoff ? `pruned ${result.prunedEvents} event(s) before ${result.cutoff}; ${result.remainingEvents} kept; source_rollup holds ${result.rollupRows} row(s)\n` : `nothing older than ${flags.keep} before the newest event (${result.newestEvent ?? 'empty store'})\n`);
    return EXIT.OK;
  } finally {
    store.close();
  }
}

const CLI = fileURLToPath(new URL('../keyfence.js', import.meta.url));

/** The configured sources as nightly steps, in a fixed order: files, SLS, Kafka. */
function nightlySteps(config: NightlyConfig): NightlyIngestStep[] {
  const steps: NightlyIngestStep[] = [];
  const { files, sls, kafka } = config.sources;
  if (files && files.length > 0) {
    steps.push({
      source: 'files',
      run: async () => {
        const store = await Store.open(config.db);
        try {
          const { ingestFiles } = await import('../../ingest/file-ingest.ts');
          return await ingestFiles(store, files);
        } finally {
          store.close();
        }
      },
    });
  }
  if (sls) {
    steps.push({
      source: 'sls',
      run: async () => {
        const { runSlsIngest } = await import('./ingest-sls.ts');
        return (await runSlsIngest({ ...sls, db: [config.db] })).summary;
      },
    });
  }
  if (kafka) {
    // Kafka runs as its own \`keyfence ingest --kafka --until-caught-up --json\` process: the consumer's signal
    // handling and group membership stay exactly the command's, and its summary comes back as JSON.
    steps.push({
      source: 'kafka',
      run: async () => {
        // Loaded here, not at the top: kafkajs would otherwise load on every keyfence command.
        const { KAFKA_PASSWORD_ENV } = await import('./ingest-kafka.ts');
        const args = [CLI, 'ingest', '--kafka', kafka.brokers.join(','), '--topic', kafka.topic, '--group', kafka.group, '--until-caught-up', '--db', config.db, '--json'];
        if (kafka.ssl) args.push('--ssl');
        if (kafka.saslMechanism) args.push('--sasl-mechanism', kafka.saslMechanism);
        if (kafka.saslUsername) args.push('--sasl-username', kafka.saslUsername);
        const env = { ...process.env };
        if (kafka.saslPasswordEnv) env[KAFKA_PASSWORD_ENV] = process.env[kafka.saslPasswordEnv] ?? '';
        return runJsonChild(args, env);
      },
    });
  }
  return steps;
}

function runJsonChild(args: string[], env: NodeJS.ProcessEnv): Promise<IngestSummary> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString('utf8');
      process.stderr.write(d);
    });
    child.on('error', reject);
    child.on('close', (code) => {
      let parsed: { error?: { message?: string; hint?: string | null } } & Partial<IngestSummary> = {};
      try {
        parsed = JSON.parse(stdout);
      } catch {
        // fall through: reported below with stderr
      }
      if ((code === EXIT.OK || code === EXIT.PARTIAL) && typeof parsed.read === 'number') return resolvePromise(parsed as IngestSummary);
      const message = parsed.error?.message ?? (stderr.trim().split('\n').pop() || `exit code ${code}`);
      reject(new SourceError(`kafka ingest exited with ${code}: ${message}`, { hint: parsed.error?.hint ?? 'run the same `keyfence ingest --kafka …` by hand to see the details' }));
    });
  });
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new InvalidInputError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { context: { file }, hint: 'check the path' });
  }
}
