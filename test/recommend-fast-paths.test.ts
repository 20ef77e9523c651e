// The fast paths recommend takes over every source give the answers of the general code they stand in for.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PublicSourceRecord, VpcSourceRecord, firstSecondOf, keepParsed, lastSecondOf, readParsed } from '../model/source-usage.ts';
import { isoFromEpochSeconds, isoSeconds } from '../model/window.ts';
import { addressSortKey, factsOf, isoMs, sortByAddress, strictIsoMs } from '../recommend/suspicion.ts';

const pad = (n: number, width: number): string => String(n).padStart(width, '0');

describe('isoMs', () => {
  it('equals Date.parse for second-resolution UTC text, in range or not (day overflow, 24:00, leap seconds, month 13)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 9999 }),
        fc.integer({ min: 0, max: 13 }),
        fc.integer({ min: 0, max: 32 }),
        fc.integer({ min: 0, max: 25 }),
        fc.integer({ min: 0, max: 61 }),
        fc.integer({ min: 0, max: 61 }),
        (y, mo, d, h, mi, s) => {
          const text = `${pad(y, 4)}-${pad(mo, 2)}-${pad(d, 2)}T${pad(h, 2)}:${pad(mi, 2)}:${pad(s, 2)}Z`;
          expect(Object.is(isoMs(text), Date.parse(text))).toBe(true);
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('equals Date.parse for other text (fractions, offsets, garbage)', () => {
    for (const text of ['2026-11-01T10:00:00.500Z', '2026-11-01T10:00:00+08:00', '2026-11-01', 'x026-11-01T10:00:00Z', '2026-11-01T10:0a:00Z', '']) {
      expect(Object.is(isoMs(text), Date.parse(text))).toBe(true);
    }
  });
});

describe('strictIsoMs', () => {
  const strictText = fc
    .tuple(fc.integer({ min: 0, max: 9999 }), fc.integer({ min: 0, max: 13 }), fc.integer({ min: 0, max: 32 }), fc.integer({ min: 0, max: 25 }), fc.integer({ min: 0, max: 61 }), fc.integer({ min: 0, max: 61 }))
    .map(([y, mo, d, h, mi, s]) => `${pad(y, 4)}-${pad(mo, 2)}-${pad(d, 2)}T${pad(h, 2)}:${pad(mi, 2)}:${pad(s, 2)}Z`);

  it('is a number only for text naming a real second (then equal to Date.parse), NaN otherwise', () => {
    fc.assert(
      fc.property(strictText, (text) => {
        const real = Date.parse(text);
        const roundTrips = !Number.isNaN(real) && new Date(real).toISOString().replace('.000Z', 'Z') === text;
        expect(Object.is(strictIsoMs(text), roundTrips ? real : NaN)).toBe(true);
      }),
      { numRuns: 3000 },
    );
    for (const other of ['2026-11-01T10:00:00.500Z', '2026-11-01T10:00:00+08:00', '2026-11-01', ' 2026-11-01T10:00:00Z', '']) expect(strictIsoMs(other)).toBeNaN();
  });

  it('orders two strict texts as their text order does', () => {
    fc.assert(
      fc.property(strictText, strictText, (a, b) => {
        const ma = strictIsoMs(a);
        const mb = strictIsoMs(b);
        fc.pre(!Number.isNaN(ma) && !Number.isNaN(mb));
        expect(Math.sign(ma - mb)).toBe(a < b ? -1 : a > b ? 1 : 0);
      }),
      { numRuns: 3000 },
    );
  });
});

describe('sortByAddress', () => {
  const address = fc.oneof(
    fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((o) => o.join('.')),
    fc.constantFrom('203.0.113.7', '010.1.1.1', '2001:db8::1', '::ffff:1.2.3.4', 'not-an-address', '1.2.3.04'),
  );

  it('orders like the address sort key, ties kept in input order, whether the list is canonical IPv4 or not', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(address, fc.nat()), { maxLength: 40 }), (items) => {
        const byKey = items
          .map((item, i) => ({ item, i, key: addressSortKey(item[0]) }))
          .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.i - b.i))
          .map((x) => x.item);
        expect(sortByAddress(items, (item) => item[0])).toEqual(byKey);
      }),
      { numRuns: 500 },
    );
  });

  it('returns a new list even when the input is already in order', () => {
    const items = ['1.1.1.1', '2.2.2.2'];
    const sorted = sortByAddress(items, (ip) => ip);
    expect(sorted).toEqual(items);
    expect(sorted).not.toBe(items);
  });
});

describe('source usage records', () => {
  const plain = { ip: '203.0.113.7', family: 4 as const, calls: 3, days: 2, firstSeen: '2026-11-01T00:00:00Z', lastSeen: '2026-11-02T00:00:00Z', errorCalls: 1, deniedCalls: 0, sensitiveCalls: 0, services: ['Ecs'], userAgents: ['sdk'] };

  it('look like the plain record to JSON, Object.keys and deep equality, in the same field order', () => {
    const record = new PublicSourceRecord('203.0.113.7', 4, 3, 2, '2026-11-01T00:00:00Z', '2026-11-02T00:00:00Z', 1, 0, 0, ['Ecs'], ['sdk']);
    factsOf(record);
    expect(JSON.stringify(record)).toBe(JSON.stringify(plain));
    expect(Object.keys(record)).toEqual(Object.keys(plain));
    expect(record).toEqual(plain);
    expect({ ...record }).toEqual(plain);
    const vpc = new VpcSourceRecord('vpc-1', '10.0.0.1', 4, 3, 2, '2026-11-01T00:00:00Z', '2026-11-02T00:00:00Z', 1, 0, 0, [], []);
    expect(Object.keys(vpc)[0]).toBe('vpcId');
  });

  it('keep what a reader parsed; a plain object has no slot and keeps nothing', () => {
    const record = new PublicSourceRecord('203.0.113.7', 4, 3, 2, '2026-11-01T00:00:00Z', '2026-11-02T00:00:00Z', 1, 0, 0, [], []);
    expect(readParsed(record)).toBeUndefined();
    expect(keepParsed(record, 'parsed')).toBe(true);
    expect(readParsed(record)).toBe('parsed');
    expect(keepParsed({ ...plain }, 'parsed')).toBe(false);
    expect(readParsed({ ...plain })).toBeUndefined();
  });

  it('give factsOf the same facts as the plain record', () => {
    const record = new PublicSourceRecord('203.0.113.7', 4, 3, 2, '2026-11-01T00:00:00Z', '2026-11-02T00:00:00Z', 1, 0, 0, [], []);
    expect(factsOf(record)).toEqual(factsOf({ ...plain }));
    expect(factsOf(record)).toBe(factsOf(record));
  });

  it('built from seconds (as analyze builds them), look the same and give factsOf the same facts without parsing the text', () => {
    const first = Date.parse(plain.firstSeen) / 1000;
    const last = Date.parse(plain.lastSeen) / 1000;
    const record = new PublicSourceRecord('203.0.113.7', 4, 3, 2, isoFromEpochSeconds(first), isoFromEpochSeconds(last), 1, 0, 0, ['Ecs'], ['sdk'], first, last);
    expect(JSON.stringify(record)).toBe(JSON.stringify(plain));
    expect(record).toEqual(plain);
    expect(firstSecondOf(record)).toBe(first);
    expect(lastSecondOf(record)).toBe(last);
    expect(firstSecondOf({ ...plain })).toBeNaN();
    expect(factsOf(record)).toEqual(factsOf({ ...plain }));
  });
});

describe('isoFromEpochSeconds', () => {
  it('writes what isoSeconds writes for the same instant, before and after 1970, across days and leap years', () => {
    fc.assert(
      fc.property(fc.integer({ min: -2_208_988_800, max: 4_102_444_799 }), (seconds) => {
        expect(isoFromEpochSeconds(seconds)).toBe(isoSeconds(new Date(seconds * 1000)));
      }),
      { numRuns: 2000 },
    );
    for (const text of ['2024-02-29T23:59:59Z', '1969-12-31T23:59:59Z', '1970-01-01T00:00:00Z', '2026-11-23T12:00:01Z']) {
      expect(isoFromEpochSeconds(Date.parse(text) / 1000)).toBe(text);
    }
  });
});
