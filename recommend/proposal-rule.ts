// One rule (the public rule, or one VPC's rule) from admitted sources: headroom widening, pool blocks,
// the optimal cover within the entry limit, carving leaks back out, and the evidence behind every entry.
import { FAMILY_BITS, formatPrefix, maskValue, type Prefix } from '../model/address.ts';
import type { Evidence, IpFamily, SourceUsage } from '../model/types.ts';
import { optimalCover, type CoverItem } from './cidr.ts';
import { factsOf } from './suspicion.ts';

/** One admitted source of one key. */
export interface Candidate {
  key: string;
  usage: SourceUsage;
  family: IpFamily;
  /** The address as an integer. */
  value: bigint;
}

/** The unit admitted space is counted in: an IPv4 address, an IPv6 /64. */
export const UNIT_BITS: Record<IpFamily, number> = { 4: 32, 6: 64 };

export interface RuleSettings {
  maxEntries: number;
  /** The shortest prefix allowed per family (the guardrail, or 1 with --allow-broad: never /0). */
  minLength: Record<IpFamily, number>;
  /** An entry may admit up to `headroom` × the units seen inside it (≥ 1). */
  headroom: number;
}

export interface RuleResult {
  prefixes: Prefix[];
  cidrs: string[];
  evidence: Evidence[];
  /** Candidates that could not fit within the entry limit (whole guardrail blocks, fewest calls first). */
  dropped: Candidate[];
  /** Admitted units (IPv4 addresses, IPv6 /64s) per family. */
  admittedUnits: Record<IpFamily, bigint>;
}

export function candidateOf(key: string, usage: SourceUsage): Candidate | null {
  const a = factsOf(usage).address;
  return a ? { key, usage, family: a.family, value: a.value } : null;
}

export function comparePrefix(a: Prefix, b: Prefix): number {
  return a.family - b.family || (a.base < b.base ? -1 : a.base > b.base ? 1 : 0) || a.length - b.length;
}

function contains(p: Prefix, family: IpFamily, value: bigint): boolean {
  return p.family === family && maskValue(value, family, p.length) === p.base;
}

function unitsOf(p: Pick<Prefix, 'family' | 'length'>): bigint {
  const bits = UNIT_BITS[p.family] - Math.min(p.length, UNIT_BITS[p.family]);
  return 1n << BigInt(bits);
}

interface Block extends Prefix {
  /** Distinct units seen inside. */
  seen: number;
}

/**
 * Widens runs of seen units into the aligned block around them when the block would admit at most
 * `headroom` × the units seen in it (an office NAT /29 with 5 of its 8 addresses seen) and at least two seen
 * units support it. Never across a forbidden address, never shorter than `minLength`.
 */
export function widenWithHeadroom(points: Block[], headroom: number, minLength: Record<IpFamily, number>, forbidden: Array<{ family: IpFamily; value: bigint }>): Block[] {
  if (headroom <= 1) return points;
  const out: Block[] = [];
  for (const family of [4, 6] as IpFamily[]) {
    let current = points.filter((b) => b.family === family);
    const forbiddenHere = forbidden.filter((f) => f.family === family);
    for (let length = UNIT_BITS[family] - 1; length >= minLength[family] && current.length > 1; length--) {
      const groups = new Map<bigint, Block[]>();
      for (const b of current) {
        const base = maskValue(b.base, family, Math.min(length, b.length));
        const list = groups.get(base);
        if (list) list.push(b);
        else groups.set(base, [b]);
      }
      const next: Block[] = [];
      for (const [base, members] of groups) {
        if (members.length < 2) {
          next.push(...members);
          continue;
        }
        const seen = members.reduce((n, m) => n + m.seen, 0);
        const block: Prefix = { family, base, length };
        // seen × headroom ≥ size, in integers (headroom has at most 3 decimals that matter).
        const fits = BigInt(Math.floor(seen * headroom * 1000)) >= unitsOf(block) * 1000n;
        if (fits && !forbiddenHere.some((f) => contains(block, family, f.value))) next.push({ ...block, seen });
        else next.push(...members);
      }
      current = next;
    }
    out.push(...current);
  }
  return out;
}

/** Disjoint blocks with every pair of aligned siblings merged into their parent, never above `minLength`. */
export function mergeExactSiblings(blocks: readonly Prefix[], minLength: Record<IpFamily, number>): Prefix[] {
  let current = [...blocks].map((b) => ({ family: b.family, base: b.base, length: b.length })).sort(comparePrefix);
  for (;;) {
    const next: Prefix[] = [];
    let merged = false;
    for (let i = 0; i < current.length; i++) {
      const a = current[i]!;
      const b = current[i + 1];
      if (b && a.family === b.family && a.length === b.length && a.length > minLength[a.family]) {
        const parentLength = a.length - 1;
        const parentBase = maskValue(a.base, a.family, parentLength);
        if (parentBase === a.base && maskValue(b.base, b.family, parentLength) === parentBase) {
          next.push({ family: a.family, base: parentBase, length: parentLength });
          i++;
          merged = true;
          continue;
        }
      }
      next.push(a);
    }
    current = next;
    if (!merged) return current;
  }
}

/** Splits `prefix` until no part holds a forbidden address, keeping only parts that hold or meet an item. */
function carve(prefix: Prefix, items: Prefix[], forbidden: Array<{ family: IpFamily; value: bigint }>): Prefix[] {
  const inside = forbidden.filter((f) => contains(prefix, f.family, f.value));
  if (inside.length === 0) return [prefix];
  const bits = FAMILY_BITS[prefix.family];
  if (prefix.length >= Math.min(bits, UNIT_BITS[prefix.family])) return [];
  const out: Prefix[] = [];
  const childLength = prefix.length + 1;
  for (const half of [0n, 1n]) {
    const base = prefix.base | (half << BigInt(bits - childLength));
    const child: Prefix = { family: prefix.family, base, length: childLength };
    // An item wider than the child (a pool block) meets it too: the pool is kept, minus the forbidden address.
    const childItems = items.filter((i) => (i.length <= childLength ? maskValue(base, i.family, i.length) === i.base : maskValue(i.base, i.family, childLength) === base));
    if (childItems.length > 0) out.push(...carve(child, childItems, inside));
  }
  return out;
}

/** Groups items by the guardrail block that holds them; beyond `maxEntries` groups, the ones with fewest calls go. */
function fitGroups(candidates: Candidate[], items: Block[], settings: RuleSettings): { kept: Block[]; dropped: Candidate[] } {
  const groupOf = (family: IpFamily, value: bigint): string => `${family}|${maskValue(value, family, settings.minLength[family]).toString(16)}`;
  const groups = new Map<string, number>();
  for (const it of items) groups.set(groupOf(it.family, it.base), 0);
  if (groups.size <= settings.maxEntries) return { kept: items, dropped: [] };
  for (const c of candidates) {
    const g = groupOf(c.family, c.value);
    groups.set(g, (groups.get(g) ?? 0) + c.usage.calls);
  }
  const ranked = [...groups].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  const keep = new Set(ranked.slice(0, settings.maxEntries).map(([g]) => g));
  return {
    kept: items.filter((it) => keep.has(groupOf(it.family, it.base))),
    dropped: candidates.filter((c) => !keep.has(groupOf(c.family, c.value))),
  };
}

/**
 * The entries of one rule. `pools` are blocks to admit whole (their members are not fragments);
 * `forbidden` addresses (possible leaks) are never inside an entry unless a pool block holds them.
 */
export function buildRule(
  candidates: Candidate[],
  pools: Prefix[],
  forbidden: Array<{ family: IpFamily; value: bigint }>,
  settings: RuleSettings,
): RuleResult {
  // Every pool block is admitted whole, even one none of these candidates came from (a provider's sibling block).
  const poolItems: Block[] = [...pools].sort(comparePrefix).map((p) => ({ family: p.family, base: p.base, length: p.length, seen: 0 }));
  const poolOf = prefixLookup(pools);
  const loose = candidates.filter((c) => poolOf(c.family, c.value) === null);
  const unitPoints = new Map<string, Block>();
  for (const c of loose) {
    const length = UNIT_BITS[c.family];
    const base = maskValue(c.value, c.family, length);
    const k = `${c.family}|${base.toString(16)}`;
    if (!unitPoints.has(k)) unitPoints.set(k, { family: c.family, base, length, seen: 1 });
  }
  const widened = widenWithHeadroom([...unitPoints.values()], settings.headroom, settings.minLength, forbidden);
  // Pool blocks swallow any widened block inside them.
  const items = [...poolItems, ...widened.filter((b) => !poolItems.some((p) => p.family === b.family && p.length <= b.length && maskValue(b.base, b.family, p.length) === p.base))];
  const { kept, dropped } = fitGroups(candidates, items, settings);
  const droppedSet = new Set(dropped);
  const admitted = candidates.filter((c) => !droppedSet.has(c));
  if (kept.length === 0) return { prefixes: [], cidrs: [], evidence: [], dropped, admittedUnits: { 4: 0n, 6: 0n } };

  const coverItems: CoverItem[] = kept.map((b) => ({ family: b.family, base: b.base, length: b.length }));
  const coverOf = (budget: number): Prefix[] =>
    // Items that fit the budget are their own optimal cover (cost 0): only exact sibling pairs merge.
    kept.length <= budget ? mergeExactSiblings(kept, settings.minLength) : optimalCover(coverItems, { maxEntries: budget, minLength: settings.minLength }).prefixes;
  const coverAndCarve = (budget: number): Prefix[] =>
    coverOf(budget).flatMap((p) =>
      carve(
        { family: p.family, base: p.base, length: p.length },
        kept.filter((b) => b.family === p.family && b.length >= p.length && maskValue(b.base, b.family, p.length) === p.base),
        forbidden,
      ),
    );
  // Carving adds entries: lower the budget until the carved cover fits, never below the guardrail's minimum.
  const minimum = new Set(kept.map((b) => `${b.family}|${maskValue(b.base, b.family, settings.minLength[b.family]).toString(16)}`)).size;
  let budget = settings.maxEntries;
  let prefixes = coverAndCarve(budget);
  while (prefixes.length > settings.maxEntries) {
    const next = budget - (prefixes.length - settings.maxEntries);
    if (next < minimum || next < 1) break;
    budget = next;
    prefixes = coverAndCarve(budget);
  }
  let admittedNow = admitted;
  let droppedNow = dropped;
  if (prefixes.length > settings.maxEntries) {
    // Carving the leaks out left more entries than fit: keep the entries with most calls and drop the rest
    // (over-limit) rather than admit a possible leak or break the limit.
    const calls = new Map<Prefix, number>();
    for (const c of admitted) {
      const p = prefixes.find((x) => contains(x, c.family, c.value));
      if (p) calls.set(p, (calls.get(p) ?? 0) + c.usage.calls);
    }
    const keep = new Set([...prefixes].sort((a, b) => (calls.get(b) ?? 0) - (calls.get(a) ?? 0) || comparePrefix(a, b)).slice(0, settings.maxEntries));
    prefixes = prefixes.filter((p) => keep.has(p));
    const inKept = (c: Candidate): boolean => prefixes.some((p) => contains(p, c.family, c.value));
    droppedNow = [...dropped, ...admitted.filter((c) => !inKept(c))];
    admittedNow = admitted.filter(inKept);
  }
  prefixes.sort(comparePrefix);
  const evidence = evidenceFor(prefixes, admittedNow);
  const admittedUnits: Record<IpFamily, bigint> = { 4: 0n, 6: 0n };
  for (const p of prefixes) admittedUnits[p.family] += unitsOf(p);
  return { prefixes, cidrs: prefixes.map(formatPrefix), evidence, dropped: droppedNow, admittedUnits };
}

/** A lookup over disjoint prefixes: which one holds a value (binary search), in O(log n). */
export function prefixLookup<T extends Prefix>(prefixes: readonly T[]): (family: IpFamily, value: bigint) => T | null {
  const sorted = [...prefixes].sort(comparePrefix);
  if (sorted.length === 0) return () => null;
  return (family, value) => {
    const i = findPrefix(sorted, family, value);
    return i >= 0 ? sorted[i]! : null;
  };
}

/** Which prefix (sorted, disjoint) holds the value: binary search on the base. */
export function findPrefix(sorted: Prefix[], family: IpFamily, value: bigint): number {
  let lo = 0;
  let hi = sorted.length - 1;
  let best = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const p = sorted[mid]!;
    if (p.family < family || (p.family === family && p.base <= value)) {
      best = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  // Prefixes of a cover do not nest, but walk back a little in case they do.
  for (let i = best; i >= 0 && i >= best - 4; i--) if (contains(sorted[i]!, family, value)) return i;
  return sorted.findIndex((p) => contains(p, family, value));
}

/**
 * `findPrefix` for sorted prefixes that are all IPv4 and pairwise disjoint (a rule's entries), on plain numbers:
 * at most one prefix holds a value, so the answer is the same. Null when the prefixes are not such a list.
 */
function disjointV4Lookup(prefixes: readonly Prefix[]): ((family: IpFamily, value: bigint) => number) | null {
  const n = prefixes.length;
  const starts = new Float64Array(n);
  const ends = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const p = prefixes[i]!;
    if (p.family !== 4 || p.length < 0 || p.length > 32) return null;
    starts[i] = Number(p.base);
    ends[i] = starts[i]! + 2 ** (32 - p.length) - 1;
    if (i > 0 && starts[i]! <= ends[i - 1]!) return null;
  }
  return (family, value) => {
    if (family !== 4) return -1;
    const v = Number(value);
    let lo = 0;
    let hi = n - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (starts[mid]! <= v) lo = mid + 1;
      else hi = mid - 1;
    }
    return hi >= 0 && v <= ends[hi]! ? hi : -1;
  };
}

function evidenceFor(prefixes: Prefix[], admitted: Candidate[]): Evidence[] {
  const acc = prefixes.map(() => ({ calls: 0, days: 0, firstSeen: '', lastSeen: '', firstMs: 0, lastMs: 0, firstStrict: false, lastStrict: false, addresses: new Set<string>(), keys: new Set<string>() }));
  const lookup = disjointV4Lookup(prefixes) ?? ((family: IpFamily, value: bigint): number => findPrefix(prefixes, family, value));
  for (const c of admitted) {
    const i = lookup(c.family, c.value);
    if (i < 0) continue;
    const e = acc[i]!;
    e.calls += c.usage.calls;
    e.days = Math.max(e.days, c.usage.days);
    // The earliest first and latest last seen as text; where both sides are strict ISO text, their
    // milliseconds order them the same way without reading either string.
    const f = factsOf(c.usage);
    if (!e.firstSeen || (f.strictTimes && e.firstStrict ? f.firstMs < e.firstMs : c.usage.firstSeen < e.firstSeen)) {
      e.firstSeen = c.usage.firstSeen;
      e.firstMs = f.firstMs;
      e.firstStrict = f.strictTimes;
    }
    if (!e.lastSeen || (f.strictTimes && e.lastStrict ? f.lastMs > e.lastMs : c.usage.lastSeen > e.lastSeen)) {
      e.lastSeen = c.usage.lastSeen;
      e.lastMs = f.lastMs;
      e.lastStrict = f.strictTimes;
    }
    e.addresses.add(c.usage.ip);
    e.keys.add(c.key);
  }
  return prefixes.map((p, i) => {
    const e = acc[i]!;
    return {
      cidr: formatPrefix(p),
      calls: e.calls,
      days: e.days,
      firstSeen: e.firstSeen,
      lastSeen: e.lastSeen,
      addresses: e.addresses.size,
      keys: [...e.keys].sort(),
    };
  });
}
