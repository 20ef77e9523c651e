// The report page: one static file, no server, no network at view time. The data is embedded as JSON in a
// non-executed <script type="application/json">, Chart.js and the page script are inlined, and a
// Content-Security-Policy admits exactly those two scripts (by hash) and nothing from outside.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ReportData } from './report-data.ts';

const HERE = dirname(fileURLToPath(import.meta.url));

/** JSON safe inside a <script> element: no `<`, `>` or `&` (so no `</script>` or `<!--`), no JS line separators. */
export function jsonForScript(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** A script's text checked for anything that would end its element early. */
function inlineScript(name: string, text: string): string {
  if (/<\/script|<!--/i.test(text)) throw new Error(`${name} contains "</script" or "<!--" and cannot be inlined`);
  return text;
}

let cachedAssets: { chart: string; client: string } | null = null;

/** Chart.js (its license header kept) and the page script. */
export function reportAssets(): { chart: string; client: string } {
  if (!cachedAssets) {
    const require = createRequire(import.meta.url);
    // The package exports no UMD subpath: resolve its main file and take the UMD build beside it.
    const chartPath = join(dirname(require.resolve('chart.js')), 'chart.umd.min.js');
    cachedAssets = {
      chart: inlineScript('chart.js', readFileSync(chartPath, 'utf8')),
      client: inlineScript('report-client.js', readFileSync(join(HERE, 'report-client.js'), 'utf8')),
    };
  }
  return cachedAssets;
}

function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('base64');
}

const STYLE = `
:root { --fg:#111827; --muted:#6b7280; --line:#e5e7eb; --bad:#b91c1c; --warn:#b45309; --good:#15803d; --info:#1d4ed8; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); margin: 0 auto; max-width: 1180px; padding: 16px 24px 48px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 20px 0 8px; width: 100%; } h3 { font-size: 14px; margin: 14px 0 6px; }
.meta { color: var(--muted); margin: 4px 0; }
.banner { padding: 8px 12px; border-radius: 6px; border: 1px solid var(--line); }
.banner.alert { border-color: var(--bad); color: var(--bad); font-weight: 600; } .banner.info { color: var(--info); }
.tiles { display: flex; flex-wrap: wrap; gap: 10px; margin: 12px 0; }
.tile { border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; min-width: 130px; }
.tile .num { font-size: 24px; font-weight: 650; display: block; } .tile .label { color: var(--muted); font-size: 12px; }
.tile.bad .num { color: var(--bad); } .tile.warn .num { color: var(--warn); } .tile.good .num { color: var(--good); }
details.key { border: 1px solid var(--line); border-radius: 8px; margin: 6px 0; padding: 6px 12px; }
details.key > summary { cursor: pointer; }
.keyid { font-weight: 600; } .user { color: var(--muted); } .reason { color: var(--muted); }
.prot { color: var(--good); } .unprot { color: var(--warn); }
.badge { display: inline-block; min-width: 58px; text-align: center; border-radius: 10px; padding: 0 8px; font-size: 12px; font-weight: 600; color: #fff; background: #9ca3af; }
.badge.high { background: var(--bad); } .badge.medium { background: var(--warn); } .badge.low { background: var(--info); } .badge.none { background: var(--good); }
.chart { position: relative; height: 240px; }
table { border-collapse: collapse; margin: 4px 0 8px; } th, td { border-bottom: 1px solid var(--line); padding: 3px 10px 3px 0; text-align: left; vertical-align: top; }
td .num { font-variant-numeric: tabular-nums; }
.advice { color: var(--muted); font-size: 12px; } .bad { color: var(--bad); } .ua { font-family: ui-monospace, monospace; font-size: 12px; }
.controls { margin: 6px 0; } .controls input { padding: 4px 8px; min-width: 260px; }
.pager { margin: 10px 0; display: flex; gap: 12px; align-items: center; }
details.notes { margin: 8px 0; }
#attention ol { padding-left: 22px; } #attention li { margin: 3px 0; }
button.link { background: none; border: none; padding: 0; font: inherit; font-family: ui-monospace, monospace; font-weight: 600; color: var(--info); cursor: pointer; text-decoration: underline; }
`;

/** The whole page for `data`. Deterministic: the same data gives the same bytes. */
export function renderReportHtml(data: ReportData): string {
  const { chart, client } = reportAssets();
  const csp = [
    "default-src 'none'",
    `script-src 'sha256-${sha256(chart)}' 'sha256-${sha256(client)}'`,
    "style-src 'unsafe-inline'",
    "img-src data:",
    "base-uri 'none'",
    "form-action 'none'",
  ].join('; ');
  const title = `keyfence report ${data.generatedAt.slice(0, 10)}: ${data.summary.keys} keys, ${data.summary.urgentKeys} urgent`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${escapeHtml(csp)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<div id="app"><noscript><p>This report draws its content with JavaScript; the data is in the <code>keyfence-data</code> element of this file. Read it with <code>keyfence report --json</code> instead.</p></noscript></div>
<script type="application/json" id="keyfence-data">${jsonForScript(data)}</script>
<script>${chart}</script>
<script>${client}</script>
</body>
</html>
`;
}
