// approve, verify, report, nightly, prune: registration only. The handlers (review-handlers.ts) load when one of
// these commands runs; report, nightly and prune code (chart.js, zod, the sources) only inside their own handler.
import type { Command } from 'commander';
import { lazyAction, withCommonOptions } from '../common.ts';

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
    .action(lazyAction(async () => (await import('./review-handlers.ts')).approveCommand));

  program
    .command('verify')
    .description('check that the entries of an approval file are exactly the approved ones (exit 4 when not)')
    .argument('<approval>', 'approval file written by `keyfence approve`')
    .option('--json', 'print one JSON object on stdout instead of text')
    .action(lazyAction(async () => (await import('./review-handlers.ts')).verifyCommand));
}

export interface ReportFlags {
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
  ).action(lazyAction(async () => (await import('./review-handlers.ts')).reportCommand));
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

export interface NightlyFlags {
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
    .action(lazyAction(async () => (await import('./review-handlers.ts')).nightlyCommand));

  program
    .command('prune')
    .description('retention: roll events older than (newest event - keep) up into source_rollup, then delete them')
    .requiredOption('--keep <duration>', 'how much history to keep, e.g. 90d')
    .option('--db <file>', 'database file')
    .option('--json', 'print one JSON object on stdout instead of text')
    .action(lazyAction(async () => (await import('./review-handlers.ts')).pruneCommand));
}
