// Which of a key's public sources look like a leaked key in use, and which look like a dynamic pool.
// Pure heuristics over a KeyProfile (and, for pools, the other keys of the account): the recommender uses
// them to keep leaks out of proposals and to propose pool blocks deliberately; `findings` reports them.
import { FAMILY_BITS, formatPrefix, maskValue, parseAddress, type Prefix } from '../model/address.ts';
import { GUARDRAIL_MIN_PREFIX } from '../model/acl-rules.ts';
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
  /** Quiet leak: a new, far source active on at least this many days… */
  quietRunMinDays: 2,
  /** …that fell silent at least this many days before the key's last call. */
  stopGapDays: 2,
  /** Pool member: an address seen on at most this many days (it rotates). */
  poolMemberMaxDays: 2,
  /** A pool needs at least this many rotating addresses in one block (this key's plus the account's)… */
  poolMinMembers: 6,
  /** …of which at least this many are this key's own. */
  poolMinKeyMembers: 2,
  /** A pool is looked for inside blocks of this length: the guardrail, so a pool block is never broader. */
  poolGroupPrefix: GUARDRAIL_MIN_PREFIX as Record<IpFamily, number>,
  /**
   * With fewer rotating addresses than this, the smallest block enclosing them likely underestimates the pool
   * (n uniform samples all fall in one half of a block with probability 2^(1-n)): widen it by one bit.
   */
  poolConfidentMembers: 10,
} as const;

export type LeakSignal =
  | 'new-source'
  | 'far-from-key-networks'
  | 'high-error-share'
  | 'sensitive-calls'
  | 'run-then-stopped';

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
  /** The block the evidence supports, never broader than the guardrail. */
  cidr: string;
  family: IpFamily;
  base: bigint;
  length: number;
  /** This key's addresses inside the block, sorted. */
  keyAddresses: string[];
  /** Distinct rotating addresses inside the block over the key and the account's other keys. */
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

function ms(iso: string): number {
  return Date.parse(iso);
}

function groupKey(family: IpFamily, value: bigint, length: number): string {
  return `${family}|${maskValue(value, family, length).toString(16)}`;
}

/** The unit a public address counts in: IPv4 itself, IPv6 its /64 (privacy addresses rotate inside it). */
function unitValue(family: IpFamily, value: bigint): bigint {
  return family === 6 ? maskValue(value, 6, 64) : value;
}

interface RotatingAddress {
  family: IpFamily;
  value: bigint;
  key: string;
}

function rotatingAddresses(profile: KeyProfile): RotatingAddress[] {
  const out: RotatingAddress[] = [];
  for (const s of profile.publicSources) {
    if (s.days > SUSPICION_THRESHOLDS.poolMemberMaxDays) continue;
    const a = parseAddress(s.ip);
    if (a) out.push({ family: a.family, value: unitValue(a.family, a.value), key: profile.accessKeyId });
  }
  return out;
}

/** The smallest prefix holding every value (all of one family). */
function enclosingPrefix(family: IpFamily, values: bigint[]): Prefix {
  const bits = FAMILY_BITS[family];
  let min = values[0]!;
  let max = values[0]!;
  for (const v of values) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  let length = bits;
  while (length > 0 && maskValue(min, family, length) !== maskValue(max, family, length)) length--;
  return { family, base: maskValue(min, family, length), length };
}

/**
 * Dynamic pools: inside each guardrail-sized block, many rotating addresses (each seen on a day or two)
 * from this key and the account's other keys. The pool block is the smallest block enclosing that evidence,
 * widened by one bit when the evidence is thin, never broader than the guardrail.
 */
export function guessPools(profile: KeyProfile, accountProfiles: KeyProfile[] = []): PoolGuess[] {
  const T = SUSPICION_THRESHOLDS;
  const own = rotatingAddresses(profile);
  if (own.length < T.poolMinKeyMembers) return [];
  const ownGroups = new Map<string, RotatingAddress[]>();
  for (const a of own) {
    const g = groupKey(a.family, a.value, T.poolGroupPrefix[a.family]);
    ownGroups.set(g, [...(ownGroups.get(g) ?? []), a]);
  }
  const candidateGroups = [...ownGroups].filter(([, members]) => new Set(members.map((m) => m.value)).size >= T.poolMinKeyMembers);
  if (candidateGroups.length === 0) return [];

  const evidence = new Map<string, RotatingAddress[]>(candidateGroups.map(([g, m]) => [g, [...m]]));
  for (const other of accountProfiles) {
    if (other.accessKeyId === profile.accessKeyId) continue;
    if (profile.accountId && other.accountId && other.accountId !== profile.accountId) continue;
    for (const a of rotatingAddresses(other)) {
      const list = evidence.get(groupKey(a.family, a.value, T.poolGroupPrefix[a.family]));
      if (list) list.push(a);
    }
  }

  const pools: PoolGuess[] = [];
  for (const [, members] of evidence) {
    const distinct = [...new Set(members.map((m) => m.value))];
    if (distinct.length < T.poolMinMembers) continue;
    const family = members[0]!.family;
    const enclosing = enclosingPrefix(family, distinct);
    const floor = T.poolGroupPrefix[family];
    const length = distinct.length < T.poolConfidentMembers ? Math.max(floor, enclosing.length - 1) : Math.max(floor, enclosing.length);
    const block: Prefix = { family, base: maskValue(enclosing.base, family, length), length };
    const inBlock = (s: SourceUsage): boolean => {
      const a = parseAddress(s.ip);
      return Boolean(a && a.family === family && maskValue(a.value, family, length) === block.base);
    };
    const ownSources = profile.publicSources.filter(inBlock);
    const keys = [...new Set(members.map((m) => m.key))].sort();
    const cidr = formatPrefix(block);
    pools.push({
      cidr,
      family,
      base: block.base,
      length,
      keyAddresses: ownSources.map((s) => s.ip).sort(compareAddressText),
      evidenceAddresses: distinct.length,
      keys,
      calls: ownSources.reduce((n, s) => n + s.calls, 0),
      reason:
        `${distinct.length} rotating addresses (each seen on ≤ ${T.poolMemberMaxDays} days)` +
        (keys.length > 1 ? ` from ${keys.length} keys` : '') +
        ` spread over ${cidr}: looks like a dynamic egress pool (e.g. Function Compute, hosted CI); the block is proposed, not the fragments`,
    });
  }
  return pools.sort((a, b) => compareCidr(a, b));
}

function compareCidr(a: { family: IpFamily; base: bigint; length: number }, b: { family: IpFamily; base: bigint; length: number }): number {
  return a.family - b.family || (a.base < b.base ? -1 : a.base > b.base ? 1 : 0) || a.length - b.length;
}

/** Sorts address text numerically (IPv4 before IPv6); unparseable text last, by text. */
export function compareAddressText(a: string, b: string): number {
  const x = parseAddress(a);
  const y = parseAddress(b);
  if (x && y) return x.family - y.family || (x.value < y.value ? -1 : x.value > y.value ? 1 : 0);
  if (x) return -1;
  if (y) return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Leak-looking sources: new sources (first seen well after the key's first call) far from the key's
 * established networks that either fail a lot or call sensitive APIs (loud), or ran for days and then
 * stopped while the key went on being used (quiet). Sources inside a pool are judged only on loudness.
 */
export function findLeaks(profile: KeyProfile, pools: PoolGuess[], window?: TimeWindow): SuspiciousSource[] {
  const T = SUSPICION_THRESHOLDS;
  const keyStart = ms(profile.firstSeen);
  const keyEnd = Math.min(ms(profile.lastSeen), window ? ms(window.to) : Infinity);
  const isNew = (s: SourceUsage): boolean => ms(s.firstSeen) >= keyStart + T.newAfterDays * DAY_MS;
  const established = profile.publicSources.filter((s) => !isNew(s));
  const nearGroups = new Set<string>();
  for (const s of established) {
    const a = parseAddress(s.ip);
    if (a) nearGroups.add(groupKey(a.family, a.value, T.nearPrefix[a.family]));
  }
  const establishedSensitive = established.some((s) => s.sensitiveCalls > 0);
  const inPool = (family: IpFamily, value: bigint): boolean =>
    pools.some((p) => p.family === family && maskValue(value, family, p.length) === p.base);

  const leaks: SuspiciousSource[] = [];
  for (const s of profile.publicSources) {
    if (!isNew(s)) continue;
    const a = parseAddress(s.ip);
    if (!a) continue;
    const pooled = inPool(a.family, a.value);
    const far = !pooled && !nearGroups.has(groupKey(a.family, a.value, T.nearPrefix[a.family]));
    const errorShare = s.calls > 0 ? s.errorCalls / s.calls : 0;
    const highError = s.errorCalls >= T.leakMinErrorCalls && errorShare >= T.leakErrorShare;
    const sensitive = s.sensitiveCalls > 0 && !establishedSensitive;
    const stopped = s.days >= T.quietRunMinDays && ms(s.lastSeen) <= keyEnd - T.stopGapDays * DAY_MS;
    const loud = (far && (highError || sensitive)) || (highError && sensitive);
    const quiet = far && stopped;
    if (!loud && !quiet) continue;
    const signals: LeakSignal[] = ['new-source'];
    if (far) signals.push('far-from-key-networks');
    if (highError) signals.push('high-error-share');
    if (sensitive) signals.push('sensitive-calls');
    if (stopped) signals.push('run-then-stopped');
    const parts = [`new since ${s.firstSeen.slice(0, 10)}`];
    if (far) parts.push('far from the key\'s other networks');
    if (highError) parts.push(`${Math.round(errorShare * 100)}% errors`);
    if (sensitive) parts.push(`${s.sensitiveCalls} sensitive call${s.sensitiveCalls === 1 ? '' : 's'}`);
    if (stopped) parts.push(`active ${s.days} days, silent since ${s.lastSeen.slice(0, 10)}`);
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
  return leaks.sort((x, y) => compareAddressText(x.ip, y.ip));
}

/** Both heuristics for one key. Pools first: an address inside a pool is not "far" merely for being new. */
export function classifySources(profile: KeyProfile, context?: SuspicionContext): { leaks: SuspiciousSource[]; pools: PoolGuess[] } {
  const pools = guessPools(profile, context?.accountProfiles ?? []);
  return { leaks: findLeaks(profile, pools, context?.window), pools };
}
