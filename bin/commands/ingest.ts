// `keyfence ingest` and `keyfence quarantine`: registration, and the ingest summary every source prints. The work
// is in modules imported when their command runs: ingest-files.ts, ingest-kafka.ts, ingest-sls.ts, quarantine.ts.
import { Option, type Command } from 'commander';
import { QUARANTINE_REASONS } from '../../ingest/store.ts';
import { EXIT, UsageError } from '../../model/errors.ts';
import type { IngestSummary } from '../../model/types.ts';
import type { IngestKafkaOptions } from './ingest-kafka.ts';
import type { IngestSlsOptions } from './ingest-sls.ts';
import { action, lazyAction, printJson, withCommonOptions } from '../common.ts';

/** Options of `keyfence ingest` as commander parses them (`--db` repeatable, so a list): files, Kafka or SLS. */
export type IngestCliOptions = IngestKafkaOptions & IngestSlsOptions;

/** How many rejected records the text summary names before pointing at `keyfence quarantine`. */
const PRINTED_REJECTIONS = 10;

export function registerIngest(program: Command): void {
  const ingest = program
    .command('ingest')
    .description('Ingest ActionTrail events into the database: files (NDJSON, JSON arrays, .gz, directory trees, globs), a Kafka topic or an SLS logstore')
    .argument('[paths...]', 'files, directories or glob patterns to read')
    .option('--kafka <brokers>', 'read a Kafka topic from these brokers (comma-separated host:port)')
    .option('--topic <topic>', 'Kafka topic')
    .option('--group <group>', 'Kafka consumer group')
    .option('--until-caught-up', 'Kafka: stop once every partition is read to its end')
    .option('--follow', 'Kafka: keep reading new events until interrupted')
    .option('--ssl', 'Kafka: connect with TLS')
    .option('--sasl-mechanism <mechanism>', 'Kafka: SASL mechanism (plain, scram-sha-256, scram-sha-512)')
    .option('--sasl-username <user>', 'Kafka: SASL user (the password comes from KEYFENCE_KAFKA_PASSWORD)')
    .option('--sls', 'read a Simple Log Service logstore')
    .option('--endpoint <endpoint>', 'SLS endpoint, e.g. cn-hangzhou.log.aliyuncs.com')
    .option('--project <project>', 'SLS project')
    .option('--logstore <logstore>', 'SLS logstore')
    .addOption(new Option('--from <time>', 'SLS: start of the time range (ISO 8601)'))
    .addOption(new Option('--to <time>', 'SLS: end of the time range (ISO 8601)'));
  withCommonOptions(ingest).action(
    action(async (paths: string[], raw: IngestCliOptions) => {
      if (raw.kafka !== undefined && raw.sls) throw new UsageError('--kafka and --sls cannot be used together', { hint: 'run one ingest per source' });
      if (paths.length > 0 && (raw.kafka !== undefined || raw.sls)) {
        throw new UsageError(`file paths cannot be combined with --${raw.kafka !== undefined ? 'kafka' : 'sls'}`, { hint: 'run one ingest per source' });
      }
      if (raw.kafka !== undefined) {
        const { ingestFromKafka } = await import('./ingest-kafka.ts');
        return ingestFromKafka(raw);
      }
      if (raw.sls) {
        const { ingestFromSls } = await import('./ingest-sls.ts');
        return ingestFromSls(raw);
      }
      if (paths.length === 0) throw new UsageError('nothing to read', { hint: 'give files, directories or globs, or --kafka …, or --sls …' });
      const { ingestPaths } = await import('./ingest-files.ts');
      return ingestPaths(paths, raw.db, Boolean(raw.json));
    }),
  );

  const quarantine = program
    .command('quarantine')
    .description('List the records ingest rejected: where they came from, why, and their raw text')
    .option('--limit <n>', 'show at most this many records', '50')
    .option('--reason <reason>', `only this reason (${QUARANTINE_REASONS.join(', ')})`);
  withCommonOptions(quarantine, { multiDb: true }).action(
    lazyAction(async () => (await import('./quarantine.ts')).listQuarantine),
  );
}

/**
 * Prints an ingest summary (one JSON object with `--json`; text on stdout, with the rejected records and
 * input errors named on stderr) and returns the exit code: 0 all good, 2 some input rejected (the rest committed).
 */
export function printIngestSummary(summary: IngestSummary, json: boolean): number {
  const code = summary.quarantined > 0 || summary.errors.length > 0 ? EXIT.PARTIAL : EXIT.OK;
  if (json) {
    printJson(summary);
    return code;
  }
  const n = (x: number): string => x.toLocaleString('en-US');
  const reasons = Object.entries(summary.quarantinedByReason).map(([r, c]) => `${r} ${n(c ?? 0)}`).join(', ');
  const lines = [
    `ingest run ${summary.runId} (${summary.source}): read ${n(summary.read)} records`,
    `  inserted     ${n(summary.inserted)}`,
    `  duplicates   ${n(summary.duplicates)}`,
    `  quarantined  ${n(summary.quarantined)}${reasons ? ` (${reasons})` : ''}`,
  ];
  if (summary.skipped > 0) lines.push(`  skipped      ${n(summary.skipped)} already fully ingested`);
  lines.push(`  time         ${summary.seconds.toFixed(1)} s, ${n(Math.round(summary.eventsPerSecond))} records/s`);
  for (const note of summary.notes ?? []) lines.push(`  note: ${note}`);
  process.stdout.write(`${lines.join('\n')}\n`);
  const problems: string[] = [...summary.errors.map((e) => `error: ${e}`)];
  const rejected = (summary.rejected ?? []).filter((r) => !summary.errors.includes(r.detail));
  for (const r of rejected.slice(0, PRINTED_REJECTIONS)) problems.push(`rejected (${r.reason}): ${r.detail.startsWith(r.source) ? r.detail : `${r.source} ${r.location}: ${r.detail}`}`);
  const unnamed = summary.quarantined - Math.min(rejected.length, PRINTED_REJECTIONS) - summary.errors.length;
  if (unnamed > 0) problems.push(`… and ${n(unnamed)} more rejected records: \`keyfence quarantine\` lists them all`);
  if (problems.length > 0) process.stderr.write(`${problems.join('\n')}\n`);
  return code;
}
