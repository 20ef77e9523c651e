// `npm run bench [-- --quick] [-- --only name,name]`: runs every section and writes bench/RESULTS.md.
import { cpus, totalmem, tmpdir } from 'node:os';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderSection, type BenchContext, type BenchSection } from './harness.ts';

/** Sections in the order they run; each module's default export measures one area. */
const SECTIONS = ['ingest', 'cover', 'recommend', 'quality', 'investigate', 'kafka', 'sls'] as const;

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const onlyArg = args.find((a) => a.startsWith('--only='))?.slice('--only='.length) ?? (args.includes('--only') ? args[args.indexOf('--only') + 1] : undefined);
const only = onlyArg ? new Set(onlyArg.split(',')) : null;

const dataDir = mkdtempSync(join(process.env.KEYFENCE_BENCH_DIR ?? tmpdir(), 'kf-bench-'));
const ctx: BenchContext = {
  scale: quick ? 'quick' : 'full',
  dataDir,
  root,
  log: (m) => process.stderr.write(`[bench] ${m}\n`),
};

const rendered: string[] = [];
let failed = false;
try {
  for (const name of SECTIONS) {
    if (only && !only.has(name)) continue;
    ctx.log(`section ${name}`);
    try {
      const mod = (await import(`./${name}.ts`)) as { default: (c: BenchContext) => Promise<BenchSection> };
      rendered.push(renderSection(await mod.default(ctx)));
    } catch (e) {
      failed = true;
      const msg = e instanceof Error ? e.stack ?? e.message : String(e);
      ctx.log(`section ${name} failed: ${msg}`);
      rendered.push(`## ${name}\n\nThis section failed to run: \`${msg.split('\n')[0]}\`\n`);
    }
  }
} finally {
  rmSync(dataDir, { recursive: true, force: true });
}

const header = [
  '# keyfence benchmark results',
  '',
  `Written by \`npm run bench${quick ? ' -- --quick' : ''}\` on ${new Date().toISOString().slice(0, 10)}: ${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}.`,
  'The machine is shared and noisy: compare the ratios measured side by side in one run, not absolute times across runs.',
  '',
].join('\n');
const out = only ? join(root, 'bench', `RESULTS.${[...only].join('-')}.md`) : join(root, 'bench', 'RESULTS.md');
writeFileSync(out, `${header}\n${rendered.join('\n')}`);
ctx.log(`wrote ${out}`);
process.exitCode = failed ? 1 : 0;
