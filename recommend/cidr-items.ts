// The cover's vocabulary and its input side: options, the infeasibility error, and the normalisation of items
// into sorted, disjoint blocks held as plain numbers (no bigint past this file's edge).
import { FAMILY_BITS, type Prefix } from '../model/address.ts';
import { EXIT, InvalidInputError, KeyfenceError, UsageError } from '../model/errors.ts';
import type { IpFamily } from '../model/types.ts';

/** An address (length 32 or 128) or a block that must be covered whole. IPv6 items longer than /64 are grouped to their /64. */
export interface CoverItem {
  family: IpFamily;
  base: bigint;
  length: number;
}

export interface CoverOptions {
  /** K: at most this many entries, shared by IPv4 and IPv6. */
  maxEntries: number;
  /** Guardrail: no entry shorter than this (default {4:16, 6:32}). /0 is never proposed whatever the options. */
  minLength?: { 4: number; 6: number };
  /** The finest entry (default {4:32, 6:64}); IPv6 entries are /64 or shorter. Items finer than this are grouped to it. */
  maxLength?: { 4: number; 6: number };
}

export interface Cover {
  /** Sorted: IPv4 first, then by base. Disjoint. */
  prefixes: Prefix[];
  /** Admitted units never seen: `units` minus the units of the items. */
  cost: number;
  /** Units admitted by `prefixes` (IPv4 addresses + IPv6 /64 subnets). */
  units: number;
}

export const DEFAULT_MIN_LENGTH = { 4: 16, 6: 32 } as const;
export const DEFAULT_MAX_LENGTH = { 4: 32, 6: 64 } as const;
/** Cost is counted in IPv4 addresses and IPv6 /64 subnets: the bit width of one family's unit space. */
export const UNIT_BITS: Record<IpFamily, 32 | 64> = { 4: 32, 6: 64 };

/** The guardrail (minimum prefix length) leaves more blocks to cover than the budget allows. */
export class InfeasibleCoverError extends KeyfenceError {
  override readonly exitCode = EXIT.USAGE;
  /** The fewest entries that cover the items without an entry shorter than the guardrail. */
  readonly neededEntries: number;
  readonly maxEntries: number;
  readonly minLength: { 4: number; 6: number };

  constructor(neededEntries: number, maxEntries: number, minLength: { 4: number; 6: number }) {
    super(
      `covering these sources takes at least ${neededEntries} entries no broader than /${minLength[4]} (IPv4) and /${minLength[6]} (IPv6), but only ${maxEntries} are allowed`,
      {
        hint: `allow at least ${neededEntries} entries, drop sources, or pass --allow-broad to permit entries shorter than /${minLength[4]} (IPv4) and /${minLength[6]} (IPv6)`,
        context: { neededEntries, maxEntries, minLength: { ...minLength } },
      },
    );
    this.name = 'InfeasibleCoverError';
    this.neededEntries = neededEntries;
    this.maxEntries = maxEntries;
    this.minLength = { ...minLength };
  }
}

export interface ResolvedCoverOptions {
  maxEntries: number;
  minLength: { 4: number; 6: number };
  maxLength: { 4: number; 6: number };
}

export function resolveCoverOptions(options: CoverOptions): ResolvedCoverOptions {
  const { maxEntries } = options;
  if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) {
    throw new UsageError(`the entry budget must be a whole number ≥ 1, got ${String(maxEntries)}`, { hint: 'pass a budget such as 50' });
  }
  const minLength = { ...(options.minLength ?? DEFAULT_MIN_LENGTH) };
  const maxLength = { ...(options.maxLength ?? DEFAULT_MAX_LENGTH) };
  for (const family of [4, 6] as const) {
    const unitBits = UNIT_BITS[family];
    const lo = minLength[family];
    const hi = maxLength[family];
    if (!Number.isInteger(lo) || lo < 0 || lo > unitBits) {
      throw new UsageError(`the IPv${family} minimum prefix length must be 0..${unitBits}, got ${String(lo)}`);
    }
    if (!Number.isInteger(hi) || hi < 1 || hi > unitBits) {
      throw new UsageError(`the IPv${family} finest entry must be /1../${unitBits}, got ${String(hi)}`);
    }
    // /0 admits everything: never proposed, whatever the options.
    minLength[family] = Math.max(1, lo);
    if (minLength[family] > hi) {
      throw new UsageError(`the IPv${family} minimum prefix length /${minLength[family]} is longer than the finest entry /${hi}`);
    }
  }
  return { maxEntries, minLength, maxLength };
}

/**
 * One family's items, sorted by base, pairwise disjoint, each at most `maxLength` long. A block's address
 * bits in unit space are `hi` (bits 0..31) and `lo` (bits 32..63, IPv6 only); `len` counts unit-space bits.
 */
export interface FamilyBlocks {
  family: IpFamily;
  unitBits: 32 | 64;
  count: number;
  hi: Uint32Array;
  lo: Uint32Array;
  len: Uint8Array;
  /** Units of the items before grouping to `maxLength`: what was really seen. */
  seenUnits: number;
  /** Units of the grouped blocks (≥ seenUnits). */
  groupedUnits: number;
}

/** POWERS_OF_TWO[b] = 2^b for b = 0..64 (exact in float64). */
export const POWERS_OF_TWO: Float64Array = Float64Array.from({ length: 65 }, (_, b) => 2 ** b);

export function unitsOf(unitBits: number, length: number): number {
  return POWERS_OF_TWO[unitBits - length]!;
}

/** `x` (an unsigned 32-bit number) with all but its first `bits` bits cleared. */
export function maskWord(x: number, bits: number): number {
  if (bits <= 0) return 0;
  if (bits >= 32) return x;
  return (x & (0xffffffff << (32 - bits))) >>> 0;
}

/** Length of the common prefix of two blocks' bases, in unit-space bits. */
export function commonPrefixLength(hiA: number, loA: number, hiB: number, loB: number): number {
  if (hiA !== hiB) return Math.clz32(hiA ^ hiB);
  if (loA !== loB) return 32 + Math.clz32(loA ^ loB);
  return 64;
}

/**
 * Validates and normalises items per family: v6 grouped to /64 (the unit), deduplicated, items inside other
 * items dropped (`seenUnits` counted here), then grouped to `maxLength`.
 */
export function normalizeFamilies(items: readonly CoverItem[], maxLength: { 4: number; 6: number }): FamilyBlocks[] {
  let v4 = 0;
  for (let i = 0; i < items.length; i++) {
    const item = items[i]!;
    checkItem(item, i);
    if (item.family === 4) v4++;
  }
  const out: FamilyBlocks[] = [];
  if (v4 > 0) out.push(groupTo(normalizeFamily(items, 4, v4), maxLength[4]));
  if (items.length - v4 > 0) out.push(groupTo(normalizeFamily(items, 6, items.length - v4), maxLength[6]));
  return out;
}

const ADDRESS_LIMIT: Record<IpFamily, bigint> = { 4: 1n << 32n, 6: 1n << 128n };

function checkItem(item: CoverItem, index: number): void {
  const ok =
    item !== null &&
    typeof item === 'object' &&
    (item.family === 4 || item.family === 6) &&
    typeof item.base === 'bigint' &&
    Number.isInteger(item.length) &&
    item.length >= 0 &&
    item.length <= FAMILY_BITS[item.family] &&
    item.base >= 0n &&
    item.base < ADDRESS_LIMIT[item.family];
  if (!ok) {
    throw new InvalidInputError(`cover item ${index} is not an IPv4/IPv6 prefix`, {
      context: { index, item: String(item && typeof item === 'object' ? JSON.stringify(item, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) : item) },
    });
  }
}

function normalizeFamily(items: readonly CoverItem[], family: IpFamily, count: number): FamilyBlocks {
  const hi = new Uint32Array(count);
  const lo = new Uint32Array(count);
  const len = new Uint8Array(count);
  let n = 0;
  for (let i = 0; i < items.length; i++) {
    const item = items[i]!;
    if (item.family !== family) continue;
    if (family === 4) {
      len[n] = item.length;
      hi[n] = maskWord(Number(item.base), item.length);
    } else {
      const length = Math.min(item.length, 64);
      len[n] = length;
      hi[n] = maskWord(Number(item.base >> 96n), length);
      lo[n] = maskWord(Number((item.base >> 64n) & 0xffffffffn), length - 32);
    }
    n++;
  }
  const order = sortOrder(hi, lo, len);
  const blocks = emptyBlocks(family, count);
  const unitBits = blocks.unitBits;
  let kept = 0;
  let endHi = -1;
  let endLo = -1;
  for (let o = 0; o < count; o++) {
    const i = order[o]!;
    const h = hi[i]!;
    const l = lo[i]!;
    // A duplicate, or inside the previous block (sorted by base, shorter first).
    if (h < endHi || (h === endHi && l <= endLo)) continue;
    const length = len[i]!;
    blocks.hi[kept] = h;
    blocks.lo[kept] = l;
    blocks.len[kept] = length;
    kept++;
    if (length <= 32) {
      endHi = h + POWERS_OF_TWO[32 - length]! - 1;
      endLo = 0xffffffff;
    } else {
      endHi = h;
      endLo = l + POWERS_OF_TWO[64 - length]! - 1;
    }
    blocks.seenUnits += unitsOf(unitBits, length);
  }
  return trim(blocks, kept);
}

const SMALL_SORT = 2048;

/**
 * Indices in order of (hi, lo, len): a stable least-significant-digit radix sort on 16-bit digits, skipping
 * digits that are the same everywhere (IPv4 has no `lo`; address lists have one length). Small inputs take a
 * comparison sort.
 */
function sortOrder(hi: Uint32Array, lo: Uint32Array, len: Uint8Array): Uint32Array {
  const n = hi.length;
  let order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  // Most keys have a handful of sources: clearing 65 k counters per pass would cost more than sorting them.
  if (n < SMALL_SORT) return order.sort((a, b) => hi[a]! - hi[b]! || lo[a]! - lo[b]! || len[a]! - len[b]!);
  let scratch = new Uint32Array(n);
  const counts = new Uint32Array(65537);
  const passes: Array<[Uint32Array | Uint8Array, number]> = [[len, 0], [lo, 0], [lo, 16], [hi, 0], [hi, 16]];
  for (const [words, shift] of passes) {
    if (radixPass(words, shift, order, scratch, counts)) [order, scratch] = [scratch, order];
  }
  return order;
}

/** One stable counting pass on the 16-bit digit `shift` of `words`, from `order` into `into`; false when every digit is equal (nothing to do). */
function radixPass(words: Uint32Array | Uint8Array, shift: number, order: Uint32Array, into: Uint32Array, counts: Uint32Array): boolean {
  const n = order.length;
  counts.fill(0);
  for (let i = 0; i < n; i++) counts[((words[i]! >>> shift) & 0xffff) + 1]!++;
  if (n === 0 || counts.includes(n)) return false;
  for (let d = 1; d < 65537; d++) counts[d]! += counts[d - 1]!;
  for (let o = 0; o < n; o++) {
    const i = order[o]!;
    into[counts[(words[i]! >>> shift) & 0xffff]!++] = i;
  }
  return true;
}

/** Groups blocks finer than `maxLength` to their `maxLength` block. Sorted disjoint input stays sorted; only exact duplicates appear. */
function groupTo(blocks: FamilyBlocks, maxLength: number): FamilyBlocks {
  const { hi, lo, len, unitBits } = blocks;
  let kept = 0;
  let units = 0;
  for (let i = 0; i < blocks.count; i++) {
    let h = hi[i]!;
    let l = lo[i]!;
    let length = len[i]!;
    if (length > maxLength) {
      length = maxLength;
      h = maskWord(h, length);
      l = maskWord(l, length - 32);
    }
    if (kept > 0 && hi[kept - 1] === h && lo[kept - 1] === l && len[kept - 1] === length) continue;
    hi[kept] = h;
    lo[kept] = l;
    len[kept] = length;
    kept++;
    units += unitsOf(unitBits, length);
  }
  const grouped = trim(blocks, kept);
  grouped.groupedUnits = units;
  return grouped;
}

function emptyBlocks(family: IpFamily, capacity: number): FamilyBlocks {
  return {
    family,
    unitBits: UNIT_BITS[family],
    count: 0,
    hi: new Uint32Array(capacity),
    lo: new Uint32Array(capacity),
    len: new Uint8Array(capacity),
    seenUnits: 0,
    groupedUnits: 0,
  };
}

function trim(blocks: FamilyBlocks, count: number): FamilyBlocks {
  return { ...blocks, count, hi: blocks.hi.subarray(0, count), lo: blocks.lo.subarray(0, count), len: blocks.len.subarray(0, count), groupedUnits: blocks.groupedUnits };
}

/**
 * The fewest entries that cover the blocks when no entry may be shorter than `minLength`: one per distinct
 * `minLength` block touched, and a block broader than the guardrail needs all its `minLength` sub-blocks.
 */
export function minimumEntries(blocks: FamilyBlocks, minLength: number): number {
  let needed = 0;
  let lastHi = -1;
  let lastLo = -1;
  for (let i = 0; i < blocks.count; i++) {
    const length = blocks.len[i]!;
    if (length < minLength) {
      needed += 2 ** (minLength - length);
      lastHi = -1;
      continue;
    }
    const h = maskWord(blocks.hi[i]!, minLength);
    const l = maskWord(blocks.lo[i]!, minLength - 32);
    if (h !== lastHi || l !== lastLo) needed++;
    lastHi = h;
    lastLo = l;
  }
  return needed;
}

/** Converts a unit-space block back to a `Prefix` (IPv6 bases shift up by 64 bits). */
export function blockToPrefix(family: IpFamily, hi: number, lo: number, length: number): Prefix {
  if (family === 4) return { family, base: BigInt(hi), length };
  return { family, base: (BigInt(hi) << 96n) | (BigInt(lo) << 64n), length };
}
