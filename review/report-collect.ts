// Everything one review needs, read from the store once: the analysis, the proposal, the findings, the daily
// timeline and (with an approval) drift. Shared by `keyfence report` and `keyfence nightly` so the HTML, the
// proposal file and the exit code of a night are all computed from the same numbers.
import { readFileSync } from 'node:fs';
import { parseAclText, type LoadedAcls } from '../model/acl-file.ts';
import { InvalidInputError } from '../model/errors.ts';
import type { AclProposal, TimeWindow } from '../model/types.ts';
import { isoSeconds } from '../model/window.ts';
import type { Store } from '../ingest/store.ts';
import { analyzeStore, type AnalysisResult } from '../analyze/analysis.ts';
import { buildFindings, DEFAULT_FINDINGS_OPTIONS, loadLastCalls, mergeLastCalls, type Finding, type FindingsOptions, type KeyLastCall } from '../analyze/findings.ts';
import { loadDailyActivity, type DailyActivityRow } from '../analyze/profiles.ts';
import { driftSinceApproval, type DriftResult } from '../analyze/drift.ts';
import { loadKnownKeys } from '../analyze/replay.ts';
import { loadRollupLastSeen, prunedBefore } from '../analyze/rollup.ts';
import { DEFAULT_RECOMMEND_OPTIONS, recommend, type RecommendOptions } from '../recommend/proposal.ts';
import { parseApprovalRecord, verify, type VerifyResult } from './approve.ts';

export interface ReviewOptions {
  /** Lookback of the analysis (default 30d). */
  window?: string;
  /** The approval (or proposal / IMS documents) file drift is measured against. */
  approvedFile?: string;
  recommend?: Partial<Omit<RecommendOptions, 'window' | 'generatedAt'>>;
  findings?: Partial<FindingsOptions>;
  /** Recent traffic checked against the approval (default 1d). */
  driftSince?: string;
  /** Entries and keys unused for this many days are drift (default 30). */
  unusedDays?: number;
  now: Date;
}

export type { DriftResult } from '../analyze/drift.ts';

export interface ApprovalInfo {
  file: string;
  /** Present when the file is an approval record (not a bare proposal or IMS documents). */
  approvedBy: string | null;
  approvedAt: string | null;
  /** The seal check of an approval record; null for other shapes. */
  seal: VerifyResult | null;
  acls: LoadedAcls;
}

export interface ReviewResult {
  generatedAt: string;
  window: TimeWindow;
  newestEvent: string;
  /** Events before this instant were pruned (retention); null when never pruned. */
  prunedBefore: string | null;
  analysis: AnalysisResult;
  proposal: AclProposal;
  findings: Finding[];
  lastCalls: KeyLastCall[];
  daily: DailyActivityRow[];
  approval: ApprovalInfo | null;
  drift: DriftResult | null;
}

export async function collectReview(store: Store, options: ReviewOptions): Promise<ReviewResult> {
  const generatedAt = isoSeconds(options.now);
  const analysis = await analyzeStore(store, { since: options.window ?? '30d' });
  const window = analysis.window;
  const proposal = recommend(analysis.profiles, { ...DEFAULT_RECOMMEND_OPTIONS, ...options.recommend, window, generatedAt });
  for (const k of analysis.keysWithoutTraffic) proposal.warnings = [...(proposal.warnings ?? []), `${k.accessKeyId}: no call in the window (last call ${k.lastSeen}): no ACL proposed`];
  const [newest] = await store.query<{ newest: string }>(`SELECT strftime(max(event_time), '%Y-%m-%dT%H:%M:%SZ') AS newest FROM events`);
  const newestEvent = newest!.newest;
  const lastCalls = mergeLastCalls(await loadLastCalls(store), await loadRollupLastSeen(store));
  const findings = buildFindings({ window, newestEvent, profiles: analysis.profiles, lastCalls }, { ...DEFAULT_FINDINGS_OPTIONS, ...options.findings });
  const daily = await loadDailyActivity(store, { window });
  const approval = options.approvedFile ? await readApproval(store, options.approvedFile) : null;
  const driftResult = approval
    ? await driftSinceApproval(store, approval.acls, { since: options.driftSince ?? '1d', unusedDays: options.unusedDays ?? 30 })
    : null;
  return { generatedAt, window, newestEvent, prunedBefore: await prunedBefore(store), analysis, proposal, findings, lastCalls, daily, approval, drift: driftResult };
}

/**
 * Reads an approval record, a proposal or IMS documents. Keys the store has never seen (not even in the
 * rolled-up history) are rejected with their JSON path in a proposal, noted in IMS documents (an unused key),
 * as `keyfence drift` does.
 */
export async function readApproval(store: Store, file: string): Promise<ApprovalInfo> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new InvalidInputError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { hint: 'check the approval file path', context: { file } });
  }
  const loaded = parseAclText(text, { source: file });
  const known = await loadKnownKeys(store, loaded.namedKeys);
  const acls = loaded.namedKeys.every((k) => known.has(k)) ? loaded : parseAclText(text, { source: file, knownKeys: known, unknownKeysInIms: 'note' });
  const value = JSON.parse(text) as Record<string, unknown>;
  if (value && value.kind === 'keyfence-approval') {
    const record = parseApprovalRecord(value, file);
    return { file, approvedBy: record.approvedBy, approvedAt: record.approvedAt, seal: verify(record), acls };
  }
  return { file, approvedBy: null, approvedAt: null, seal: null, acls };
}
