import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { parseAclText } from '../../model/acl-file.ts';
import { EXIT, InvalidInputError } from '../../model/errors.ts';
import { approve, parseApprovalRecord, verify } from '../../review/approve.ts';
import { applyArtifacts } from '../../review/apply.ts';
import { action, printJson } from '../common.ts';

export function registerReview(program: Command): void {
  program
    .command('approve')
    .description('approve a proposal (or some of its keys): records who, when, and a SHA-256 over the exact entries; writes what a person needs to apply them (never applied by keyfence)')
    .argument('<proposal>', 'proposal JSON (keyfence recommend --format json)')
    .requiredOption('--by <name>', 'who approves')
    .option('--keys <ids>', 'comma-separated AccessKey IDs (and/or "account") to approve; default all')
    .option('-o, --output <file>', 'approval file to write', 'approved.json')
    .option('--artifacts <dir>', 'folder for the apply artifacts (default: beside the approval file, <name>-apply/)')
    .option('--json', 'print one JSON object on stdout instead of text')
    .action(action(async (proposalFile: string, opts: { by: string; keys?: string; output: string; artifacts?: string; json?: boolean }) => {
      const loaded = parseAclText(readText(proposalFile), { source: proposalFile });
      if (!loaded.proposal) {
        throw new InvalidInputError(`${proposalFile} holds AccessKeyPolicy documents, not a proposal`, { hint: 'approve the JSON written by `keyfence recommend --format json`' });
      }
      const scopes = opts.keys?.split(',').map((s) => s.trim()).filter(Boolean);
      const record = approve(loaded.proposal, { approvedBy: opts.by, scopes, now: new Date() });
      const output = resolve(opts.output);
      mkdirSync(dirname(output), { recursive: true });
      writeFileSync(output, `${JSON.stringify(record, null, 2)}\n`);
      const artifactDir = resolve(opts.artifacts ?? join(dirname(output), `${output.replace(/^.*\//, '').replace(/\.json$/, '')}-apply`));
      const artifacts = applyArtifacts(record);
      mkdirSync(artifactDir, { recursive: true });
      for (const [name, content] of Object.entries(artifacts.files)) writeFileSync(join(artifactDir, name), content);
      if (opts.json) {
        printJson({ approval: output, sha256: record.sha256, approvedBy: record.approvedBy, approvedAt: record.approvedAt, scopes: record.scopes, artifacts: Object.keys(artifacts.files).map((f) => join(artifactDir, f)), firstKey: artifacts.firstKey });
      } else {
        process.stdout.write(
          `approved ${record.scopes.length} ACL(s) (${record.scopes.join(', ')}) by ${record.approvedBy} at ${record.approvedAt}\n` +
            `  approval: ${output}\n  sha256:   ${record.sha256}\n  apply artifacts (never run by keyfence): ${artifactDir}/{${Object.keys(artifacts.files).join(',')}}\n` +
            (artifacts.firstKey ? `  vendor advice: try a non-critical key first, e.g. ${artifacts.firstKey} (least traffic)\n` : ''),
        );
      }
      return EXIT.OK;
    }));

  program
    .command('verify')
    .description('check that the entries of an approval file are exactly the approved ones (exit 4 when not)')
    .argument('<approval>', 'approval file written by `keyfence approve`')
    .option('--json', 'print one JSON object on stdout instead of text')
    .action(action(async (file: string, opts: { json?: boolean }) => {
      let value: unknown;
      try {
        value = JSON.parse(readText(file));
      } catch (e) {
        if (e instanceof InvalidInputError) throw e;
        throw new InvalidInputError(`${file} is not valid JSON: ${(e as Error).message}`, { context: { file } });
      }
      const result = verify(parseApprovalRecord(value, file));
      if (opts.json) printJson(result);
      else if (result.ok) process.stdout.write(`ok: entries unchanged since approval by ${result.approvedBy} at ${result.approvedAt} (sha256 ${result.actual})\n`);
      else process.stdout.write(`CHANGED since approval by ${result.approvedBy} at ${result.approvedAt}:\n${result.problems.map((p) => `  - ${p}`).join('\n')}\n  approved sha256 ${result.expected}\n  current  sha256 ${result.actual}\n`);
      return result.ok ? EXIT.OK : EXIT.ATTENTION;
    }));
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new InvalidInputError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { context: { file }, hint: 'check the path' });
  }
}
