// One night of keyfence: ingest from the configured sources, prune (retention), analyze, recommend, measure
// drift against the approval, compare findings with the previous night, write dated artifacts, and say with
// an exit code what cron should do. Sources are injected as steps (bin/ wires files, SLS and Kafka), so this
// module knows nothing about how a source is read.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EXIT, isKeyfenceError, type ExitCode } from '../model/errors.ts';
import type { IngestSummary } from '../model/types.ts';
import { parseDuration } from '../model/window.ts';
import { Store } from '../ingest/store.ts';
import type { Finding } from '../analyze/findings.ts';
import { render } from '../recommend/render.ts';
import type { NightlyConfig } from './config.ts';
import { buildReport } from './report.ts';
import { pruneEvents, type PruneResult } from './retention.ts';

export const NIGHTLY_SUMMARY_KIND = 'keyfence-nightly';

/** One configured source: reads into the database file and returns what it did (throws when it failed). */
export interface NightlyIngestStep {
  source: 'files' | 'sls' | 'kafka';
  run: () => Promise<IngestSummary>;
}

export interface NightlyOptions {
  config: NightlyConfig;
  /** The night's date, `YYYY-MM-DD`: names the artifacts. */
  date: string;
  now: Date;
  /** Overrides `config.keep` (the `--keep` flag). */
  keep?: string;
  steps: NightlyIngestStep[];
  /** One progress line (the CLI writes it to stderr). */
  log: (line: string) => void;
}

export interface FindingRef {
  id: string;
  keyId: string;
  severity: string;
  title: string;
  detail: string;
  /** Stable identity across nights: ID, key and the source or block it is about. */
  fingerprint: string;
}

export interface NightlySummary {
  kind: typeof NIGHTLY_SUMMARY_KIND;
  version: 1;
  date: string;
  generatedAt: string;
  /** ok (0) · partial (2) · failed (3) · attention (4): see docs/review.md for the precedence. */
  status: 'ok' | 'partial' | 'failed' | 'attention';
  exitCode: ExitCode;
  /** Why the exit code is what it is, one sentence each. */
  reasons: string[];
  ingest: Array<{ source: string; ok: boolean; read: number; inserted: number; duplicates: number; quarantined: number; errors: string[] }>;
  retention: PruneResult | null;
  window: { from: string; to: string } | null;
  proposal: { acls: number; entries: number; accountLevel: boolean } | null;
  findings: { total: number; bySeverity: Record<string, number>; all: FindingRef[]; new: FindingRef[]; previousNight: string | null } | null;
  drift: { needsAttention: boolean; newDeniedSources: number; legitimateNewDeniedSources: number; unusedEntries: number; dormantKeys: number; newKeysWithoutAcl: number } | null;
  approval: { file: string; sealOk: boolean | null } | null;
  artifacts: { proposal: string | null; review: string | null; report: string | null; summary: string };
}

export function findingFingerprint(f: Pick<Finding, 'id' | 'keyId' | 'evidence'>): string {
  const e = f.evidence ?? {};
  const where = ['source', 'cidr', 'vpcId'].map((k) => (e[k] === undefined || e[k] === null ? '' : String(e[k])));
  return [f.id, f.keyId, ...where].join('|');
}

/** The summary of the latest night before `date` that got as far as findings, or null. */
export function previousNightSummary(output: string, date: string): { file: string; summary: NightlySummary } | null {
  if (!existsSync(output)) return null;
  const nights = readdirSync(output)
    .map((f) => /^nightly-(\d{4}-\d{2}-\d{2})\.json$/.exec(f))
    .filter((m): m is RegExpExecArray => m !== null && m[1]! < date)
    .sort((a, b) => (a[1]! < b[1]! ? 1 : -1));
  for (const m of nights) {
    const file = join(output, m[0]);
    try {
      const summary = JSON.parse(readFileSync(file, 'utf8')) as NightlySummary;
      if (summary.kind === NIGHTLY_SUMMARY_KIND && summary.findings) return { file, summary };
    } catch {
      // An unreadable summary is no baseline; an older one may be.
    }
  }
  return null;
}

/**
 * The exit code, by precedence: a failure (3) first, because the night's picture is incomplete; then
 * something for a person (4); then partly rejected input (2); else 0.
 */
export function nightlyExitCode(flags: { failed: boolean; attention: boolean; partial: boolean }): ExitCode {
  if (flags.failed) return EXIT.FATAL;
  if (flags.attention) return EXIT.ATTENTION;
  if (flags.partial) return EXIT.PARTIAL;
  return EXIT.OK;
}

const STATUS: Record<ExitCode, NightlySummary['status']> = { 0: 'ok', 1: 'failed', 2: 'partial', 3: 'failed', 4: 'attention' };

function writeAtomically(file: string, content: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, content);
  renameSync(tmp, file);
}

export async function runNightly(options: NightlyOptions): Promise<NightlySummary> {
  const { config, date, log } = options;
  mkdirSync(config.output, { recursive: true });
  const summaryFile = join(config.output, `nightly-${date}.json`);
  const summary: NightlySummary = {
    kind: NIGHTLY_SUMMARY_KIND, version: 1, date, generatedAt: options.now.toISOString().replace(/\.\d{3}Z$/, 'Z'),
    status: 'ok', exitCode: EXIT.OK, reasons: [], ingest: [], retention: null, window: null, proposal: null, findings: null, drift: null, approval: null,
    artifacts: { proposal: null, review: null, report: null, summary: summaryFile },
  };
  let failed = false;
  let partial = false;
  let attention = false;

  for (const step of options.steps) {
    log(`ingest ${step.source}: started`);
    try {
      const s = await step.run();
      summary.ingest.push({ source: step.source, ok: true, read: s.read, inserted: s.inserted, duplicates: s.duplicates, quarantined: s.quarantined, errors: s.errors });
      log(`ingest ${step.source}: ${s.read} read, ${s.inserted} new, ${s.duplicates} already stored, ${s.quarantined} quarantined`);
      if (s.quarantined > 0 || s.errors.length > 0) {
        partial = true;
        summary.reasons.push(`${step.source}: ${s.quarantined} record(s) quarantined${s.errors.length ? `, ${s.errors.length} input error(s)` : ''} (see \`keyfence quarantine\`)`);
      }
    } catch (e) {
      failed = true;
      const message = e instanceof Error ? e.message : String(e);
      summary.ingest.push({ source: step.source, ok: false, read: 0, inserted: 0, duplicates: 0, quarantined: 0, errors: [message] });
      summary.reasons.push(`${step.source} failed: ${message}${isKeyfenceError(e) && e.hint ? ` (${e.hint})` : ''}`);
      log(`ingest ${step.source}: FAILED: ${message}`);
    }
  }

  const keepText = options.keep ?? config.keep;
  try {
    const store = await Store.open(config.db);
    try {
      if (keepText) {
        const keepMs = parseDuration(keepText)!;
        summary.retention = await pruneEvents(store, keepMs);
        log(summary.retention.cutoff
          ? `retention ${keepText}: pruned ${summary.retention.prunedEvents} event(s) before ${summary.retention.cutoff} (rolled up into source_rollup)`
          : `retention ${keepText}: nothing older than the cutoff`);
      }
      log('analyze, recommend, findings, drift');
      const report = await buildReport(store, {
        window: config.window,
        approvedFile: config.approved,
        recommend: config.recommend,
        findings: config.findings,
        driftSince: config.drift.since,
        unusedDays: config.drift.unusedDays,
        now: options.now,
      });
      const { review, data } = report;
      summary.window = review.window;
      summary.proposal = { acls: data.summary.proposedAcls, entries: data.summary.proposedEntries, accountLevel: data.summary.accountLevelProposed };
      const refs = review.findings.map((f): FindingRef => ({ id: f.id, keyId: f.keyId, severity: f.severity, title: f.title, detail: f.detail, fingerprint: findingFingerprint(f) }));
      const previous = previousNightSummary(config.output, date);
      const before = new Set(previous?.summary.findings?.all.map((f) => f.fingerprint) ?? []);
      const fresh = refs.filter((f) => !before.has(f.fingerprint));
      summary.findings = { total: refs.length, bySeverity: data.summary.findingsBySeverity, all: refs, new: fresh, previousNight: previous ? previous.file : null };
      if (fresh.length > 0) {
        attention = true;
        summary.reasons.push(`${fresh.length} new finding(s) since ${previous ? previous.summary.date : 'the first night'}: ${fresh.slice(0, 3).map((f) => `${f.id} ${f.keyId}`).join(', ')}${fresh.length > 3 ? ', …' : ''}`);
      }
      if (data.drift) {
        summary.drift = {
          needsAttention: data.drift.needsAttention, newDeniedSources: data.drift.newDeniedSources, legitimateNewDeniedSources: data.drift.legitimateNewDeniedSources,
          unusedEntries: data.drift.unusedEntries, dormantKeys: data.drift.dormantKeys, newKeysWithoutAcl: data.drift.newKeysWithoutAcl,
        };
        if (data.drift.needsAttention) {
          attention = true;
          const d = data.drift;
          summary.reasons.push(`drift since approval: ${d.newDeniedSources} new source(s) the approval would deny (${d.legitimateNewDeniedSources} legitimate), ${d.unusedEntries} unused entr${d.unusedEntries === 1 ? 'y' : 'ies'}, ${d.dormantKeys} dormant key(s), ${d.newKeysWithoutAcl} new key(s) without an ACL`);
        }
      }
      if (data.approval) {
        summary.approval = { file: data.approval.file, sealOk: data.approval.sealOk };
        if (data.approval.sealOk === false) {
          attention = true;
          summary.reasons.push(`the approval ${data.approval.file} changed since it was sealed: ${data.approval.sealProblems.join('; ')}`);
        }
      }
      const proposalFile = join(config.output, `proposal-${date}.json`);
      const reviewFile = join(config.output, `review-${date}.md`);
      const reportFile = join(config.output, `report-${date}.html`);
      writeAtomically(proposalFile, render(review.proposal, 'json'));
      writeAtomically(reviewFile, `${nightlyMarkdown(summary, fresh)}\n${render(review.proposal, 'markdown')}`);
      writeAtomically(reportFile, report.html);
      summary.artifacts = { proposal: proposalFile, review: reviewFile, report: reportFile, summary: summaryFile };
      log(`wrote ${proposalFile}, ${reviewFile}, ${reportFile}`);
    } finally {
      store.close();
    }
  } catch (e) {
    failed = true;
    const message = e instanceof Error ? e.message : String(e);
    summary.reasons.push(`analysis failed: ${message}${isKeyfenceError(e) && e.hint ? ` (${e.hint})` : ''}`);
    log(`analysis FAILED: ${message}`);
  }

  summary.exitCode = nightlyExitCode({ failed, attention, partial });
  summary.status = STATUS[summary.exitCode];
  if (summary.reasons.length === 0) summary.reasons.push('nothing to review');
  writeAtomically(summaryFile, `${JSON.stringify(summary, null, 2)}\n`);
  log(`done: ${summary.status} (exit ${summary.exitCode})`);
  return summary;
}

/** The top of the night's review document: what changed and why the exit code. */
function nightlyMarkdown(summary: NightlySummary, fresh: FindingRef[]): string {
  const lines = [`# keyfence nightly ${summary.date}`, ''];
  for (const r of summary.reasons) lines.push(`- ${r}`);
  if (summary.reasons.length === 0) lines.push('- nothing needs a person tonight');
  lines.push('');
  if (fresh.length > 0) {
    lines.push('## New findings since the previous night', '');
    for (const f of fresh) lines.push(`- **${f.severity}** \`${f.keyId}\` ${f.title}: ${f.detail.replace(/\r?\n/g, ' ')}`);
    lines.push('');
  }
  if (summary.drift) {
    const d = summary.drift;
    lines.push('## Drift since approval', '', `- new sources the approval would deny: ${d.newDeniedSources} (${d.legitimateNewDeniedSources} legitimate)`,
      `- unused entries: ${d.unusedEntries}`, `- dormant approved keys: ${d.dormantKeys}`, `- new keys without an ACL: ${d.newKeysWithoutAcl}`, '');
  }
  return lines.join('\n');
}
