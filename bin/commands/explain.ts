// `keyfence explain`: the verdict of the ACLs in force on one call, the smallest fix, and the source's history.
import { parseAddress } from '../../model/address.ts';
import { EXIT, UsageError } from '../../model/errors.ts';
import { resolveStoreWindow } from '../../analyze/window.ts';
import { loadSourceHistory, type SourceHistory } from '../../analyze/history.ts';
import { explainCall, type Explanation } from '../../recommend/explain.ts';
import { printJson } from '../common.ts';
import { openStore, out, readAcls, type CommonFlags } from './investigate-edges.ts';

interface ExplainFlags extends CommonFlags {
  key: string;
  ip: string;
  vpc?: string;
  service?: string;
  acl?: string;
  since: string;
}

export async function explainCommand(flags: ExplainFlags): Promise<number> {
  const address = parseAddress(flags.ip);
  if (!address) {
    throw new UsageError(`--ip ${JSON.stringify(flags.ip)} is not an IP address`, {
      hint: 'give four-part decimal IPv4 (203.0.113.7) or standard IPv6 (2001:db8::7); masked values such as 192.168.XX.XX cannot be explained',
    });
  }
  if (flags.vpc !== undefined && !/^vpc-[0-9a-z]+$/i.test(flags.vpc)) throw new UsageError(`--vpc ${JSON.stringify(flags.vpc)} is not a VPC ID`, { hint: 'e.g. vpc-bp1abc…' });
  const store = await openStore(flags);
  try {
    const acls = flags.acl ? await readAcls(flags.acl, store) : null;
    const explanation = explainCall(acls?.inForce ?? null, { accessKeyId: flags.key, address, vpcId: flags.vpc ?? null, service: flags.service ?? null });
    const window = await resolveStoreWindow(store, { since: flags.since }, '90d');
    const history = await loadSourceHistory(store, { accessKeyId: flags.key, address, vpcId: flags.vpc ?? null, window });
    if (flags.json) printJson({ explanation, history, aclNotes: acls?.notes ?? [] });
    else out([...explanationText(explanation), ...historyText(history)]);
    return EXIT.OK;
  } finally {
    store.close();
  }
}

export function explanationText(e: Explanation): string[] {
  const c = e.call;
  const lines = [`${c.accessKeyId} (${c.keyKind}) from ${c.sourceKind} ${c.ip}${c.vpcId ? ` in ${c.vpcId}` : ''}${c.service ? ` to ${c.service}` : ''}`];
  if (e.aclCannotBeCause) lines.push(`  an ACL cannot be the cause: ${e.aclCannotBeCause}`);
  if (e.verdict) {
    lines.push(`  verdict: ${e.verdict.allowed ? 'ALLOWED' : 'DENIED'} (${e.verdict.code})`);
    if (e.governing) {
      const g = e.governing;
      lines.push(`  governed by the ${g.level}-level ACL (${g.enabled ? 'enabled' : 'disabled'}): public rule ${g.publicEntries === null ? 'none' : `${g.publicEntries} entries`}, VPC rules ${g.vpcRules.length ? g.vpcRules.map((r) => `${r.vpcId} (${r.entries})`).join(', ') : 'none'}`);
    }
  }
  lines.push(`  ${e.deciding}`);
  if (e.fixes.length > 0) {
    lines.push('  fix (smallest first):');
    for (const [i, f] of e.fixes.entries()) lines.push(`    ${i === 0 && f.possible ? '*' : '-'} ${f.text}`);
  }
  for (const n of e.notes) lines.push(`  note: ${n}`);
  return lines;
}

function historyText(h: SourceHistory): string[] {
  const lines = [`history ${h.window.from} .. ${h.window.to}:`];
  if (h.rolledUpBefore) lines.push(`  (events before ${h.rolledUpBefore} were pruned: the key's counts include their rollup, a source's its governed calls only; services and errors are not kept)`);
  if (!h.key.seen) lines.push(`  the store holds no call with ${h.key.accessKeyId} in this window`);
  else lines.push(`  key: ${h.key.calls} calls from ${h.key.sources} sources, ${h.key.firstSeen} .. ${h.key.lastSeen}`);
  const s = h.source;
  if (s) {
    lines.push(`  this source: ${s.calls} calls on ${s.days} days, ${s.firstSeen} .. ${s.lastSeen}, ${s.errorCalls} errors, ${s.deniedCalls} refused by an ACL`);
    if (s.services.length) lines.push(`    services: ${s.services.join(', ')}`);
    if (s.errorCodes.length) lines.push(`    errors: ${s.errorCodes.join(', ')}`);
  } else if (h.key.seen) lines.push('  this source: never seen with this key');
  lines.push(`  neighbours in ${h.neighbours.prefix}: ${h.neighbours.addresses} addresses, ${h.neighbours.calls} calls`);
  for (const n of h.neighbours.sources) lines.push(`    ${n.ip}: ${n.calls} calls on ${n.days} days, last ${n.lastSeen}`);
  if (h.otherKeys.length) lines.push(`  other keys from this address: ${h.otherKeys.map((k) => `${k.accessKeyId} (${k.calls})`).join(', ')}`);
  const looks = [h.looks.newSource ? 'new' : null, h.looks.poolLike ? 'dynamic pool' : null, h.looks.possibleLeak ? 'possible leak' : null].filter(Boolean);
  lines.push(`  looks: ${looks.length ? looks.join(', ') : 'established'}`);
  for (const r of h.looks.reasons) lines.push(`    - ${r}`);
  return lines;
}
