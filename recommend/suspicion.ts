// Which of a key's public sources look like a leaked key in use, and which look like a dynamic pool.
// Pure heuristics over a KeyProfile (and, for pools, the other keys of the account): the recommender uses
// them to keep leaks out of proposals and to propose pool blocks deliberately; `findings` reports them.
import { FAMILY_BITS, formatPrefix, maskValue, parseAddress, type Address, type Prefix } from '../model/address.ts';
import { GUARDRAIL_MIN_PREFIX } from '../model/acl-rules.ts';
import { firstSecondOf, keepParsed, lastSecondOf, readParsed } from '../model/source-usage.ts';
import type { IpFamily, KeyProfile, SourceUsage, TimeWindow } from '../model/types.ts';

const DAY_MS = 86_400_000;

/** Every threshold the heuristics use, in one place (documented in docs/recommend.md). */
export const SUSPICION_THRESHOLDS = {
  /** A source first seen at least this many days after the key's first call is "new". */
  newAfterDays: 3,
  /** "Near" one of the key's established sources: inside the same /16 (IPv4) or /48 (IPv6). */
  nearPrefix: { 4: 16, 6: 48 } as Record<IpFamily, number>,
  /** Loud leak: at least this share of a new source's calls failed… */
  leakErrorShare: 0.5,
  /** …and at least this many of them. */
  leakMinErrorCalls: 3,
  /** Probing: at least this many sensitive calls… */
  leakMinSensitiveCalls: 3,
  /** …making up at least this share of the source's calls… */
  leakSensitiveShare: 0.2,
  /** …and at least this many times the key's usual share (its established and VPC sources). */
  leakSensitiveOverBaseline: 3,
  /** Quiet leak: a new, far source active on at least this many days… */
  quietRunMinDays: 2,
  /** …that fell silent at least this many days before the key's last call… */
  stopGapDays: 2,
  /** …or that carried under this share of the key's daily calls… */
  leakMinorShare: 0.05,
  /** …or that is a fixed address on a key whose established calls come from shared dynamic pools at least this much. */
  poolOnlyShare: 0.8,
  /** New addresses inside one block of this length are one network (a NAT's addresses) for the minor-share test. */
  networkPrefix: { 4: 24, 6: 48 } as Record<IpFamily, number>,
  /** An address used on at most this many days is short-lived… */
  shortLivedDays: 3,
  /** …and a key with at least this share of short-lived addresses rotates (runners, functions). */
  rotatingKeyShare: 0.5,
  /** A rotating-egress key's addresses outside any pool are admitted as the block of this length around them:
   * the longest prefix routed on the internet (IPv4 /24), so the least a provider allocates from. */
  rotatingRangePrefix: { 4: 24 } as Record<4, number>,
  /** Pool member: an address seen on at most this many days (it rotates). */
  poolMemberMaxDays: 7,
  /** A pool needs at least this many rotating addresses in one block (over every key)… */
  poolMinMembers: 3,
  /** …of which at least this many are this key's own. */
  poolMinKeyMembers: 2,
  /** A pool is looked for inside blocks of this length: the guardrail, so a pool block is never broader. */
  poolGroupPrefix: GUARDRAIL_MIN_PREFIX as Record<IpFamily, number>,
  /** A block is split while its addresses are this unlikely to be drawn uniformly from it. */
  poolSplitAlpha: 0.01,
} as const;

export type LeakSignal =
  | 'new-source'
  | 'far-from-key-networks'
  | 'high-error-share'
  | 'sensitive-calls'
  | 'run-then-stopped'
  | 'minor-share'
  | 'fixed-address-on-pool-key';

export interface SuspiciousSource {
  ip: string;
  family: IpFamily;
  calls: number;
  days: number;
  firstSeen: string;
  lastSeen: string;
  errorShare: number;
  sensitiveCalls: number;
  /** Sorted. */
  signals: LeakSignal[];
  /** `loud` (failures or sensitive calls) or `quiet` (a run of days from far away that then stopped). */
  kind: 'loud' | 'quiet';
  /** One sentence for a reviewer. */
  reason: string;
}

export interface PoolGuess {
  /** null for the public rule, the VPC ID for a pool of private addresses inside one VPC (autoscaled instances). */
  vpcId: string | null;
  /** The block the evidence supports, never broader than the guardrail. */
  cidr: string;
  family: IpFamily;
  base: bigint;
  length: number;
  /** This key's addresses inside the block, sorted. */
  keyAddresses: string[];
  /** Distinct rotating addresses (IPv6: /64s) inside the block over every key. */
  evidenceAddresses: number;
  /** Keys with rotating addresses inside the block (this key included), sorted. */
  keys: string[];
  /** This key's calls from inside the block. */
  calls: number;
  reason: string;
}

export interface SuspicionContext {
  window: TimeWindow;
  /** The other keys of the account (this key may be among them): pools are shared evidence. */
  accountProfiles?: KeyProfile[];
}

const instantCache = new Map<string, number>();

function ms(iso: string): number {
  let t = instantCache.get(iso);
  if (t === undefined) {
    if (instantCache.size > 1_000_000) instantCache.clear();
    t = Date.parse(iso);
    instantCache.set(iso, t);
  }
  return t;
}

/**
 * The block of `length` holding the value, as a Map or Set key: an IPv4 block as the number of its network bits
 * (no string, no bigint per source: this runs over every new source), an IPv6 block as text.
 */
function groupKey(family: IpFamily, value: bigint, length: number): string | number {
  if (family === 4 && length <= 24) return Math.floor(Number(value) / 2 ** (32 - length));
  return `${family}|${maskValue(value, family, length).toString(16)}`;
}

/** The unit a source counts in: an IPv4 address, an IPv6 /64 (privacy addresses rotate inside it). */
function unitValue(family: IpFamily, value: bigint): bigint {
  return family === 6 ? maskValue(value, 6, 64) : value;
}

const UNIT_LENGTH: Record<IpFamily, number> = { 4: 32, 6: 64 };

/** The smallest prefix holding every value from `min` to `max` (of one family). */
function enclosingPrefix(family: IpFamily, min: bigint, max: bigint): Prefix {
  let length: number;
  if (family === 4) {
    // The bits min and max share from the top, counted on a plain number (IPv4 fits in 32 bits).
    length = Math.clz32(Number(min ^ max));
  } else {
    length = FAMILY_BITS[family];
    while (length > 0 && maskValue(min, family, length) !== maskValue(max, family, length)) length--;
  }
  return { family, base: maskValue(min, family, length), length };
}

/** P(X ≤ m) for X ~ Binomial(n, 1/2); a normal approximation past n = 1000. */
function binomialLowerTail(m: number, n: number): number {
  if (m * 2 >= n) return 1;
  if (n > 1000) {
    const z = (m + 0.5 - n / 2) / Math.sqrt(n / 4);
    return 0.5 * erfc(-z / Math.SQRT2);
  }
  let logC = 0;
  let sum = 0;
  const log2n = n * Math.LN2;
  for (let i = 0; i <= m; i++) {
    sum += Math.exp(logC - log2n);
    logC += Math.log(n - i) - Math.log(i + 1);
  }
  return Math.min(1, sum);
}

function erfc(x: number): number {
  // Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): plenty for a significance test.
  const t = 1 / (1 + 0.3275911 * Math.abs(x));
  const y = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))) * Math.exp(-x * x);
  return x >= 0 ? y : 2 - y;
}

/**
 * Would addresses drawn uniformly from `block` look like these? Two tests, Bonferroni-combined: the split
 * between the halves (binomial), and whether either half's addresses crowd into a small part of it (n points
 * all inside one 2^-d share of a half happens with probability 2^(d(1-n))).
 */
function uniformityPValue(block: Prefix, sorted: readonly bigint[], halves: ReadonlyArray<readonly [number, number]>): number {
  const [lowCount, highCount] = halves.map(([from, to]) => to - from) as [number, number];
  const pSplit = Math.min(1, 2 * binomialLowerTail(Math.min(lowCount, highCount), lowCount + highCount));
  let pCrowd = 1;
  for (const [from, to] of halves) {
    const count = to - from;
    if (count < 2) continue;
    const e = enclosingPrefix(block.family, sorted[from]!, sorted[to - 1]!);
    const d = Math.min(e.length, UNIT_LENGTH[block.family]) - (block.length + 1);
    if (d > 0) pCrowd = Math.min(pCrowd, 2 * Math.pow(2, d * (1 - count)));
  }
  return Math.min(1, 2 * Math.min(pSplit, pCrowd));
}

/**
 * Blocks that rotating addresses fill as if drawn uniformly: split a block in two while the addresses in it
 * are unlikely (p < poolSplitAlpha) to come from one uniform pool; a part with fewer than poolMinMembers
 * addresses is no pool. Never broader than the group (guardrail) length.
 */
export function clusterPools(family: IpFamily, sortedUnits: readonly bigint[], floor: number): Prefix[] {
  const T = SUSPICION_THRESHOLDS;
  const out: Prefix[] = [];
  const bits = FAMILY_BITS[family];
  // Parts are index ranges [from, to) of the sorted units: no copies at each of up to 32 levels.
  const split = (from: number, to: number): void => {
    if (to - from < T.poolMinMembers) return;
    const e = enclosingPrefix(family, sortedUnits[from]!, sortedUnits[to - 1]!);
    if (e.length >= UNIT_LENGTH[family]) return;
    const mid = e.base | (1n << BigInt(bits - e.length - 1));
    const k = lowerBound(sortedUnits, mid, from, to);
    if (e.length < floor || uniformityPValue(e, sortedUnits, [[from, k], [k, to]]) < T.poolSplitAlpha) {
      split(from, k);
      split(k, to);
    } else out.push(e);
  };
  split(0, sortedUnits.length);
  return out;
}

/**
 * The enclosing block of a few addresses understates the pool they were drawn from (seven leases of a dynamic
 * line, all in one half of its /22, happen one time in 64). Widen a dynamic line's block to its ancestor while n addresses
 * drawn uniformly from the ancestor would land in one block this small with probability ≥ poolSplitAlpha
 * (2^k · 2^(-kn) for k levels up: the same test that splits a block, read the other way), never over another
 * rotating address, never past the floor.
 */
export function widenToEvidence(block: Prefix, sortedUnits: readonly bigint[], floor: number): Prefix {
  const bits = FAMILY_BITS[block.family];
  const end = (p: Prefix): bigint => p.base + (1n << BigInt(bits - p.length));
  const n = lowerBound(sortedUnits, end(block)) - lowerBound(sortedUnits, block.base);
  let best = block;
  for (let k = 1; block.length - k >= floor; k++) {
    if (Math.pow(2, k * (1 - n)) < SUSPICION_THRESHOLDS.poolSplitAlpha) break;
    const length = block.length - k;
    const wider: Prefix = { family: block.family, base: maskValue(block.base, block.family, length), length };
    const inside = lowerBound(sortedUnits, end(wider)) - lowerBound(sortedUnits, wider.base);
    if (inside !== n) break;
    best = wider;
  }
  return best;
}

interface PoolBlock extends Prefix {
  /** base + the block's size: the first value past it. */
  end: bigint;
  scope: string;
  members: number;
  keys: string[];
  /** Blocks drawn from together (one provider's ranges, one region's Function Compute pool), sorted. */
  siblings: PoolBlock[];
  /** Widened beyond the addresses seen: one key's dynamic line (widenToEvidence). */
  leaseLine: boolean;
}

/**
 * Addresses used one at a time, one after the other (a dynamic line's leases): no two spans overlap by more
 * than an hour, the median address is in use for over a day, and the chain covers more than poolMemberMaxDays
 * (a few young addresses are no line yet).
 */
function isLeaseChain(spans: ReadonlyArray<readonly [number, number]>): boolean {
  if (spans.length === 0) return false;
  // The chain's extent first, in one pass: most blocks fail here, before any sorting.
  let first = Infinity;
  let last = -Infinity;
  for (const [start, end] of spans) {
    if (start < first) first = start;
    if (end > last) last = end;
  }
  if (last - first <= SUSPICION_THRESHOLDS.poolMemberMaxDays * DAY_MS) return false;
  const sorted = [...spans].sort((a, b) => a[0] - b[0]);
  // A lease outlives a day (the line is always on); runners' addresses last a job's hours.
  const lengths = sorted.map((s) => s[1] - s[0]).sort((a, b) => a - b);
  if (lengths[Math.floor(lengths.length / 2)]! < DAY_MS) return false;
  for (let i = 1; i < sorted.length; i++) if (sorted[i]![0] < sorted[i - 1]![1] - 3_600_000) return false;
  return true;
}

/**
 * `isLeaseChain` over the spans (firstMs[order[i]], lastMs[order[i]]) for i in [from, to), without an array
 * per span: the spans ordered by start with ties in their given order (as the stable sort there), as indexes.
 */
function isLeaseChainAt(firstMs: readonly number[], lastMs: readonly number[], order: readonly number[], from: number, to: number): boolean {
  const n = to - from;
  if (n <= 0) return false;
  // The extent and the median span length first, in one pass without an array: most blocks fail there. The
  // median (the sorted lengths' element n/2, rounded down) is under a day exactly when more than n/2 spans are.
  let first = Infinity;
  let last = -Infinity;
  let underADay = 0;
  for (let i = from; i < to; i++) {
    const start = firstMs[order[i]!]!;
    const end = lastMs[order[i]!]!;
    // A time that is not a number would make the sorts below differ from isLeaseChain's: leave it to it.
    if (Number.isNaN(start) || Number.isNaN(end)) return isLeaseChain(spansAt(firstMs, lastMs, order, from, to));
    if (start < first) first = start;
    if (end > last) last = end;
    if (end - start < DAY_MS) underADay++;
  }
  if (last - first <= SUSPICION_THRESHOLDS.poolMemberMaxDays * DAY_MS) return false;
  if (underADay > Math.floor(n / 2)) return false;
  const starts = new Float64Array(n);
  const ends = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    starts[i] = firstMs[order[from + i]!]!;
    ends[i] = lastMs[order[from + i]!]!;
  }
  const byStart = Array.from({ length: n }, (_, i) => i).sort((a, b) => starts[a]! - starts[b]! || a - b);
  for (let i = 1; i < n; i++) if (starts[byStart[i]!]! < ends[byStart[i - 1]!]! - 3_600_000) return false;
  return true;
}

function spansAt(firstMs: readonly number[], lastMs: readonly number[], order: readonly number[], from: number, to: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let i = from; i < to; i++) out.push([firstMs[order[i]!]!, lastMs[order[i]!]!]);
  return out;
}

/** Pool blocks over every key's rotating addresses, by scope ('' public, else the VPC ID) and family. */
export interface PoolIndex {
  blocks: Map<string, PoolBlock[]>;
}

const indexCache = new WeakMap<readonly KeyProfile[], PoolIndex>();

/** Rotating addresses (seen on ≤ poolMemberMaxDays days) of all keys, clustered into pool blocks. */
export function buildPoolIndex(profiles: readonly KeyProfile[]): PoolIndex {
  const cached = indexCache.get(profiles);
  if (cached) return cached;
  const T = SUSPICION_THRESHOLDS;
  // Flat parallel arrays per scope and family: no per-address Map, Set, array or id string (this runs over
  // every source of every key).
  type Units = { values: bigint[]; keys: string[]; firstMs: number[]; lastMs: number[] };
  const units = new Map<string, [Units | null, Units | null]>();
  const add = (scope: string, s: SourceUsage, key: string): void => {
    if (s.days > T.poolMemberMaxDays) return;
    // A loud source (mostly failures, or probing) is no evidence of anyone's pool.
    const errors = Math.max(0, s.errorCalls - s.deniedCalls);
    if (errors >= T.leakMinErrorCalls && errors >= T.leakErrorShare * s.calls) return;
    if (s.sensitiveCalls >= T.leakMinSensitiveCalls && s.sensitiveCalls >= T.leakSensitiveShare * s.calls) return;
    const facts = factsOf(s);
    const a = facts.address;
    if (!a) return;
    let byFamily = units.get(scope);
    if (!byFamily) units.set(scope, (byFamily = [null, null]));
    const slot = a.family === 4 ? 0 : 1;
    const m = byFamily[slot] ?? (byFamily[slot] = { values: [], keys: [], firstMs: [], lastMs: [] });
    m.values.push(unitValue(a.family, a.value));
    m.keys.push(key);
    m.firstMs.push(facts.firstMs);
    m.lastMs.push(facts.lastMs);
  };
  for (const p of profiles) {
    for (const s of p.publicSources) add('', s, p.accessKeyId);
    for (const s of p.vpcSources) add(s.vpcId, s, p.accessKeyId);
  }
  const blocks = new Map<string, PoolBlock[]>();
  const lists: Array<[string, Units]> = [];
  for (const [scope, [v4, v6]] of units) {
    if (v4) lists.push([`${scope}|4`, v4]);
    if (v6) lists.push([`${scope}|6`, v6]);
  }
  for (const [id, m] of lists.sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    const sep = id.lastIndexOf('|');
    const scope = id.slice(0, sep);
    const family = Number(id.slice(sep + 1)) as IpFamily;
    const order = sortedOrder(family, m.values);
    const all = order.map((i) => m.values[i]!);
    const allKeys = order.map((i) => m.keys[i]!);
    const sorted: bigint[] = [];
    for (const v of all) if (sorted.length === 0 || sorted[sorted.length - 1] !== v) sorted.push(v);
    const list: PoolBlock[] = [];
    for (const p of clusterPools(family, sorted, T.poolGroupPrefix[family])) {
      const keys = new Set<string>();
      const end = p.base + (1n << BigInt(FAMILY_BITS[family] - p.length));
      const from = lowerBound(all, p.base);
      let to = from;
      let members = 0;
      for (; to < all.length && all[to]! < end; to++) {
        if (to === 0 || all[to - 1] !== all[to]) members++;
        keys.add(allKeys[to]!);
      }
      // One key's line, one address at a time: its lease pool is wider than the leases seen.
      const block = scope === '' && keys.size === 1 && isLeaseChainAt(m.firstMs, m.lastMs, order, from, to) ? widenToEvidence(p, sorted, T.poolGroupPrefix[family]) : p;
      const blockEnd = block.base + (1n << BigInt(FAMILY_BITS[family] - block.length));
      list.push({ ...block, end: blockEnd, scope, members, keys: [...keys].sort(), siblings: [], leaseLine: block !== p });
    }
    linkSiblings(list);
    blocks.set(id, list.sort(compareCidr));
  }
  const index = { blocks };
  indexCache.set(profiles, index);
  return index;
}

/**
 * Blocks are siblings (one provider) when at least two keys draw from both, or when the same keys alone
 * draw from both: a key drawing from several of a provider's blocks will draw from the others too.
 */
function linkSiblings(list: PoolBlock[]): void {
  const parent = list.map((_, i) => i);
  const find = (i: number): number => (parent[i] === i ? i : (parent[i] = find(parent[i]!)));
  const byKey = new Map<string, number[]>();
  list.forEach((b, i) => b.keys.forEach((k) => byKey.set(k, [...(byKey.get(k) ?? []), i])));
  const pairShared = new Map<string, number>();
  for (const indexes of byKey.values()) {
    if (indexes.length > 64) continue; // a key over very many blocks links them through other keys anyway
    for (let a = 0; a < indexes.length; a++) {
      for (let b = a + 1; b < indexes.length; b++) {
        const id = `${indexes[a]}|${indexes[b]}`;
        pairShared.set(id, (pairShared.get(id) ?? 0) + 1);
      }
    }
  }
  for (const [id, shared] of pairShared) {
    const [a, b] = id.split('|').map(Number) as [number, number];
    const same = list[a]!.keys.length === list[b]!.keys.length && list[a]!.keys.every((k, i) => k === list[b]!.keys[i]);
    if (shared >= 2 || same) parent[find(a)] = find(b);
  }
  const groups = new Map<number, PoolBlock[]>();
  list.forEach((b, i) => groups.set(find(i), [...(groups.get(find(i)) ?? []), b]));
  for (const g of groups.values()) {
    const sorted = [...g].sort(compareCidr);
    for (const b of g) b.siblings = sorted;
  }
}

const PACKED_INDEX_SPAN = 2 ** 21;

/**
 * The indexes of `values` in ascending value order, ties in index order (a stable sort). IPv4 values fit in a
 * double exactly, so they are compared as numbers: comparing bigints dominated this sort over every source.
 */
function sortedOrder(family: IpFamily, values: readonly bigint[]): number[] {
  const n = values.length;
  if (family === 4 && n <= PACKED_INDEX_SPAN) {
    // value × 2^21 + index is exact in a double (32 + 21 bits): a comparator-free numeric sort is the stable sort.
    const packed = new Float64Array(n);
    for (let i = 0; i < n; i++) packed[i] = Number(values[i]!) * PACKED_INDEX_SPAN + i;
    packed.sort();
    const order: number[] = new Array(n);
    for (let i = 0; i < n; i++) order[i] = packed[i]! % PACKED_INDEX_SPAN;
    return order;
  }
  const order = values.map((_, i) => i);
  if (family === 4) {
    const asNumbers = Float64Array.from(values, Number);
    return order.sort((a, b) => asNumbers[a]! - asNumbers[b]! || a - b);
  }
  return order.sort((a, b) => (values[a]! < values[b]! ? -1 : values[a]! > values[b]! ? 1 : 0));
}

/** The first index whose value is ≥ `value` in a sorted array (or in its range [from, to)). */
function lowerBound(sorted: readonly bigint[], value: bigint, from = 0, to = sorted.length): number {
  let lo = from;
  let hi = to;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid]! < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

interface SourceFacts {
  address: Address | null;
  firstMs: number;
  lastMs: number;
  /**
   * firstSeen and lastSeen are both `YYYY-MM-DDTHH:MM:SSZ` naming a real second (what analyze writes): compared
   * with other such text, firstMs and lastMs order them exactly as the text does (a number compare instead of a
   * read into each string).
   */
  strictTimes: boolean;
}

/**
 * Where a source's parsed facts are kept: in the private slot of the records analyze builds
 * (model/source-usage.ts); on any other source object, under a private, non-enumerable symbol
 * (invisible to JSON, Object.keys and deep equality). A WeakMap lookup per read cost more than the parse it
 * saved once every pass over a million sources asked for them; the WeakMap remains for frozen sources.
 */
const FACTS = Symbol('keyfence.sourceFacts');
const frozenFactsCache = new WeakMap<SourceUsage, SourceFacts>();
type WithFacts = SourceUsage & { [FACTS]?: SourceFacts };

/** A source's address and times, parsed once per source object (every pass over every key reads them). */
export function factsOf(s: SourceUsage): SourceFacts {
  const parsed = readParsed(s) as SourceFacts | undefined;
  if (parsed) return parsed;
  // A record analyze built knows its times as seconds, and wrote its text from them (isoFromEpochSeconds); it
  // has the slot, so the other places facts are kept need no look.
  const firstSecond = firstSecondOf(s);
  const known = !Number.isNaN(firstSecond);
  if (!known) {
    const kept = (s as WithFacts)[FACTS] ?? frozenFactsCache.get(s);
    if (kept) return kept;
  }
  const firstMs = known ? firstSecond * 1000 : strictIsoMs(s.firstSeen);
  const lastMs = known ? lastSecondOf(s) * 1000 : strictIsoMs(s.lastSeen);
  const strictTimes = known ? s.firstSeen.length === 20 && s.lastSeen.length === 20 : !Number.isNaN(firstMs) && !Number.isNaN(lastMs);
  const f: SourceFacts = {
    address: addressOf(s.ip),
    firstMs: Number.isNaN(firstMs) ? Date.parse(s.firstSeen) : firstMs,
    lastMs: Number.isNaN(lastMs) ? Date.parse(s.lastSeen) : lastMs,
    strictTimes,
  };
  if (keepParsed(s, f)) return f;
  if (Object.isExtensible(s)) Object.defineProperty(s, FACTS, { value: f, enumerable: false });
  else frozenFactsCache.set(s, f);
  return f;
}

/** The decimal number written by `count` digits of `text` from `at`, or -1 if one is not a digit. */
function decimalAt(text: string, at: number, count: number): number {
  let v = 0;
  for (let i = at; i < at + count; i++) {
    const c = text.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    v = v * 10 + c;
  }
  return v;
}

/** Date.parse, with a fast path for the `YYYY-MM-DDTHH:MM:SSZ` text analyze writes (`strictIsoMs`). */
export function isoMs(text: string): number {
  const ms = strictIsoMs(text);
  return Number.isNaN(ms) ? Date.parse(text) : ms;
}

const MONTH_DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/**
 * Date.parse of `YYYY-MM-DDTHH:MM:SSZ` text naming a real second (month 1–12, a day of that month, hours ≤ 23,
 * minutes and seconds ≤ 59), read by arithmetic; NaN for any other text. Two such texts compare as text
 * exactly as their values compare.
 */
export function strictIsoMs(text: string): number {
  if (text.length !== 20 || text.charCodeAt(4) !== 45 || text.charCodeAt(7) !== 45 || text.charCodeAt(10) !== 84 || text.charCodeAt(13) !== 58 || text.charCodeAt(16) !== 58 || text.charCodeAt(19) !== 90) {
    return NaN;
  }
  const year = decimalAt(text, 0, 4);
  const month = decimalAt(text, 5, 2);
  const day = decimalAt(text, 8, 2);
  const hours = decimalAt(text, 11, 2);
  const minutes = decimalAt(text, 14, 2);
  const seconds = decimalAt(text, 17, 2);
  if (year < 0 || month < 1 || month > 12 || day < 1 || hours < 0 || hours > 23 || minutes < 0 || minutes > 59 || seconds < 0 || seconds > 59) return NaN;
  const leap = month === 2 && year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  if (day > MONTH_DAYS[month - 1]! + (leap ? 1 : 0)) return NaN;
  return daysFromCivil(year, month, day) * 86_400_000 + hours * 3_600_000 + minutes * 60_000 + seconds * 1000;
}

/** Days from 1970-01-01 to the proleptic Gregorian date. */
function daysFromCivil(year: number, month: number, day: number): number {
  // Years counted from March, so that a leap day ends its year.
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yearOfEra = y - era * 400;
  const dayOfYear = Math.floor((153 * (month > 2 ? month - 3 : month + 9) + 2) / 5) + day - 1;
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear;
  return era * 146_097 + dayOfEra - 719_468;
}

/** parseAddress with a fast path for the canonical dotted quad that ingest stores. */
export function addressOf(text: string): Address | null {
  return canonicalV4(text) ?? parseAddress(text);
}

/**
 * Canonical dotted-quad text (what ingest stores) without the general parser; anything else is left to
 * parseAddress. Canonical means four decimal octets ≤ 255 without leading zeros (the same text the pattern
 * /^(0|[1-9]\d{0,2})(\.(0|[1-9]\d{0,2})){3}$/ accepts), read char by char: a regex match per source showed in
 * profiles over a million sources.
 */
function canonicalV4(text: string): Address | null {
  const value = canonicalV4Value(text);
  return value < 0 ? null : { family: 4, value: BigInt(value), text };
}

/** The value of canonical dotted-quad text as a plain number, -1 for any other text. */
function canonicalV4Value(text: string): number {
  const n = text.length;
  if (n < 7 || n > 15) return -1;
  let value = 0;
  let octets = 0;
  let i = 0;
  while (i < n) {
    const start = i;
    let octet = 0;
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c < 48 || c > 57) break;
      octet = octet * 10 + (c - 48);
      i++;
    }
    const digits = i - start;
    if (digits === 0 || digits > 3 || (digits > 1 && text.charCodeAt(start) === 48) || octet > 255) return -1;
    value = value * 256 + octet;
    octets++;
    if (i === n) break;
    if (octets === 4 || text.charCodeAt(i) !== 46) return -1;
    i++;
    if (i === n) return -1;
  }
  return octets === 4 ? value : -1;
}

function findBlock(list: readonly PoolBlock[] | undefined, value: bigint): PoolBlock | null {
  if (!list || list.length === 0) return null;
  let lo = 0;
  let hi = list.length - 1;
  let best = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid]!.base <= value) {
      best = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  const b = best >= 0 ? list[best]! : null;
  // base ≤ value < end: the same test as masking the value, without allocating a bigint per lookup.
  return b && value < b.end ? b : null;
}

/**
 * Dynamic pools this key uses: pool blocks (over every key's rotating addresses) holding at least
 * poolMinKeyMembers of this key's own rotating addresses. The block, not its fragments, is what to admit.
 */
export function guessPools(profile: KeyProfile, index: PoolIndex): PoolGuess[] {
  const T = SUSPICION_THRESHOLDS;
  const hits = new Map<PoolBlock, { own: Set<bigint>; sources: SourceUsage[] }>();
  const visit = (blocksOf: (family: IpFamily) => PoolBlock[] | undefined, s: SourceUsage): void => {
    const a = factsOf(s).address;
    if (!a) return;
    const unit = unitValue(a.family, a.value);
    const block = findBlock(blocksOf(a.family), unit);
    if (!block) return;
    let h = hits.get(block);
    if (!h) hits.set(block, (h = { own: new Set(), sources: [] }));
    h.sources.push(s);
    if (s.days <= T.poolMemberMaxDays) h.own.add(unit);
  };
  // The public scope's block lists looked up once, not once per source.
  const publicBlocks: Record<IpFamily, PoolBlock[] | undefined> = { 4: index.blocks.get('|4'), 6: index.blocks.get('|6') };
  const publicBlocksOf = (family: IpFamily): PoolBlock[] | undefined => publicBlocks[family];
  for (const s of profile.publicSources) visit(publicBlocksOf, s);
  for (const s of profile.vpcSources) visit((family) => index.blocks.get(`${s.vpcId}|${family}`), s);
  // A key uses a block when its own rotating addresses are in it: two of them, or one where other keys confirm the pool.
  const used = [...hits].filter(([block, h]) => h.own.size >= T.poolMinKeyMembers || (h.own.size >= 1 && block.keys.length >= 2));
  const chosen = new Map<PoolBlock, string>();
  for (const [block] of used) chosen.set(block, '');
  // Drawing from two or more blocks of one provider: the provider's other blocks come with them.
  const byFamily = new Map<PoolBlock[], PoolBlock[]>();
  for (const [block] of used) byFamily.set(block.siblings, [...(byFamily.get(block.siblings) ?? []), block]);
  for (const [siblings, mine] of byFamily) {
    if (mine.length < 2) continue;
    for (const b of siblings) if (!chosen.has(b)) chosen.set(b, `drawn from together with ${mine.length} blocks this key uses (${formatPrefix(mine[0]!)}, …)`);
  }
  const pools: PoolGuess[] = [];
  for (const [block, via] of chosen) {
    const h = hits.get(block) ?? { own: new Set<bigint>(), sources: [] };
    const cidr = formatPrefix(block);
    const others = block.keys.filter((k) => k !== profile.accessKeyId).length;
    const what = `${block.members} rotating ${block.family === 6 ? '/64s' : 'addresses'} (each seen on ≤ ${T.poolMemberMaxDays} days${others > 0 ? `, from ${block.keys.includes(profile.accessKeyId) ? 'this key and ' : ''}${others} other key${others === 1 ? '' : 's'}` : ''})`;
    pools.push({
      vpcId: block.scope === '' ? null : block.scope,
      cidr,
      family: block.family,
      base: block.base,
      length: block.length,
      keyAddresses: sortByAddress(h.sources.map((s) => s.ip), (ip) => ip),
      evidenceAddresses: block.members,
      keys: block.keys,
      calls: h.sources.reduce((n, s) => n + s.calls, 0),
      reason:
        (block.leaseLine
          ? `${what}, used one at a time like a dynamic line's leases (an office or shop line whose ISP reassigns its address): ${cidr} is the widest block so few leases cannot tell apart from the part they were seen in` +
            ' — confirm the line\'s address range with its ISP, or give it a fixed address'
          : `${what} fill ${cidr}${block.scope ? ` in ${block.scope}` : ''} like a dynamic pool (${block.scope ? 'autoscaled instances' : 'e.g. Function Compute, hosted CI runners'})`) +
        (via ? `; ${via}` : `: the block is proposed, not ${h.own.size} fragment${h.own.size === 1 ? '' : 's'}`),
    });
  }
  return pools.sort((a, b) => (a.vpcId ?? '').localeCompare(b.vpcId ?? '') || compareCidr(a, b));
}

function compareCidr(a: { family: IpFamily; base: bigint; length: number }, b: { family: IpFamily; base: bigint; length: number }): number {
  return a.family - b.family || (a.base < b.base ? -1 : a.base > b.base ? 1 : 0) || a.length - b.length;
}

/** A sort key for address text: numeric within a family, IPv4 before IPv6, unparseable text last. */
export function addressSortKey(text: string): string {
  // Canonical IPv4 (nearly every source) straight from its number: no bigint to build and print.
  const v4 = canonicalV4Value(text);
  if (v4 >= 0) return `4|${v4.toString(16).padStart(8, '0')}`;
  const a = parseAddress(text);
  if (!a) return `9|${text}`;
  return a.family === 4 ? `4|${a.value.toString(16).padStart(8, '0')}` : `6|${a.value.toString(16).padStart(32, '0')}`;
}

/** Sorts address text numerically (IPv4 before IPv6); unparseable text last, by text. */
export function compareAddressText(a: string, b: string): number {
  const x = addressSortKey(a);
  const y = addressSortKey(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Sorts items by an address-text field, computing each sort key once. */
export function sortByAddress<T>(items: readonly T[], text: (item: T) => string): T[] {
  // Canonical IPv4 text (nearly every list) sorts by its number exactly as by its key: no key strings, and a
  // list already in order (sources come sorted) is only checked.
  const values = new Float64Array(items.length);
  let sorted = true;
  for (let i = 0; i < items.length; i++) {
    const v = canonicalV4Value(text(items[i]!));
    if (v < 0) return sortByAddressKey(items, text);
    values[i] = v;
    if (i > 0 && v < values[i - 1]!) sorted = false;
  }
  if (sorted) return items.slice();
  const order = Array.from(items, (_, i) => i).sort((a, b) => values[a]! - values[b]! || a - b);
  return order.map((i) => items[i]!);
}

function sortByAddressKey<T>(items: readonly T[], text: (item: T) => string): T[] {
  return items
    .map((item) => ({ item, key: addressSortKey(text(item)) }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    .map((x) => x.item);
}

/**
 * Leak-looking sources: new sources (first seen well after the key's first call) far from the key's
 * established networks that either fail a lot or call sensitive APIs (loud), or ran for days and then
 * stopped while the key went on being used (quiet). Sources inside a pool are judged only on loudness.
 */
export function findLeaks(profile: KeyProfile, pools: PoolGuess[], window?: TimeWindow, growth: string[] = []): SuspiciousSource[] {
  const T = SUSPICION_THRESHOLDS;
  const keyStart = ms(profile.firstSeen);
  const governedCalls = profile.publicSources.reduce((n, s) => n + s.calls, 0) + profile.vpcSources.reduce((n, s) => n + s.calls, 0);
  const keyDailyCalls = governedCalls / Math.max(1, Math.ceil((ms(profile.lastSeen) - keyStart) / DAY_MS));
  const keyEnd = Math.min(ms(profile.lastSeen), window ? ms(window.to) : Infinity);
  const isNew = (s: SourceUsage): boolean => factsOf(s).firstMs >= keyStart + T.newAfterDays * DAY_MS;
  const established = profile.publicSources.filter((s) => !isNew(s));
  const nearGroups = new Set<string | number>();
  for (const s of established) {
    const a = factsOf(s).address;
    if (a) nearGroups.add(groupKey(a.family, a.value, T.nearPrefix[a.family]));
  }
  // Sensitive APIs include ordinary reads (DescribeRegions, ListBuckets): what counts is a share well above the key's own.
  const baseline = [...established, ...profile.vpcSources];
  const baselineCalls = baseline.reduce((n, s) => n + s.calls, 0);
  const baselineSensitiveShare = baselineCalls > 0 ? baseline.reduce((n, s) => n + s.sensitiveCalls, 0) / baselineCalls : 0;
  const inPool = (family: IpFamily, value: bigint): boolean =>
    pools.some((p) => p.family === family && maskValue(value, family, p.length) === p.base);

  // A key whose established traffic all comes from dynamic pools has no fixed egress to grow.
  const establishedCalls = established.reduce((n, s) => n + s.calls, 0);
  // Only shared pools (a provider's runners or functions, drawn from by several keys) mean "no egress of its
  // own"; a key's private dynamic line (a branch office) may well add a fixed address.
  const sharedPools = pools.filter((p) => p.keys.length >= 2);
  const pooledCalls = established.reduce((n, s) => {
    const a = factsOf(s).address;
    return a && sharedPools.some((p) => p.family === a.family && maskValue(a.value, a.family, p.length) === p.base) ? n + s.calls : n;
  }, 0);
  const poolOnly = establishedCalls > 0 && pooledCalls >= T.poolOnlyShare * establishedCalls;
  // A key whose addresses mostly come and go (runners, functions) stops using addresses all the time.
  const shortLived = profile.publicSources.filter((s) => s.days <= T.shortLivedDays).length;
  const rotatingKey = profile.publicSources.length >= 4 && shortLived >= T.rotatingKeyShare * profile.publicSources.length;
  // New addresses arriving together in one block (a NAT's addresses) are judged as one network.
  const newGroupDaily = new Map<string | number, number>();
  // …and a network stops only when all of its new addresses have: a NAT's addresses take turns.
  const newGroupLast = new Map<string | number, number>();
  // Each new source's network key, by index in publicSources: the loop below reads it again.
  const networkAt: Array<string | number> = [];
  profile.publicSources.forEach((s, i) => {
    const a = factsOf(s).address;
    if (!a || !isNew(s)) return;
    const g = groupKey(a.family, a.value, T.networkPrefix[a.family]);
    networkAt[i] = g;
    newGroupDaily.set(g, (newGroupDaily.get(g) ?? 0) + s.calls / Math.max(1, s.days));
    newGroupLast.set(g, Math.max(newGroupLast.get(g) ?? 0, factsOf(s).lastMs));
  });
  const leaks: SuspiciousSource[] = [];
  for (let i = 0; i < profile.publicSources.length; i++) {
    const s = profile.publicSources[i]!;
    if (!isNew(s)) continue;
    const a = factsOf(s).address;
    if (!a) continue;
    const network = networkAt[i]!;
    const pooled = inPool(a.family, a.value);
    const far = !pooled && !nearGroups.has(groupKey(a.family, a.value, T.nearPrefix[a.family]));
    // Calls refused by the ACL in force fail whoever makes them: they are no sign of a leak.
    const errors = Math.max(0, s.errorCalls - s.deniedCalls);
    const errorShare = s.calls > 0 ? errors / s.calls : 0;
    const highError = errors >= T.leakMinErrorCalls && errorShare >= T.leakErrorShare;
    const sensitiveShare = s.calls > 0 ? s.sensitiveCalls / s.calls : 0;
    const sensitive = s.sensitiveCalls >= T.leakMinSensitiveCalls && sensitiveShare >= Math.max(T.leakSensitiveShare, T.leakSensitiveOverBaseline * baselineSensitiveShare);
    // Whole UTC days between the source's last call and the key's: hours of the day do not matter.
    const networkLast = newGroupLast.get(network) ?? factsOf(s).lastMs;
    const ended = Math.floor(keyEnd / DAY_MS) - Math.floor(networkLast / DAY_MS) >= T.stopGapDays;
    const stopped = !rotatingKey && s.days >= T.quietRunMinDays && ended;
    // Growth (a new NAT, a new EIP) moves real load; a leaked key used on the side carries a sliver of it.
    const minor = s.days >= T.quietRunMinDays && (newGroupDaily.get(network) ?? 0) < T.leakMinorShare * keyDailyCalls;
    const loud = (far && (highError || sensitive)) || (highError && sensitive);
    // On a key of rotating addresses a short run that ended is normal; an address that stays in use is not.
    const offPattern = far && poolOnly && (rotatingKey ? !ended && s.days > T.shortLivedDays : s.days >= T.quietRunMinDays);
    const quiet = far && (stopped || minor || offPattern);
    if (!loud && !quiet) {
      if (far) growth.push(s.ip);
      continue;
    }
    const signals: LeakSignal[] = ['new-source'];
    if (far) signals.push('far-from-key-networks');
    if (highError) signals.push('high-error-share');
    if (sensitive) signals.push('sensitive-calls');
    if (stopped) signals.push('run-then-stopped');
    if (minor && !stopped) signals.push('minor-share');
    if (offPattern) signals.push('fixed-address-on-pool-key');
    const parts = [`new since ${s.firstSeen.slice(0, 10)}`];
    if (far) parts.push('far from the key\'s other networks');
    if (highError) parts.push(`${Math.round(errorShare * 100)}% errors`);
    if (sensitive) parts.push(`${s.sensitiveCalls} sensitive call${s.sensitiveCalls === 1 ? '' : 's'}`);
    if (stopped) parts.push(`active ${s.days} days, silent since ${s.lastSeen.slice(0, 10)}`);
    if (offPattern) parts.push('a fixed address on a key that otherwise calls only from dynamic pools');
    else if (minor && !stopped) parts.push(`${Math.round(s.calls / s.days)} calls a day, under ${Math.round(T.leakMinorShare * 100)}% of the key's ${Math.round(keyDailyCalls)}`);
    leaks.push({
      ip: s.ip,
      family: a.family,
      calls: s.calls,
      days: s.days,
      firstSeen: s.firstSeen,
      lastSeen: s.lastSeen,
      errorShare,
      sensitiveCalls: s.sensitiveCalls,
      signals: signals.sort(),
      kind: loud ? 'loud' : 'quiet',
      reason: `${loud ? 'burst' : 'run'} from a new address (${parts.join(', ')}): possible leak`,
    });
  }
  return sortByAddress(leaks, (l) => l.ip);
}

/**
 * Both heuristics for one key; `growth` lists the new, far sources that did not look like leaks (a reviewer
 * should still confirm them: a quiet leak still running at the end of the window looks the same). Pools first:
 * an address inside a pool is not "far" merely for being new. Pool evidence is shared: pass every key of the account as `accountProfiles` (the same array for every key,
 * so the pool index is built once).
 */
export function classifySources(profile: KeyProfile, context?: SuspicionContext): { leaks: SuspiciousSource[]; pools: PoolGuess[]; growth: string[] } {
  const account = context?.accountProfiles ?? [];
  const index = buildPoolIndex(account.includes(profile) ? account : [...account, profile]);
  const pools = guessPools(profile, index);
  const growth: string[] = [];
  const leaks = findLeaks(profile, pools.filter((p) => p.vpcId === null), context?.window, growth);
  return { leaks, pools, growth: sortByAddress(growth, (ip) => ip) };
}
