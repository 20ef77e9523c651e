// investigate: simulate and backtest over the whole store (target ≤ 10 s at 10 M events), explain (≤ 1 s,
// the median of several runs), denials and drift, each timed as a real process, the CLI's start-up alone, plus
// the in-process split (SQL aggregate vs TS matching) and the backtest figures on the generated world.
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildWorld, type GroundTruth } from '../fixtures/world.ts';
import { writeHistory } from '../fixtures/write.ts';
import { ingestFiles } from '../ingest/file-ingest.ts';
import { Store } from '../ingest/store.ts';
import { parseAddress } from '../model/address.ts';
import { parseAclText } from '../model/acl-file.ts';
import { loadProfiles } from '../analyze/profiles.ts';
import { resolveStoreWindow } from '../analyze/window.ts';
import { loadKnownKeys, loadReplayRows } from '../analyze/replay.ts';
import { loadSourceHistory } from '../analyze/history.ts';
import { DEFAULT_RECOMMEND_OPTIONS, recommend } from '../recommend/proposal.ts';
import { decideRows, simulate } from '../recommend/simulate.ts';
import { explainCall } from '../recommend/explain.ts';
import { fmt, measureProcess, timeIt, verdict, type BenchContext, type BenchSection, type ProcessFigures } from './harness.ts';

const TARGET_REPLAY_S = 10;
const TARGET_EXPLAIN_S = 1;
/** Short commands are run this many times and their median run reported: one run under load says little. */
const SHORT_RUNS = 5;

/** The generated world's key-level ACLs in force, as IMS AccessKeyPolicy documents. */
function aclDocuments(truth: GroundTruth): Record<string, unknown> {
  const docs: Record<string, unknown> = {};
  for (const key of truth.keys) {
    if (!key.aclInForce) continue;
    const statements = [
      ...(key.aclInForce.public.length ? [{ Type: 'ClassicWhiteList', IPList: key.aclInForce.public }] : []),
      ...key.aclInForce.vpc.map((v) => ({ Type: 'VPCWhiteList', Value: v.vpcId, IPList: v.cidrs })),
    ];
    docs[key.accessKeyId] = { Version: 1, Status: 'Active', Statements: statements };
  }
  return docs;
}

/** The history goes through the product's own file ingest (fast path), as a nightly import would. */
async function buildStore(ctx: BenchContext, dbPath: string): Promise<{ truth: GroundTruth; events: number }> {
  const full = ctx.scale === 'full';
  const world = buildWorld(full ? { seed: 1, keys: 1000, eventsTarget: 10_000_000 } : { seed: 1, eventsTarget: 200_000 });
  const trail = join(ctx.dataDir, 'investigate-trail');
  await writeHistory(world, { outDir: trail, truthPath: join(ctx.dataDir, 'investigate-truth.json') });
  ctx.log('investigate: history written; ingesting it');
  const store = await Store.open(dbPath);
  try {
    const summary = await ingestFiles(store, [trail]);
    return { truth: world.truth, events: summary.inserted };
  } finally {
    store.close();
    rmSync(trail, { recursive: true, force: true });
  }
}

/** Runs a short command SHORT_RUNS times; the run with the median wall time, and every run's wall time. */
async function medianRun(run: () => Promise<ProcessFigures>): Promise<ProcessFigures & { walls: number[] }> {
  const figures: ProcessFigures[] = [];
  for (let i = 0; i < SHORT_RUNS; i++) figures.push(await run());
  const walls = figures.map((f) => f.wallSeconds);
  const sorted = [...figures].sort((a, b) => a.wallSeconds - b.wallSeconds);
  return { ...sorted[Math.floor(sorted.length / 2)]!, walls };
}

export default async function investigate(ctx: BenchContext): Promise<BenchSection> {
  const reused = process.env.KEYFENCE_BENCH_INVESTIGATE_DB;
  const dbPath = reused ?? join(ctx.dataDir, 'investigate.duckdb');
  let truth: GroundTruth | null = null;
  let events = 0;
  if (!reused) {
    ctx.log('investigate: generating and storing the history');
    ({ truth, events } = await buildStore(ctx, dbPath));
  }

  // Inputs the commands read: a proposal from the last 30 days, the ACLs in force, the truth.
  const store = await Store.open(dbPath, { readOnly: true });
  let proposalPath: string;
  let aclPath: string | null = null;
  let aclProblem: string | null = null;
  let explainArgs: string[];
  let inProcess: { profiles: number; leanProfiles: number; recommend: number; replaySql: number; replayRows: number; matchTs: number; explain: number };
  try {
    if (reused) events = Number((await store.query<{ n: number }>('SELECT count(*) AS n FROM events'))[0]!.n);
    const window = await resolveStoreWindow(store, { since: '30d' }, '30d');
    const profiled = await timeIt(() => loadProfiles(store, { window }));
    const recommended = await timeIt(async () => recommend(profiled.result, { ...DEFAULT_RECOMMEND_OPTIONS, window, generatedAt: window.to }));
    const proposal = recommended.result;
    const leanProfiled = await timeIt(() => loadProfiles(store, { window, userAgents: false }));
    proposalPath = join(ctx.dataDir, 'investigate-proposal.json');
    writeFileSync(proposalPath, JSON.stringify(proposal));
    if (truth) {
      writeFileSync(join(ctx.dataDir, 'investigate-truth.json'), JSON.stringify(truth));
      try {
        parseAclText(JSON.stringify(aclDocuments(truth)), { source: 'the generated ACLs in force' });
        aclPath = join(ctx.dataDir, 'investigate-acl.json');
        writeFileSync(aclPath, JSON.stringify(aclDocuments(truth)));
      } catch (e) {
        aclProblem = e instanceof Error ? e.message : String(e);
      }
    }
    // Explain the most refused source (or else the busiest public source).
    const [target] = await store.query<{ key: string; ip: string }>(`
      SELECT access_key_id AS key, source_ip AS ip FROM events
      WHERE key_kind = 'permanent' AND source_kind = 'public'
      GROUP BY ALL ORDER BY count_if(acl_denied) DESC, count(*) DESC, key, ip LIMIT 1`);
    explainArgs = ['--key', target!.key, '--ip', target!.ip];

    const acls = parseAclText(JSON.stringify(proposal)).inForce;
    const sql = await timeIt(() => loadReplayRows(store, { window }));
    const match = await timeIt(async () => simulate(acls, sql.result, { verdicts: decideRows(acls, sql.result) }));
    const aclsInForce = aclPath ? parseAclText(JSON.stringify(aclDocuments(truth!))).inForce : acls;
    if (aclProblem) ctx.log(`investigate: the world's ACLs in force are invalid, explaining against the proposal: ${aclProblem}`);
    const explain = await timeIt(async () => {
      // As the command does: the ACL file's keys checked against the store, the verdict, the history.
      if (aclPath) await loadKnownKeys(store, parseAclText(JSON.stringify(aclDocuments(truth!))).namedKeys);
      const address = parseAddress(target!.ip)!;
      explainCall(aclsInForce, { accessKeyId: target!.key, address });
      return loadSourceHistory(store, { accessKeyId: target!.key, address, vpcId: null, window: await resolveStoreWindow(store, { since: '90d' }, '90d') });
    });
    inProcess = { profiles: profiled.seconds, leanProfiles: leanProfiled.seconds, recommend: recommended.seconds, replaySql: sql.seconds, replayRows: sql.result.length, matchTs: match.seconds, explain: explain.seconds };
  } finally {
    store.close();
  }

  const keyfence = (args: string[]) => measureProcess(process.execPath, [join(ctx.root, 'bin/keyfence.js'), ...args], { cwd: ctx.root });
  const cli = (args: string[]) => keyfence([...args, '--db', dbPath, '--json']);
  const acl = aclPath ? ['--acl', aclPath] : [];
  const truthArgs = truth ? ['--truth', join(ctx.dataDir, 'investigate-truth.json')] : [];
  // The first run after a source change compiles the CLI's bundle (bin/bundle.js): done here, untimed.
  await keyfence(['--version']);
  ctx.log('investigate: timing the commands');
  const startup = await medianRun(() => keyfence(['--version']));
  const explainRuns = await medianRun(() => cli(['explain', ...explainArgs, ...acl]));
  const runs = [
    { label: `start-up alone: --version (median of ${SHORT_RUNS})`, target: null, fig: startup },
    { label: 'simulate PROPOSAL --since 30d', target: TARGET_REPLAY_S, fig: await cli(['simulate', proposalPath, '--since', '30d']) },
    ...(aclPath ? [{ label: 'simulate --acl (ACLs in force) --since 30d', target: TARGET_REPLAY_S, fig: await cli(['simulate', ...acl, '--since', '30d']) }] : []),
    { label: 'backtest --train 30d --test 7d', target: TARGET_REPLAY_S, fig: await cli(['backtest', '--train', '30d', '--test', '7d', ...truthArgs]) },
    { label: `explain --key --ip${aclPath ? ' --acl' : ''} (median of ${SHORT_RUNS})`, target: TARGET_EXPLAIN_S, fig: explainRuns },
    { label: 'denials --since 7d', target: null, fig: await cli(['denials', '--since', '7d', ...acl]) },
    { label: 'drift --approved --since 1d', target: null, fig: await cli(['drift', '--approved', proposalPath, '--since', '1d']) },
  ];

  const table: string[][] = [['Command', 'Wall (s)', 'Peak RSS (MiB)', 'Exit', 'Target']];
  for (const r of runs) {
    table.push([r.label, fmt(r.fig.wallSeconds), fmt(r.fig.peakRssMiB, 0), String(r.fig.exitCode), r.target === null ? '–' : `≤ ${r.target} s: ${verdict(r.fig.wallSeconds <= r.target)}`]);
  }
  const notes = [
    `${events} events (${ctx.scale} scale${reused ? `, reused database ${reused}` : ', generated world seed 1'}); every command is a fresh process, start-up included (Node, the CLI bundle and DuckDB: the --version row).`,
    `In process, 30-day window: loadProfiles ${fmt(inProcess.profiles)} s (analyze's full profiles), loadProfiles without user agents ${fmt(inProcess.leanProfiles)} s (what recommend and backtest read) and recommend ${fmt(inProcess.recommend)} s (what backtest spends on its training window; its replay query runs meanwhile);`
      + ` replay aggregate SQL ${fmt(inProcess.replaySql)} s for ${inProcess.replayRows} key × source rows, matching in TS ${fmt(inProcess.matchTs)} s; explain (${aclPath ? 'ACL keys checked + ' : ''}verdict + history + neighbours + pool/leak hints) ${fmt(inProcess.explain)} s (target ≤ ${TARGET_EXPLAIN_S} s: ${verdict(inProcess.explain <= TARGET_EXPLAIN_S)}).`,
    ...(aclProblem ? [`The generated ACLs in force were rejected (${aclProblem}); explain and denials ran against the proposal / without --acl.`] : []),
    'Exit 4 from simulate/denials/drift means "a person should look" (traffic would break, refusals found, drift), not a failure.',
  ];
  notes.push(`explain runs (wall s): ${explainRuns.walls.map((w) => fmt(w)).join(', ')}; start-up alone: ${startup.walls.map((w) => fmt(w)).join(', ')}; the medians are in the table.`);
  const backtestRun = runs.find((r) => r.label.startsWith('backtest'))!.fig;
  if (backtestRun.exitCode === 0) {
    const b = JSON.parse(backtestRun.stdout) as import('../analyze/backtest.ts').BacktestReport;
    const share = (x: number) => `${fmt(x * 100, 3)} %`;
    notes.push(
      `Backtest (train ${b.train.from} .. ${b.train.to}, test .. ${b.test.to}), default knobs: false-deny ${share(b.replay.falseDenyShare)} of ${b.replay.governedCalls} governed calls`
        + ` (${b.replay.brokenSources} sources); worst key ${b.replay.worstKey ? `${b.replay.worstKey.accessKeyId} ${share(b.replay.worstKey.falseDenyShare)}` : 'none'};`
        + ` admitted ${b.proposal.admittedIpv4} IPv4 addresses and ${b.proposal.admittedIpv6Slash64} IPv6 /64s in ${b.proposal.entries} entries.`,
    );
    if (b.truth) {
      notes.push(`Ground truth: false-deny ${share(b.truth.falseDenyShare)} (${b.truth.falseDenyCalls} calls, worst key ${b.truth.worstKey ? share(b.truth.worstKey.falseDenyShare) : 'none'}); leak sources in the test window ${b.truth.leakSources}, admitted ${b.truth.leakSourcesAdmitted}; public space admitted ${b.truth.admittedPublicIpv4} vs true ${b.truth.trueIpv4} IPv4 addresses.`);
    }
  } else {
    notes.push(`backtest failed: ${backtestRun.stderr.split('\n')[0]}`);
  }
  return { title: 'Investigate: simulate, backtest, explain, denials, drift', table, notes };
}
