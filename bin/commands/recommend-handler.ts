// The handler of `keyfence recommend` (registered in recommend.ts): settings checked, proposal made, rendered.
import { writeFileSync } from 'node:fs';
import { EXIT, UsageError } from '../../model/errors.ts';
import { isoSeconds } from '../../model/window.ts';
import type { AclProposal } from '../../model/types.ts';
import { Store } from '../../ingest/store.ts';
import { analyzeStore } from '../../analyze/analysis.ts';
import { DEFAULT_RECOMMEND_OPTIONS, recommend } from '../../recommend/proposal.ts';
import { render, type RenderFormat } from '../../recommend/render.ts';
import { resolveDbPaths } from '../common.ts';
import type { RecommendCliOptions } from './recommend.ts';

function wholeNumber(flag: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text.trim()) || Number(text) < 1) throw new UsageError(`${flag} ${JSON.stringify(text)} is not a whole number ≥ 1`);
  return Number(text);
}

function headroomOption(text: string | undefined): number {
  if (text === undefined) return DEFAULT_RECOMMEND_OPTIONS.headroom;
  const x = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text.trim()) || !(x >= 1)) throw new UsageError(`--headroom ${JSON.stringify(text)} is not a number ≥ 1`, { hint: '1 admits only what was seen; 2 lets an entry admit up to twice the addresses seen in it' });
  return x;
}

/** Which output form: --json is --format json; asking for both json and another form is a contradiction. */
function outputFormat(opts: RecommendCliOptions): RenderFormat {
  if (opts.json && opts.format && opts.format !== 'json') {
    throw new UsageError(`--json and --format ${opts.format} contradict each other`, { hint: 'use --format json (same as --json), or drop --json' });
  }
  return opts.json ? 'json' : opts.format ?? 'markdown';
}

function summary(p: AclProposal): string {
  const leaks = p.accessKeys.flatMap((k) => k.excluded).concat((p.keysWithoutAcl ?? []).flatMap((k) => k.excluded)).filter((e) => e.code === 'possible-leak').length;
  return [
    `${p.accessKeys.length} key-level ACL${p.accessKeys.length === 1 ? '' : 's'}`,
    p.accountLevel ? `an account-level ACL relied on by ${p.accountLevel.coveredKeys?.length ?? 0} keys` : null,
    `${(p.keysWithoutAcl ?? []).filter((k) => !k.coveredByAccount).length} keys without an ACL`,
    leaks > 0 ? `${leaks} possible leak source${leaks === 1 ? '' : 's'} excluded` : null,
  ].filter(Boolean).join(', ');
}

export async function runRecommend(opts: RecommendCliOptions): Promise<number> {
  const format = outputFormat(opts);
  if (opts.window !== undefined && opts.from !== undefined) {
    throw new UsageError('--window and --from contradict each other', { hint: 'give a lookback (--window 30d) or explicit bounds (--from … [--to …]), not both' });
  }
  const settings = {
    scope: opts.scope ?? DEFAULT_RECOMMEND_OPTIONS.scope,
    minDays: wholeNumber('--min-days', opts.minDays, DEFAULT_RECOMMEND_OPTIONS.minDays),
    minCalls: wholeNumber('--min-calls', opts.minCalls, DEFAULT_RECOMMEND_OPTIONS.minCalls),
    headroom: headroomOption(opts.headroom),
    allowBroad: Boolean(opts.allowBroad),
    include: opts.include ?? [],
  };
  const store = await Store.open(resolveDbPaths(opts.db), { readOnly: true });
  let proposal: AclProposal;
  try {
    // A proposal never shows user agents: the aggregate skips them (one grouping level instead of two).
    const analysis = await analyzeStore(store, { since: opts.window, from: opts.from, to: opts.to, keys: opts.key, userAgents: false });
    proposal = recommend(analysis.profiles, { ...DEFAULT_RECOMMEND_OPTIONS, ...settings, window: analysis.window, generatedAt: isoSeconds(new Date()) });
    for (const k of analysis.keysWithoutTraffic) {
      proposal.warnings = [...(proposal.warnings ?? []), `${k.accessKeyId}: no call in the window (last call ${k.lastSeen}): no ACL proposed`];
    }
  } finally {
    await store.close();
  }
  const text = render(proposal, format);
  if (opts.output) {
    writeFileSync(opts.output, text);
    process.stderr.write(`keyfence: wrote the ${format} proposal to ${opts.output}: ${summary(proposal)}\n`);
  } else {
    process.stdout.write(text);
  }
  const leaks = proposal.accessKeys.some((k) => k.excluded.some((e) => e.code === 'possible-leak')) || (proposal.keysWithoutAcl ?? []).some((k) => k.excluded.some((e) => e.code === 'possible-leak'));
  return leaks ? EXIT.ATTENTION : EXIT.OK;
}
