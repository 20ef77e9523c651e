// The baseline the exact cover is measured against: start from the items and repeatedly merge the neighbouring
// pair whose smallest common prefix adds the least unseen space, until at most K entries remain.
import type { Prefix } from '../model/address.ts';
import { emitBlock } from './cidr-dp.ts';
import { InfeasibleCoverError, minimumEntries, normalizeFamilies, resolveCoverOptions, unitsOf, type Cover, type CoverItem, type CoverOptions } from './cidr-items.ts';
import { buildTrie, type Trie } from './cidr-trie.ts';
import type { FamilyBlocks } from './cidr-items.ts';

interface FamilyState {
  blocks: FamilyBlocks;
  trie: Trie;
  minLength: number;
  /** Entries currently under the node. */
  members: Float64Array;
  /** Units admitted by the entries currently under the node. */
  covered: Float64Array;
  merged: Uint8Array;
  /** Under a merged node: no longer a candidate. */
  absorbed: Uint8Array;
}

export function greedyCover(items: CoverItem[], options: CoverOptions): Cover {
  const resolved = resolveCoverOptions(options);
  const K = resolved.maxEntries;
  const states: FamilyState[] = [];
  let needed = 0;
  let entries = 0;
  let seenUnits = 0;
  for (const blocks of normalizeFamilies(items, resolved.maxLength)) {
    const minLength = resolved.minLength[blocks.family];
    needed += minimumEntries(blocks, minLength);
    seenUnits += blocks.seenUnits;
    const trie = buildTrie(blocks);
    const members = new Float64Array(trie.nodeCount);
    for (let v = 0; v < trie.nodeCount; v++) {
      const l = trie.left[v]!;
      members[v] = l < 0 ? (trie.len[v]! >= minLength ? 1 : 2 ** (minLength - trie.len[v]!)) : members[l]! + members[trie.right[v]!]!;
    }
    entries += members[trie.root]!;
    states.push({
      blocks,
      trie,
      minLength,
      members,
      covered: Float64Array.from(trie.seen),
      merged: new Uint8Array(trie.nodeCount),
      absorbed: new Uint8Array(trie.nodeCount),
    });
  }
  if (needed > K) throw new InfeasibleCoverError(needed, K, resolved.minLength);

  // Candidates are the branching nodes (merging two neighbours yields their lowest common node), indexed
  // across families; a merge below a node only lowers the node's added space, so the heap only decreases keys.
  const familyStart: number[] = [];
  let total = 0;
  for (const s of states) {
    familyStart.push(total);
    total += s.trie.nodeCount;
  }
  const heap = new CandidateHeap(total, (g) => {
    const f = g >= familyStart[1]! && states.length > 1 ? 1 : 0;
    const s = states[f]!;
    const v = g - familyStart[f]!;
    return { added: unitsOf(s.blocks.unitBits, s.trie.len[v]!) - s.covered[v]!, units: unitsOf(s.blocks.unitBits, s.trie.len[v]!), order: g };
  });
  states.forEach((s, f) => {
    for (let v = 0; v < s.trie.nodeCount; v++) {
      if (s.trie.left[v]! >= 0 && s.trie.len[v]! >= s.minLength) heap.insert(familyStart[f]! + v);
    }
  });

  while (entries > K) {
    const g = heap.popMin();
    if (g < 0) throw new InfeasibleCoverError(needed, K, resolved.minLength);
    const f = states.length > 1 && g >= familyStart[1]! ? 1 : 0;
    const s = states[f]!;
    const v = g - familyStart[f]!;
    if (s.absorbed[v]) continue;
    const units = unitsOf(s.blocks.unitBits, s.trie.len[v]!);
    const added = units - s.covered[v]!;
    const reduction = s.members[v]! - 1;
    entries -= reduction;
    s.merged[v] = 1;
    s.members[v] = 1;
    s.covered[v] = units;
    absorbBelow(s, v, (u) => heap.remove(familyStart[f]! + u));
    for (let p = s.trie.parent[v]!; p >= 0; p = s.trie.parent[p]!) {
      s.members[p] = s.members[p]! - reduction;
      s.covered[p] = s.covered[p]! + added;
      heap.decreased(familyStart[f]! + p);
    }
  }

  const prefixes: Prefix[] = [];
  let units = 0;
  for (const s of states) {
    const stack = [s.trie.root];
    const found: Prefix[] = [];
    while (stack.length > 0) {
      const v = stack.pop()!;
      if (s.merged[v] || s.trie.left[v]! < 0) {
        emitBlock(s.blocks, s.trie.firstBlock[v]!, s.trie.len[v]!, s.minLength, found);
        continue;
      }
      stack.push(s.trie.right[v]!, s.trie.left[v]!);
    }
    for (const p of found) units += unitsOf(s.blocks.unitBits, p.length);
    prefixes.push(...found);
  }
  return { prefixes, cost: units - seenUnits, units };
}

function absorbBelow(s: FamilyState, v: number, onAbsorb: (u: number) => void): void {
  const stack = [s.trie.left[v]!, s.trie.right[v]!];
  while (stack.length > 0) {
    const u = stack.pop()!;
    if (u < 0 || s.absorbed[u]) continue;
    s.absorbed[u] = 1;
    onAbsorb(u);
    stack.push(s.trie.left[u]!, s.trie.right[u]!);
  }
}

interface CandidateKey {
  added: number;
  units: number;
  /** Node index across families: IPv4 first, then creation order, which is deterministic. */
  order: number;
}

/** An indexed binary min-heap over candidate nodes: least added space, then the smaller block, then order. */
class CandidateHeap {
  private readonly heap: Int32Array;
  private readonly position: Int32Array;
  private readonly added: Float64Array;
  private readonly units: Float64Array;
  private size = 0;

  constructor(
    capacity: number,
    private readonly keyOf: (node: number) => CandidateKey,
  ) {
    this.heap = new Int32Array(capacity);
    this.position = new Int32Array(capacity).fill(-1);
    this.added = new Float64Array(capacity);
    this.units = new Float64Array(capacity);
  }

  insert(node: number): void {
    const key = this.keyOf(node);
    this.added[node] = key.added;
    this.units[node] = key.units;
    this.heap[this.size] = node;
    this.position[node] = this.size;
    this.size++;
    this.up(this.size - 1);
  }

  /** The node's key went down (or stayed): re-read it and restore the order. */
  decreased(node: number): void {
    const at = this.position[node]!;
    if (at < 0) return;
    this.added[node] = this.keyOf(node).added;
    this.up(at);
  }

  remove(node: number): void {
    const at = this.position[node]!;
    if (at < 0) return;
    this.position[node] = -1;
    this.size--;
    if (at === this.size) return;
    const last = this.heap[this.size]!;
    this.heap[at] = last;
    this.position[last] = at;
    this.up(at);
    this.down(this.position[last]!);
  }

  popMin(): number {
    if (this.size === 0) return -1;
    const top = this.heap[0]!;
    this.remove(top);
    return top;
  }

  private before(a: number, b: number): boolean {
    if (this.added[a] !== this.added[b]) return this.added[a]! < this.added[b]!;
    if (this.units[a] !== this.units[b]) return this.units[a]! < this.units[b]!;
    return a < b;
  }

  private up(at: number): void {
    const node = this.heap[at]!;
    while (at > 0) {
      const parentAt = (at - 1) >> 1;
      const parent = this.heap[parentAt]!;
      if (!this.before(node, parent)) break;
      this.heap[at] = parent;
      this.position[parent] = at;
      at = parentAt;
    }
    this.heap[at] = node;
    this.position[node] = at;
  }

  private down(at: number): void {
    const node = this.heap[at]!;
    for (;;) {
      const l = 2 * at + 1;
      if (l >= this.size) break;
      const r = l + 1;
      const child = r < this.size && this.before(this.heap[r]!, this.heap[l]!) ? r : l;
      if (!this.before(this.heap[child]!, node)) break;
      this.heap[at] = this.heap[child]!;
      this.position[this.heap[at]!] = at;
      at = child;
    }
    this.heap[at] = node;
    this.position[node] = at;
  }
}
