// Source usages as analyze builds them: to every reader (JSON, Object.keys, spread, equality) the same plain
// record as `SourceUsage` / `VpcSourceUsage`, fields in the same order, plus one private slot in which a
// reader (recommend/suspicion.ts) keeps what it parsed from the source, so it parses once. A slot present from
// construction costs a store; a property added afterwards cost a property-store reallocation and a runtime
// call per source (over a second per million sources, measured).
import type { IpFamily, SourceUsage, VpcSourceUsage } from './types.ts';

class ParsedSlot {
  #parsed: unknown = undefined;
  // firstSeen and lastSeen as whole seconds since 1970 when the builder knew them: a reader then needs no parse
  // of the text. Whole seconds of this era are small integers, and a field that starts undefined (not NaN, a
  // double) holds them without a box per record.
  #firstSecond: number | undefined = undefined;
  #lastSecond: number | undefined = undefined;

  /** firstSeen as seconds since 1970, when the record was built from them; NaN otherwise (and for plain objects). */
  static firstSecond(usage: object): number {
    return #firstSecond in usage ? usage.#firstSecond ?? NaN : NaN;
  }

  static lastSecond(usage: object): number {
    return #lastSecond in usage ? usage.#lastSecond ?? NaN : NaN;
  }

  protected setSeconds(first: number, last: number): void {
    this.#firstSecond = first;
    this.#lastSecond = last;
  }

  /** What `keepParsed` stored on `usage`, or undefined (also for a plain object, which has no slot). */
  static read(usage: object): unknown {
    return #parsed in usage ? usage.#parsed : undefined;
  }

  /** Stores `parsed` on `usage`; false when `usage` is a plain object without the slot. */
  static write(usage: object, parsed: unknown): boolean {
    if (!(#parsed in usage)) return false;
    usage.#parsed = parsed;
    return true;
  }
}

export const readParsed = (usage: object): unknown => ParsedSlot.read(usage);
export const keepParsed = (usage: object, parsed: unknown): boolean => ParsedSlot.write(usage, parsed);
/** A record's firstSeen / lastSeen as seconds since 1970 (NaN when not known: parse the text). */
export const firstSecondOf = (usage: object): number => ParsedSlot.firstSecond(usage);
export const lastSecondOf = (usage: object): number => ParsedSlot.lastSecond(usage);

/** The fields every source record carries, in the order JSON shows them (after a VPC record's `vpcId`). */
type UsageFields = [ip: string, family: IpFamily, calls: number, days: number, firstSeen: string, lastSeen: string, errorCalls: number, deniedCalls: number, sensitiveCalls: number, services: string[], userAgents: string[], firstSecond?: number, lastSecond?: number];

// The fields come from the interfaces (declaration merging); the constructors assign them in the order JSON
// shows them (the order analyze/profiles.ts always wrote them in), every one during construction.
class SourceRecord extends ParsedSlot {
  protected assign(...[ip, family, calls, days, firstSeen, lastSeen, errorCalls, deniedCalls, sensitiveCalls, services, userAgents, firstSecond = NaN, lastSecond = NaN]: UsageFields): void {
    if (!Number.isNaN(firstSecond)) this.setSeconds(firstSecond, lastSecond);
    const self = this as unknown as SourceUsage;
    self.ip = ip;
    self.family = family;
    self.calls = calls;
    self.days = days;
    self.firstSeen = firstSeen;
    self.lastSeen = lastSeen;
    self.errorCalls = errorCalls;
    self.deniedCalls = deniedCalls;
    self.sensitiveCalls = sensitiveCalls;
    self.services = services;
    self.userAgents = userAgents;
  }
}

export interface PublicSourceRecord extends SourceUsage {}
export class PublicSourceRecord extends SourceRecord implements SourceUsage {
  constructor(...fields: UsageFields) {
    super();
    this.assign(...fields);
  }
}

export interface VpcSourceRecord extends VpcSourceUsage {}
export class VpcSourceRecord extends SourceRecord implements VpcSourceUsage {
  constructor(vpcId: string, ...fields: UsageFields) {
    super();
    this.vpcId = vpcId;
    this.assign(...fields);
  }
}
