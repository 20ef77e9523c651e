// Strict address and prefix parsing, and the integer arithmetic every floor shares.
// Only four-part decimal IPv4 and standard IPv6 text are accepted: lenient forms (octal, hex, short)
// are how IP filters get bypassed (CVE-2021-28918/29418).
import ipaddr from 'ipaddr.js';
import type { IpFamily } from './types.ts';

export interface Address {
  family: IpFamily;
  /** The address as an unsigned integer (32 or 128 bits). */
  value: bigint;
  /** Canonical text: dotted quad, or compressed lowercase IPv6. IPv4-mapped IPv6 becomes IPv4. */
  text: string;
}

export interface Prefix {
  family: IpFamily;
  /** First address of the block (host bits zero). */
  base: bigint;
  length: number;
}

export const FAMILY_BITS: Record<IpFamily, number> = { 4: 32, 6: 128 };

/** Parses an address strictly, or returns null. Zone IDs (`fe80::1%eth0`) are not addresses here. */
export function parseAddress(text: string): Address | null {
  if (typeof text !== 'string') return null;
  const s = text.trim();
  if (s.length === 0 || s.length > 45) return null;
  if (s.includes(':')) {
    if (s.includes('%') || !ipaddr.IPv6.isValid(s)) return null;
    let v6: ipaddr.IPv6;
    try {
      v6 = ipaddr.IPv6.parse(s);
    } catch {
      return null;
    }
    if (v6.isIPv4MappedAddress()) return v4FromBytes(v6.toIPv4Address().toByteArray());
    let value = 0n;
    for (const part of v6.parts) value = (value << 16n) | BigInt(part);
    return { family: 6, value, text: v6.toRFC5952String() };
  }
  if (!ipaddr.IPv4.isValidFourPartDecimal(s)) return null;
  // isValidFourPartDecimal accepts leading zeros ("010.1.1.1"), which some parsers read as octal: refuse them.
  if (s.split('.').some((octet) => octet.length > 1 && octet.startsWith('0'))) return null;
  return v4FromBytes(ipaddr.IPv4.parse(s).toByteArray());
}

function v4FromBytes(bytes: number[]): Address {
  const value = BigInt(((bytes[0]! << 24) >>> 0) + (bytes[1]! << 16) + (bytes[2]! << 8) + bytes[3]!);
  return { family: 4, value, text: bytes.join('.') };
}

export function formatAddress(family: IpFamily, value: bigint): string {
  if (family === 4) {
    return [24n, 16n, 8n, 0n].map((shift) => Number((value >> shift) & 0xffn)).join('.');
  }
  const parts: number[] = [];
  for (let i = 7; i >= 0; i--) parts.push(Number((value >> BigInt(i * 16)) & 0xffffn));
  return new ipaddr.IPv6(parts).toRFC5952String();
}

export interface ParsedPrefix extends Prefix {
  /** Canonical text (`base/length`; a bare address becomes /32 or /128). */
  text: string;
  /** The input had host bits set (e.g. `10.0.0.5/24`); `base` is masked anyway. */
  hadHostBits: boolean;
}

/** Parses `addr` or `addr/len` strictly, or returns null. */
export function parsePrefix(text: string): ParsedPrefix | null {
  if (typeof text !== 'string') return null;
  const s = text.trim();
  const slash = s.indexOf('/');
  const addrText = slash < 0 ? s : s.slice(0, slash);
  const lenText = slash < 0 ? null : s.slice(slash + 1);
  // A mapped IPv6 prefix would need its length translated; refuse it rather than guess.
  if (lenText !== null && /^::ffff:/i.test(addrText)) return null;
  const addr = parseAddress(addrText);
  if (!addr) return null;
  const bits = FAMILY_BITS[addr.family];
  let length = bits;
  if (lenText !== null) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(lenText)) return null;
    length = Number(lenText);
    if (length > bits) return null;
  }
  const base = maskValue(addr.value, addr.family, length);
  return {
    family: addr.family,
    base,
    length,
    text: formatPrefix({ family: addr.family, base, length }),
    hadHostBits: base !== addr.value,
  };
}

// Clearing the host bits with one AND against a precomputed mask (all ones above them, so it equals shifting
// right then left for any bigint) allocates one bigint instead of three: this runs for every source, often twice.
const CLEAR_HOST_BITS: Record<IpFamily, bigint[]> = {
  4: Array.from({ length: 33 }, (_, length) => ~((1n << BigInt(32 - length)) - 1n)),
  6: Array.from({ length: 129 }, (_, length) => ~((1n << BigInt(128 - length)) - 1n)),
};

export function maskValue(value: bigint, family: IpFamily, length: number): bigint {
  const mask = CLEAR_HOST_BITS[family]?.[length];
  if (mask !== undefined) return value & mask;
  const hostBits = BigInt(FAMILY_BITS[family] - length);
  return (value >> hostBits) << hostBits;
}

export function formatPrefix(prefix: Prefix): string {
  return `${formatAddress(prefix.family, prefix.base)}/${prefix.length}`;
}

/** How many addresses the prefix spans. */
export function prefixSize(prefix: Pick<Prefix, 'family' | 'length'>): bigint {
  return 1n << BigInt(FAMILY_BITS[prefix.family] - prefix.length);
}

/** Last address of the prefix. */
export function prefixEnd(prefix: Prefix): bigint {
  return prefix.base + prefixSize(prefix) - 1n;
}

export function prefixContains(prefix: Prefix, addr: Pick<Address, 'family' | 'value'>): boolean {
  return prefix.family === addr.family && addr.value >= prefix.base && addr.value <= prefixEnd(prefix);
}

/** Whether `outer` contains all of `inner`. */
export function prefixCovers(outer: Prefix, inner: Prefix): boolean {
  return outer.family === inner.family && outer.length <= inner.length && maskValue(inner.base, inner.family, outer.length) === outer.base;
}

const PRIVATE_V4 = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10'].map((p) => parsePrefix(p)!);
const NON_PUBLIC_V4 = [...PRIVATE_V4, ...['0.0.0.0/8', '127.0.0.0/8', '169.254.0.0/16', '224.0.0.0/4', '240.0.0.0/4'].map((p) => parsePrefix(p)!)];
const NON_PUBLIC_V6 = ['::/128', '::1/128', 'fc00::/7', 'fe80::/10', 'ff00::/8'].map((p) => parsePrefix(p)!);

/**
 * Whether an address can be a caller's public egress address. Documentation ranges (TEST-NET, 2001:db8::/32)
 * count as public: samples and tests use them. RFC 1918, CGNAT (100.64/10, where the vendor's own
 * services live), loopback, link-local, multicast and unspecified do not.
 */
export function isPublicAddress(addr: Pick<Address, 'family' | 'value'>): boolean {
  const ranges = addr.family === 4 ? NON_PUBLIC_V4 : NON_PUBLIC_V6;
  return !ranges.some((r) => prefixContains(r, addr));
}

/** Private IPv4 space a VPC can use (RFC 1918 and 100.64/10). VPC IPv6 blocks are global unicast. */
export function isPrivateV4(addr: Pick<Address, 'family' | 'value'>): boolean {
  return addr.family === 4 && PRIVATE_V4.some((r) => prefixContains(r, addr));
}
