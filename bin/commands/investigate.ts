// explain, denials, simulate, backtest, drift: wiring only. Each handler opens the store read-only, calls the
// analyze/recommend functions, and prints text or one JSON object; the exit code says whether a person is needed.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { parseAddress } from '../../model/address.ts';
import { overlayAcls, parseAclText, proposalExclusions, type LoadedAcls } from '../../model/acl-file.ts';
import type { AclsInForce } from '../../model/acl-rules.ts';
import { EXIT, InvalidInputError, UsageError } from '../../model/errors.ts';
import type { TimeWindow } from '../../model/types.ts';
import { Store } from '../../ingest/store.ts';
import { resolveStoreWindow } from '../../analyze/window.ts';
import { loadSourceHistory, type SourceHistory } from '../../analyze/history.ts';
import { loadDenials, type DenialGroup } from '../../analyze/denials.ts';
import { loadKnownKeys, loadReplayRows } from '../../analyze/replay.ts';
import { driftSinceApproval } from '../../analyze/drift.ts';
import { backtest, parseTruth, type BacktestReport, type GroundTruth } from '../../analyze/backtest.ts';
import { explainCall, type Explanation } from '../../recommend/explain.ts';
import { breaksLegitimateTraffic, decideRows, keysWithDenials, leakJudgeFromRows, simulate, withProposalExclusions, type DriftReport, type SimulationReport } from '../../recommend/simulate.ts';
import { action, durationOption, printJson, resolveDbPaths, withCommonOptions } from '../common.ts';

interface CommonFlags {
  db?: string[];
  json?: boolean;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

export function registerInvestigate(program: Command): void {
  withCommonOptions(
    program
      .command('explain')
      .description('why would (or did) a call with this key from this source pass or fail the ACLs, and the smallest fix')
      .requiredOption('--key <accessKeyId>', 'the AccessKey ID')
      .requiredOption('--ip <address>', 'the source address as ActionTrail recorded it')
      .option('--vpc <vpcId>', 'the VPC ID, when the call came through a VPC endpoint')
      .option('--service <name>', 'the service or endpoint, e.g. ecs.aliyuncs.com (exempt services are never denied)')
      .option('--acl <file>', 'the ACLs in force (proposal JSON with statuses, or AccessKeyPolicy documents)')
      .option('--since <duration>', 'history to look back over', '90d'),
    { multiDb: true },
  ).action(action(explainCommand));

  withCommonOptions(
    program
      .command('denials')
      .description('calls refused by an ACL (AccessPolicyDenied), grouped by key and source, each explained')
      .option('--since <duration>', 'look back over', '7d')
      .option('--key <accessKeyId>', 'only this key (repeatable)', collect)
      .option('--acl <file>', 'the ACLs in force, to explain each denial'),
    { multiDb: true },
  ).action(action(denialsCommand));

  withCommonOptions(
    program
      .command('simulate')
      .description('replay stored history against a proposal (or --acl): what would be denied; exit 4 when legitimate traffic would break')
      .argument('[proposal]', 'proposal JSON (or approval record); applied over --acl when both are given')
      .option('--since <duration>', 'history to replay', '30d')
      .option('--acl <file>', 'the ACLs in force')
      .option('--examples <n>', 'denied sources listed per key', '5'),
    { multiDb: true },
  ).action(action(simulateCommand));

  withCommonOptions(
    program
      .command('backtest')
      .description('recommend on a training window, replay the test window after it, report what would have broken')
      .option('--train <duration>', 'training window', '30d')
      .option('--test <duration>', 'test window (the newest days)', '7d')
      .option('--scope <scope>', 'key | account | auto')
      .option('--min-days <n>', 'recommend: minimum active days of a source')
      .option('--min-calls <n>', 'recommend: minimum calls of a source')
      .option('--headroom <x>', 'recommend: how far an entry may widen beyond what was seen')
      .option('--allow-broad', 'recommend: allow prefixes shorter than /16 (IPv4) or /32 (IPv6)')
      .option('--include <source>', 'recommend: admit this source even if it looks like a leak (repeatable)', collect)
      .option('--truth <file>', 'the fixtures generator\'s truth.json: adds the ground-truth view')
      .option('--acl <file>', 'the ACLs in force: the proposal is replayed applied over them'),
    { multiDb: true },
  ).action(action(backtestCommand));

  withCommonOptions(
    program
      .command('drift')
      .description('what changed since approval: new sources that would be denied, unused entries, dormant and new keys; exit 4 when anything needs a person')
      .requiredOption('--approved <file>', 'the approved proposal (or approval record)')
      .option('--since <duration>', 'recent traffic to check against the approval', '1d')
      .option('--unused-days <n>', 'entries and keys with no call in this many days are reported', '30')
      .option('--acl <file>', 'the ACLs in force: the approval is checked applied over them'),
    { multiDb: true },
  ).action(action(driftCommand));
}

// ---------------------------------------------------------------- shared edges

async function openStore(flags: CommonFlags): Promise<Store> {
  const paths = resolveDbPaths(flags.db);
  return Store.open(paths.length === 1 ? paths[0]! : paths, { readOnly: true });
}

/**
 * Reads and validates an ACL/proposal file. A proposal naming a key the store has never seen is rejected with
 * its path; IMS documents naming one are read, with a note. Notes go to stderr (stdout stays the answer).
 */
async function readAcls(path: string, store: Store): Promise<LoadedAcls> {
  const loaded = await parseAclFile(path, store);
  for (const note of loaded.notes) process.stderr.write(`keyfence: note: ${note}\n`);
  return loaded;
}

async function parseAclFile(path: string, store: Store): Promise<LoadedAcls> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new InvalidInputError(`cannot read ${path}: ${e instanceof Error ? e.message : String(e)}`, { hint: 'check the path', context: { file: path } });
  }
  const loaded = parseAclText(text, { source: path });
  const known = await loadKnownKeys(store, loaded.namedKeys);
  // Read again against the keys the store knows: the first unknown one is rejected with its exact path (a
  // proposal) or each is noted (IMS documents).
  return known.size === loaded.namedKeys.length ? loaded : parseAclText(text, { source: path, knownKeys: known, unknownKeysInIms: 'note' });
}

function positiveInt(name: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`${name} ${JSON.stringify(text)} is not a whole number`);
  return n;
}

function pct(share: number): string {
  return `${(share * 100).toFixed(share > 0 && share < 0.001 ? 4 : 2)}%`;
}

function out(lines: string[]): void {
  process.stdout.write(`${lines.join('\n')}\n`);
}

// ---------------------------------------------------------------- explain

interface ExplainFlags extends CommonFlags {
  key: string;
  ip: string;
  vpc?: string;
  service?: string;
  acl?: string;
  since: string;
}

async function explainCommand(flags: ExplainFlags): Promise<number> {
  const address = parseAddress(flags.ip);
  if (!address) {
    throw new UsageError(`--ip ${JSON.stringify(flags.ip)} is not an IP address`, {
      hint: 'give four-part decimal IPv4 (203.0.113.7) or standard IPv6 (2001:db8::7); masked values such as 192.168.XX.XX cannot be explained',
    });
  }
  if (flags.vpc !== undefined && !/^vpc-[0-9a-z]+$/i.test(flags.vpc)) throw new UsageError(`--vpc ${JSON.stringify(flags.vpc)} is not a VPC ID`, { hint: 'e.g. vpc-bp1abc…' });
  const store = await openStore(flags);
  try {
    const acls = flags.acl ? await readAcls(flags.acl, store) : null;
    const explanation = explainCall(acls?.inForce ?? null, { accessKeyId: flags.key, address, vpcId: flags.vpc ?? null, service: flags.service ?? null });
    const window = await resolveStoreWindow(store, { since: flags.since }, '90d');
    const history = await loadSourceHistory(store, { accessKeyId: flags.key, address, vpcId: flags.vpc ?? null, window });
    if (flags.json) printJson({ explanation, history, aclNotes: acls?.notes ?? [] });
    else out([...explanationText(explanation), ...historyText(history)]);
    return EXIT.OK;
  } finally {
    store.close();
  }
}

function explanationText(e: Explanation): string[] {
  const c = e.call;
  const lines = [`${c.accessKeyId} (${c.keyKind}) from ${c.sourceKind} ${c.ip}${c.vpcId ? ` in ${c.vpcId}` : ''}${c.service ? ` to ${c.service}` : ''}`];
  if (e.aclCannotBeCause) lines.push(`  an ACL cannot be the cause: ${e.aclCannotBeCause}`);
  if (e.verdict) {
    lines.push(`  verdict: ${e.verdict.allowed ? 'ALLOWED' : 'DENIED'} (${e.verdict.code})`);
    if (e.governing) {
      const g = e.governing;
      lines.push(`  governed by the ${g.level}-level ACL (${g.enabled ? 'enabled' : 'disabled'}): public rule ${g.publicEntries === null ? 'none' : `${g.publicEntries} entries`}, VPC rules ${g.vpcRules.length ? g.vpcRules.map((r) => `${r.vpcId} (${r.entries})`).join(', ') : 'none'}`);
    }
  }
  lines.push(`  ${e.deciding}`);
  if (e.fixes.length > 0) {
    lines.push('  fix (smallest first):');
    for (const [i, f] of e.fixes.entries()) lines.push(`    ${i === 0 && f.possible ? '*' : '-'} ${f.text}`);
  }
  for (const n of e.notes) lines.push(`  note: ${n}`);
  return lines;
}

function historyText(h: SourceHistory): string[] {
  const lines = [`history ${h.window.from} .. ${h.window.to}:`];
  if (h.rolledUpBefore) lines.push(`  (events before ${h.rolledUpBefore} were pruned: the key's counts include their rollup, a source's its governed calls only; services and errors are not kept)`);
  if (!h.key.seen) lines.push(`  the store holds no call with ${h.key.accessKeyId} in this window`);
  else lines.push(`  key: ${h.key.calls} calls from ${h.key.sources} sources, ${h.key.firstSeen} .. ${h.key.lastSeen}`);
  const s = h.source;
  if (s) {
    lines.push(`  this source: ${s.calls} calls on ${s.days} days, ${s.firstSeen} .. ${s.lastSeen}, ${s.errorCalls} errors, ${s.deniedCalls} refused by an ACL`);
    if (s.services.length) lines.push(`    services: ${s.services.join(', ')}`);
    if (s.errorCodes.length) lines.push(`    errors: ${s.errorCodes.join(', ')}`);
  } else if (h.key.seen) lines.push('  this source: never seen with this key');
  lines.push(`  neighbours in ${h.neighbours.prefix}: ${h.neighbours.addresses} addresses, ${h.neighbours.calls} calls`);
  for (const n of h.neighbours.sources) lines.push(`    ${n.ip}: ${n.calls} calls on ${n.days} days, last ${n.lastSeen}`);
  if (h.otherKeys.length) lines.push(`  other keys from this address: ${h.otherKeys.map((k) => `${k.accessKeyId} (${k.calls})`).join(', ')}`);
  const looks = [h.looks.newSource ? 'new' : null, h.looks.poolLike ? 'dynamic pool' : null, h.looks.possibleLeak ? 'possible leak' : null].filter(Boolean);
  lines.push(`  looks: ${looks.length ? looks.join(', ') : 'established'}`);
  for (const r of h.looks.reasons) lines.push(`    - ${r}`);
  return lines;
}

// ---------------------------------------------------------------- denials

interface DenialsFlags extends CommonFlags {
  since: string;
  key?: string[];
  acl?: string;
}

interface ExplainedDenial extends DenialGroup {
  explanation: Explanation | null;
}

async function denialsCommand(flags: DenialsFlags): Promise<number> {
  const store = await openStore(flags);
  try {
    const acls = flags.acl ? await readAcls(flags.acl, store) : null;
    const window = await resolveStoreWindow(store, { since: flags.since }, '7d');
    const groups = await loadDenials(store, { window, keys: flags.key });
    const explained: ExplainedDenial[] = groups.map((g) => {
      const address = g.ip ? parseAddress(g.ip) : null;
      const explanation = address && (g.sourceKind === 'public' || g.sourceKind === 'vpc')
        ? explainCall(acls?.inForce ?? null, { accessKeyId: g.accessKeyId, address, vpcId: g.vpcId, service: g.exempt ? g.services[0] ?? null : null })
        : null;
      return { ...g, explanation };
    });
    const totals = { groups: explained.length, deniedCalls: explained.reduce((s, g) => s + g.deniedCalls, 0), keys: new Set(explained.map((g) => g.accessKeyId)).size };
    if (flags.json) printJson({ window, totals, denials: explained });
    else {
      const lines = [`${totals.deniedCalls} calls refused by an ACL from ${totals.groups} key × source pairs (${totals.keys} keys), ${window.from} .. ${window.to}`];
      for (const g of explained) {
        lines.push('', `${g.accessKeyId} from ${g.sourceKind} ${g.ip ?? '(none)'}${g.vpcId ? ` in ${g.vpcId}` : ''}: ${g.deniedCalls} refused on ${g.days} days, ${g.firstDenied} .. ${g.lastDenied}`);
        lines.push(`  services: ${g.services.join(', ') || '-'}; APIs: ${g.eventNames.join(', ') || '-'}; example event ${g.exampleEventId}`);
        lines.push(g.history.allowedCalls > 0
          ? `  before: ${g.history.allowedCalls} allowed calls from this source, last ${g.history.lastAllowed}: the ACL or its status changed`
          : '  before: no call from this source was ever allowed: a new source (or one never admitted)');
        if (g.explanation) lines.push(...explanationText(g.explanation).slice(1));
        else lines.push(`  the recorded source is ${g.sourceKind}: an ACL decision cannot be reproduced for it`);
      }
      out(lines);
    }
    return totals.groups > 0 ? EXIT.ATTENTION : EXIT.OK;
  } finally {
    store.close();
  }
}

// ---------------------------------------------------------------- simulate

interface SimulateFlags extends CommonFlags {
  since: string;
  acl?: string;
  examples: string;
}

async function simulateCommand(proposalPath: string | undefined, flags: SimulateFlags): Promise<number> {
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

// ---------------------------------------------------------------- backtest

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

async function backtestCommand(flags: BacktestFlags): Promise<number> {
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

// ---------------------------------------------------------------- drift

interface DriftFlags extends CommonFlags {
  approved: string;
  since: string;
  unusedDays: string;
  acl?: string;
}

async function driftCommand(flags: DriftFlags): Promise<number> {
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
