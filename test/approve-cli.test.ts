// approve → tamper → verify, through real `keyfence` processes on a real proposal file.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { AclProposal } from '../model/types.ts';

const CLI = join(import.meta.dirname, '..', 'bin', 'keyfence.js');
const dir = mkdtempSync(join(tmpdir(), 'kf-approve-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function keyfence(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

const proposal: AclProposal = {
  version: 1,
  generatedAt: '2026-11-20T02:00:00Z',
  window: { from: '2026-10-21T00:00:00Z', to: '2026-11-20T00:00:00Z' },
  accountLevel: null,
  accessKeys: [
    {
      accessKeyId: 'LTAI5tCiBot0000000000001', userName: 'ci-bot', status: 'draft',
      public: { cidrs: ['203.0.113.0/28'] }, vpc: [{ vpcId: 'vpc-bp1abc', cidrs: ['172.16.1.0/24'] }],
      evidence: [{ cidr: '203.0.113.0/28', calls: 900, days: 28, firstSeen: '2026-10-21T01:00:00Z', lastSeen: '2026-11-19T23:00:00Z' }],
      excluded: [], warnings: [],
    },
    {
      accessKeyId: 'LTAI5tReport00000000002', userName: 'report', status: 'draft',
      public: { cidrs: ['198.51.100.7/32'] }, vpc: [],
      evidence: [{ cidr: '198.51.100.7/32', calls: 12, days: 4, firstSeen: '2026-10-22T01:00:00Z', lastSeen: '2026-11-18T23:00:00Z' }],
      excluded: [], warnings: [],
    },
  ],
};

describe('keyfence approve and verify (real processes)', () => {
  const proposalFile = join(dir, 'proposal.json');
  const approvedFile = join(dir, 'approved.json');
  writeFileSync(proposalFile, JSON.stringify(proposal));

  it('approves, writes the apply artifacts and prints the aliyun lines without running them, least traffic first', () => {
    const r = keyfence('approve', proposalFile, '--by', 'alice', '-o', approvedFile, '--json');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { sha256: string; firstKey: string; commands: string[]; artifacts: string[] };
    expect(out.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(out.firstKey).toBe('LTAI5tReport00000000002');
    expect(out.commands[0]).toContain("aliyun ims SetAccessKeyPolicy --UserAccessKeyId 'LTAI5tReport00000000002'");
    for (const file of out.artifacts) expect(existsSync(file), file).toBe(true);
    const policies = JSON.parse(readFileSync(join(dir, 'approved-apply', 'access-key-policies.json'), 'utf8')) as Record<string, { Statements: unknown[] }>;
    expect(policies.LTAI5tCiBot0000000000001!.Statements).toEqual([
      { Type: 'ClassicWhiteList', IPList: ['203.0.113.0/28'] },
      { Type: 'VPCWhiteList', Value: 'vpc-bp1abc', IPList: ['172.16.1.0/24'] },
    ]);
    expect(keyfence('verify', approvedFile).code).toBe(0);
  });

  it('verify exits 4 and names the change once an approved entry is edited', () => {
    const record = JSON.parse(readFileSync(approvedFile, 'utf8')) as { proposal: AclProposal };
    record.proposal.accessKeys[1]!.public!.cidrs = ['198.51.100.0/24'];
    const tampered = join(dir, 'tampered.json');
    writeFileSync(tampered, JSON.stringify(record));
    const r = keyfence('verify', tampered);
    expect(r.code).toBe(4);
    expect(r.stdout).toMatch(/CHANGED since approval by alice/);
  });

  it('refuses to approve keys that are not in the proposal, and an invalid proposal with the path of the bad entry', () => {
    expect(keyfence('approve', proposalFile, '--by', 'bob', '--keys', 'LTAInope', '-o', join(dir, 'x.json')).code).toBe(1);
    const bad = structuredClone(proposal);
    bad.accessKeys[0]!.public!.cidrs = ['203.0.113.0/33'];
    const badFile = join(dir, 'bad.json');
    writeFileSync(badFile, JSON.stringify(bad));
    const r = keyfence('approve', badFile, '--by', 'bob', '-o', join(dir, 'y.json'));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('accessKeys[0].public.cidrs[0]');
  });
});
