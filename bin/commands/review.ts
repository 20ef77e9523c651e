import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { parseAclText } from '../../model/acl-file.ts';
import { EXIT, InvalidInputError, UsageError } from '../../model/errors.ts';
import { approve, parseApprovalRecord, verify } from '../../review/approve.ts';
import { applyArtifacts } from '../../review/apply.ts';
import { action, durationOption, printJson, resolveDbPaths, withCommonOptions } from '../common.ts';
import { Store } from '../../ingest/store.ts';
import type { buildReport as BuildReport } from '../../review/report.ts';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { SourceError } from '../../model/errors.ts';
import type { IngestSummary } from '../../model/types.ts';
import type { NightlyConfig } from '../../review/config.ts';
import type { NightlyIngestStep } from '../../review/nightly.ts';

export function registerReview(program: Command): void {
  registerReport(program);
  registerNightly(program);
  program
    .command('approve')
    .description('approve a proposal (or some of its keys): records who, when, and a SHA-256 over the exact entries; writes what a person needs to apply them (never applied by keyfence)')
    .argument('<proposal>', 'proposal JSON (keyfence recommend --format json)')
    .requiredOption('--by <name>', 'who approves')
    .option('--keys <ids>', 'comma-separated AccessKey IDs (and/or "account") to approve; default all')
    .option('-o, --output <file>', 'approval file to write', 'approved.json')
    .option('--artifacts <dir>', 'folder for the apply artifacts (default: beside the approval file, <name>-apply/)')
    .option('--json', 'print one JSON object on stdout instead of text')
    .action(action(async (proposalFile: string, opts: { by: string; keys?: string; output: string; artifacts?: string; json?: boolean }) => {
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
    }));

  program
    .command('verify')
    .description('check that the entries of an approval file are exactly the approved ones (exit 4 when not)')
    .argument('<approval>', 'approval file written by `keyfence approve`')
    .option('--json', 'print one JSON object on stdout instead of text')
    .action(action(async (file: string, opts: { json?: boolean }) => {
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
    }));
}

interface ReportFlags {
  db?: string[];
  json?: boolean;
  window: string;
  approved?: string;
  output: string;
  unusedDays: string;
  driftSince: string;
}

function registerReport(program: Command): void {
  withCommonOptions(
    program
      .command('report')
      .description('one self-contained HTML page (no server, no network): account summary, per key a timeline of calls by source, proposed entries, excluded and suspicious sources, drift since approval; exit 4 when something is urgent')
      .option('--window <duration>', 'look back this far from the newest event', '30d')
      .option('--approved <file>', 'approval file (or proposal / AccessKeyPolicy documents): protected keys and drift')
      .option('--drift-since <duration>', 'recent traffic checked against the approval', '1d')
      .option('--unused-days <n>', 'approved entries and keys unused this many days are drift', '30')
      .option('-o, --output <file>', 'HTML file to write', 'report.html'),
    { multiDb: true },
  ).action(action(async (flags: ReportFlags) => {
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
  }));
}

const NIGHTLY_EXIT_HELP = `
Exit codes (for cron), highest precedence first:
  3  failure: a source could not be read or the analysis failed (artifacts may be missing; see nightly-DATE.json)
  4  a person is needed: drift since the approval, findings that were not in the previous night's summary,
     or an approval file whose seal is broken
  2  some input was rejected into quarantine, nothing else needs a person
  0  nothing to review
  1  bad flags or an invalid configuration file (the message names the exact field)
Progress lines go to stderr; --json prints the night's summary on stdout.`;

interface NightlyFlags {
  config: string;
  date?: string;
  keep?: string;
  json?: boolean;
}

function registerNightly(program: Command): void {
  program
    .command('nightly')
    .description('one unattended run: ingest the configured sources, prune (retention), analyze, recommend, drift against the approval, findings; writes proposal-DATE.json, review-DATE.md, report-DATE.html and nightly-DATE.json')
    .option('--config <file>', 'configuration file', 'keyfence.config.json')
    .option('--date <YYYY-MM-DD>', 'the date that names the artifacts (default: today, UTC)')
    .option('--keep <duration>', 'prune events older than this before the newest event (overrides the config\'s keep)')
    .option('--json', 'print the night\'s summary as one JSON object on stdout')
    .addHelpText('after', NIGHTLY_EXIT_HELP)
    .action(action(async (flags: NightlyFlags) => {
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
    }));

  program
    .command('prune')
    .description('retention: roll events older than (newest event - keep) up into source_rollup, then delete them')
    .requiredOption('--keep <duration>', 'how much history to keep, e.g. 90d')
    .option('--db <file>', 'database file')
    .option('--json', 'print one JSON object on stdout instead of text')
    .action(action(async (flags: { keep: string; db?: string; json?: boolean }) => {
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
    }));
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
