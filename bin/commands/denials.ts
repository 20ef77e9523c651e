// `keyfence denials`: calls refused by an ACL, grouped by key and source, each explained.
import { parseAddress } from '../../model/address.ts';
import { EXIT } from '../../model/errors.ts';
import { resolveStoreWindow } from '../../analyze/window.ts';
import { loadDenials, type DenialGroup } from '../../analyze/denials.ts';
import { explainCall, type Explanation } from '../../recommend/explain.ts';
import { printJson } from '../common.ts';
import { explanationText } from './explain.ts';
import { openStore, out, readAcls, type CommonFlags } from './investigate-edges.ts';

interface DenialsFlags extends CommonFlags {
  since: string;
  key?: string[];
  acl?: string;
}

interface ExplainedDenial extends DenialGroup {
  explanation: Explanation | null;
}

export async function denialsCommand(flags: DenialsFlags): Promise<number> {
  const store = await openStore(flags);
  try {
    const acls = flags.acl ? await readAcls(flags.acl, store) : null;
    const window = await resolveStoreWindow(store, { since: flags.since }, '7d');
    const groups = await loadDenials(store, { window, keys: flags.key });
    const explained: ExplainedDenial[] = groups.map((g) => {
      const address = g.ip ? parseAddress(g.ip) : null;
      const explanation = address && (g.sourceKind === 'public' || g.sourceKind === 'vpc')
        ? explainCall(acls?.inForce ?? null, { accessKeyId: g.accessKeyId, address, vpcId: g.vpcId, service: g.exempt ? g.services[0] ?? null : null })
        : null;
      return { ...g, explanation };
    });
    const totals = { groups: explained.length, deniedCalls: explained.reduce((s, g) => s + g.deniedCalls, 0), keys: new Set(explained.map((g) => g.accessKeyId)).size };
    if (flags.json) printJson({ window, totals, denials: explained });
    else {
      const lines = [`${totals.deniedCalls} calls refused by an ACL from ${totals.groups} key × source pairs (${totals.keys} keys), ${window.from} .. ${window.to}`];
      for (const g of explained) {
        lines.push('', `${g.accessKeyId} from ${g.sourceKind} ${g.ip ?? '(none)'}${g.vpcId ? ` in ${g.vpcId}` : ''}: ${g.deniedCalls} refused on ${g.days} days, ${g.firstDenied} .. ${g.lastDenied}`);
        lines.push(`  services: ${g.services.join(', ') || '-'}; APIs: ${g.eventNames.join(', ') || '-'}; example event ${g.exampleEventId}`);
        lines.push(g.history.allowedCalls > 0
          ? `  before: ${g.history.allowedCalls} allowed calls from this source, last ${g.history.lastAllowed}: the ACL or its status changed`
          : '  before: no call from this source was ever allowed: a new source (or one never admitted)');
        if (g.explanation) lines.push(...explanationText(g.explanation).slice(1));
        else lines.push(`  the recorded source is ${g.sourceKind}: an ACL decision cannot be reproduced for it`);
      }
      out(lines);
    }
    return totals.groups > 0 ? EXIT.ATTENTION : EXIT.OK;
  } finally {
    store.close();
  }
}
