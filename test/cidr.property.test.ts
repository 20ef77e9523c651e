import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FAMILY_BITS, maskValue, prefixCovers, type Prefix } from '../model/address.ts';
import { InfeasibleCoverError, coverCurve, greedyCover, itemsToUnits, normalizeItems, optimalCover, prefixUnits, type CoverItem } from '../recommend/cidr.ts';

// Fixed seeds keep runs deterministic; a failure prints its seed and the shrunk counterexample.
const SEED = 20261123;

const V4_UNIVERSE = 0xcb007100n; // 203.0.113.0/24
const V6_UNIVERSE = 0x20010db8_0000_0100_0000_0000_0000_0000n; // 2001:db8:0:100::/56

/**
 * An address or block inside a small universe: IPv4 within a /24, IPv6 within a /56, both squeezed into the
 * first 2^spread addresses (or /64s) so that dense, fully seen blocks come up as often as sparse ones.
 */
const smallItemIn = (spread: number): fc.Arbitrary<CoverItem> =>
  fc.oneof(
    fc.record({ offset: fc.integer({ min: 0, max: 2 ** spread - 1 }), length: fc.oneof(fc.constant(32), fc.integer({ min: 24, max: 32 })) }).map(({ offset, length }) => ({
      family: 4 as const,
      base: maskValue(V4_UNIVERSE + BigInt(offset), 4, length),
      length,
    })),
    fc.record({ subnet: fc.integer({ min: 0, max: 2 ** spread - 1 }), host: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), length: fc.oneof(fc.constant(128), fc.integer({ min: 56, max: 128 })) }).map(({ subnet, host, length }) => ({
      family: 6 as const,
      base: maskValue(V6_UNIVERSE + (BigInt(subnet) << 64n) + host, 6, length),
      length,
    })),
  );
const smallItems = (maxLength: number): fc.Arbitrary<CoverItem[]> => fc.integer({ min: 2, max: 8 }).chain((spread) => fc.array(smallItemIn(spread), { minLength: 0, maxLength }));
const smallItem = fc.integer({ min: 2, max: 8 }).chain(smallItemIn);

/** Wider inputs: addresses clustered in a few IPv4 /16s and IPv6 /48s, plus blocks. */
const wideItem: fc.Arbitrary<CoverItem> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ net: fc.integer({ min: 0, max: 3 }), host: fc.integer({ min: 0, max: 0xffff }), length: fc.oneof({ weight: 5, arbitrary: fc.constant(32) }, { weight: 1, arbitrary: fc.integer({ min: 16, max: 31 }) }) }).map(({ net, host, length }) => ({ family: 4 as const, base: maskValue(0xc6330000n + (BigInt(net * 37) << 16n) + BigInt(host), 4, length), length })) },
  { weight: 1, arbitrary: fc.record({ net: fc.integer({ min: 0, max: 2 }), subnet: fc.integer({ min: 0, max: 0xffff }), host: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }) }).map(({ net, subnet, host }) => ({ family: 6 as const, base: (0x2408_4000_0000n + BigInt(net)) << 80n | (BigInt(subnet) << 64n) | host, length: 128 })) },
);

/** The units of an item as the cover counts them: IPv6 beyond /64 is its /64. */
const unitsOfItem = (p: Pick<Prefix, 'family' | 'length'>): number => prefixUnits(p);
const unitBits = (family: 4 | 6): number => (family === 4 ? 32 : 64);

/** Drops duplicates and items inside others, groups IPv6 to /64, sorts by family then base. Written apart from the library. */
function normalise(items: CoverItem[]): CoverItem[] {
  const grouped = items.map((i) => (i.family === 6 && i.length > 64 ? { family: 6 as const, base: maskValue(i.base, 6, 64), length: 64 } : i));
  const kept = grouped.filter((a, ia) => !grouped.some((b, ib) => prefixCovers(b, a) && (b.length < a.length || ib < ia)));
  return kept.sort((a, b) => a.family - b.family || (a.base < b.base ? -1 : a.base > b.base ? 1 : 0));
}

function commonPrefix(group: CoverItem[]): Prefix {
  const family = group[0]!.family;
  for (let length = Math.min(...group.map((i) => i.length)); length >= 0; length--) {
    const base = maskValue(group[0]!.base, family, length);
    if (group.every((i) => maskValue(i.base, family, length) === base)) return { family, base, length };
  }
  throw new Error('unreachable');
}

/**
 * The optimum by enumeration: an optimal cover's entries each hold a run of neighbouring items, so try every
 * split of the sorted items into runs, cover each run by its common prefix, and count the union.
 */
function bruteForceCosts(items: CoverItem[], K: number, minLength: { 4: number; 6: number }): number[] {
  const sorted = normalise(items);
  const seen = sorted.reduce((s, i) => s + unitsOfItem(i), 0);
  const best: number[] = Array.from({ length: K + 1 }, () => Infinity);
  if (sorted.length === 0) return best.map(() => 0);
  const gaps = sorted.length - 1;
  for (let mask = 0; mask < 2 ** gaps; mask++) {
    const runs: CoverItem[][] = [[sorted[0]!]];
    let feasible = true;
    for (let i = 1; i < sorted.length; i++) {
      const cut = (mask >> (i - 1)) & 1 || sorted[i]!.family !== sorted[i - 1]!.family;
      if (cut) runs.push([sorted[i]!]);
      else runs[runs.length - 1]!.push(sorted[i]!);
    }
    const entries: Prefix[] = [];
    let extra = 0;
    for (const run of runs) {
      const p = commonPrefix(run);
      const floor = Math.max(1, minLength[p.family]);
      if (p.length >= floor) entries.push(p);
      else if (run.length === 1) extra += 2 ** (floor - p.length); // a lone broad block: its guardrail-sized parts
      else feasible = false;
    }
    if (!feasible) continue;
    const union = entries.filter((a, ia) => !entries.some((b, ib) => prefixCovers(b, a) && (b.length < a.length || ib < ia)));
    const count = union.length + extra;
    const units = union.reduce((s, p) => s + unitsOfItem(p), 0) + runs.filter((r) => r.length === 1 && commonPrefix(r).length < Math.max(1, minLength[r[0]!.family])).reduce((s, r) => s + unitsOfItem(r[0]!), 0);
    if (count <= K) best[count] = Math.min(best[count]!, units - seen);
  }
  for (let k = 1; k <= K; k++) best[k] = Math.min(best[k]!, best[k - 1]!);
  return best;
}

/** The checks every cover must pass, whatever the input. */
function checkCover(items: CoverItem[], prefixes: Prefix[], K: number, minLength: { 4: number; 6: number }): void {
  expect(prefixes.length).toBeLessThanOrEqual(K);
  for (const i of items) expect(prefixes.some((p) => prefixCovers(p, i) || (i.family === 6 && prefixCovers(p, { ...i, base: maskValue(i.base, 6, 64), length: 64 })))).toBe(true);
  for (let i = 0; i < prefixes.length; i++) {
    const p = prefixes[i]!;
    expect(p.length).toBeGreaterThanOrEqual(Math.max(1, minLength[p.family]));
    expect(p.length).toBeLessThanOrEqual(unitBits(p.family));
    expect(maskValue(p.base, p.family, p.length)).toBe(p.base);
    if (i > 0) {
      const q = prefixes[i - 1]!;
      // Sorted and disjoint: the previous entry ends before this one starts.
      expect(q.family < p.family || (q.family === p.family && q.base + (1n << BigInt(FAMILY_BITS[q.family] - q.length)) <= p.base)).toBe(true);
    }
    // Never broader than needed: the entry is the common prefix of the item parts inside it.
    const parts = normalise(items)
      .map((it) => (prefixCovers(p, it) ? it : prefixCovers(it, p) ? { family: p.family, base: p.base, length: p.length } : null))
      .filter((x): x is CoverItem => x !== null);
    expect(parts.length).toBeGreaterThan(0);
    expect(commonPrefix(parts)).toEqual(p);
  }
}

const seenUnits = (items: CoverItem[]): number => normalise(items).reduce((s, i) => s + unitsOfItem(i), 0);

/** `normalise` for thousands of items: sort, then drop what starts before the last kept block ends. */
function normaliseLarge(items: CoverItem[]): CoverItem[] {
  const grouped = items.map((i) => (i.family === 6 && i.length > 64 ? { family: 6 as const, base: maskValue(i.base, 6, 64), length: 64 } : i));
  grouped.sort((a, b) => a.family - b.family || (a.base < b.base ? -1 : a.base > b.base ? 1 : a.length - b.length));
  const out: CoverItem[] = [];
  for (const i of grouped) {
    const last = out[out.length - 1];
    if (last && last.family === i.family && i.base < last.base + (1n << BigInt(FAMILY_BITS[last.family] - last.length))) continue;
    out.push(i);
  }
  return out;
}

describe('normalisation at scale', () => {
  it('drops duplicates and nested items and groups IPv6 to /64 the same way for thousands of items (the radix-sorted path)', () => {
    fc.assert(
      fc.property(fc.array(wideItem, { minLength: 2500, maxLength: 4000 }), (items) => {
        const expected = normaliseLarge(items);
        expect(normalizeItems(items)).toEqual(expected);
        expect(itemsToUnits(items)).toBe(expected.reduce((s, i) => s + unitsOfItem(i), 0));
      }),
      // Shrinking thousands of items takes minutes: report the first counterexample as found.
      { seed: SEED, numRuns: 5, endOnFailure: true },
    );
  });
});

describe('optimalCover properties', () => {
  it('equals the brute-force optimum for every budget on small inputs, guardrail included', () => {
    fc.assert(
      fc.property(
        smallItems(8),
        fc.integer({ min: 1, max: 6 }),
        fc.record({ 4: fc.integer({ min: 22, max: 30 }), 6: fc.integer({ min: 50, max: 62 }) }),
        (items, K, minLength) => {
          const curve = coverCurve(items, { maxEntries: K, minLength });
          expect(curve.costs).toEqual(bruteForceCosts(items, K, minLength));
        },
      ),
      { seed: SEED, numRuns: 400 },
    );
  });

  it('covers every item with at most K sorted, disjoint, tight entries whose cost is the unseen space', () => {
    fc.assert(
      fc.property(fc.array(wideItem, { minLength: 1, maxLength: 300 }), fc.integer({ min: 1, max: 50 }), (items, K) => {
        const minLength = { 4: 16, 6: 32 };
        let cover;
        try {
          cover = optimalCover(items, { maxEntries: K });
        } catch (e) {
          expect(e).toBeInstanceOf(InfeasibleCoverError);
          expect((e as InfeasibleCoverError).neededEntries).toBeGreaterThan(K);
          return;
        }
        checkCover(items, cover.prefixes, K, minLength);
        const units = cover.prefixes.reduce((s, p) => s + prefixUnits(p), 0);
        expect(cover.units).toBe(units);
        expect(cover.cost).toBe(units - seenUnits(items));
      }),
      { seed: SEED, numRuns: 150 },
    );
  });

  it('is never worse than the greedy merge, and greedy covers are valid too', () => {
    fc.assert(
      fc.property(fc.array(wideItem, { minLength: 1, maxLength: 300 }), fc.integer({ min: 1, max: 50 }), (items, K) => {
        const options = { maxEntries: K, minLength: { 4: 8, 6: 24 } };
        const curve = coverCurve(items, options);
        if (curve.costs[K] === Infinity) {
          expect(() => greedyCover(items, options)).toThrow(InfeasibleCoverError);
          return;
        }
        const greedy = greedyCover(items, options);
        checkCover(items, greedy.prefixes, K, options.minLength);
        expect(greedy.cost).toBe(greedy.units - seenUnits(items));
        expect(curve.costs[K]).toBeLessThanOrEqual(greedy.cost);
      }),
      { seed: SEED, numRuns: 150 },
    );
  });

  it('gives a non-increasing curve whose covers cost exactly costs[k], finite from minEntries on', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(wideItem, smallItem), { minLength: 0, maxLength: 120 }), fc.integer({ min: 1, max: 20 }), (items, K) => {
        const options = { maxEntries: K, minLength: { 4: 12, 6: 28 } };
        const curve = coverCurve(items, options);
        expect(curve.costs).toHaveLength(K + 1);
        for (let k = 0; k <= K; k++) {
          if (k > 0) expect(curve.costs[k]!).toBeLessThanOrEqual(curve.costs[k - 1]!);
          expect(Number.isFinite(curve.costs[k]!)).toBe(k >= curve.minEntries);
          if (k < curve.minEntries) {
            expect(() => curve.coverAt(k)).toThrow(InfeasibleCoverError);
            continue;
          }
          const cover = curve.coverAt(k);
          expect(cover.cost).toBe(curve.costs[k]);
          expect(cover.cost).toBe(cover.units - curve.seenUnits);
          checkCover(items, cover.prefixes, k, options.minLength);
        }
      }),
      { seed: SEED, numRuns: 100 },
    );
  });

  it('does not depend on input order or duplicates', () => {
    fc.assert(
      fc.property(fc.array(wideItem, { minLength: 1, maxLength: 100 }), fc.integer({ min: 1, max: 30 }), (items, K) => {
        const options = { maxEntries: K, minLength: { 4: 8, 6: 24 } };
        const shuffled = [...items].reverse().concat(items.slice(0, 10));
        const outcome = (input: CoverItem[]): unknown => {
          try {
            return optimalCover(input, options);
          } catch (e) {
            return e instanceof InfeasibleCoverError ? { needed: e.neededEntries } : e;
          }
        };
        expect(outcome(shuffled)).toEqual(outcome(items));
      }),
      { seed: SEED, numRuns: 50 },
    );
  });
});
