// Reading the delimited text analyze's queries build in DuckDB (one text per key: \x1f between fields, \x1e
// between rows), in place: offsets into the text instead of a list of strings per row. Shared by the profile and
// replay readers.
import type { KeyKind, SourceKind } from '../model/types.ts';

const FIELD = 0x1f;
const RECORD = 0x1e;

const fieldStarts = new Int32Array(64);

/**
 * Walks rows of `fields` fields (\x1f between fields, \x1e between rows) in place: `visit` gets the offset
 * where each field starts (field i ends at starts[i + 1] - 1, the last one at `end`). Returns the rows read,
 * or -1 at the first row with another number of fields.
 */
export function forEachWireRow(wire: string, fields: number, visit: (starts: Int32Array, end: number) => void): number {
  let rows = 0;
  const length = wire.length;
  const at = fieldStarts;
  for (let start = 0; start <= length; ) {
    let field = 0;
    at[0] = start;
    let i = start;
    for (; i < length; i++) {
      const c = wire.charCodeAt(i);
      if (c === FIELD) {
        if (++field >= fields) return -1;
        at[field] = i + 1;
      } else if (c === RECORD) break;
    }
    if (field !== fields - 1) return -1;
    visit(at, i);
    rows++;
    start = i + 1;
  }
  return rows;
}

const KEY_KINDS = ['permanent', 'sts', 'none'] as const satisfies readonly KeyKind[];
const SOURCE_KINDS = ['public', 'vpc', 'internal', 'service', 'invalid'] as const satisfies readonly SourceKind[];

/** The kind literal equal to wire[from, to), or that text (an unknown kind stays what the store holds). */
export function literalAt<T extends string>(literals: readonly T[], wire: string, from: number, to: number): T {
  for (const k of literals) if (k.length === to - from && wire.startsWith(k, from)) return k;
  return wire.slice(from, to) as T;
}

export const keyKindAt = (wire: string, from: number, to: number): KeyKind => literalAt(KEY_KINDS, wire, from, to);
export const sourceKindAt = (wire: string, from: number, to: number): SourceKind => literalAt(SOURCE_KINDS, wire, from, to);

/** Number(wire.slice(from, to)), reading plain digits in place. */
export function decimalIn(wire: string, from: number, to: number): number {
  if (to <= from || to - from > 15) return Number(wire.slice(from, to));
  let value = 0;
  for (let i = from; i < to; i++) {
    const d = wire.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return Number(wire.slice(from, to));
    value = value * 10 + d;
  }
  return value;
}
