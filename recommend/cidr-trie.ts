// The path-compressed binary trie over one family's sorted, disjoint blocks. Only branching nodes exist: the
// node between two neighbouring blocks sits at their common prefix length, so the trie is the Cartesian tree of
// the neighbours' common-prefix lengths and one stack pass builds it. Children get smaller ids than parents.
import { commonPrefixLength, unitsOf, type FamilyBlocks } from './cidr-items.ts';

export interface Trie {
  /** Node ids follow creation order, so every child's id is below its parent's; a leaf has `left` -1. */
  nodeCount: number;
  root: number;
  /** -1 for a leaf. */
  left: Int32Array;
  right: Int32Array;
  parent: Int32Array;
  /** The node's prefix length (a leaf: its block's length). */
  len: Uint8Array;
  /** A leaf's block index; for any node, its leftmost block (whose bits, masked to `len`, are the node's base). */
  firstBlock: Int32Array;
  /** Units of the (grouped) blocks under the node. */
  seen: Float64Array;
}

export function buildTrie(blocks: FamilyBlocks): Trie {
  const n = blocks.count;
  const size = Math.max(1, 2 * n - 1);
  const trie: Trie = {
    nodeCount: 0,
    root: -1,
    left: new Int32Array(size),
    right: new Int32Array(size),
    parent: new Int32Array(size).fill(-1),
    len: new Uint8Array(size),
    firstBlock: new Int32Array(size),
    seen: new Float64Array(size),
  };
  const { hi, lo, len, unitBits } = blocks;
  // The stack holds finished subtrees left to right; splitAt[s] is the common prefix length between
  // stack entry s and the one below it (-1 for the bottom).
  const stackNode = new Int32Array(n);
  const splitAt = new Int32Array(n);
  let top = -1;
  for (let i = 0; i < n; i++) {
    const leaf = trie.nodeCount++;
    trie.left[leaf] = -1;
    trie.right[leaf] = -1;
    trie.len[leaf] = len[i]!;
    trie.firstBlock[leaf] = i;
    trie.seen[leaf] = unitsOf(unitBits, len[i]!);
    stackNode[++top] = leaf;
    splitAt[top] = i === 0 ? -1 : commonPrefixLength(hi[i - 1]!, lo[i - 1]!, hi[i]!, lo[i]!);
    const next = i + 1 < n ? commonPrefixLength(hi[i]!, lo[i]!, hi[i + 1]!, lo[i + 1]!) : -1;
    // A split deeper than the next block's is complete: nothing further right joins it.
    while (top > 0 && splitAt[top]! > next) {
      const rightChild = stackNode[top]!;
      const leftChild = stackNode[top - 1]!;
      const node = trie.nodeCount++;
      trie.left[node] = leftChild;
      trie.right[node] = rightChild;
      trie.parent[leftChild] = node;
      trie.parent[rightChild] = node;
      trie.len[node] = splitAt[top]!;
      trie.firstBlock[node] = trie.firstBlock[leftChild]!;
      trie.seen[node] = trie.seen[leftChild]! + trie.seen[rightChild]!;
      top--;
      stackNode[top] = node;
    }
  }
  trie.root = n > 0 ? stackNode[0]! : -1;
  return trie;
}
