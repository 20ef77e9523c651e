// Drift since an approval: recent traffic replayed against the approved ACLs (new sources they would deny, new
// keys without an ACL) and the usage window replayed for entries and keys nobody used. One computation for
// `keyfence drift`, `keyfence report` and `keyfence nightly`; after a prune, the usage window and the last
// calls reach into the rolled-up history (analyze/rollup.ts).
import { overlayAcls, proposalExclusions, type LoadedAcls } from '../model/acl-file.ts';
import type { AclsInForce } from '../model/acl-rules.ts';
import type { TimeWindow } from '../model/types.ts';
import type { Store } from '../ingest/store.ts';
import { decideRows, drift, keysWithDenials, leakJudgeFromRows, withProposalExclusions, type DriftReport } from '../recommend/simulate.ts';
import { loadKeyLastSeen, loadReplayRows } from './replay.ts';
import { loadRollupRows, mergeRollupRows } from './rollup.ts';
import { resolveStoreWindow } from './window.ts';

export interface DriftOptions {
  /** Recent traffic checked against the approval, a duration back from the newest event (e.g. `1d`). */
  since: string;
  /** Entries and keys with no call in this many days are drift. */
  unusedDays: number;
  /** The ACLs in force the approval is applied over; the approval alone when absent. */
  inForce?: AclsInForce | null;
}

export interface DriftResult extends DriftReport {
  recentWindow: TimeWindow;
  usageWindow: TimeWindow;
  unusedDays: number;
  /** The dormant keys with their last call (pruned history included); null when the store never saw one. */
  dormant: Array<{ accessKeyId: string; lastSeen: string | null }>;
}

export async function driftSinceApproval(store: Store, approved: LoadedAcls, options: DriftOptions): Promise<DriftResult> {
  const acls = options.inForce ? overlayAcls(options.inForce, approved.inForce) : approved.inForce;
  const recentWindow = await resolveStoreWindow(store, { since: options.since }, '1d');
  const usageWindow = await resolveStoreWindow(store, { since: `${options.unusedDays}d` }, '30d');
  const recentRows = await loadReplayRows(store, { window: recentWindow });
  const usageRows = mergeRollupRows(await loadReplayRows(store, { window: usageWindow }), await loadRollupRows(store, usageWindow));
  // Judge new sources against the longer of the two windows: "new" needs history to be new against.
  const [judgeRows, judgeWindow] = recentWindow.from < usageWindow.from ? [recentRows, recentWindow] : [usageRows, usageWindow];
  const judge = withProposalExclusions(
    leakJudgeFromRows(judgeRows, { window: judgeWindow, keys: keysWithDenials(recentRows, decideRows(acls, recentRows)) }),
    proposalExclusions(approved),
  );
  const covered = approved.proposal?.accountLevel?.coveredKeys ?? [];
  // Only the approval's own entries can be "unused since approval"; the ACLs in force around it are not judged.
  const entryScopes = new Set([...approved.keyLevel.keys(), ...(approved.accountLevel ? ['account'] : [])]);
  const report = drift({ approved: acls, approvedKeys: [...approved.keyLevel.keys(), ...covered], recentRows, usageRows, judge, entryScopes });
  const lastSeen = await loadKeyLastSeen(store);
  const dormant = report.dormantKeys.map((k) => ({ accessKeyId: k, lastSeen: lastSeen.get(k) ?? null }));
  return { ...report, recentWindow, usageWindow, unusedDays: options.unusedDays, dormant };
}
