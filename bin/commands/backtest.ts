// `keyfence backtest`: recommend on a training window, replay the test window after it.
import { readFileSync } from 'node:fs';
import { EXIT, InvalidInputError, UsageError } from '../../model/errors.ts';
import { backtest, parseTruth, type BacktestReport, type GroundTruth } from '../../analyze/backtest.ts';
import { durationOption, printJson } from '../common.ts';
import { openStore, out, pct, positiveInt, readAcls, type CommonFlags } from './investigate-edges.ts';

interface BacktestFlags extends CommonFlags {
  train: string;
  test: string;
  scope?: string;
  minDays?: string;
  minCalls?: string;
  headroom?: string;
  allowBroad?: boolean;
  include?: string[];
  truth?: string;
  acl?: string;
}

export async function backtestCommand(flags: BacktestFlags): Promise<number> {
  const knobs: Record<string, unknown> = {};
  if (flags.scope !== undefined) {
    if (!['key', 'account', 'auto'].includes(flags.scope)) throw new UsageError(`--scope ${JSON.stringify(flags.scope)}: use key, account or auto`);
    knobs.scope = flags.scope;
  }
  if (flags.minDays !== undefined) knobs.minDays = positiveInt('--min-days', flags.minDays);
  if (flags.minCalls !== undefined) knobs.minCalls = positiveInt('--min-calls', flags.minCalls);
  if (flags.headroom !== undefined) {
    const h = Number(flags.headroom);
    if (!Number.isFinite(h)) throw new UsageError(`--headroom ${JSON.stringify(flags.headroom)} is not a number`);
    knobs.headroom = h;
  }
  if (flags.allowBroad) knobs.allowBroad = true;
  if (flags.include) knobs.include = flags.include;
  let truth: GroundTruth | null = null;
  if (flags.truth) {
    try {
      truth = parseTruth(JSON.parse(readFileSync(flags.truth, 'utf8')));
    } catch (e) {
      throw new InvalidInputError(`cannot read the truth file ${flags.truth}: ${e instanceof Error ? e.message : String(e)}`, { context: { file: flags.truth } });
    }
  }
  const store = await openStore(flags);
  try {
    const inForce = flags.acl ? (await readAcls(flags.acl, store)).inForce : null;
    const { report } = await backtest(store, { trainMs: durationOption('--train', flags.train), testMs: durationOption('--test', flags.test), knobs, truth, inForce });
    if (flags.json) printJson(report);
    else out(backtestText(report));
    return EXIT.OK;
  } finally {
    store.close();
  }
}

function backtestText(r: BacktestReport): string[] {
  const view = (label: string, v: BacktestReport['replay']) => [
    `${label}: false-deny ${pct(v.falseDenyShare)} of ${v.governedCalls} governed calls (${v.falseDenyCalls} calls, ${v.brokenSources} sources); leak calls blocked ${v.leakCallsDenied}`,
    `  worst key: ${v.worstKey ? `${v.worstKey.accessKeyId} ${pct(v.worstKey.falseDenyShare)} (${v.worstKey.falseDenyCalls}/${v.worstKey.governedCalls})` : 'none broke'}`,
  ];
  const lines = [
    `train ${r.train.from} .. ${r.train.to}, test ${r.test.from} .. ${r.test.to}`,
    `proposal: ${r.proposal.keys} key-level ACLs${r.proposal.accountLevel ? ' + account level' : ''}, ${r.proposal.entries} entries, admits ${r.proposal.admittedIpv4} IPv4 addresses and ${r.proposal.admittedIpv6Slash64} IPv6 /64s`,
    ...view('replay (leaks as classifySources judges them)', r.replay),
  ];
  if (r.truth) {
    lines.push(...view('ground truth', r.truth), `  leak sources in the test window: ${r.truth.leakSources}, admitted: ${r.truth.leakSourcesAdmitted}`);
    lines.push(`  public space admitted vs true: ${r.truth.admittedPublicIpv4} vs ${r.truth.trueIpv4} IPv4 addresses, ${r.truth.admittedPublicIpv6Slash64} vs ${r.truth.trueIpv6Slash64} IPv6 /64s`);
  }
  if (r.broken.length) {
    lines.push('sources that broke:');
    for (const b of r.broken) lines.push(`  ${b.accessKeyId} ${b.sourceKind} ${b.ip}${b.vpcId ? ` in ${b.vpcId}` : ''}: ${b.calls} calls on ${b.days} days (${b.code})`);
  }
  return lines;
}
