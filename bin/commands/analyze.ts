// `keyfence analyze` and `keyfence findings`: registration only; the handlers (analyze-handlers.ts) load when
// one of them runs, and the work is in analyze/.
import { Option, type Command } from 'commander';
import { DEFAULT_FINDINGS_OPTIONS } from '../../analyze/findings.ts';
import { lazyAction, withCommonOptions } from '../common.ts';

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), ...value.split(',').map((s) => s.trim()).filter(Boolean)];
}

export interface AnalyzeOptions {
  db?: string[];
  json?: boolean;
  since?: string;
  from?: string;
  to?: string;
  key?: string[];
  engine?: string;
  endpoint?: string;
  project?: string;
  logstore?: string;
}

export interface FindingsOptions {
  db?: string[];
  json?: boolean;
  since?: string;
  from?: string;
  to?: string;
  key?: string[];
  dormantDays?: string;
}

function withWindowOptions(cmd: Command): Command {
  return cmd
    .option('--since <duration>', 'look back this far from the newest event in the store (default 30d)')
    .option('--from <date>', 'window start, ISO 8601 (overrides --since)')
    .option('--to <date>', 'window end, exclusive, ISO 8601 (default: just after the newest event)')
    .addOption(new Option('--key <id>', 'only this AccessKey (repeat, or comma-separate, for several)').argParser(collect));
}

export function registerAnalyze(program: Command): void {
  withWindowOptions(withCommonOptions(program.command('analyze'), { multiDb: true }))
    .description('per-AccessKey source profiles: public and VPC sources, exempt-only sources, STS/internal/service traffic, denied calls')
    .addOption(new Option('--engine <engine>', 'where the aggregation runs').choices(['local', 'sls']).default('local'))
    .option('--endpoint <host>', 'with --engine sls: the SLS endpoint, e.g. cn-hangzhou.log.aliyuncs.com')
    .option('--project <name>', 'with --engine sls: the SLS project')
    .option('--logstore <name>', 'with --engine sls: the trail\'s logstore')
    .action(lazyAction(async () => (await import('./analyze-handlers.ts')).runAnalyze));

  withWindowOptions(withCommonOptions(program.command('findings'), { multiDb: true }))
    .description('key hygiene and suspicious use: root keys, dormant keys, VPC use of permanent keys, unusual source counts, possible leaks, dynamic pools (exit 4 when a high-severity finding exists)')
    .option('--dormant-days <n>', 'a key is dormant after this many days without a call before the newest event', String(DEFAULT_FINDINGS_OPTIONS.dormantDays))
    .action(lazyAction(async () => (await import('./analyze-handlers.ts')).runFindings));
}
