// `keyfence recommend`: registration only; the handler (recommend-handler.ts) loads when the command runs. The
// store gives profiles (analyze/), recommend/ makes and renders the proposal.
import { Option, type Command } from 'commander';
import { DEFAULT_RECOMMEND_OPTIONS, type RecommendOptions } from '../../recommend/proposal.ts';
import { RENDER_FORMATS, type RenderFormat } from '../../recommend/render.ts';
import { lazyAction, withCommonOptions } from '../common.ts';

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), ...value.split(',').map((s) => s.trim()).filter(Boolean)];
}

export interface RecommendCliOptions {
  db?: string[];
  json?: boolean;
  window?: string;
  since?: string;
  from?: string;
  to?: string;
  key?: string[];
  scope?: RecommendOptions['scope'];
  format?: RenderFormat;
  output?: string;
  minDays?: string;
  minCalls?: string;
  headroom?: string;
  allowBroad?: boolean;
  include?: string[];
}

export function registerRecommend(program: Command): void {
  withCommonOptions(program.command('recommend'), { multiDb: true })
    .description('propose minimal network ACLs for the AccessKeys in the store, with the evidence for every entry (drafts: nothing is applied; exit 4 when a possible leak was excluded)')
    .option('--window <duration>', 'look back this far from the newest event in the store (default 30d)')
    .option('--from <date>', 'window start, ISO 8601 (instead of --window)')
    .option('--to <date>', 'window end, exclusive, ISO 8601 (default: just after the newest event)')
    .addOption(new Option('--key <id>', 'only this AccessKey (repeat, or comma-separate, for several)').argParser(collect))
    .addOption(new Option('--scope <scope>', 'key: one ACL per key; account: one account-level ACL; auto: account-level for what most keys share, key-level where a key needs more').choices(['key', 'account', 'auto']).default(DEFAULT_RECOMMEND_OPTIONS.scope))
    .addOption(new Option('--format <format>', 'output form').choices([...RENDER_FORMATS]))
    .option('-o, --output <file>', 'write the output to this file instead of stdout')
    .option('--min-days <n>', 'leave out sources active on fewer distinct days (one-offs)', String(DEFAULT_RECOMMEND_OPTIONS.minDays))
    .option('--min-calls <n>', 'leave out sources with fewer calls', String(DEFAULT_RECOMMEND_OPTIONS.minCalls))
    .option('--headroom <x>', 'an entry may admit up to x times the addresses seen in it (1 = only what was seen)', String(DEFAULT_RECOMMEND_OPTIONS.headroom))
    .option('--allow-broad', 'allow entries broader than IPv4 /16 and IPv6 /32 (never /0)')
    .addOption(new Option('--include <source>', 'admit this address or CIDR even if it looks like a leak or misses the thresholds (repeatable)').argParser(collect))
    .action(lazyAction(async () => (await import('./recommend-handler.ts')).runRecommend));
}
