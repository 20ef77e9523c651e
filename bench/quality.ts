// Quality of proposals, measured rather than guessed: a generated history with known true networks goes
// through the real pipeline (normalize → DuckDB store → analyze profiles), the last days are held out, a
// proposal is made from the days before, and the held-out calls are replayed through the vendor's decision.
// Several seeds and world shapes check that the defaults generalise; a sweep of the knobs justifies them.
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildWorld, type GroundTruth, type WorldOptions } from '../fixtures/world.ts';
import { writeHistory } from '../fixtures/write.ts';
import { Store } from '../ingest/store.ts';
import { loadProfiles, loadSourceAggregates } from '../analyze/profiles.ts';
import { isoSeconds } from '../model/window.ts';
import type { AclProposal, KeyProfile, TimeWindow } from '../model/types.ts';
import { decide } from '../model/acl-rules.ts';
import { parseAddress, parsePrefix, prefixContains } from '../model/address.ts';
import { MAX_ENTRIES_PER_ACL } from '../model/acl-rules.ts';
import { optimalCover } from '../recommend/cidr.ts';
import { DEFAULT_RECOMMEND_OPTIONS, recommend, type RecommendOptions } from '../recommend/proposal.ts';
import { aclsOfProposal, evaluateAgainstTruth, type HeldOutRow, type QualityReport } from '../recommend/evaluate.ts';
import { fmt, verdict, type BenchContext, type BenchSection } from './harness.ts';

const DAY_MS = 86_400_000;
export const HOLDOUT_DAYS = 7;
export const TRAIN_DAYS = 30;

export const TARGETS = { falseDenyShare: 0.001, worstKeyShare: 0.05, spaceRatio: 1.5, leaksAdmitted: 0, limitBreaches: 0 } as const;

export interface Backtest {
  truth: GroundTruth;
  train: TimeWindow;
  profiles: KeyProfile[];
  heldOut: HeldOutRow[];
  events: number;
}

/**
 * The real pipeline: the generator writes the world's history as ActionTrail files (SLS export lines), the
 * `keyfence ingest` CLI loads them into a fresh store, analyze reads the train profiles and held-out rows.
 */
export async function prepareBacktest(world: WorldOptions, dbPath: string): Promise<Backtest> {
  const w = buildWorld(world);
  const outDir = `${dbPath}.history`;
  mkdirSync(outDir, { recursive: true });
  await writeHistory(w, { outDir, format: 'sls-export', gzip: false });
  const root = join(dirname(fileURLToPath(import.meta.url)), '..');
  const ingest = spawnSync(process.execPath, [join(root, 'bin/keyfence.js'), 'ingest', outDir, '--db', dbPath, '--json'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, env: { ...process.env, CI: '1' } });
  if (ingest.status !== 0 && ingest.status !== 2) throw new Error(`keyfence ingest failed (exit ${ingest.status}): ${ingest.stderr.slice(0, 2000)}`);
  const summary = JSON.parse(ingest.stdout) as { inserted?: number };
  rmSync(outDir, { recursive: true, force: true });
  const store = await Store.open(dbPath, { readOnly: true });
  try {
    const end = Date.parse(w.truth.window.to);
    const holdFrom = end - HOLDOUT_DAYS * DAY_MS;
    const train: TimeWindow = { from: isoSeconds(new Date(holdFrom - TRAIN_DAYS * DAY_MS)), to: isoSeconds(new Date(holdFrom)) };
    const held: TimeWindow = { from: isoSeconds(new Date(holdFrom)), to: isoSeconds(new Date(end)) };
    const profiles = await loadProfiles(store, { window: train });
    const heldOut: HeldOutRow[] = (await loadSourceAggregates(store, { window: held })).map((r) => ({
      accessKeyId: r.accessKeyId,
      keyKind: r.keyKind,
      sourceKind: r.sourceKind,
      ip: r.sourceIp,
      vpcId: r.vpcId,
      exempt: r.exempt,
      calls: r.calls,
    }));
    return { truth: w.truth, train, profiles, heldOut, events: summary.inserted ?? 0 };
  } finally {
    store.close();
  }
}

export function runBacktest(b: Backtest, overrides: Partial<RecommendOptions> = {}): QualityReport {
  return evaluateAgainstTruth(proposeFor(b, overrides), b.heldOut, b.truth);
}

export function proposeFor(b: Backtest, overrides: Partial<RecommendOptions> = {}): AclProposal {
  return recommend(b.profiles, { ...DEFAULT_RECOMMEND_OPTIONS, window: b.train, generatedAt: b.train.to, ...overrides });
}

/**
 * Why the falsely denied held-out calls were denied: a one-off of the truth, a source first seen in the held-out
 * days (nothing in training to learn it from), or a source seen in training and excluded (by reason code).
 */
/** Whether the held-out row's address lies in one of the key's true networks that training already saw an address of. */
function networkSeenInTraining(r: HeldOutRow, t: GroundTruth['keys'][number] | undefined, seen: Set<string> | undefined): boolean {
  if (!t || !r.ip || !seen) return false;
  const a = parseAddress(r.ip);
  if (!a) return false;
  const networks = r.sourceKind === 'vpc' ? t.vpcNetworks.filter((v) => v.vpcId === r.vpcId).flatMap((v) => v.cidrs) : t.publicNetworks;
  const seenAddresses = [...seen].map((id) => id.split('|').at(-1)!).map((ip) => parseAddress(ip)).filter((x) => x !== null);
  return networks.some((cidr) => {
    const p = parsePrefix(cidr);
    return p && prefixContains(p, a) && seenAddresses.some((s) => prefixContains(p, s));
  });
}

/** One falsely denied held-out source, with its cause (the debug listing). */
export interface DeniedSource {
  accessKeyId: string;
  source: string;
  cause: string;
  calls: number;
}

export function denialCauses(b: Backtest, proposal: AclProposal, perKey?: Map<string, Map<string, number>>, rows?: DeniedSource[]): Map<string, number> {
  const acls = aclsOfProposal(proposal);
  const seen = new Map<string, Set<string>>();
  for (const p of b.profiles) seen.set(p.accessKeyId, new Set([...p.publicSources.map((s) => s.ip), ...p.vpcSources.map((s) => `${s.vpcId}|${s.ip}`)]));
  const excluded = new Map<string, string>();
  for (const k of [...proposal.accessKeys, ...(proposal.keysWithoutAcl ?? [])]) {
    for (const e of k.excluded) excluded.set(`${k.accessKeyId}|${e.vpcId && e.vpcId !== e.source ? `${e.vpcId}|` : ''}${e.source}`, e.code);
    for (const e of k.excluded) if (e.vpcId && e.vpcId === e.source) excluded.set(`${k.accessKeyId}|vpc:${e.vpcId}`, e.code);
  }
  const truth = new Map(b.truth.keys.map((k) => [k.accessKeyId, k]));
  const causes = new Map<string, number>();
  for (const r of b.heldOut) {
    const t = truth.get(r.accessKeyId);
    if (r.ip && t?.leakSources.includes(r.ip)) continue;
    const v = decide(acls, { accessKeyId: r.accessKeyId, keyKind: r.keyKind, sourceKind: r.sourceKind, ip: r.ip, vpcId: r.vpcId, exemptService: r.exempt });
    if (v.allowed || !v.governedBy) continue;
    const id = r.sourceKind === 'vpc' ? `${r.vpcId}|${r.ip}` : r.ip ?? '';
    let cause: string;
    if (r.ip && t?.oneOffSources.includes(r.ip)) cause = 'one-off';
    else if (excluded.has(`${r.accessKeyId}|${id}`)) cause = `excluded in training: ${excluded.get(`${r.accessKeyId}|${id}`)}`;
    else if (r.vpcId && excluded.has(`${r.accessKeyId}|vpc:${r.vpcId}`)) cause = 'excluded in training: over-limit VPC';
    else if (!seen.get(r.accessKeyId)?.has(id)) cause = networkSeenInTraining(r, t, seen.get(r.accessKeyId)) ? 'new address of a network seen in training' : 'new address of a network never seen in training';
    else cause = 'other';
    causes.set(cause, (causes.get(cause) ?? 0) + r.calls);
    rows?.push({ accessKeyId: r.accessKeyId, source: id, cause, calls: r.calls });
    if (perKey) {
      const mine = perKey.get(r.accessKeyId) ?? new Map<string, number>();
      mine.set(cause, (mine.get(cause) ?? 0) + r.calls);
      perKey.set(r.accessKeyId, mine);
    }
  }
  return causes;
}

function pct(x: number, digits = 3): string {
  return `${fmt(x * 100, digits)} %`;
}

export function meetsTargets(q: QualityReport): boolean {
  return (
    q.falseDenyShare <= TARGETS.falseDenyShare &&
    (q.worstKey?.share ?? 0) <= TARGETS.worstKeyShare &&
    q.spaceRatio <= TARGETS.spaceRatio &&
    q.leaksAdmitted.length === 0 &&
    q.limitBreaches.length === 0
  );
}

/** Causes no proposal made from the training days could avoid: nothing in training to learn them from, or the vendor's limits. */
const UNAVOIDABLE = new Set(['one-off', 'new address of a network never seen in training', 'excluded in training: over-limit VPC']);

export interface Measured {
  report: QualityReport;
  causes: Map<string, number>;
  /** False-deny share without the unavoidable causes. */
  avoidableShare: number;
  /** The worst key's share without the unavoidable causes. */
  avoidableWorst: { accessKeyId: string; share: number } | null;
  /** Units of the best cover of the true public networks within the vendor's limits (what is expressible at all). */
  expressibleTrueUnits: number;
  /** Every avoidable falsely denied held-out source, most calls first. */
  avoidableSources: DeniedSource[];
}

/** Runs the backtest and splits the false denials by cause (per key too). */
export function measure(b: Backtest, overrides: Partial<RecommendOptions> = {}): Measured {
  const proposal = proposeFor(b, overrides);
  const report = evaluateAgainstTruth(proposal, b.heldOut, b.truth);
  const perKey = new Map<string, Map<string, number>>();
  const denied: DeniedSource[] = [];
  const causes = denialCauses(b, proposal, perKey, denied);
  const avoidableSources = denied.filter((d) => !UNAVOIDABLE.has(d.cause)).sort((x, y) => y.calls - x.calls || (x.accessKeyId < y.accessKeyId ? -1 : x.accessKeyId > y.accessKeyId ? 1 : x.source < y.source ? -1 : 1));
  const avoidable = [...causes].filter(([c]) => !UNAVOIDABLE.has(c)).reduce((n, [, v]) => n + v, 0);
  let avoidableWorst: Measured['avoidableWorst'] = null;
  for (const k of report.perKey) {
    if (!k.governedBy || k.legitCalls === 0) continue;
    const mine = [...(perKey.get(k.accessKeyId) ?? new Map<string, number>())].filter(([c]) => !UNAVOIDABLE.has(c)).reduce((n, [, v]) => n + v, 0);
    const share = mine / k.legitCalls;
    if (!avoidableWorst || share > avoidableWorst.share) avoidableWorst = { accessKeyId: k.accessKeyId, share };
  }
  let expressibleTrueUnits = 0;
  for (const k of report.perKey) {
    if (!k.governedBy) continue;
    const t = b.truth.keys.find((x) => x.accessKeyId === k.accessKeyId);
    const items = (t?.publicNetworks ?? []).map((c) => parsePrefix(c)).filter((p) => p !== null).map((p) => ({ family: p.family, base: p.base, length: p.length }));
    if (items.length === 0) continue;
    try {
      expressibleTrueUnits += optimalCover(items, { maxEntries: MAX_ENTRIES_PER_ACL }).units;
    } catch {
      expressibleTrueUnits += k.trueUnits;
    }
  }
  return { report, causes, avoidableShare: report.legitGovernedCalls > 0 ? avoidable / report.legitGovernedCalls : 0, avoidableWorst, expressibleTrueUnits, avoidableSources };
}

function row(label: string, m: Measured): string[] {
  const q = m.report;
  return [
    label,
    pct(q.falseDenyShare),
    pct(m.avoidableShare),
    q.worstKey ? `${pct(q.worstKey.share, 1)}` : '–',
    m.avoidableWorst ? pct(m.avoidableWorst.share, 1) : '–',
    `${fmt(q.spaceRatio, 2)}×`,
    `${fmt(m.expressibleTrueUnits > 0 ? q.admittedUnits / m.expressibleTrueUnits : 0, 2)}×`,
    `${fmt(q.vpcSpaceRatio, 2)}×`,
    `${q.leaksAdmitted.length}/${q.leakSources}`,
    String(q.limitBreaches.length),
    `${q.keysGoverned}/${q.keysGoverned + q.keysUngoverned}`,
  ];
}

export const WORLDS: Array<{ label: string; options: WorldOptions }> = [
  { label: 'default world (seed 1)', options: { seed: 1 } },
  { label: 'seed 7', options: { seed: 7 } },
  { label: 'seed 42, 80 keys', options: { seed: 42, keys: 80, eventsTarget: 300_000 } },
  { label: 'seed 99, 25 keys, 60 days', options: { seed: 99, keys: 25, days: 60, eventsTarget: 150_000 } },
];

export const SWEEP: Array<{ label: string; overrides: Partial<RecommendOptions> }> = [
  { label: 'defaults', overrides: {} },
  { label: 'minDays 1', overrides: { minDays: 1 } },
  { label: 'minDays 3', overrides: { minDays: 3 } },
  { label: 'minCalls 5', overrides: { minCalls: 5 } },
  { label: 'headroom 1', overrides: { headroom: 1 } },
  { label: 'headroom 1.5', overrides: { headroom: 1.5 } },
  { label: 'headroom 4', overrides: { headroom: 4 } },
  { label: 'scope auto', overrides: { scope: 'auto' } },
];

export default async function quality(ctx: BenchContext): Promise<BenchSection> {
  const header = ['History / settings', 'False-deny', 'avoidable', 'Worst key', 'avoidable', 'Public space / true', '/ expressible', 'VPC space / true', 'Leaks admitted', 'Breaches', 'Keys with ACL'];
  const table: string[][] = [header];
  const notes: string[] = [
    `Train on ${TRAIN_DAYS} days, replay the ${HOLDOUT_DAYS} held-out days after them through model/acl-rules.ts decide(). Pipeline: fixtures writeHistory (SLS export files) → \`keyfence ingest\` → analyze/profiles.ts loadProfiles / loadSourceAggregates → recommend → evaluateAgainstTruth.`,
    `Targets (issue 3, default world): false-deny ≤ ${pct(TARGETS.falseDenyShare, 1)}, worst key ≤ ${pct(TARGETS.worstKeyShare, 0)}, admitted public space ≤ ${TARGETS.spaceRatio}× the true space, 0 leaks admitted, 0 limit breaches.`,
    '"avoidable" leaves out denials no proposal made from the training days could prevent: the truth\'s one-off sources, addresses of networks with no address at all in training (late growth that starts in the held-out days, CI ranges never drawn from), and VPCs beyond the seven VPC rules an ACL holds.',
    'Both definitions stay in the table: "False-deny" and "Worst key" count every legitimate governed call (what production would see on enabling the proposal); the "avoidable" columns count only what the recommender could have admitted from the training days. Every target is reported against both in the notes below: leaks and breaches as written; false-deny and worst key as written and avoidable; space against the raw true space and the expressible space. Whatever is unavoidable is named by cause in the notes, never dropped from the "all" columns.',
    '"/ expressible": admitted space against the best cover of the true networks within 50 entries and the /16 guardrail. The CI-runner keys use more than 50 ranges, so even the truth cannot be admitted within 1.5× of itself; the ratio against the raw true space is dominated by them.',
  ];
  const worlds = ctx.scale === 'quick' ? WORLDS.slice(0, 2) : WORLDS;
  let first: Backtest | null = null;
  const results: Array<{ label: string; m: Measured }> = [];
  for (const [i, w] of worlds.entries()) {
    ctx.log(`quality: ${w.label}`);
    const b = await prepareBacktest(w.options, join(ctx.dataDir, `quality-${i}.duckdb`));
    if (!first) first = b;
    const m = measure(b);
    results.push({ label: w.label, m });
    table.push(row(`${w.label}, ${b.events} events`, m));
  }
  if (first) {
    for (const s of SWEEP.slice(1)) table.push(row(`default world, ${s.label}`, measure(first, s.overrides)));
  }
  for (const { label, m } of results) {
    const q = m.report;
    const causes = [...m.causes].sort((a, b) => b[1] - a[1]).map(([c, n]) => `${c} ${n}`).join(', ');
    notes.push(
      `${label}: ${q.falseDeniedCalls} of ${q.legitGovernedCalls} legitimate governed held-out calls denied (${causes || 'none'}); worst key ${q.worstKey ? `${q.worstKey.accessKeyId} ${pct(q.worstKey.share, 1)}` : '–'}; ` +
        `targets ${verdict(meetsTargets(q))} as written, leaks ${verdict(q.leaksAdmitted.length === 0)}, breaches ${verdict(q.limitBreaches.length === 0)}, avoidable false-deny ${verdict(m.avoidableShare <= TARGETS.falseDenyShare)}, avoidable worst key ${verdict((m.avoidableWorst?.share ?? 0) <= TARGETS.worstKeyShare)}, space vs expressible ${verdict(m.expressibleTrueUnits > 0 && q.admittedUnits <= TARGETS.spaceRatio * m.expressibleTrueUnits)}.`,
    );
    // KEYFENCE_QUALITY_DEBUG=1 lists every avoidable denied source (key, source, cause, calls); otherwise the top five.
    const listed = process.env.KEYFENCE_QUALITY_DEBUG ? m.avoidableSources : m.avoidableSources.slice(0, 5);
    if (listed.length > 0) {
      notes.push(`${label}: avoidable denials${listed.length < m.avoidableSources.length ? ` (top ${listed.length} of ${m.avoidableSources.length} sources)` : ''}: ${listed.map((d) => `${d.accessKeyId} ${d.source} ${d.calls} (${d.cause})`).join('; ')}.`);
    }
    if (q.leaksAdmitted.length > 0) notes.push(`${label}: leaks admitted ${q.leaksAdmitted.map((l) => `${l.source} (${l.accessKeyId})`).join(', ')}.`);
    if (q.limitBreaches.length > 0) notes.push(`${label}: limit breaches ${q.limitBreaches.join('; ')}.`);
  }
  return { title: 'Proposal quality (backtest: train → held-out replay)', table, notes };
}
