// The HTML report in a real browser: Debian's chromium driven by playwright-core, the page opened from disk.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReportData } from '../review/report-data.ts';
import { cli, demoDbWithInjection, EVIL_KEY, EVIL_USER, ROOT, tempDir } from './report-helpers.ts';

/** KEYFENCE_CHROMIUM points elsewhere (e.g. to check that a missing browser fails this test). */
const CHROMIUM = process.env.KEYFENCE_CHROMIUM ?? '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'];
const missing = !existsSync(CHROMIUM);
const skip = missing && process.env.KEYFENCE_SKIP_BROWSER === '1';
if (skip) console.warn(`report-browser: skipped: ${CHROMIUM} is missing and KEYFENCE_SKIP_BROWSER=1 (run scripts/install-chromium.sh to run it)`);

function valueAt(data: unknown, path: string): unknown {
  return path.split('.').reduce<unknown>((v, part) => (v === null || v === undefined ? undefined : (v as Record<string, unknown>)[part]), data);
}

describe.skipIf(skip)('HTML report in chromium', () => {
  let browser: Browser;
  let page: Page;
  let data: ReportData;
  let reportUrl: string;
  const consoleErrors: string[] = [];
  const failedRequests: string[] = [];
  const requests: string[] = [];

  beforeAll(async () => {
    if (missing) throw new Error(`${CHROMIUM} is missing: run scripts/install-chromium.sh (or set KEYFENCE_SKIP_BROWSER=1 to skip this test)`);
    const dir = tempDir('browser');
    const db = demoDbWithInjection(dir);
    const proposal = join(dir, 'proposal.json');
    expect(cli(['recommend', '--db', db, '--format', 'json', '-o', proposal]).status).not.toBe(3);
    const approved = join(dir, 'approved.json');
    expect(cli(['approve', proposal, '--by', 'browser-test', '-o', approved]).status).toBe(0);
    const file = join(dir, 'report.html');
    const r = cli(['report', '--db', db, '--approved', approved, '-o', file, '--json']);
    expect([0, 4]).toContain(r.status);
    data = (JSON.parse(r.stdout) as { data: ReportData }).data;
    reportUrl = pathToFileURL(file).href;

    browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
    // A fresh context is a fresh profile: nothing cached from another run.
    const context = await browser.newContext({ viewport: { width: 1280, height: 1600 } });
    page = await context.newPage();
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => consoleErrors.push(`pageerror: ${e.message}`));
    page.on('requestfailed', (req) => failedRequests.push(`${req.url()}: ${req.failure()?.errorText}`));
    page.on('request', (req) => requests.push(req.url()));
    await page.goto(reportUrl);
    await page.waitForFunction(() => document.documentElement.getAttribute('data-ready') === '1');
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
  });

  it('loads with no console error, no failed request, and nothing but the file itself', () => {
    expect(consoleErrors).toEqual([]);
    expect(failedRequests).toEqual([]);
    expect(requests).toEqual([reportUrl]);
  });

  it('draws charts when key sections are opened', async () => {
    const withTimeline = data.keys.map((k, i) => [k, i] as const).filter(([k]) => k.timeline.length > 0).slice(0, 3);
    expect(withTimeline.length).toBeGreaterThan(0);
    for (const [k] of withTimeline) expect(await page.evaluate((id) => (window as unknown as { keyfenceReport: { open(id: string): boolean } }).keyfenceReport.open(id), k.accessKeyId)).toBe(true);
    await page.waitForFunction((n) => Object.keys((window as unknown as { keyfenceReport: { charts: object } }).keyfenceReport.charts).length >= n, withTimeline.length);
    const painted = await page.evaluate((ids) => ids.map((id) => {
      const canvas = document.querySelector(`details.key[data-key="${id}"] canvas`) as HTMLCanvasElement | null;
      if (!canvas) return -1;
      const pixels = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
      let coloured = 0;
      for (let i = 3; i < pixels.length; i += 4) if (pixels[i]! > 0) coloured++;
      return coloured;
    }), withTimeline.map(([k]) => k.accessKeyId));
    for (const n of painted) expect(n).toBeGreaterThan(500);
    const instances = await page.evaluate(() => Object.keys((window as unknown as { Chart: { instances: object } }).Chart.instances).length);
    expect(instances).toBe(withTimeline.length);
  });

  it('shows the same numbers as the embedded JSON', async () => {
    const embedded = JSON.parse(await page.evaluate(() => document.getElementById('keyfence-data')!.textContent!)) as ReportData;
    expect(embedded).toEqual(data);
    const shown = await page.evaluate(() => [...document.querySelectorAll<HTMLElement>('[data-path]')].map((e) => [e.dataset.path!, e.textContent!] as const));
    expect(shown.length).toBeGreaterThan(20);
    for (const [path, text] of shown) {
      expect({ path, value: Number(text.replace(/,/g, '')) }).toEqual({ path, value: valueAt(embedded, path) });
    }
    const paths = new Set(shown.map(([p]) => p));
    for (const p of ['summary.keys', 'summary.protectedKeys', 'summary.unprotectedKeys', 'summary.findings', 'drift.newDeniedSources']) expect(paths.has(p)).toBe(true);
  });

  it('renders a hostile user name and user agent as text, and runs none of it', async () => {
    await page.fill('input[type=search]', 'Ev1l');
    expect(await page.evaluate((id) => (window as unknown as { keyfenceReport: { open(id: string): boolean } }).keyfenceReport.open(id), EVIL_KEY)).toBe(true);
    const user = await page.textContent(`details.key[data-key="${EVIL_KEY}"] .user`);
    expect(user).toBe(EVIL_USER);
    expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
    expect(await page.locator('img').count()).toBe(0);
    expect(await page.locator('b').count()).toBe(0);
    await page.fill('input[type=search]', '');
  });

  it('pages the key list, leads from the attention list to a key, and leaves a screenshot', async () => {
    const info = await page.textContent('#page-info');
    expect(info).toContain(`${data.keys.length} key(s)`);
    // The "Needs a person" list leads to the most urgent key's section.
    await page.click('#attention button.link');
    expect(await page.getAttribute('#key-list details.key[open]', 'data-key')).toBe(data.keys[0]!.accessKeyId);
    const out = join(ROOT, 'test-output');
    mkdirSync(out, { recursive: true });
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: join(out, 'report.png'), fullPage: false });
    expect(existsSync(join(out, 'report.png'))).toBe(true);
  });
});

