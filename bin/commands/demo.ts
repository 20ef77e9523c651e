// `keyfence demo`: the whole job on the bundled fixtures, each step a real `keyfence` command whose line is
// printed first, so a newcomer can rerun any of them by hand.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import type { DenialGroup } from '../../analyze/denials.ts';
import { EXIT } from '../../model/errors.ts';
import { action, printJson } from '../common.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(ROOT, 'bin', 'keyfence.js');
const DEMO = join(ROOT, 'fixtures', 'demo');

interface Step {
  title: string;
  args: string[];
  /** Exit codes that mean the step did what the demo expects. */
  expect: number[];
  /** Shown instead of the command's own stdout (for JSON steps whose output the demo reads). */
  quiet?: boolean;
}

interface StepResult {
  title: string;
  command: string;
  exitCode: number;
  ok: boolean;
  stdout: string;
}

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('run the whole job on the bundled fixtures: ingest, analyze, findings, recommend, explain a denial, simulate, approve, report')
    .option('--out <dir>', 'folder for the demo database and artifacts', 'keyfence-demo')
    .option('--json', 'print one JSON object with every step\'s command and exit code')
    .action(action(async (opts: { out: string; json?: boolean }) => runDemo(resolve(opts.out), Boolean(opts.json))));
}

async function runDemo(out: string, json: boolean): Promise<number> {
  // A fresh database each time, so the demo shows a first ingest.
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const db = join(out, 'keyfence.duckdb');
  const rel = (p: string): string => relative(process.cwd(), p) || '.';
  const results: StepResult[] = [];
  const say = (text: string): void => {
    if (!json) process.stdout.write(text);
  };

  const run = (step: Step): StepResult => {
    const command = `keyfence ${step.args.map((a) => (/[\s'"]/.test(a) ? JSON.stringify(a) : a)).join(' ')}`;
    say(`\n── ${step.title}\n$ ${command}\n`);
    const child = spawnSync(process.execPath, [CLI, ...step.args], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, env: { ...process.env, CI: process.env.CI ?? '' } });
    const exitCode = child.status ?? EXIT.FATAL;
    const ok = step.expect.includes(exitCode);
    if (!step.quiet) say(trimOutput(child.stdout));
    if (!ok) say(`${child.stderr}\n(unexpected exit code ${exitCode}; expected ${step.expect.join(' or ')})\n`);
    const result = { title: step.title, command, exitCode, ok, stdout: child.stdout };
    results.push(result);
    return result;
  };

  say(`keyfence demo: ${rel(join(DEMO, 'trail'))} → ${rel(out)}/\n`);
  run({ title: '1. Ingest the bundled ActionTrail history (a few malformed lines are part of the fixture: exit 2 = partly rejected, all valid events kept)', args: ['ingest', join(DEMO, 'trail'), '--db', db], expect: [EXIT.OK, EXIT.PARTIAL] });
  run({ title: '2. Profile every AccessKey (last 30 days of the history)', args: ['analyze', '--db', db], expect: [EXIT.OK] });
  run({ title: '3. Findings: root keys, dormant keys, possible leaks, dynamic pools (exit 4 = something for a person)', args: ['findings', '--db', db], expect: [EXIT.OK, EXIT.ATTENTION] });
  const proposal = join(out, 'proposal.json');
  const review = join(out, 'review.md');
  run({ title: '4. Recommend: the smallest ACL per key, within the limits, as a draft', args: ['recommend', '--db', db, '--format', 'json', '-o', proposal], expect: [EXIT.OK, EXIT.ATTENTION] });
  run({ title: '   …its Markdown review for the approver', args: ['recommend', '--db', db, '--format', 'markdown', '-o', review], expect: [EXIT.OK, EXIT.ATTENTION] });
  run({ title: '   …and what would be pasted into the RAM console', args: ['recommend', '--db', db, '--format', 'console'], expect: [EXIT.OK, EXIT.ATTENTION] });

  const aclInForce = join(DEMO, 'acl-in-force.json');
  if (existsSync(aclInForce)) {
    const denials = run({ title: '5. Denials refused by the ACLs configured today (IMS AccessKeyPolicy documents)', args: ['denials', '--db', db, '--since', '60d', '--acl', aclInForce, '--json'], expect: [EXIT.OK, EXIT.ATTENTION], quiet: true });
    const first = firstDenial(denials.stdout);
    if (first) {
      say(`   ${first.count} denial group(s); explaining the first one:\n`);
      const args = ['explain', '--db', db, '--acl', aclInForce, '--key', first.accessKeyId, '--ip', first.ip];
      if (first.vpcId) args.push('--vpc', first.vpcId);
      run({ title: '   Why was this call denied, and what is the smallest safe fix?', args, expect: [EXIT.OK, EXIT.ATTENTION] });
    } else {
      say('   (no denial in the fixture\'s history)\n');
    }
  }
  run({ title: '6. Rehearse: replay the history against the proposal (exit 0 = nothing legitimate would break)', args: ['simulate', proposal, '--db', db], expect: [EXIT.OK, EXIT.ATTENTION] });
  const approved = join(out, 'approved.json');
  run({ title: '7. Approve (an example: a person does this), then verify the seal', args: ['approve', proposal, '--by', 'demo-reviewer', '-o', approved], expect: [EXIT.OK] });
  run({ title: '   verify', args: ['verify', approved], expect: [EXIT.OK] });
  const report = join(out, 'report.html');
  run({ title: '8. The HTML report for the two-minute read', args: ['report', '--db', db, '--approved', approved, '-o', report], expect: [EXIT.OK, EXIT.ATTENTION] });

  const failed = results.filter((r) => !r.ok);
  if (json) {
    printJson({ out, steps: results.map(({ title, command, exitCode, ok }) => ({ title, command, exitCode, ok })), artifacts: { db, proposal, review, approved, report } });
  } else {
    say(`\nArtifacts in ${rel(out)}/: proposal.json, review.md, approved.json (+ approved-apply/), report.html, keyfence.duckdb\n`);
    say(failed.length === 0 ? 'demo complete: every step behaved as expected.\n' : `demo: ${failed.length} step(s) did not behave as expected: ${failed.map((f) => f.title.trim()).join('; ')}\n`);
  }
  return failed.length === 0 ? EXIT.OK : EXIT.FATAL;
}

function trimOutput(text: string, maxLines = 40): string {
  const lines = text.replace(/\n$/, '').split('\n');
  if (lines.length <= maxLines) return text.endsWith('\n') || text === '' ? text : `${text}\n`;
  return `${lines.slice(0, maxLines).join('\n')}\n   … (${lines.length - maxLines} more lines)\n`;
}

/** The first denial group of `keyfence denials --json` (`{ window, totals, denials: DenialGroup[] }`). */
function firstDenial(stdout: string): { accessKeyId: string; ip: string; vpcId: string | null; count: number } | null {
  let parsed: { denials?: Array<Pick<DenialGroup, 'accessKeyId' | 'ip' | 'vpcId'>> };
  try {
    parsed = JSON.parse(stdout) as typeof parsed;
  } catch {
    return null;
  }
  const groups = parsed.denials ?? [];
  const first = groups.find((g) => g.ip !== null);
  return first ? { accessKeyId: first.accessKeyId, ip: first.ip!, vpcId: first.vpcId, count: groups.length } : null;
}
