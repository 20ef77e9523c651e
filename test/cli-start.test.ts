// How bin/keyfence.js starts: from a bundle compiled on the first run after a change, reused while no source
// changes, rebuilt when one does, and from the TypeScript sources (tsx) whenever the bundle cannot be had.
// Each test runs a private copy of the sources, so its cache and its edits touch nothing else.
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');
const SOURCE_DIRS = ['bin', 'model', 'ingest', 'analyze', 'recommend', 'review'];
let copies: string[] = [];

/** The sources in a temp dir, with a node_modules of its own whose packages link to the real ones. */
function copyOfSources(): string {
  const dir = mkdtempSync(join(tmpdir(), 'keyfence-start-'));
  copies.push(dir);
  for (const d of SOURCE_DIRS) cpSync(join(ROOT, d), join(dir, d), { recursive: true });
  for (const f of ['package.json', 'tsconfig.json']) cpSync(join(ROOT, f), join(dir, f));
  mkdirSync(join(dir, 'node_modules'));
  for (const entry of readdirSync(join(ROOT, 'node_modules'))) {
    if (entry !== '.cache') symlinkSync(join(ROOT, 'node_modules', entry), join(dir, 'node_modules', entry));
  }
  return dir;
}

function keyfence(root: string, args: string[], env: NodeJS.ProcessEnv = {}): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(root, 'bin/keyfence.js'), ...args], { encoding: 'utf8', env: { ...process.env, KEYFENCE_NO_BUNDLE: '', ...env } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function cache(root: string): string {
  return join(root, 'node_modules', '.cache', 'keyfence');
}

/** The build the checkout's manifest points at, or null when there is no manifest. */
function currentBuild(root: string): string | null {
  if (!existsSync(cache(root))) return null;
  const manifests = readdirSync(cache(root)).filter((f) => f.startsWith('manifest-') && f.endsWith('.json'));
  expect(manifests.length).toBeLessThanOrEqual(1);
  return manifests.length ? (JSON.parse(readFileSync(join(cache(root), manifests[0]!), 'utf8')) as { build: string }).build : null;
}

function editVersion(root: string, version: string): void {
  const cli = join(root, 'bin/cli.ts');
  const text = readFileSync(cli, 'utf8');
  expect(text).toContain(".version('0.1.0')");
  writeFileSync(cli, text.replace(".version('0.1.0')", `.version('${version}')`));
}

afterEach(() => {
  for (const dir of copies) rmSync(dir, { recursive: true, force: true });
  copies = [];
});

describe('keyfence start-up', () => {
  it('builds the bundle on the first run, reuses it while nothing changes, and rebuilds it after a source changes', () => {
    const root = copyOfSources();
    expect(currentBuild(root)).toBeNull();
    expect(keyfence(root, ['--version'])).toMatchObject({ code: 0, stdout: '0.1.0\n' });
    const first = currentBuild(root);
    expect(first).not.toBeNull();
    expect(existsSync(join(cache(root), first!, 'cli.mjs'))).toBe(true);

    expect(keyfence(root, ['--version'])).toMatchObject({ code: 0, stdout: '0.1.0\n' });
    expect(currentBuild(root)).toBe(first);

    editVersion(root, '0.1.0-edited');
    expect(keyfence(root, ['--version'])).toMatchObject({ code: 0, stdout: '0.1.0-edited\n' });
    const second = currentBuild(root);
    expect(second).not.toBe(first);
    expect(keyfence(root, ['--version'])).toMatchObject({ code: 0, stdout: '0.1.0-edited\n' });
    expect(currentBuild(root)).toBe(second);
  });

  it('prints the same help from the bundle as from the sources', () => {
    const root = copyOfSources();
    const bundled = keyfence(root, ['explain', '--help']);
    expect(currentBuild(root)).not.toBeNull();
    const fromSources = keyfence(root, ['explain', '--help'], { KEYFENCE_NO_BUNDLE: '1' });
    expect(bundled.code).toBe(0);
    expect(bundled.stdout).toContain('--key <accessKeyId>');
    expect(fromSources).toEqual(bundled);
  });

  it('runs from the sources, without a bundle, when KEYFENCE_NO_BUNDLE=1', () => {
    const root = copyOfSources();
    expect(keyfence(root, ['--version'], { KEYFENCE_NO_BUNDLE: '1' })).toMatchObject({ code: 0, stdout: '0.1.0\n' });
    expect(existsSync(cache(root))).toBe(false);
  });

  it('runs from the sources when the cache cannot be written', () => {
    const root = copyOfSources();
    writeFileSync(join(root, 'node_modules', '.cache'), 'not a directory');
    editVersion(root, '0.1.0-uncached');
    expect(keyfence(root, ['--version'])).toMatchObject({ code: 0, stdout: '0.1.0-uncached\n' });
  });

  it('reports a source that does not compile as the sources do, and recovers once it is fixed', () => {
    const root = copyOfSources();
    expect(keyfence(root, ['--version']).code).toBe(0);
    const broken = join(root, 'bin/common.ts');
    const good = readFileSync(broken, 'utf8');
    writeFileSync(broken, `${good}\nexport const = ;\n`);
    const run = keyfence(root, ['--version']);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain('common.ts');
    expect(run.stdout).toBe('');
    writeFileSync(broken, good);
    expect(keyfence(root, ['--version'])).toMatchObject({ code: 0, stdout: '0.1.0\n' });
  });

  it('names the TypeScript file and line in the stack of an unexpected error, as the sources do', () => {
    const root = copyOfSources();
    const handler = join(root, 'bin/commands/explain.ts');
    const text = readFileSync(handler, 'utf8');
    const signature = 'export async function explainCommand(flags: ExplainFlags): Promise<number> {\n';
    expect(text).toContain(signature);
    writeFileSync(handler, text.replace(signature, `${signature}  if (flags.key === 'BOOM') throw new Error('boom');\n`));
    const line = text.slice(0, text.indexOf(signature)).split('\n').length + 1;
    const args = ['explain', '--key', 'BOOM', '--ip', '192.0.2.1'];
    const bundled = keyfence(root, args);
    expect(currentBuild(root)).not.toBeNull();
    const fromSources = keyfence(root, args, { KEYFENCE_NO_BUNDLE: '1' });
    for (const run of [bundled, fromSources]) {
      expect(run.code).toBe(3);
      expect(run.stderr).toContain('unexpected error: Error: boom');
      expect(run.stderr).toContain(`at explainCommand (${handler}:${line}:`);
    }
  });

  it('lets concurrent first runs each finish with the right output', async () => {
    const root = copyOfSources();
    const runs = await Promise.all(Array.from({ length: 4 }, () => new Promise<{ code: number | null; stdout: string }>((resolve) => {
      const child = spawn(process.execPath, [join(root, 'bin/keyfence.js'), '--version'], { env: { ...process.env, KEYFENCE_NO_BUNDLE: '' } });
      let stdout = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
      child.on('close', (code) => resolve({ code, stdout }));
    })));
    expect(runs).toEqual(Array.from({ length: 4 }, () => ({ code: 0, stdout: '0.1.0\n' })));
    const build = currentBuild(root);
    expect(build).not.toBeNull();
    expect(keyfence(root, ['--version']).stdout).toBe('0.1.0\n');
    expect(currentBuild(root)).toBe(build);
  });
});
