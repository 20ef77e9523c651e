// Shared by the report, browser and nightly tests: a store built from the demo fixtures (through the real
// CLI), plus a key whose user name and user agent are HTML/script injections.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '..');
export const CLI = join(ROOT, 'bin', 'keyfence.js');
export const DEMO_TRAIL = join(ROOT, 'fixtures', 'demo', 'trail');
export const EVIL_KEY = 'LTAI5tEv1lScr1ptXssTest0';
export const EVIL_USER = '</script><script>window.__pwned=1</script><b>bold</b>';
export const EVIL_AGENT = '<img src=x onerror="window.__pwned=2">';

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `keyfence-${prefix}-`));
}

/** ActionTrail lines (SLS export shape) for the injection key: 6 days of calls from two public addresses. */
export function evilTrail(lastDay = '2026-11-19'): string {
  const lines: string[] = [];
  const end = Date.parse(`${lastDay}T00:00:00Z`);
  for (let d = 0; d < 6; d++) {
    for (let i = 0; i < 4; i++) {
      const t = new Date(end - d * 86_400_000 + (i + 1) * 3_600_000).toISOString().replace(/\.\d{3}Z$/, 'Z');
      const event = {
        eventId: `evil-${d}-${i}`, eventVersion: '1', eventTime: t, eventType: 'ApiCall', eventName: 'DescribeInstances',
        eventSource: 'ecs.aliyuncs.com', serviceName: 'Ecs', acsRegion: 'cn-hangzhou', requestId: `req-${d}-${i}`,
        sourceIpAddress: i % 2 === 0 ? '47.96.10.20' : '47.96.10.21', userAgent: EVIL_AGENT,
        userIdentity: { type: 'ram-user', principalId: '2000000000000001', accountId: '5782196761546316', accessKeyId: EVIL_KEY, userName: EVIL_USER },
        errorCode: '', errorMessage: '', recipientAccountId: '5782196761546316', isGlobal: false,
      };
      lines.push(JSON.stringify({ __topic__: 'actiontrail_audit_event', __source__: 'actiontrail', __time__: String(Date.parse(t) / 1000), event: JSON.stringify(event) }));
    }
  }
  return `${lines.join('\n')}\n`;
}

/** Runs the CLI in a real process. */
export function cli(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: options.cwd ?? ROOT, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, env: { ...process.env, CI: '1', ...options.env } });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** A database with the demo history and the injection key; returns its path. */
export function demoDbWithInjection(dir: string): string {
  const extra = join(dir, 'evil.ndjson');
  writeFileSync(extra, evilTrail());
  const db = join(dir, 'demo.duckdb');
  const r = cli(['ingest', DEMO_TRAIL, extra, '--db', db]);
  if (r.status !== 0 && r.status !== 2) throw new Error(`ingest failed (${r.status}): ${r.stderr}`);
  return db;
}
