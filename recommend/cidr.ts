// The exact optimal cover of a set of addresses and blocks by at most K prefixes, minimising admitted-but-unseen
// space (see docs/cidr.md for the algorithm and the cost unit). Pure: no I/O, no clock.
import { FAMILY_BITS, type Prefix } from '../model/address.ts';
import { UsageError } from '../model/errors.ts';
import { emitCover, familyCurve, fewestEntriesFor, minPlusInto, splitOf, VectorArena, type FamilyCurve } from './cidr-dp.ts';
import {
  InfeasibleCoverError,
  UNIT_BITS,
  blockToPrefix,
  minimumEntries,
  normalizeFamilies,
  resolveCoverOptions,
  unitsOf,
  type Cover,
  type CoverItem,
  type CoverOptions,
} from './cidr-items.ts';
import { buildTrie } from './cidr-trie.ts';

export { InfeasibleCoverError, DEFAULT_MAX_LENGTH, DEFAULT_MIN_LENGTH, type Cover, type CoverItem, type CoverOptions } from './cidr-items.ts';
export { greedyCover } from './cidr-greedy.ts';

export interface CoverCurve {
  /** costs[k] = least unseen units with at most k entries, k = 0..K; Infinity where the guardrail makes k entries impossible. */
  costs: number[];
  /** The fewest entries any cover needs under the guardrail (0 for no items); costs[k] is finite from here on. */
  minEntries: number;
  /** Units of the items (what was seen), the part of every cover's `units` that is not cost. */
  seenUnits: number;
  /** The optimal cover with at most k entries (fewest entries among equal costs). Throws InfeasibleCoverError below `minEntries`. */
  coverAt(k: number): Cover;
}

/** The optimal cover with at most `options.maxEntries` entries. Throws InfeasibleCoverError when the guardrail makes that impossible. */
export function optimalCover(items: CoverItem[], options: CoverOptions): Cover {
  return coverCurve(items, options).coverAt(options.maxEntries);
}

/** The optimal cost for every budget 0..K in one pass, and the cover at any of them. */
export function coverCurve(items: CoverItem[], options: CoverOptions): CoverCurve {
  const resolved = resolveCoverOptions(options);
  const K = resolved.maxEntries;
  const families = normalizeFamilies(items, resolved.maxLength);
  // Most vectors are short (a node above two leaves holds three numbers): start the arena near its usual size.
  const arena = new VectorArena(families.reduce((sum, f) => sum + 4 * f.count, 64));
  const curves: FamilyCurve[] = [];
  let minEntries = 0;
  let seenUnits = 0;
  // Grouping to maxLength counts grouped-but-unseen units as seen inside the program; add them back as cost.
  let groupingCost = 0;
  for (const blocks of families) {
    const minLength = resolved.minLength[blocks.family];
    minEntries += minimumEntries(blocks, minLength);
    seenUnits += blocks.seenUnits;
    groupingCost += blocks.groupedUnits - blocks.seenUnits;
    curves.push(familyCurve(blocks, buildTrie(blocks), minLength, K, arena));
  }

  // Both families share the budget: one more min-plus merge of their root vectors.
  let rootOff = -1;
  let rootCap = 0;
  if (curves.length === 1) {
    rootOff = curves[0]!.offset[curves[0]!.trie.root]!;
    rootCap = curves[0]!.cap[curves[0]!.trie.root]!;
  } else if (curves.length === 2) {
    const [a, b] = curves as [FamilyCurve, FamilyCurve];
    const aCap = a.cap[a.trie.root]!;
    const bCap = b.cap[b.trie.root]!;
    rootCap = Math.min(K, aCap + bCap);
    rootOff = arena.allocate(rootCap + 1);
    minPlusInto(arena.data, a.offset[a.trie.root]!, aCap, b.offset[b.trie.root]!, bCap, rootOff, rootCap);
  }

  const data = arena.data;
  const costs: number[] = [];
  for (let k = 0; k <= K; k++) {
    costs.push(curves.length === 0 ? 0 : data[rootOff + Math.min(k, rootCap)]! + groupingCost);
  }

  function coverAt(k: number): Cover {
    if (!Number.isSafeInteger(k) || k < 0 || k > K) {
      throw new UsageError(`a cover can be asked for 0..${K} entries, not ${String(k)}`);
    }
    if (costs[k] === Infinity) throw new InfeasibleCoverError(minEntries, k, resolved.minLength);
    const prefixes: Prefix[] = [];
    if (curves.length === 1) {
      const c = curves[0]!;
      emitCover(c, c.trie.root, k, prefixes);
    } else if (curves.length === 2) {
      const [a, b] = curves as [FamilyCurve, FamilyCurve];
      const kk = fewestEntriesFor(arena.data, rootOff, Math.min(k, rootCap));
      const i = splitOf(arena.data, a.offset[a.trie.root]!, a.cap[a.trie.root]!, b.offset[b.trie.root]!, b.cap[b.trie.root]!, kk, arena.data[rootOff + kk]!);
      emitCover(a, a.trie.root, i, prefixes);
      emitCover(b, b.trie.root, kk - i, prefixes);
    }
    const units = prefixes.reduce((sum, p) => sum + prefixUnits(p), 0);
    return { prefixes, cost: costs[k]!, units };
  }

  return { costs, minEntries, seenUnits, coverAt };
}

/**
 * Units a prefix admits: IPv4 addresses, or IPv6 /64 subnets (a /L with L ≤ 64 spans 2^(64−L)). An IPv6 prefix
 * longer than /64 counts as the one /64 it sits in, as an item does.
 */
export function prefixUnits(p: Pick<Prefix, 'family' | 'length'>): number {
  const unitBits = UNIT_BITS[p.family];
  return unitsOf(unitBits, Math.min(p.length, unitBits));
}

/**
 * Units a set of addresses or blocks spans, each unit once: duplicates and nested items count once, IPv6
 * items are grouped to their /64. Works on `Prefix[]` too (the admitted space of an ACL).
 */
export function itemsToUnits(items: readonly CoverItem[]): number {
  return normalizeFamilies(items, { 4: FAMILY_BITS[4], 6: UNIT_BITS[6] }).reduce((sum, f) => sum + f.seenUnits, 0);
}

/** The items as the cover sees them: IPv6 grouped to /64, duplicates and items inside other items dropped; sorted by family, then base. */
export function normalizeItems(items: readonly CoverItem[]): CoverItem[] {
  const out: CoverItem[] = [];
  for (const f of normalizeFamilies(items, { 4: FAMILY_BITS[4], 6: UNIT_BITS[6] })) {
    for (let i = 0; i < f.count; i++) out.push(blockToPrefix(f.family, f.hi[i]!, f.lo[i]!, f.len[i]!));
  }
  return out;
}
