import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Store } from '../ingest/store.ts';
import { analyzeStore } from '../analyze/analysis.ts';
import { DEFAULT_RECOMMEND_OPTIONS, recommend } from '../recommend/proposal.ts';
import { approve } from '../review/approve.ts';
import { buildReport, reportNeedsAttention } from '../review/report.ts';
import { timelines, windowDays, type ReportData } from '../review/report-data.ts';
import { escapeHtml, jsonForScript } from '../review/report-html.ts';
import { cli, demoDbWithInjection, EVIL_AGENT, EVIL_KEY, EVIL_USER, tempDir } from './report-helpers.ts';

describe('report pieces', () => {
  it('embeds JSON that cannot end its script element and parses back to the same value', () => {
    const value = { a: '</script><script>alert(1)</script>', b: '<!-- x -->', c: 'a & b \u2028 \u2029' };
    const text = jsonForScript(value);
    expect(text).not.toMatch(/<|>|&|\u2028|\u2029/);
    expect(JSON.parse(text)).toEqual(value);
  });

  it('escapes HTML text', () => {
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
  });

  it('lists every UTC day the window touches', () => {
    expect(windowDays({ from: '2026-11-01T22:00:00Z', to: '2026-11-04T01:00:00Z' })).toEqual(['2026-11-01', '2026-11-02', '2026-11-03', '2026-11-04']);
  });

  it('draws the top sources by calls and sums the rest as other', () => {
    const days = ['2026-11-01', '2026-11-02'];
    const row = (ip: string, day: string, calls: number) => ({ accessKeyId: 'K', sourceKind: 'public' as const, sourceIp: ip, vpcId: null, day, calls, errorCalls: 0 });
    const series = timelines([row('1.1.1.1', days[0]!, 10), row('2.2.2.2', days[1]!, 5), row('3.3.3.3', days[0]!, 1), row('4.4.4.4', days[1]!, 2)], days, 2).get('K')!;
    expect(series).toEqual([
      { label: '1.1.1.1', calls: [10, 0] },
      { label: '2.2.2.2', calls: [0, 5] },
      { label: 'other (2 sources)', calls: [1, 2] },
    ]);
  });
});

describe('report over the demo history', () => {
  let dir: string;
  let db: string;
  let approvedFile: string;
  let data: ReportData;
  let html: string;

  beforeAll(async () => {
    dir = tempDir('report');
    db = demoDbWithInjection(dir);
    const store = await Store.open(db, { readOnly: true });
    try {
      const analysis = await analyzeStore(store, { since: '30d' });
      const proposal = recommend(analysis.profiles, { ...DEFAULT_RECOMMEND_OPTIONS, window: analysis.window, generatedAt: '2026-11-20T00:00:00Z' });
      // Approve every key but the injection key: it must show up unprotected.
      const keys = proposal.accessKeys.map((k) => k.accessKeyId).filter((k) => k !== EVIL_KEY);
      approvedFile = join(dir, 'approved.json');
      writeFileSync(approvedFile, JSON.stringify(approve(proposal, { approvedBy: 'tester', scopes: keys, now: new Date('2026-11-20T00:00:00Z') })));
      const report = await buildReport(store, { window: '30d', approvedFile, now: new Date('2026-11-20T01:00:00Z') });
      data = report.data;
      html = report.html;
    } finally {
      store.close();
    }
  });

  afterAll(() => undefined);

  it('counts protected and unprotected keys from the approval', () => {
    expect(data.summary.protectedKeys + data.summary.unprotectedKeys).toBe(data.summary.keys);
    const evil = data.keys.find((k) => k.accessKeyId === EVIL_KEY)!;
    expect(evil.protectedBy).toBeNull();
    expect(data.keys.filter((k) => k.protectedBy === 'key').length).toBe(data.summary.protectedKeys);
    expect(data.summary.calls).toBe(data.keys.reduce((n, k) => n + k.calls, 0));
  });

  it('puts the most urgent keys first', () => {
    const order = ['high', 'medium', 'low', 'none'];
    const ranks = data.keys.map((k) => order.indexOf(k.urgency));
    expect(ranks).toEqual([...ranks].sort((a, b) => a - b));
    expect(data.keys[0]!.urgency).toBe('high');
    expect(data.keys[0]!.reasons.length).toBeGreaterThan(0);
  });

  it('reports drift since the approval: the unapproved key with governed traffic', () => {
    expect(data.drift).not.toBeNull();
    // The injection key's calls end on the newest day: in the recent window, and not named by the approval.
    const evil = data.keys.find((k) => k.accessKeyId === EVIL_KEY)!;
    expect(evil.drift?.withoutAcl).toBe(true);
    expect(data.drift!.newKeysWithoutAcl).toBeGreaterThanOrEqual(1);
    expect(reportNeedsAttention(data)).toBe(true);
  });

  it('gives each key a timeline aligned with the window days whose total is its governed calls', () => {
    for (const k of data.keys) {
      for (const s of k.timeline) expect(s.calls.length).toBe(data.days.length);
    }
    const evil = data.keys.find((k) => k.accessKeyId === EVIL_KEY)!;
    expect(evil.timeline.reduce((n, s) => n + s.calls.reduce((a, b) => a + b, 0), 0)).toBe(24);
    expect(evil.proposal.entries.reduce((n, e) => n + e.calls, 0)).toBe(24);
  });

  it('is one static file: no external URL loaded, exactly three scripts, allowed by hash in the CSP', () => {
    const markup = html.replace(/(<script\b[^>]*>)[\s\S]*?<\/script>/g, '$1</script>');
    expect(/<(link|img|iframe|object|embed|base)\b/i.test(markup)).toBe(false);
    expect(/\s(src|href|action)\s*=/i.test(markup)).toBe(false);
    const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)];
    expect(scripts.length).toBe(3);
    expect(scripts[0]![1]).toContain('type="application/json"');
    const csp = /http-equiv="Content-Security-Policy" content="([^"]+)"/.exec(html)![1]!.replaceAll('&#39;', "'");
    expect(csp).toContain("default-src 'none'");
    for (const s of scripts.slice(1)) expect(csp).toContain(`'sha256-${createHash('sha256').update(s[2]!).digest('base64')}'`);
    expect(scripts[1]![2]).toMatch(/^\/\*!\s*\n \* Chart\.js v4/);
    expect(scripts[1]![2]).toContain('Released under the MIT License');
  });

  it('keeps a hostile user name and user agent as data, never markup', () => {
    const scripts = [...html.matchAll(/<script\b[^>]*>([\s\S]*?)<\/script>/g)];
    const embedded = JSON.parse(scripts[0]![1]!) as ReportData;
    expect(embedded).toEqual(data);
    const evil = embedded.keys.find((k) => k.accessKeyId === EVIL_KEY)!;
    expect(evil.userName).toBe(EVIL_USER);
    expect(evil.userAgents).toEqual([EVIL_AGENT]);
    expect(html).not.toContain('window.__pwned=1</script>');
    expect(html).not.toContain('<img src=x');
  });

  it('the report command writes the page and exits 4 when something is urgent', () => {
    const out = join(dir, 'cli-report.html');
    const r = cli(['report', '--db', db, '--approved', approvedFile, '-o', out, '--json']);
    expect(r.status).toBe(4);
    const printed = JSON.parse(r.stdout) as { report: string; needsAttention: boolean; data: ReportData };
    expect(printed.report).toBe(out);
    expect(printed.needsAttention).toBe(true);
    expect(printed.data.summary.keys).toBe(data.summary.keys);
  });

  it('shows a tampered approval as a broken seal that needs a person', async () => {
    const record = JSON.parse(readFileSync(approvedFile, 'utf8')) as { proposal: { accessKeys: Array<{ public: { cidrs: string[] } | null }> } };
    const target = record.proposal.accessKeys.find((k) => k.public && k.public.cidrs.length > 0)!;
    target.public!.cidrs[0] = '8.8.8.8/32';
    const tampered = join(dir, 'tampered.json');
    writeFileSync(tampered, JSON.stringify(record));
    const store = await Store.open(db, { readOnly: true });
    try {
      const report = await buildReport(store, { window: '30d', approvedFile: tampered, now: new Date('2026-11-20T01:00:00Z') });
      expect(report.data.approval!.sealOk).toBe(false);
      expect(report.data.approval!.sealProblems.join(' ')).toContain('SHA-256 mismatch');
      expect(reportNeedsAttention(report.data)).toBe(true);
    } finally {
      store.close();
    }
    expect(data.approval!.sealOk).toBe(true);
  });

  it('the report command names a missing approval file', () => {
    const r = cli(['report', '--db', db, '--approved', join(dir, 'nope.json'), '-o', join(dir, 'x.html')]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('nope.json');
  });
});
