// `keyfence quarantine`: the records ingest rejected, where they came from, why, and their raw text.
import { QUARANTINE_REASONS, Store, type QuarantineRecord } from '../../ingest/store.ts';
import { EXIT, UsageError } from '../../model/errors.ts';
import { printJson, resolveDbPaths } from '../common.ts';

export async function listQuarantine(opts: { db?: string[]; json?: boolean; limit: string; reason?: string }): Promise<number> {
  const limit = Number(opts.limit);
  if (!Number.isInteger(limit) || limit < 1) throw new UsageError(`--limit ${JSON.stringify(opts.limit)} is not a positive whole number`);
  if (opts.reason !== undefined && !(QUARANTINE_REASONS as readonly string[]).includes(opts.reason)) {
    throw new UsageError(`--reason ${JSON.stringify(opts.reason)} is not a rejection reason`, { hint: `one of ${QUARANTINE_REASONS.join(', ')}` });
  }
  const store = await Store.open(resolveDbPaths(opts.db), { readOnly: true });
  try {
    const { total, records } = await store.listQuarantine({ limit, reason: opts.reason ?? null });
    if (opts.json) {
      printJson({ total, shown: records.length, records });
      return EXIT.OK;
    }
    if (total === 0) {
      process.stdout.write('quarantine is empty\n');
      return EXIT.OK;
    }
    const out = [`${total.toLocaleString('en-US')} quarantined record${total === 1 ? '' : 's'}${records.length < total ? `, showing ${records.length}` : ''}`];
    for (const r of records) out.push(...formatQuarantined(r));
    process.stdout.write(`${out.join('\n')}\n`);
    return EXIT.OK;
  } finally {
    store.close();
  }
}

function formatQuarantined(r: QuarantineRecord): string[] {
  const preview = r.raw.length > 160 ? `${r.raw.slice(0, 160)}…` : r.raw;
  return [
    `${r.source} ${r.location}  [${r.reason}]  ${r.detail ?? ''}`,
    `    raw (${r.rawBytes} bytes${r.raw.length < r.rawBytes ? ', capped' : ''}): ${JSON.stringify(preview)}`,
  ];
}
