// `npm run bench [-- --quick] [-- --only name,name]`: runs the sections and writes bench/RESULTS.md.
// Each section's table is kept in bench/results/<name>.md with the date, scale and machine it was measured on,
// and RESULTS.md is assembled from all of them, so re-running one section never loses the others' figures.
import { cpus, loadavg, totalmem, tmpdir } from 'node:os';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderSection, type BenchContext, type BenchSection } from './harness.ts';

/** Sections in the order they run; each module's default export measures one area. */
const SECTIONS = ['ingest', 'cover', 'recommend', 'quality', 'investigate', 'kafka', 'sls'] as const;

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const resultsDir = join(root, 'bench', 'results');
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const onlyArg = args.find((a) => a.startsWith('--only='))?.slice('--only='.length) ?? (args.includes('--only') ? args[args.indexOf('--only') + 1] : undefined);
const only = onlyArg ? new Set(onlyArg.split(',')) : null;
for (const name of only ?? []) {
  if (!(SECTIONS as readonly string[]).includes(name)) {
    process.stderr.write(`bench: unknown section ${name}; sections: ${SECTIONS.join(', ')}\n`);
    process.exit(1);
  }
}

const dataDir = mkdtempSync(join(process.env.KEYFENCE_BENCH_DIR ?? tmpdir(), 'kf-bench-'));
const ctx: BenchContext = {
  scale: quick ? 'quick' : 'full',
  dataDir,
  root,
  log: (m) => process.stderr.write(`[bench] ${m}\n`),
};

function machine(): string {
  return `${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`;
}

let failed = false;
mkdirSync(resultsDir, { recursive: true });
try {
  for (const name of SECTIONS) {
    if (only && !only.has(name)) continue;
    ctx.log(`section ${name}`);
    const started = new Date();
    const load = loadavg()[0]!.toFixed(1);
    let body: string;
    try {
      const mod = (await import(`./${name}.ts`)) as { default: (c: BenchContext) => Promise<BenchSection> };
      body = renderSection(await mod.default(ctx));
    } catch (e) {
      failed = true;
      const msg = e instanceof Error ? e.stack ?? e.message : String(e);
      ctx.log(`section ${name} failed: ${msg}`);
      body = `## ${name}\n\nThis section failed to run: \`${msg.split('\n')[0]}\`\n`;
    }
    const stamp = `_Measured ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC at ${ctx.scale} scale on ${machine()}; load average ${load} when it started._\n\n`;
    const [title, ...rest] = body.split('\n');
    // A quick run never overwrites a full-scale measurement of the same section.
    const file = join(resultsDir, `${name}${quick ? '.quick' : ''}.md`);
    writeFileSync(file, `${title}\n\n${stamp}${rest.join('\n').replace(/^\n+/, '')}`);
  }
} finally {
  rmSync(dataDir, { recursive: true, force: true });
}

const parts = SECTIONS.map((name) => {
  const fullFile = join(resultsDir, `${name}.md`);
  const quickFile = join(resultsDir, `${name}.quick.md`);
  if (existsSync(fullFile)) return readFileSync(fullFile, 'utf8');
  if (existsSync(quickFile)) return readFileSync(quickFile, 'utf8');
  return `## ${name}\n\nNot measured yet: \`npm run bench -- --only ${name}\`.\n`;
});
const header = [
  '# keyfence benchmark results',
  '',
  'Written by `npm run bench` (every section) or `npm run bench -- --only NAME` (one section; the others keep their last figures).',
  'Each section says when, at which scale and on what machine it was measured. The machine is shared and noisy: compare the',
  'ratios measured side by side in one run, not absolute times across runs.',
  '',
].join('\n');
writeFileSync(join(root, 'bench', 'RESULTS.md'), `${header}\n${parts.join('\n')}`);
ctx.log(`wrote ${join(root, 'bench', 'RESULTS.md')}`);
process.exitCode = failed ? 1 : 0;
