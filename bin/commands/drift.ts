// `keyfence drift`: what changed since approval.
import { EXIT, UsageError } from '../../model/errors.ts';
import type { TimeWindow } from '../../model/types.ts';
import { driftSinceApproval } from '../../analyze/drift.ts';
import type { DriftReport } from '../../recommend/simulate.ts';
import { printJson } from '../common.ts';
import { openStore, out, positiveInt, readAcls, type CommonFlags } from './investigate-edges.ts';

interface DriftFlags extends CommonFlags {
  approved: string;
  since: string;
  unusedDays: string;
  acl?: string;
}

export async function driftCommand(flags: DriftFlags): Promise<number> {
  const unusedDays = positiveInt('--unused-days', flags.unusedDays);
  if (unusedDays === 0) throw new UsageError('--unused-days must be at least 1');
  const store = await openStore(flags);
  try {
    const approved = await readAcls(flags.approved, store);
    const inForce = flags.acl ? (await readAcls(flags.acl, store)).inForce : null;
    const { dormant, recentWindow, usageWindow, unusedDays: _unused, ...report } = await driftSinceApproval(store, approved, { since: flags.since, unusedDays, inForce });
    if (flags.json) printJson({ recentWindow, usageWindow, ...report, dormantKeys: dormant });
    else out(driftText(report, dormant, recentWindow, unusedDays));
    return report.needsAttention ? EXIT.ATTENTION : EXIT.OK;
  } finally {
    store.close();
  }
}

function driftText(r: DriftReport, dormant: Array<{ accessKeyId: string; lastSeen: string | null }>, recent: TimeWindow, unusedDays: number): string[] {
  const lines = [`drift since approval (recent ${recent.from} .. ${recent.to}; unused = no call in ${unusedDays} days)`];
  lines.push(`new sources the approved ACLs would deny: ${r.newDeniedSources.length}`);
  for (const s of r.newDeniedSources) lines.push(`  ${s.accessKeyId} ${s.sourceKind} ${s.ip}${s.vpcId ? ` in ${s.vpcId}` : ''}: ${s.calls} calls, first in window ${s.firstSeen}${s.legitimate ? '' : ` — ${s.suspicion}`}`);
  lines.push(`entries unused for ${unusedDays} days (candidates to remove): ${r.unusedEntries.length}`);
  for (const u of r.unusedEntries) lines.push(`  ${u.scope} ${u.vpcId ?? 'public'} ${u.cidr}`);
  lines.push(`keys gone dormant: ${dormant.length}`);
  for (const d of dormant) lines.push(`  ${d.accessKeyId}: last call ${d.lastSeen ?? 'never'}`);
  lines.push(`new keys without an ACL of their own: ${r.newKeysWithoutAcl.length}`);
  for (const k of r.newKeysWithoutAcl) lines.push(`  ${k.accessKeyId}: ${k.governedCalls} governed calls, ${k.governedBy === 'account' ? 'covered by the account level' : 'no ACL at all'}`);
  lines.push(r.needsAttention ? 'RESULT: needs a person (exit 4)' : 'RESULT: no drift');
  return lines;
}
