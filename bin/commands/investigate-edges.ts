// What the investigate handlers share at the edge: the store opened read-only, ACL files read and checked
// against the keys the store knows, and small output helpers.
import { readFileSync } from 'node:fs';
import { parseAclText, type LoadedAcls } from '../../model/acl-file.ts';
import { InvalidInputError, UsageError } from '../../model/errors.ts';
import { Store } from '../../ingest/store.ts';
import { loadKnownKeys } from '../../analyze/replay.ts';
import { resolveDbPaths } from '../common.ts';

export interface CommonFlags {
  db?: string[];
  json?: boolean;
}

export async function openStore(flags: CommonFlags): Promise<Store> {
  const paths = resolveDbPaths(flags.db);
  return Store.open(paths.length === 1 ? paths[0]! : paths, { readOnly: true });
}

/**
 * Reads and validates an ACL/proposal file. A proposal naming a key the store has never seen is rejected with
 * its path; IMS documents naming one are read, with a note. Notes go to stderr (stdout stays the answer).
 */
export async function readAcls(path: string, store: Store): Promise<LoadedAcls> {
  const loaded = await parseAclFile(path, store);
  for (const note of loaded.notes) process.stderr.write(`keyfence: note: ${note}\n`);
  return loaded;
}

async function parseAclFile(path: string, store: Store): Promise<LoadedAcls> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new InvalidInputError(`cannot read ${path}: ${e instanceof Error ? e.message : String(e)}`, { hint: 'check the path', context: { file: path } });
  }
  const loaded = parseAclText(text, { source: path });
  const known = await loadKnownKeys(store, loaded.namedKeys);
  // Read again against the keys the store knows: the first unknown one is rejected with its exact path (a
  // proposal) or each is noted (IMS documents).
  return known.size === loaded.namedKeys.length ? loaded : parseAclText(text, { source: path, knownKeys: known, unknownKeysInIms: 'note' });
}

export function positiveInt(name: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`${name} ${JSON.stringify(text)} is not a whole number`);
  return n;
}

export function pct(share: number): string {
  return `${(share * 100).toFixed(share > 0 && share < 0.001 ? 4 : 2)}%`;
}

export function out(lines: string[]): void {
  process.stdout.write(`${lines.join('\n')}\n`);
}
