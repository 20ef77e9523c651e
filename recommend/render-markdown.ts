// The review document: what a person reads before approving a proposal. Per ACL every entry with its
// evidence, then what was excluded and why, then the warnings.
import type { AclProposal, Evidence, Excluded, KeyProposal } from '../model/types.ts';

/** Markdown table cells: no pipes or newlines inside. */
function cell(value: unknown): string {
  return String(value ?? '').replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

function day(iso: string): string {
  return iso ? iso.slice(0, 10) : '';
}

function evidenceTable(evidence: Evidence[], withKeys: boolean): string[] {
  if (evidence.length === 0) return ['_No entries._', ''];
  const header = ['Rule', 'Entry', 'Calls', 'Days', 'First seen', 'Last seen', 'Addresses', ...(withKeys ? ['Keys'] : [])];
  const lines = [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`];
  for (const e of evidence) {
    const row = [e.vpcId ? `VPC ${e.vpcId}` : 'public', `\`${e.cidr}\``, e.calls, e.days, day(e.firstSeen), day(e.lastSeen), e.addresses ?? ''];
    if (withKeys) row.push(e.keys && e.keys.length > 3 ? `${e.keys.length} keys` : (e.keys ?? []).join(', '));
    lines.push(`| ${row.map(cell).join(' | ')} |`);
  }
  lines.push('');
  return lines;
}

function excludedTable(excluded: Excluded[]): string[] {
  if (excluded.length === 0) return [];
  const lines = ['Excluded:', '', '| Source | VPC | Calls | Reason | Code |', '|---|---|---|---|---|'];
  for (const x of excluded) lines.push(`| ${[`\`${x.source}\``, x.vpcId ?? '', x.calls ?? '', x.reason, x.code].map(cell).join(' | ')} |`);
  lines.push('');
  return lines;
}

function warningList(warnings: string[]): string[] {
  if (warnings.length === 0) return [];
  return ['Warnings:', '', ...warnings.map((w) => `- ⚠ ${w}`), ''];
}

function rulesSummary(k: Pick<KeyProposal, 'public' | 'vpc'>): string[] {
  const lines = [`- Public rule: ${k.public ? `${k.public.cidrs.length} entr${k.public.cidrs.length === 1 ? 'y' : 'ies'}` : '**none: once enabled, every public call is denied**'}`];
  for (const v of k.vpc) lines.push(`- VPC rule \`${v.vpcId}\`: ${v.cidrs.length} entr${v.cidrs.length === 1 ? 'y' : 'ies'}`);
  if (k.vpc.length === 0) lines.push('- VPC rules: none (once enabled, every call through a VPC endpoint is denied)');
  lines.push('');
  return lines;
}

export function renderMarkdown(p: AclProposal): string {
  const lines: string[] = [
    '# AccessKey network ACL proposal (draft for review)',
    '',
    `Generated ${p.generatedAt} from events ${p.window.from} .. ${p.window.to}.`,
    'Nothing here is applied: each ACL takes effect only once a person approves and submits it. Test on a non-critical key first.',
    '',
  ];
  if (p.settings) lines.push(`Settings: ${Object.entries(p.settings).map(([k, v]) => `${k}=${Array.isArray(v) ? `[${v.join(', ')}]` : String(v)}`).join(', ')}.`, '');
  const withoutAcl = p.keysWithoutAcl ?? [];
  lines.push(
    '## Summary',
    '',
    `- Key-level ACLs proposed: ${p.accessKeys.length}`,
    `- Account-level ACL: ${p.accountLevel ? `proposed, relied on by ${p.accountLevel.coveredKeys?.length ?? 0} analyzed keys` : 'none'}`,
    `- Keys without an ACL of their own: ${withoutAcl.length}`,
    '',
  );
  lines.push(...warningList(p.warnings ?? []));

  if (p.accountLevel) {
    const a = p.accountLevel;
    lines.push('## Account level', '', 'Governs every permanent AccessKey of the account that has no key-level ACL (a key-level ACL replaces it).', '');
    lines.push(...rulesSummary(a), ...evidenceTable(a.evidence, true), ...warningList(a.warnings));
    if (a.coveredKeys && a.coveredKeys.length > 0) lines.push(`Keys relying on it: ${a.coveredKeys.map((k) => `\`${k}\``).join(', ')}`, '');
  }

  for (const k of p.accessKeys) {
    lines.push(`## ${k.accessKeyId}${k.userName ? ` (${k.userName})` : ''}`, '');
    lines.push(...rulesSummary(k), ...evidenceTable(k.evidence, false), ...excludedTable(k.excluded), ...warningList(k.warnings));
  }

  if (withoutAcl.length > 0) {
    lines.push('## Keys without an ACL of their own', '');
    for (const k of withoutAcl) {
      lines.push(`### ${k.accessKeyId}${k.userName ? ` (${k.userName})` : ''}`, '', `${k.coveredByAccount ? 'Governed by the account-level ACL' : 'No ACL proposed'}: ${k.reason}.`, '');
      lines.push(...excludedTable(k.excluded), ...warningList(k.warnings));
    }
  }
  return `${lines.join('\n').trimEnd()}\n`;
}
