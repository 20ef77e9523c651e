import { describe, expect, it } from 'vitest';
import { formatPrefix, parsePrefix } from '../model/address.ts';
import { EXIT, InvalidInputError, UsageError } from '../model/errors.ts';
import {
  InfeasibleCoverError,
  coverCurve,
  greedyCover,
  itemsToUnits,
  normalizeItems,
  optimalCover,
  prefixUnits,
  type Cover,
  type CoverItem,
} from '../recommend/cidr.ts';

function item(text: string): CoverItem {
  const p = parsePrefix(text);
  if (!p) throw new Error(`bad test prefix ${text}`);
  return { family: p.family, base: p.base, length: p.length };
}
const items = (...texts: string[]): CoverItem[] => texts.map(item);
const texts = (cover: Cover): string[] => cover.prefixes.map(formatPrefix);
const broad = { 4: 1, 6: 1 };

describe('optimalCover on hand-checked cases', () => {
  it('merges two adjacent addresses into their /31 even when two entries are allowed (fewer entries on equal cost)', () => {
    const cover = optimalCover(items('203.0.113.4', '203.0.113.5'), { maxEntries: 2 });
    expect(texts(cover)).toEqual(['203.0.113.4/31']);
    expect(cover).toMatchObject({ cost: 0, units: 2 });
  });

  it('keeps an outlier apart and covers a cluster with its tightest prefix', () => {
    const cover = optimalCover(items('203.0.113.4', '203.0.113.9', '203.0.113.200'), { maxEntries: 2 });
    expect(texts(cover)).toEqual(['203.0.113.0/28', '203.0.113.200/32']);
    expect(cover).toMatchObject({ cost: 14, units: 17 });
  });

  it('refuses two far addresses with one entry under the /16 guardrail, naming the budget needed', () => {
    let error: unknown;
    try {
      optimalCover(items('198.51.100.7', '203.0.113.9'), { maxEntries: 1 });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InfeasibleCoverError);
    const infeasible = error as InfeasibleCoverError;
    expect(infeasible.name).toBe('InfeasibleCoverError');
    expect(infeasible.neededEntries).toBe(2);
    expect(infeasible.maxEntries).toBe(1);
    expect(infeasible.exitCode).toBe(EXIT.USAGE);
    expect(infeasible.hint).toContain('--allow-broad');
    expect(infeasible.hint).toContain('2 entries');
  });

  it('covers the same two far addresses with their common prefix when broad entries are allowed', () => {
    const cover = optimalCover(items('198.51.100.7', '203.0.113.9'), { maxEntries: 1, minLength: broad });
    // 198 = 1100 0110, 203 = 1100 1011: they share the first four bits.
    expect(texts(cover)).toEqual(['192.0.0.0/4']);
    expect(cover.units).toBe(2 ** 28);
    expect(cover.cost).toBe(2 ** 28 - 2);
  });

  it('never proposes /0, even when the options allow length 0', () => {
    const error = (() => {
      try {
        optimalCover(items('1.0.0.1', '200.0.0.1'), { maxEntries: 1, minLength: { 4: 0, 6: 0 } });
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(InfeasibleCoverError);
    expect(texts(optimalCover(items('1.0.0.1', '200.0.0.1'), { maxEntries: 2, minLength: { 4: 0, 6: 0 } }))).toEqual(['1.0.0.1/32', '200.0.0.1/32']);
  });

  it('lets IPv4 and IPv6 share one budget, spending it where it saves the most space', () => {
    // IPv4 as one entry costs 14 unseen addresses; IPv6 as one entry costs 2 unseen /64s.
    const mixed = items('203.0.113.4', '203.0.113.9', '2001:db8:0:1::1', '2001:db8:0:2::1');
    const cover = optimalCover(mixed, { maxEntries: 3 });
    expect(texts(cover)).toEqual(['203.0.113.4/32', '203.0.113.9/32', '2001:db8::/62']);
    expect(cover).toMatchObject({ cost: 2, units: 6 });
    expect(coverCurve(mixed, { maxEntries: 4 }).costs).toEqual([Infinity, Infinity, 16, 2, 0]);
  });

  it('counts IPv6 privacy addresses rotating inside one /64 as one entry and one unit', () => {
    const privacy = items('2001:db8:5:6:1111:2222:3333:4444', '2001:db8:5:6:a:b:c:d', '2001:db8:5:6::1', '2001:db8:5:6:ffff::');
    const cover = optimalCover(privacy, { maxEntries: 50 });
    expect(texts(cover)).toEqual(['2001:db8:5:6::/64']);
    expect(cover).toMatchObject({ cost: 0, units: 1 });
  });

  it('covers a block item whole and drops items inside it', () => {
    const withBlock = items('198.51.100.0/24', '198.51.100.77', '198.51.101.5');
    expect(texts(optimalCover(withBlock, { maxEntries: 2 }))).toEqual(['198.51.100.0/24', '198.51.101.5/32']);
    const one = optimalCover(withBlock, { maxEntries: 1 });
    expect(texts(one)).toEqual(['198.51.100.0/23']);
    expect(one).toMatchObject({ units: 512, cost: 512 - 257 });
  });

  it('covers a block broader than the guardrail with its guardrail-sized parts, or says how many it needs', () => {
    const pool = items('10.32.0.0/14');
    expect(texts(optimalCover(pool, { maxEntries: 4 }))).toEqual(['10.32.0.0/16', '10.33.0.0/16', '10.34.0.0/16', '10.35.0.0/16']);
    expect(() => optimalCover(pool, { maxEntries: 3 })).toThrow(InfeasibleCoverError);
    expect(texts(optimalCover(pool, { maxEntries: 1, minLength: broad }))).toEqual(['10.32.0.0/14']);
    expect(texts(optimalCover(items('2001:db8::/30'), { maxEntries: 4 }))).toEqual(['2001:db8::/32', '2001:db9::/32', '2001:dba::/32', '2001:dbb::/32']);
    expect(texts(optimalCover(items('2001:db8::/63'), { maxEntries: 2, minLength: { 4: 16, 6: 64 } }))).toEqual(['2001:db8::/64', '2001:db8:0:1::/64']);
  });

  it('groups items finer than maxLength and still reports the unseen space inside the group', () => {
    const cover = optimalCover(items('203.0.113.4', '203.0.113.9'), { maxEntries: 5, maxLength: { 4: 24, 6: 64 } });
    expect(texts(cover)).toEqual(['203.0.113.0/24']);
    expect(cover).toMatchObject({ units: 256, cost: 254 });
  });

  it('returns an empty cover for no items, at no cost', () => {
    expect(optimalCover([], { maxEntries: 3 })).toEqual({ prefixes: [], cost: 0, units: 0 });
    expect(coverCurve([], { maxEntries: 2 }).costs).toEqual([0, 0, 0]);
  });

  it('sorts entries IPv4 first, then by address, whatever the input order', () => {
    const cover = optimalCover(items('2001:db8::1', '203.0.113.200', '2001:db8:ffff::1', '198.51.100.1'), { maxEntries: 4 });
    expect(texts(cover)).toEqual(['198.51.100.1/32', '203.0.113.200/32', '2001:db8::/64', '2001:db8:ffff::/64']);
  });
});

describe('coverCurve', () => {
  const three = items('203.0.113.4', '203.0.113.9', '203.0.113.200');

  it('gives the optimal cost for every budget, Infinity below what the guardrail allows', () => {
    const curve = coverCurve(three, { maxEntries: 4 });
    expect(curve.costs).toEqual([Infinity, 253, 14, 0, 0]);
    expect(curve.minEntries).toBe(1);
    expect(curve.seenUnits).toBe(3);
    expect(texts(curve.coverAt(1))).toEqual(['203.0.113.0/24']);
    expect(curve.coverAt(4).prefixes).toHaveLength(3);
  });

  it('throws InfeasibleCoverError for a budget below the minimum, and UsageError outside 0..K', () => {
    const curve = coverCurve(items('198.51.100.7', '203.0.113.9'), { maxEntries: 3 });
    expect(curve.costs).toEqual([Infinity, Infinity, 0, 0]);
    expect(curve.minEntries).toBe(2);
    expect(() => curve.coverAt(1)).toThrow(InfeasibleCoverError);
    expect(() => curve.coverAt(4)).toThrow(UsageError);
    expect(() => curve.coverAt(1.5)).toThrow(UsageError);
  });
});

describe('greedyCover, the baseline', () => {
  it('produces a valid cover within the budget', () => {
    const cover = greedyCover(items('203.0.113.4', '203.0.113.9', '203.0.113.200', '2001:db8::1'), { maxEntries: 2 });
    expect(texts(cover)).toEqual(['203.0.113.0/24', '2001:db8::/64']);
    expect(cover).toMatchObject({ cost: 253, units: 257 });
  });

  it('can end worse than the exact cover: cheap early merges leave no budget for the one that matters', () => {
    // Greedy merges .9+.11 (adds 2), .19+.21 (adds 6), .26+.28 (adds 6): 14 unseen. Exact keeps .9 and .11
    // apart and spends one entry on .16/28 (12 unseen).
    const input = items('203.0.113.9', '203.0.113.11', '203.0.113.19', '203.0.113.21', '203.0.113.26', '203.0.113.28');
    const greedy = greedyCover(input, { maxEntries: 3 });
    expect(texts(greedy)).toEqual(['203.0.113.8/30', '203.0.113.16/29', '203.0.113.24/29']);
    expect(greedy.cost).toBe(14);
    const exact = optimalCover(input, { maxEntries: 3 });
    expect(texts(exact)).toEqual(['203.0.113.9/32', '203.0.113.11/32', '203.0.113.16/28']);
    expect(exact.cost).toBe(12);
  });

  it('raises the same InfeasibleCoverError when the guardrail makes the budget impossible', () => {
    expect(() => greedyCover(items('198.51.100.7', '203.0.113.9'), { maxEntries: 1 })).toThrow(InfeasibleCoverError);
  });
});

describe('options and input checks', () => {
  it('rejects a budget below 1 or not whole, and contradictory lengths', () => {
    expect(() => optimalCover([], { maxEntries: 0 })).toThrow(UsageError);
    expect(() => optimalCover([], { maxEntries: 2.5 })).toThrow(UsageError);
    expect(() => optimalCover([], { maxEntries: 5, minLength: { 4: 28, 6: 32 }, maxLength: { 4: 24, 6: 64 } })).toThrow(UsageError);
    expect(() => optimalCover([], { maxEntries: 5, maxLength: { 4: 32, 6: 96 } })).toThrow(UsageError);
  });

  it('rejects an item that is not a prefix', () => {
    expect(() => optimalCover([{ family: 4, base: 1n << 32n, length: 32 }], { maxEntries: 1 })).toThrow(InvalidInputError);
    expect(() => optimalCover([{ family: 4, base: 1n, length: 33 }], { maxEntries: 1 })).toThrow(InvalidInputError);
    expect(() => optimalCover([{ family: 5 as 4, base: 1n, length: 8 }], { maxEntries: 1 })).toThrow(InvalidInputError);
  });

  it('masks host bits of a block rather than trusting them', () => {
    expect(texts(optimalCover([{ family: 4, base: item('203.0.113.77').base, length: 24 }], { maxEntries: 1 }))).toEqual(['203.0.113.0/24']);
  });
});

describe('units', () => {
  it('counts IPv4 in addresses and IPv6 in /64 subnets', () => {
    expect(prefixUnits(item('203.0.113.0/24'))).toBe(256);
    expect(prefixUnits(item('2001:db8::/48'))).toBe(65536);
    expect(prefixUnits(item('2001:db8::/64'))).toBe(1);
    expect(prefixUnits(item('2001:db8::1'))).toBe(1);
  });

  it('counts each unit once: duplicates, nested items and addresses sharing a /64 add nothing', () => {
    expect(itemsToUnits(items('203.0.113.0/24', '203.0.113.9', '203.0.113.9', '198.51.100.1', '2001:db8::1', '2001:db8::2', '2001:db8:0:1::/64'))).toBe(256 + 1 + 1 + 1);
  });

  it('normalises items the way the cover sees them', () => {
    const normal = normalizeItems(items('2001:db8::5', '203.0.113.9', '203.0.113.0/24', '2001:db8::7'));
    expect(normal.map((p) => formatPrefix(p))).toEqual(['203.0.113.0/24', '2001:db8::/64']);
  });

  it('keeps an enclosing /16 and drops its nested /17s and addresses when thousands of items take the radix-sorted path', () => {
    // The /17s come before the /16 in the input: only the sort (by base, then shorter first) puts the /16 ahead.
    const addresses = Array.from({ length: 3000 }, (_, i) => `198.51.${(i * 7) % 256}.${i % 256}`);
    const input = items('198.51.128.0/17', '198.51.0.0/17', ...addresses, '198.51.0.0/16', '203.0.113.0/25', '203.0.113.128/25');
    expect(normalizeItems(input).map((p) => formatPrefix(p))).toEqual(['198.51.0.0/16', '203.0.113.0/25', '203.0.113.128/25']);
    expect(itemsToUnits(input)).toBe(65536 + 256);
  });
});
