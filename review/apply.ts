// What a person needs to apply approved entries by hand: the AccessKeyPolicy documents, the `aliyun ims`
// command lines (printed, never run), Terraform, RAM console text and the acs:SourceIp policy.
// keyfence itself never calls an API that changes an ACL.
import { accessKeyPolicyDocument, render } from '../recommend/render.ts';
import type { AclProposal, KeyProposal } from '../model/types.ts';
import type { ApprovalRecord } from './approve.ts';

export interface ApplyArtifacts {
  /** File name → content. */
  files: Record<string, string>;
  /** The key to try first: the approved key with the least traffic, per the vendor's advice. */
  firstKey: string | null;
  /** The `aliyun ims` lines, least traffic first, for printing. */
  commands: string[];
}

function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'"'"'`)}'`;
}

function keyCalls(key: KeyProposal): number {
  return key.evidence.reduce((sum, e) => sum + e.calls, 0);
}

/** The `aliyun` CLI lines that would apply each approved ACL. Printed for a person; keyfence never runs them. */
export function imsCommands(proposal: AclProposal): string[] {
  const lines: string[] = [];
  const keys = [...proposal.accessKeys].sort((a, b) => keyCalls(a) - keyCalls(b) || (a.accessKeyId < b.accessKeyId ? -1 : 1));
  for (const key of keys) {
    const doc = JSON.stringify(accessKeyPolicyDocument({ ...key, status: 'enabled' }));
    lines.push(`aliyun ims SetAccessKeyPolicy --UserAccessKeyId ${shellQuote(key.accessKeyId)} --AccessKeyPolicy ${shellQuote(doc)}`);
  }
  if (proposal.accountLevel) {
    const doc = JSON.stringify(accessKeyPolicyDocument({ ...proposal.accountLevel, status: 'enabled' }));
    lines.push(`aliyun ims SetAccessKeyPolicyForAccount --AccessKeyPolicy ${shellQuote(doc)}`);
  }
  return lines;
}

export function applyArtifacts(record: ApprovalRecord): ApplyArtifacts {
  const proposal = record.proposal;
  const byTraffic = [...proposal.accessKeys].sort((a, b) => keyCalls(a) - keyCalls(b) || (a.accessKeyId < b.accessKeyId ? -1 : 1));
  const firstKey = byTraffic[0]?.accessKeyId ?? null;
  const advice = [
    `# Approved by ${record.approvedBy} at ${record.approvedAt}; SHA-256 of the approved entries ${record.sha256}.`,
    '# keyfence never applies an ACL. Run `keyfence verify` on the approval file before applying anything.',
    '# The vendor advises trying the ACL on a non-critical AccessKey first: an ACL takes effect within a few minutes,',
    `# and a missing source breaks production with AccessKeyId.AccessPolicyDenied.${firstKey ? ` Start with ${firstKey} (least traffic).` : ''}`,
    '# A key-level ACL replaces the account-level one for that key. Keep a tested way back (Status Inactive).',
  ];
  const commands = imsCommands(proposal);
  const files: Record<string, string> = {
    'ims-commands.sh': `#!/bin/sh\n# NOT RUN BY KEYFENCE. Review, then run one line at a time.\n${advice.join('\n')}\nexit 1 # remove this line once reviewed\n\n${commands.join('\n\n')}\n`,
    'access-key-policies.json': render(proposal, 'api'),
    'terraform.tf': `${advice.join('\n')}\n\n${render(proposal, 'terraform')}`,
    'console.txt': `${advice.map((l) => l.replace(/^# /, '')).join('\n')}\n\n${render(proposal, 'console')}`,
    'source-ip-policy.json': render(proposal, 'policy'),
  };
  return { files, firstKey, commands };
}
