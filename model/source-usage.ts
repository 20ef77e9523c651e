// Source usages as analyze builds them: to every reader (JSON, Object.keys, spread, equality) the same plain
// record as `SourceUsage` / `VpcSourceUsage`, fields in the same order, plus one private slot in which a
// reader (recommend/suspicion.ts) keeps what it parsed from the source, so it parses once. A slot present from
// construction costs a store; a property added afterwards cost a property-store reallocation and a runtime
// call per source (over a second per million sources, measured).
import type { IpFamily, SourceUsage, VpcSourceUsage } from './types.ts';

class ParsedSlot {
  #parsed: unknown = undefined;

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

// The fields come from the interfaces (declaration merging); the constructors assign them in the order JSON
// shows them (the order analyze/profiles.ts always wrote them in).
export interface PublicSourceRecord extends SourceUsage {}
export class PublicSourceRecord extends ParsedSlot implements SourceUsage {
  constructor(ip: string, family: IpFamily, calls: number, days: number, firstSeen: string, lastSeen: string, errorCalls: number, deniedCalls: number, sensitiveCalls: number, services: string[], userAgents: string[]) {
    super();
    this.ip = ip;
    this.family = family;
    this.calls = calls;
    this.days = days;
    this.firstSeen = firstSeen;
    this.lastSeen = lastSeen;
    this.errorCalls = errorCalls;
    this.deniedCalls = deniedCalls;
    this.sensitiveCalls = sensitiveCalls;
    this.services = services;
    this.userAgents = userAgents;
  }
}

export interface VpcSourceRecord extends VpcSourceUsage {}
export class VpcSourceRecord extends ParsedSlot implements VpcSourceUsage {
  constructor(vpcId: string, ip: string, family: IpFamily, calls: number, days: number, firstSeen: string, lastSeen: string, errorCalls: number, deniedCalls: number, sensitiveCalls: number, services: string[], userAgents: string[]) {
    super();
    this.vpcId = vpcId;
    this.ip = ip;
    this.family = family;
    this.calls = calls;
    this.days = days;
    this.firstSeen = firstSeen;
    this.lastSeen = lastSeen;
    this.errorCalls = errorCalls;
    this.deniedCalls = deniedCalls;
    this.sensitiveCalls = sensitiveCalls;
    this.services = services;
    this.userAgents = userAgents;
  }
}
