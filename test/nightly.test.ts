// `keyfence nightly` night after night, each run a real CLI process on a real DuckDB file: exit codes for
// cron, dated artifacts, new findings against the previous night, drift, retention, config errors.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { NightlySummary } from '../review/nightly.ts';
import { Store } from '../ingest/store.ts';
import { cli, DEMO_TRAIL, tempDir } from './report-helpers.ts';

let dir: string;
let out: string;

function writeConfig(name: string, value: unknown): string {
  const file = join(dir, name);
  writeFileSync(file, JSON.stringify(value, null, 2));
  return file;
}

function night(config: string, date: string, extra: string[] = []): { status: number; summary: NightlySummary; stderr: string } {
  const r = cli(['nightly', '--config', config, '--date', date, '--json', ...extra]);
  let summary: NightlySummary;
  try {
    summary = JSON.parse(r.stdout) as NightlySummary;
  } catch {
    throw new Error(`nightly printed no summary (exit ${r.status}): ${r.stdout}\n${r.stderr}`);
  }
  return { status: r.status, summary, stderr: r.stderr };
}

beforeAll(() => {
  dir = tempDir('nightly');
  out = join(dir, 'out');
});

describe('nightly configuration errors', () => {
  it('names the exact field and exits 1', () => {
    // --json: the error is one JSON object on stdout; its message and context name the field.
    const config = writeConfig('bad.json', { sources: { kafka: { brokers: [''], topic: 't', group: 'g' } }, keep: '90d' });
    const r = cli(['nightly', '--config', config, '--date', '2026-11-20', '--json']);
    expect(r.status).toBe(1);
    const error = (JSON.parse(r.stdout) as { error: { message: string; context: { path: string } } }).error;
    expect(error.context.path).toBe('sources.kafka.brokers[0]');
    expect(error.message).toContain('sources.kafka.brokers[0]');
  });

  it('documents the exit codes in --help', () => {
    const r = cli(['nightly', '--help']);
    expect(r.status).toBe(0);
    for (const line of ['3  failure', '4  a person is needed', '2  some input was rejected', '0  nothing to review']) expect(r.stdout).toContain(line);
  });
});

describe('night after night', () => {
  let config: string;

  beforeAll(() => {
    config = writeConfig('keyfence.config.json', { db: 'k.duckdb', output: 'out', sources: { files: [DEMO_TRAIL] } });
  });

  it('first night: every finding is new, so a person is needed (4 wins over partly rejected input)', () => {
    const { status, summary, stderr } = night(config, '2026-11-20');
    expect(status).toBe(4);
    expect(summary.status).toBe('attention');
    expect(summary.ingest[0]).toMatchObject({ source: 'files', ok: true });
    expect(summary.ingest[0]!.quarantined).toBeGreaterThan(0);
    expect(summary.findings!.new.length).toBe(summary.findings!.total);
    expect(summary.findings!.previousNight).toBeNull();
    expect(stderr).toContain('keyfence nightly: ingest files:');
    for (const f of ['proposal-2026-11-20.json', 'review-2026-11-20.md', 'report-2026-11-20.html', 'nightly-2026-11-20.json']) expect(existsSync(join(out, f))).toBe(true);
    const proposal = JSON.parse(readFileSync(join(out, 'proposal-2026-11-20.json'), 'utf8')) as { version: number; accessKeys: unknown[] };
    expect(proposal.version).toBe(1);
    expect(proposal.accessKeys.length).toBe(summary.proposal!.acls);
    expect(readFileSync(join(out, 'review-2026-11-20.md'), 'utf8')).toMatch(/^# keyfence nightly 2026-11-20\n/);
    expect(readFileSync(join(out, 'report-2026-11-20.html'), 'utf8')).toContain('id="keyfence-data"');
  });

  it('second night, nothing new: exit 0 and the previous night is the baseline', () => {
    const { status, summary } = night(config, '2026-11-21');
    expect(status).toBe(0);
    expect(summary.findings!.new).toEqual([]);
    expect(summary.findings!.previousNight).toBe(join(out, 'nightly-2026-11-20.json'));
    expect(summary.reasons).toEqual(['nothing to review']);
  });

  it('a night with only rejected input: exit 2', () => {
    const extra = join(dir, 'extra');
    mkdirSync(extra, { recursive: true });
    writeFileSync(join(extra, 'broken.ndjson'), '{"event": "not an event"\n');
    const withExtra = writeConfig('extra.json', { db: 'k.duckdb', output: 'out', sources: { files: [DEMO_TRAIL, extra] } });
    const { status, summary } = night(withExtra, '2026-11-22');
    expect(status).toBe(2);
    expect(summary.status).toBe('partial');
    expect(summary.ingest[0]!.quarantined).toBe(1);
    expect(summary.findings!.new).toEqual([]);
  });

  it('drift against the approval, with --keep pruning old events into the rollup: exit 4 for the key the approval does not name', async () => {
    const proposalFile = join(out, 'proposal-2026-11-21.json');
    const firstKey = (JSON.parse(readFileSync(proposalFile, 'utf8')) as { accessKeys: Array<{ accessKeyId: string }> }).accessKeys[0]!.accessKeyId;
    const approved = join(dir, 'approved.json');
    expect(cli(['approve', proposalFile, '--by', 'nightly-test', '--keys', firstKey, '-o', approved]).status).toBe(0);
    const withApproval = writeConfig('approved.json.config', { db: 'k.duckdb', output: 'out', sources: { files: [DEMO_TRAIL] }, approved: 'approved.json', drift: { since: '7d' } });
    const { status, summary } = night(withApproval, '2026-11-23', ['--keep', '10d']);
    expect(status).toBe(4);
    expect(summary.drift!.needsAttention).toBe(true);
    expect(summary.drift!.newKeysWithoutAcl).toBeGreaterThan(0);
    expect(summary.approval).toEqual({ file: approved, sealOk: true });
    expect(summary.reasons.some((r) => r.startsWith('drift since approval'))).toBe(true);
    // Retention ran first: nothing before the cutoff is left, and the rollup holds every pruned call.
    expect(summary.retention!.prunedEvents).toBeGreaterThan(0);
    expect(summary.retention!.cutoff).toMatch(/T00:00:00Z$/);
    const store = await Store.open(join(dir, 'k.duckdb'), { readOnly: true });
    try {
      const [before] = await store.query<{ n: number }>(`SELECT count(*) AS n FROM events WHERE event_time < CAST('${summary.retention!.cutoff}' AS TIMESTAMP)`);
      expect(before!.n).toBe(0);
      const [rolled] = await store.query<{ n: number }>('SELECT sum(calls) AS n FROM source_rollup');
      expect(rolled!.n).toBe(summary.retention!.prunedEvents);
    } finally {
      store.close();
    }
  });

  it('a failure (the database cannot be opened) is exit 3, with the summary still written', () => {
    const broken = writeConfig('broken.json', { db: '.', output: 'out-broken', sources: { files: [DEMO_TRAIL] } });
    const { status, summary } = night(broken, '2026-11-25');
    expect(status).toBe(3);
    expect(summary.status).toBe('failed');
    expect(summary.reasons.some((r) => r.startsWith('files failed'))).toBe(true);
    expect(existsSync(join(dir, 'out-broken', 'nightly-2026-11-25.json'))).toBe(true);
    expect(summary.artifacts.report).toBeNull();
  });
});
