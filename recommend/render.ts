// A proposal in the forms people and tools take it in: the JSON contract, the IMS AccessKeyPolicy documents,
// Terraform, RAM console paste text, a RAM policy with acs:SourceIp, and a Markdown review. Pure.
import { InvalidInputError } from '../model/errors.ts';
import type { AclProposal, AclRules } from '../model/types.ts';
import { renderMarkdown } from './render-markdown.ts';

export type RenderFormat = 'json' | 'api' | 'terraform' | 'console' | 'policy' | 'markdown';
export const RENDER_FORMATS: readonly RenderFormat[] = ['json', 'api', 'terraform', 'console', 'policy', 'markdown'];

/** An IMS `AccessKeyPolicy` document, as SetAccessKeyPolicy / SetAccessKeyPolicyForAccount take it (JSON-encoded). */
export interface AccessKeyPolicyDocument {
  Version: 1;
  Status: 'Active' | 'Inactive';
  Statements: Array<{ Type: 'ClassicWhiteList'; IPList: string[] } | { Type: 'VPCWhiteList'; Value: string; IPList: string[] }>;
}

/** The document for one ACL. A draft is rendered as it would be submitted: Active. */
export function accessKeyPolicyDocument(rules: AclRules): AccessKeyPolicyDocument {
  const statements: AccessKeyPolicyDocument['Statements'] = [];
  if (rules.public && rules.public.cidrs.length > 0) statements.push({ Type: 'ClassicWhiteList', IPList: [...rules.public.cidrs] });
  for (const v of [...rules.vpc].sort((a, b) => (a.vpcId < b.vpcId ? -1 : a.vpcId > b.vpcId ? 1 : 0))) {
    statements.push({ Type: 'VPCWhiteList', Value: v.vpcId, IPList: [...v.cidrs] });
  }
  return { Version: 1, Status: rules.status === 'disabled' ? 'Inactive' : 'Active', Statements: statements };
}

/** `{"account": doc, "LTAI…": doc, …}`: the shape `model/acl-file.ts` reads back as "the ACLs in force". */
function renderApi(p: AclProposal): string {
  const out: Record<string, AccessKeyPolicyDocument> = {};
  if (p.accountLevel) out.account = accessKeyPolicyDocument(p.accountLevel);
  for (const k of p.accessKeys) out[k.accessKeyId] = accessKeyPolicyDocument(k);
  return `${JSON.stringify(out, null, 2)}\n`;
}

function hclString(s: string): string {
  // Terraform interpolates ${…} and %{…} inside strings: escape them.
  return JSON.stringify(s).replace(/\$\{/g, () => '$${').replace(/%\{/g, () => '%%{');
}

function hclPolicy(doc: AccessKeyPolicyDocument, indent: string): string {
  const lines = [`jsonencode({`, `${indent}  Version    = 1`, `${indent}  Status     = ${hclString(doc.Status)}`, `${indent}  Statements = [`];
  for (const s of doc.Statements) {
    lines.push(`${indent}    {`);
    lines.push(`${indent}      Type   = ${hclString(s.Type)}`);
    if (s.Type === 'VPCWhiteList') lines.push(`${indent}      Value  = ${hclString(s.Value)}`);
    lines.push(`${indent}      IPList = [${s.IPList.map(hclString).join(', ')}]`);
    lines.push(`${indent}    },`);
  }
  lines.push(`${indent}  ]`, `${indent}})`);
  return lines.join('\n');
}

function resourceName(accessKeyId: string): string {
  return `key_${accessKeyId.toLowerCase().replace(/[^a-z0-9_]/g, '_')}`;
}

function renderTerraform(p: AclProposal): string {
  const lines = [
    `# keyfence proposal generated ${p.generatedAt} from events ${p.window.from} .. ${p.window.to}: a DRAFT for review.`,
    '# Resource: alicloud_ram_access_key_policy (alicloud provider >= 1.286.0; arguments user_access_key_id,',
    '# user_principal_name, access_key_policy as a JSON string), confirmed against the provider documentation.',
    '# Destroying the resource sets an Inactive policy with no statements, which the vendor treats as no policy.',
    '',
  ];
  if (p.accountLevel) {
    const doc = accessKeyPolicyDocument(p.accountLevel);
    lines.push(
      '# Account-level ACL (governs every key without a key-level ACL):',
      '# NOT CONFIRMED: no alicloud provider resource for the account-level policy (SetAccessKeyPolicyForAccount) could be',
      '# confirmed, so none is emitted. Apply this document with the API instead, e.g.:',
      `#   aliyun ims SetAccessKeyPolicyForAccount --AccessKeyPolicy '${JSON.stringify(doc)}'`,
      '',
    );
  }
  for (const k of p.accessKeys) {
    const doc = accessKeyPolicyDocument(k);
    lines.push(`resource "alicloud_ram_access_key_policy" "${resourceName(k.accessKeyId)}" {`);
    lines.push(`  user_access_key_id = ${hclString(k.accessKeyId)}`);
    lines.push(
      k.userName
        ? `  # user_principal_name = "${k.userName}@<account-id>.onaliyun.com" # the RAM user's logon name; required unless the key is the caller's own`
        : '  # user_principal_name: the owning RAM user\'s logon name (unknown here); required unless the key is the caller\'s own',
    );
    lines.push(`  access_key_policy = ${hclPolicy(doc, '  ')}`);
    lines.push('}', '');
  }
  if (p.accessKeys.length === 0 && !p.accountLevel) lines.push('# No ACL proposed: see the warnings of the JSON or Markdown form.');
  return `${lines.join('\n').trimEnd()}\n`;
}

function renderConsole(p: AclProposal): string {
  const lines = [
    `keyfence proposal (DRAFT) generated ${p.generatedAt}, events ${p.window.from} .. ${p.window.to}`,
    'RAM console > AccessKey network access control: paste each list into the field named (entries separated by commas).',
    '',
  ];
  const block = (title: string, rules: AclRules): void => {
    lines.push(title);
    lines.push(`  Public network: ${rules.public ? rules.public.cidrs.join(',') : '(no public rule: leave empty; once enabled, EVERY call from a public address is denied)'}`);
    if (rules.vpc.length === 0) lines.push('  VPC: (no VPC rule: once enabled, every call through a VPC endpoint is denied)');
    for (const v of rules.vpc) lines.push(`  VPC ${v.vpcId}: ${v.cidrs.join(',')}`);
    lines.push('');
  };
  if (p.accountLevel) block(`Account level (governs ${p.accountLevel.coveredKeys?.length ?? 0} analyzed keys and every key without its own ACL)`, p.accountLevel);
  for (const k of p.accessKeys) block(`AccessKey ${k.accessKeyId}${k.userName ? ` (RAM user ${k.userName})` : ''}`, k);
  if (p.accessKeys.length === 0 && !p.accountLevel) lines.push('No ACL proposed.');
  return `${lines.join('\n').trimEnd()}\n`;
}

/**
 * The older form: a RAM policy attached to the user, denying calls from outside the public entries. Per RAM
 * user (a user may hold two keys while rotating); a key without a key-level ACL uses the account level's.
 */
function renderPolicy(p: AclProposal): string {
  const caveats = [
    'acs:SourceIp sees the public (NAT/EIP) egress address only: it cannot express VPC private sources, so these policies carry the public entries only.',
    'A Deny on NotIpAddress also refuses calls that reach the service through a VPC endpoint (their source is a private address): for keys with VPC traffic prefer the network ACL (--format api or terraform).',
    'A RAM policy binds a RAM user (all of its keys), not one AccessKey; it does not govern the root account.',
  ];
  const byUser = new Map<string, { accessKeyIds: string[]; cidrs: Set<string>; vpc: boolean }>();
  const add = (user: string | null, accessKeyId: string, rules: AclRules | null): void => {
    if (!rules) return;
    const name = user ?? `(unknown user of ${accessKeyId})`;
    const entry = byUser.get(name) ?? { accessKeyIds: [], cidrs: new Set<string>(), vpc: false };
    entry.accessKeyIds.push(accessKeyId);
    for (const c of rules.public?.cidrs ?? []) entry.cidrs.add(c);
    if (rules.vpc.length > 0) entry.vpc = true;
    byUser.set(name, entry);
  };
  for (const k of p.accessKeys) add(k.userName, k.accessKeyId, k);
  for (const k of p.keysWithoutAcl ?? []) if (k.coveredByAccount) add(k.userName, k.accessKeyId, p.accountLevel);
  const policies = [...byUser].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([userName, e]) => {
    const cidrs = [...e.cidrs].sort();
    const notes: string[] = [];
    if (e.vpc) notes.push('this user\'s keys also call through VPC endpoints: this policy would deny those calls');
    if (cidrs.length === 0) notes.push('no public entries: this policy denies every call made with these keys');
    return {
      userName,
      accessKeyIds: e.accessKeyIds.sort(),
      policyName: `keyfence-source-ip-${userName.replace(/[^A-Za-z0-9-]/g, '-')}`.slice(0, 128),
      notes,
      policyDocument: {
        Version: '1',
        Statement: [{ Effect: 'Deny', Action: '*', Resource: '*', Condition: { NotIpAddress: { 'acs:SourceIp': cidrs } } }],
      },
    };
  });
  return `${JSON.stringify({ generatedAt: p.generatedAt, window: p.window, caveats, policies }, null, 2)}\n`;
}

export function render(proposal: AclProposal, format: RenderFormat): string {
  switch (format) {
    case 'json':
      return `${JSON.stringify(proposal, null, 2)}\n`;
    case 'api':
      return renderApi(proposal);
    case 'terraform':
      return renderTerraform(proposal);
    case 'console':
      return renderConsole(proposal);
    case 'policy':
      return renderPolicy(proposal);
    case 'markdown':
      return renderMarkdown(proposal);
    default:
      throw new InvalidInputError(`unknown format ${JSON.stringify(format)}`, { hint: `use one of ${RENDER_FORMATS.join(', ')}` });
  }
}
