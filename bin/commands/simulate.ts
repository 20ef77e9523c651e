// `keyfence simulate`: replay stored history against a proposal (or the ACLs in force): what would be denied.
import { overlayAcls, proposalExclusions } from '../../model/acl-file.ts';
import type { AclsInForce } from '../../model/acl-rules.ts';
import { EXIT, UsageError } from '../../model/errors.ts';
import type { TimeWindow } from '../../model/types.ts';
import { resolveStoreWindow } from '../../analyze/window.ts';
import { loadReplayRows } from '../../analyze/replay.ts';
import { breaksLegitimateTraffic, decideRows, keysWithDenials, leakJudgeFromRows, simulate, withProposalExclusions, type SimulationReport } from '../../recommend/simulate.ts';
import { printJson } from '../common.ts';
import { openStore, out, pct, positiveInt, readAcls, type CommonFlags } from './investigate-edges.ts';

interface SimulateFlags extends CommonFlags {
  since: string;
  acl?: string;
  examples: string;
}

export async function simulateCommand(proposalPath: string | undefined, flags: SimulateFlags): Promise<number> {
  if (!proposalPath && !flags.acl) throw new UsageError('nothing to simulate', { hint: 'give a proposal file, --acl FILE, or both (the proposal applied over the ACLs in force)' });
  const examplesPerKey = positiveInt('--examples', flags.examples);
  const store = await openStore(flags);
  try {
    const inForce = flags.acl ? (await readAcls(flags.acl, store)).inForce : null;
    const proposalFile = proposalPath ? await readAcls(proposalPath, store) : null;
    const proposal = proposalFile?.inForce ?? null;
    const acls: AclsInForce = inForce && proposal ? overlayAcls(inForce, proposal) : (proposal ?? inForce)!;
    const window = await resolveStoreWindow(store, { since: flags.since }, '30d');
    const rows = await loadReplayRows(store, { window });
    const verdicts = decideRows(acls, rows);
    const judge = withProposalExclusions(leakJudgeFromRows(rows, { window, keys: keysWithDenials(rows, verdicts) }), proposalExclusions(proposalFile));
    const report = simulate(acls, rows, { judge, examplesPerKey, verdicts });
    const breaks = breaksLegitimateTraffic(report);
    if (flags.json) printJson({ window, breaksLegitimateTraffic: breaks, ...report });
    else out(simulationText(report, window, breaks));
    return breaks ? EXIT.ATTENTION : EXIT.OK;
  } finally {
    store.close();
  }
}

function simulationText(r: SimulationReport, window: TimeWindow, breaks: boolean): string[] {
  const t = r.totals;
  const lines = [
    `replayed ${t.calls} calls (${t.governedCalls} governed) of ${t.keys} keys, ${window.from} .. ${window.to}`,
    `would deny ${t.deniedCalls} calls from ${t.deniedSources} sources: ${t.legitimateDeniedCalls} legitimate (${t.legitimateDeniedSources} sources, ${t.keysBreaking} keys), ${t.excludedDeniedCalls} from sources the proposal excludes on purpose, ${t.suspectDeniedCalls} from possible leaks`,
  ];
  if (t.undeterminedCalls) lines.push(`${t.undeterminedCalls} calls have a source that is not an address: not replayable`);
  const ng = Object.entries(r.notGoverned).map(([code, calls]) => `${code} ${calls}`);
  if (ng.length) lines.push(`never deniable: ${ng.join(', ')}`);
  for (const k of r.keys.filter((k) => k.deniedCalls > 0)) {
    lines.push('', `${k.accessKeyId} (${k.governedBy ?? 'no'} ACL): ${k.deniedCalls}/${k.governedCalls} governed calls denied (${pct(k.deniedShare)}), ${k.legitimateDeniedCalls} legitimate`);
    for (const e of k.examples) {
      lines.push(`  ${e.status === 'breaks' ? 'BREAKS' : e.status === 'excluded' ? 'excluded' : 'blocks'} ${e.sourceKind} ${e.ip}${e.vpcId ? ` in ${e.vpcId}` : ''}: ${e.calls} calls on ${e.days} days, last ${e.lastSeen} (${e.code})${e.suspicion ? ` — ${e.suspicion}` : ''}`);
    }
    if (k.deniedSources > k.examples.length) lines.push(`  … ${k.deniedSources - k.examples.length} more sources`);
  }
  lines.push('', breaks ? 'RESULT: legitimate traffic would break (exit 4)' : 'RESULT: nothing legitimate would break');
  return lines;
}
