// The handlers of `keyfence analyze` and `keyfence findings` (registered in analyze.ts) and their text output.
import { EXIT, UsageError } from '../../model/errors.ts';
import type { KeyProfile } from '../../model/types.ts';
import { Store } from '../../ingest/store.ts';
import { analyzeStore, hasGovernedTraffic, type AnalysisResult } from '../../analyze/analysis.ts';
import { DEFAULT_FINDINGS_OPTIONS, findingsExitCode, loadFindings } from '../../analyze/findings.ts';
import { loadRollupLastSeen } from '../../analyze/rollup.ts';
import { printJson, resolveDbPaths } from '../common.ts';
import type { AnalyzeOptions, FindingsOptions } from './analyze.ts';

export async function runAnalyze(opts: AnalyzeOptions): Promise<number> {
  if (opts.engine === 'sls') {
    if (opts.db) throw new UsageError('--engine sls reads the logstore, not a database: drop --db');
    const { analyzeViaSls } = await import('../../analyze/sls-pushdown.ts');
    return analyzeViaSls(opts);
  }
  const store = await Store.open(resolveDbPaths(opts.db), { readOnly: true });
  try {
    const result = await analyzeStore(store, { since: opts.since, from: opts.from, to: opts.to, keys: opts.key });
    if (opts.json) printJson({ window: result.window, profiles: result.profiles, keysWithoutTraffic: result.keysWithoutTraffic, sts: result.sts, notes: result.notes });
    else process.stdout.write(renderAnalysisText(result));
    return EXIT.OK;
  } finally {
    store.close();
  }
}

export async function runFindings(opts: FindingsOptions): Promise<number> {
  const dormantDays = Number(opts.dormantDays ?? DEFAULT_FINDINGS_OPTIONS.dormantDays);
  if (!Number.isInteger(dormantDays) || dormantDays < 1) {
    throw new UsageError(`--dormant-days ${JSON.stringify(opts.dormantDays)} is not a whole number of days ≥ 1`);
  }
  const store = await Store.open(resolveDbPaths(opts.db), { readOnly: true });
  try {
    const request = { since: opts.since, from: opts.from, to: opts.to, keys: opts.key };
    const report = await loadFindings(store, request, { ...DEFAULT_FINDINGS_OPTIONS, dormantDays }, await loadRollupLastSeen(store));
    if (opts.json) printJson(report);
    else process.stdout.write(renderFindingsText(report));
    return findingsExitCode(report.findings);
  } finally {
    store.close();
  }
}

// ---------------------------------------------------------------- text

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === 0 || i === 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd()).join('\n');
}

function vpcCount(p: KeyProfile): string {
  if (p.vpcSources.length === 0) return '0';
  return `${p.vpcSources.length} in ${new Set(p.vpcSources.map((s) => s.vpcId)).size}`;
}

/** Text output lists this many notes; --json has them all. */
const MAX_TEXT_NOTES = 20;

export function renderAnalysisText(result: AnalysisResult): string {
  const out: string[] = [`window ${result.window.from} → ${result.window.to}`];
  const permanent = result.profiles.filter((p) => p.keyKind !== 'sts');
  out.push(`${permanent.length} permanent key(s) with calls in the window`, '');
  if (result.profiles.length > 0) {
    const rows = [['KEY', 'USER', 'CALLS', 'PUBLIC', 'VPC', 'EXEMPT-ONLY', 'STS', 'INTERNAL', 'SERVICE', 'INVALID', 'DENIED']];
    for (const p of result.profiles) {
      rows.push([
        p.accessKeyId + (p.identityType === 'root-account' ? ' (root)' : ''),
        p.userName ?? '-',
        String(p.totalCalls),
        String(p.publicSources.length),
        vpcCount(p),
        String(p.exemptOnlySources.length),
        String(p.stsCalls),
        String(p.internalCalls),
        String(p.serviceCalls),
        String(p.invalidSourceCalls),
        String(p.deniedCalls),
      ]);
    }
    out.push(table(rows), '');
    out.push('PUBLIC and VPC count distinct source addresses on governed services (VPC: addresses in N VPCs); EXEMPT-ONLY counts addresses seen only on services ACLs do not govern; the other columns count calls.');
  }
  const ungoverned = result.profiles.filter((p) => p.keyKind !== 'sts' && !hasGovernedTraffic(p)).length;
  if (ungoverned > 0) out.push(`${ungoverned} key(s) have no governed traffic: nothing to put in an ACL.`);
  if (result.sts) {
    out.push(result.sts.calls > 0
      ? `STS: ${result.sts.calls} call(s) with ${result.sts.keys} temporary key(s): never governed by network ACLs, not profiled (use --key STS.… to see one).`
      : 'STS: no calls with temporary keys in the window.');
  }
  if (result.notes.length > 0) {
    out.push('', ...result.notes.slice(0, MAX_TEXT_NOTES).map((n) => `note: ${n}`));
    if (result.notes.length > MAX_TEXT_NOTES) out.push(`… and ${result.notes.length - MAX_TEXT_NOTES} more notes (all of them with --json)`);
  }
  return `${out.join('\n')}\n`;
}

export function renderFindingsText(report: Awaited<ReturnType<typeof loadFindings>>): string {
  const out: string[] = [`window ${report.window.from} → ${report.window.to}; newest event ${report.newestEvent}`];
  if (report.findings.length === 0) {
    out.push('no findings');
    return `${out.join('\n')}\n`;
  }
  const bySeverity = new Map<string, number>();
  for (const f of report.findings) bySeverity.set(f.severity, (bySeverity.get(f.severity) ?? 0) + 1);
  out.push(`${report.findings.length} finding(s): ${[...bySeverity].map(([s, n]) => `${n} ${s}`).join(', ')}`, '');
  for (const f of report.findings) {
    out.push(`[${f.severity.toUpperCase()}] ${f.id}  ${f.keyId}  ${f.title}`, `  ${f.detail}`);
  }
  // Advice once per kind of finding, not once per finding.
  const advice = new Map(report.findings.map((f) => [f.id, f.advice]));
  out.push('', 'advice:', ...[...advice].map(([id, text]) => `  ${id}: ${text}`));
  return `${out.join('\n')}\n`;
}
