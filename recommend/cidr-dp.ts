// The exact cover: a dynamic program over the compressed trie with min-plus merges.
// best[v][k] = least unseen units to cover every block under node v with at most k entries inside v's prefix.
// A vector is capped at min(K, entries of the finest cover under v), which bounds the whole pass by O(n·K).
import { blockToPrefix, maskWord, unitsOf, type FamilyBlocks } from './cidr-items.ts';
import type { Trie } from './cidr-trie.ts';
import type { Prefix } from '../model/address.ts';

/** Every node's vector lives in one growing Float64Array; `offset[v]..offset[v]+cap[v]` is v's vector. */
export class VectorArena {
  data: Float64Array;
  used = 0;

  constructor(expectedLength = 1024) {
    this.data = new Float64Array(Math.max(16, expectedLength));
  }

  allocate(length: number): number {
    if (this.used + length > this.data.length) {
      let size = this.data.length * 2;
      while (size < this.used + length) size *= 2;
      const grown = new Float64Array(size);
      grown.set(this.data.subarray(0, this.used));
      this.data = grown;
    }
    const offset = this.used;
    this.used += length;
    return offset;
  }
}

/**
 * out[k] = min over i + j = k of a[i] + b[j], for k ≤ outCap; index 0 of both inputs is Infinity
 * (a non-empty side needs an entry), so it is skipped.
 */
export function minPlusInto(data: Float64Array, aOff: number, aCap: number, bOff: number, bCap: number, outOff: number, outCap: number): void {
  data.fill(Infinity, outOff, outOff + outCap + 1);
  for (let i = 1; i <= aCap; i++) {
    const ai = data[aOff + i]!;
    if (ai === Infinity) continue;
    const jMax = Math.min(bCap, outCap - i);
    for (let j = 1; j <= jMax; j++) {
      const sum = ai + data[bOff + j]!;
      if (sum < data[outOff + i + j]!) data[outOff + i + j] = sum;
    }
  }
}

/** The smallest k' ≤ k whose value equals the value at k: on ties the cover with fewer entries wins. */
export function fewestEntriesFor(data: Float64Array, off: number, k: number): number {
  const target = data[off + k]!;
  let best = k;
  while (best > 1 && data[off + best - 1] === target) best--;
  return best;
}

/** The split i + j = k that produced out[k] in `minPlusInto`, smallest i first. */
export function splitOf(data: Float64Array, aOff: number, aCap: number, bOff: number, bCap: number, k: number, target: number): number {
  for (let i = Math.max(1, k - bCap); i <= Math.min(aCap, k - 1); i++) {
    if (data[aOff + i]! + data[bOff + k - i]! === target) return i;
  }
  throw new Error(`cover reconstruction found no split for ${k} entries: the trie vectors are inconsistent`);
}

export interface FamilyCurve {
  blocks: FamilyBlocks;
  trie: Trie;
  arena: VectorArena;
  offset: Int32Array;
  cap: Int32Array;
  minLength: number;
}

export function familyCurve(blocks: FamilyBlocks, trie: Trie, minLength: number, maxEntries: number, arena: VectorArena): FamilyCurve {
  const { nodeCount, left, right, len, seen } = trie;
  const offset = new Int32Array(nodeCount);
  const cap = new Int32Array(nodeCount);
  const unitBits = blocks.unitBits;
  // Every block at least as long as the guardrail has the same vector, [∞, 0]: they share one copy.
  const singleEntry = arena.allocate(2);
  arena.data[singleEntry] = Infinity;
  arena.data[singleEntry + 1] = 0;
  for (let v = 0; v < nodeCount; v++) {
    const l = left[v]!;
    if (l < 0 && len[v]! >= minLength) {
      offset[v] = singleEntry;
      cap[v] = 1;
      continue;
    }
    if (l < 0) {
      // A block broader than the guardrail needs all its guardrail-sized parts.
      const need = 2 ** (minLength - len[v]!);
      const c = Math.min(maxEntries, need);
      const off = arena.allocate(c + 1);
      arena.data.fill(Infinity, off, off + c + 1);
      if (need <= maxEntries) arena.data[off + need] = 0;
      offset[v] = off;
      cap[v] = c;
      continue;
    }
    const r = right[v]!;
    const aCap = cap[l]!;
    const bCap = cap[r]!;
    const c = Math.min(maxEntries, aCap + bCap);
    const off = arena.allocate(c + 1);
    const data = arena.data;
    if (aCap === 1 || bCap === 1) {
      // Most nodes sit just above a leaf: the merge is a shift of the other side by one entry.
      const oneOff = aCap === 1 ? offset[l]! : offset[r]!;
      const otherOff = aCap === 1 ? offset[r]! : offset[l]!;
      const one = data[oneOff + 1]!;
      data[off] = Infinity;
      data[off + 1] = Infinity;
      for (let k = 2; k <= c; k++) data[off + k] = one + data[otherOff + k - 1]!;
    } else {
      minPlusInto(data, offset[l]!, aCap, offset[r]!, bCap, off, c);
    }
    if (len[v]! >= minLength) {
      // One entry for the whole subtree: its own prefix is the tightest that covers it.
      const whole = unitsOf(unitBits, len[v]!) - seen[v]!;
      for (let k = 1; k <= c && whole < data[off + k]!; k++) data[off + k] = whole;
    }
    // Entries that buy nothing more are dropped: a fully seen block becomes a leaf to its parents, which keeps
    // dense pools cheap. Readers treat index > cap as equal to index cap.
    let trimmed = c;
    while (trimmed > 1 && data[off + trimmed - 1] === data[off + trimmed]) trimmed--;
    arena.used = off + trimmed + 1;
    offset[v] = off;
    cap[v] = trimmed;
  }
  return { blocks, trie, arena, offset, cap, minLength };
}

/** Appends to `out` the entries of the best cover of node v's blocks with at most k entries (k within v's vector). */
export function emitCover(curve: FamilyCurve, v: number, k: number, out: Prefix[]): void {
  const { trie, blocks, arena, offset, cap, minLength } = curve;
  const data = arena.data;
  const kk = fewestEntriesFor(data, offset[v]!, Math.min(k, cap[v]!));
  const l = trie.left[v]!;
  if (l < 0) {
    emitBlock(blocks, trie.firstBlock[v]!, trie.len[v]!, minLength, out);
    return;
  }
  if (kk === 1) {
    emitBlock(blocks, trie.firstBlock[v]!, trie.len[v]!, minLength, out);
    return;
  }
  const r = trie.right[v]!;
  const i = splitOf(data, offset[l]!, cap[l]!, offset[r]!, cap[r]!, kk, data[offset[v]! + kk]!);
  emitCover(curve, l, i, out);
  emitCover(curve, r, kk - i, out);
}

/** The block `length` bits of block `index` as entries: itself, or its guardrail-sized parts when it is broader. */
export function emitBlock(blocks: FamilyBlocks, index: number, length: number, minLength: number, out: Prefix[]): void {
  const hi = maskWord(blocks.hi[index]!, length);
  const lo = maskWord(blocks.lo[index]!, length - 32);
  if (length >= minLength) {
    out.push(blockToPrefix(blocks.family, hi, lo, length));
    return;
  }
  const parts = 2 ** (minLength - length);
  const step = 2 ** (blocks.unitBits - minLength);
  for (let p = 0; p < parts; p++) {
    // Parts step through unit space; split the offset across the two 32-bit words.
    const unitOffset = p * step;
    let h: number;
    let l: number;
    if (blocks.unitBits === 32) {
      h = hi + unitOffset;
      l = 0;
    } else {
      const low = lo + (unitOffset % 2 ** 32);
      h = hi + Math.floor(unitOffset / 2 ** 32) + Math.floor(low / 2 ** 32);
      l = low % 2 ** 32;
    }
    out.push(blockToPrefix(blocks.family, h, l, minLength));
  }
}
