// `keyfence demo` end to end, as a newcomer runs it: every step behaves, a denial is explained, artifacts exist.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const CLI = join(import.meta.dirname, '..', 'bin', 'keyfence.js');
const dir = mkdtempSync(join(tmpdir(), 'kf-demo-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('keyfence demo', () => {
  it('runs every step as expected, explains a past denial, and writes the proposal, review, approval and report', () => {
    const out = join(dir, 'demo');
    const r = spawnSync(process.execPath, [CLI, 'demo', '--out', out, '--json'], { encoding: 'utf8', timeout: 170_000 });
    expect(r.status, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout) as { steps: Array<{ command: string; ok: boolean }>; artifacts: Record<string, string> };
    expect(result.steps.filter((s) => !s.ok)).toEqual([]);
    expect(result.steps.some((s) => s.command.startsWith('keyfence explain ') && s.command.includes('--acl'))).toBe(true);
    for (const [name, path] of Object.entries(result.artifacts)) expect(existsSync(path), name).toBe(true);
  }, 180_000);
});
