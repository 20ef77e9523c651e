// The backtest a reviewer trusts: recommend from a training window, replay the days after it against the
// proposal, and count what would have broken. With the generator's truth file, also the ground-truth view
// (legitimate vs leak sources as generated, not as guessed).
import { parsePrefix, prefixSize } from '../model/address.ts';
import { aclsFromProposal, overlayAcls } from '../model/acl-file.ts';
import type { AclsInForce } from '../model/acl-rules.ts';
import type { AclProposal, AclRules, TimeWindow } from '../model/types.ts';
import { isoSeconds } from '../model/window.ts';
import type { Store } from '../ingest/store.ts';
import { recommend, DEFAULT_RECOMMEND_OPTIONS } from '../recommend/proposal.ts';
import { decideRows, keysWithDenials, leakJudgeFromRows, simulate, type DeniedSource, type SimulationReport, type SourceJudge } from '../recommend/simulate.ts';
import { loadProfiles } from './profiles.ts';
import { loadReplayRows } from './replay.ts';
import { newestEventTime } from './window.ts';
import { StoreError } from '../model/errors.ts';

export type RecommendKnobs = Partial<Parameters<typeof recommend>[1]>;

/** Ground truth from the fixtures generator: which (key, address) pairs are leaks, and the true networks. */
export interface GroundTruth {
  /** `${accessKeyId}\u0000${ip}` of leak sources. */
  leakSources: Set<string>;
  /** Per key, the CIDRs its legitimate public traffic comes from (the true space), when the file says. */
  publicNetworks: Map<string, string[]>;
}

export interface BacktestOptions {
  trainMs: number;
  testMs: number;
  knobs?: RecommendKnobs;
  truth?: GroundTruth | null;
  /** The ACLs in force: the proposal is applied over them (keys it does not cover keep what they have). */
  inForce?: AclsInForce | null;
  /** Broken sources listed (the rest are counted). Default 20. */
  listBroken?: number;
}

export interface ReplayView {
  governedCalls: number;
  falseDenyCalls: number;
  /** falseDenyCalls / governedCalls. */
  falseDenyShare: number;
  worstKey: { accessKeyId: string; falseDenyShare: number; falseDenyCalls: number; governedCalls: number } | null;
  /** Denied calls from sources judged (or known) to be leaks: what the ACL is for. */
  leakCallsDenied: number;
  brokenSources: number;
}

export interface BacktestReport {
  train: TimeWindow;
  test: TimeWindow;
  proposal: {
    keys: number;
    accountLevel: boolean;
    entries: number;
    /** Admitted space: IPv4 addresses and IPv6 /64s (decimal strings). */
    admittedIpv4: string;
    admittedIpv6Slash64: string;
  };
  /** Legitimate = not flagged as a possible leak by classifySources over train + test (leakJudgeFromRows). */
  replay: ReplayView;
  /** The sources that broke (legitimate, denied), most calls first. */
  broken: Array<DeniedSource & { accessKeyId: string }>;
  /** With --truth: legitimate = not a generated leak. */
  truth: (ReplayView & {
    leakSources: number;
    leakSourcesAdmitted: number;
    /** The true public space of the keys the proposal covers, and the proposal's public space over those keys. */
    trueIpv4: string;
    trueIpv6Slash64: string;
    admittedPublicIpv4: string;
    admittedPublicIpv6Slash64: string;
  }) | null;
}

/**
 * Recommends from a training window and replays the test window after it. The proposal returned is the one
 * replayed: what `keyfence recommend` makes of the training window (profiles without user agents, as there).
 */
export async function backtest(store: Store, options: BacktestOptions): Promise<{ report: BacktestReport; proposal: AclProposal }> {
  const newest = await newestEventTime(store);
  if (!newest) throw new StoreError(`the store ${store.paths.join(', ')} holds no events`, { hint: 'run `keyfence ingest …` first' });
  const end = new Date(newest.getTime() + 1000);
  const testFrom = new Date(end.getTime() - options.testMs);
  const trainFrom = new Date(testFrom.getTime() - options.trainMs);
  const train: TimeWindow = { from: isoSeconds(trainFrom), to: isoSeconds(testFrom) };
  const test: TimeWindow = { from: isoSeconds(testFrom), to: isoSeconds(end) };

  const profiles = await loadProfiles(store, { window: train, userAgents: false });
  // The test window's aggregate runs in DuckDB's threads while recommend (JavaScript only) runs on this one.
  const replayRows = loadReplayRows(store, { window: test });
  replayRows.catch(() => undefined); // awaited below; recommend may throw first
  const proposal = recommend(profiles, { ...DEFAULT_RECOMMEND_OPTIONS, ...options.knobs, window: train, generatedAt: train.to });
  const proposed = aclsFromProposal(proposal).inForce;
  const acls = options.inForce ? overlayAcls(options.inForce, proposed) : proposed;
  const rows = await replayRows;

  const verdicts = decideRows(acls, rows);
  const judge = leakJudgeFromRows(rows, { window: { from: train.from, to: test.to }, keys: keysWithDenials(rows, verdicts), earlier: profiles });
  const listBroken = options.listBroken ?? 20;
  const judged = simulate(acls, rows, { judge, examplesPerKey: listBroken, verdicts });

  let truthView: BacktestReport['truth'] = null;
  if (options.truth) {
    const leakSources = options.truth.leakSources;
    const truthJudge: SourceJudge = (key, s) => (leakSources.has(`${key}\u0000${s.ip}`) ? { legitimate: false, reason: 'a generated leak' } : { legitimate: true });
    const truthSim = simulate(acls, rows, { judge: truthJudge, examplesPerKey: 0, verdicts });
    const testLeaks = rows.filter((r) => r.accessKeyId && r.ip && leakSources.has(`${r.accessKeyId}\u0000${r.ip}`));
    const leaksDenied = truthSim.totals.deniedSources - truthSim.totals.legitimateDeniedSources;
    const distinctLeaks = new Set(testLeaks.map((r) => `${r.accessKeyId}\u0000${r.ip}`)).size;
    const keys = proposal.accessKeys.map((k) => k.accessKeyId);
    const trueSpace = spaceOf(keys.flatMap((k) => options.truth!.publicNetworks.get(k) ?? []));
    const publicSpace = spaceOf(proposal.accessKeys.flatMap((k) => k.public?.cidrs ?? []));
    truthView = {
      ...view(truthSim), leakSources: distinctLeaks, leakSourcesAdmitted: Math.max(0, distinctLeaks - leaksDenied),
      trueIpv4: trueSpace.v4.toString(), trueIpv6Slash64: trueSpace.v6.toString(),
      admittedPublicIpv4: publicSpace.v4.toString(), admittedPublicIpv6Slash64: publicSpace.v6.toString(),
    };
  }

  const broken = judged.keys
    .flatMap((k) => k.examples.filter((e) => e.legitimate).map((e) => ({ accessKeyId: k.accessKeyId, ...e })))
    .sort((a, b) => b.calls - a.calls || (a.accessKeyId < b.accessKeyId ? -1 : a.accessKeyId > b.accessKeyId ? 1 : 0) || (a.ip < b.ip ? -1 : 1))
    .slice(0, listBroken);
  const space = admittedSpace(proposal);
  const report: BacktestReport = {
    train,
    test,
    proposal: {
      keys: proposal.accessKeys.length,
      accountLevel: proposal.accountLevel !== null,
      entries: space.entries,
      admittedIpv4: space.v4.toString(),
      admittedIpv6Slash64: space.v6.toString(),
    },
    replay: view(judged),
    broken,
    truth: truthView,
  };
  return { report, proposal };
}

function view(sim: SimulationReport): ReplayView {
  const worst = sim.keys.filter((k) => k.legitimateDeniedCalls > 0).sort((a, b) => b.legitimateDeniedShare - a.legitimateDeniedShare || (a.accessKeyId < b.accessKeyId ? -1 : 1))[0];
  return {
    governedCalls: sim.totals.governedCalls,
    falseDenyCalls: sim.totals.legitimateDeniedCalls,
    falseDenyShare: sim.totals.governedCalls > 0 ? sim.totals.legitimateDeniedCalls / sim.totals.governedCalls : 0,
    worstKey: worst ? { accessKeyId: worst.accessKeyId, falseDenyShare: worst.legitimateDeniedShare, falseDenyCalls: worst.legitimateDeniedCalls, governedCalls: worst.governedCalls } : null,
    leakCallsDenied: sim.totals.suspectDeniedCalls,
    brokenSources: sim.totals.legitimateDeniedSources,
  };
}

/** Entries, IPv4 addresses and IPv6 /64s admitted by every ACL of a proposal (overlaps counted twice). */
export function admittedSpace(proposal: AclProposal): { entries: number; v4: bigint; v6: bigint } {
  const acls: AclRules[] = [...(proposal.accountLevel ? [proposal.accountLevel] : []), ...proposal.accessKeys];
  return spaceOf(acls.flatMap((acl) => [...(acl.public?.cidrs ?? []), ...acl.vpc.flatMap((v) => v.cidrs)]));
}

/** IPv4 addresses and IPv6 /64s in a list of CIDRs (overlaps counted twice; unparseable entries skipped). */
function spaceOf(cidrs: readonly string[]): { entries: number; v4: bigint; v6: bigint } {
  let entries = 0;
  let v4 = 0n;
  let v6 = 0n;
  for (const c of cidrs) {
    const p = parsePrefix(c);
    if (!p) continue;
    entries++;
    if (p.family === 4) v4 += prefixSize(p);
    else v6 += p.length >= 64 ? 1n : 1n << BigInt(64 - p.length);
  }
  return { entries, v4, v6 };
}

/**
 * Reads the generator's truth file. Accepted: `{leaks: [{accessKeyId, ip}]}`, or `{keys: [{accessKeyId,
 * leakSources: ["ip"|{ip}], publicNetworks: ["cidr"]}]}` (also `leaks` for `leakSources`).
 */
export function parseTruth(value: unknown): GroundTruth {
  const leakSources = new Set<string>();
  const publicNetworks = new Map<string, string[]>();
  const obj = (value ?? {}) as Record<string, unknown>;
  const asList = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
  const addLeak = (key: unknown, leak: unknown) => {
    const l = leak as Record<string, unknown> | string;
    const ip = typeof l === 'string' ? l : (l?.ip ?? l?.sourceIp ?? l?.address);
    const k = typeof l === 'object' && l && typeof l.accessKeyId === 'string' ? l.accessKeyId : key;
    if (typeof ip === 'string' && typeof k === 'string') leakSources.add(`${k}\u0000${ip}`);
  };
  for (const leak of [...asList(obj.leaks), ...asList(obj.leakSources)]) addLeak(undefined, leak);
  for (const key of asList(obj.keys)) {
    const k = key as Record<string, unknown>;
    for (const leak of [...asList(k.leaks), ...asList(k.leakSources)]) addLeak(k.accessKeyId, leak);
    if (typeof k.accessKeyId === 'string') publicNetworks.set(k.accessKeyId, asList(k.publicNetworks).filter((c): c is string => typeof c === 'string'));
  }
  return { leakSources, publicNetworks };
}
