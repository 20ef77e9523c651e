// A source's history with one key (first/last seen, calls, days, services, errors), its neighbours (same /24,
// or /64 for IPv6, with that key), the other keys seen from it, and whether it looks new or like a pool.
import { maskValue, formatPrefix, parseAddress, type Address } from '../model/address.ts';
import { SENSITIVE_APIS } from '../model/acl-rules.ts';
import type { KeyKind, SourceKind, TimeWindow } from '../model/types.ts';
import { sqlString, type Store } from '../ingest/store.ts';
import { profilesFromRows, type SourceAggregate } from '../recommend/simulate.ts';
import { classifySources, SUSPICION_THRESHOLDS } from '../recommend/suspicion.ts';
import { loadRollupRows, mergeRollupRows, prunedBefore } from './rollup.ts';

/** Neighbours are looked for inside these blocks. */
export const NEIGHBOUR_PREFIX = { 4: 24, 6: 64 } as const;
const NEIGHBOURS_LISTED = 10;
const OTHER_KEYS_LISTED = 10;
const DAY_MS = 86_400_000;

export interface SourceRecord {
  sourceKind: SourceKind;
  ip: string;
  vpcId: string | null;
  calls: number;
  days: number;
  firstSeen: string;
  lastSeen: string;
  errorCalls: number;
  deniedCalls: number;
}

export interface SourceHistory {
  window: TimeWindow;
  key: { accessKeyId: string; seen: boolean; firstSeen: string | null; lastSeen: string | null; calls: number; sources: number };
  /** This exact source (and VPC) with this key; null when never seen. */
  source: (SourceRecord & { services: string[]; eventNames: string[]; errorCodes: string[] }) | null;
  neighbours: { prefix: string; addresses: number; calls: number; sources: SourceRecord[] };
  /** Other keys seen from this address (a shared NAT or pool), most calls first. */
  otherKeys: Array<{ accessKeyId: string; calls: number }>;
  looks: { newSource: boolean; poolLike: boolean; possibleLeak: boolean; reasons: string[] };
  /**
   * Events before this instant were pruned and the window reaches back before it: the key's counts and
   * first/last seen include the rolled-up history; a source's include its rolled-up governed calls only (the
   * rollup keeps addresses for governed calls only); services, event names and error codes are not rolled up.
   * Null when nothing in the window was pruned.
   */
  rolledUpBefore: string | null;
}

export interface HistoryQuery {
  accessKeyId: string;
  address: Address;
  vpcId: string | null;
  window: TimeWindow;
}

function inWindow(window: TimeWindow, column = 'event_time'): string {
  return `${column} >= CAST(${sqlString(window.from)} AS TIMESTAMP) AND ${column} < CAST(${sqlString(window.to)} AS TIMESTAMP)`;
}

export async function loadSourceHistory(store: Store, query: HistoryQuery): Promise<SourceHistory> {
  const { accessKeyId, address, vpcId, window } = query;
  // One scan of the key's events (each scan of the table costs about as much as the rest of explain), two
  // groupings: per source and exempt flag (the governed part feeds the leak heuristics), and per source whatever
  // the service (what is shown). Days are counted in SQL for both; the exact source's services, APIs and error
  // codes are collected in the same pass.
  const exactSource = `source_ip = ${sqlString(address.text)} AND vpc_id IS NOT DISTINCT FROM ${vpcId ? sqlString(vpcId) : 'NULL'}`;
  const keyRows = await store.query<Record<string, unknown>>(`
    SELECT any_value(key_kind) AS "keyKind", source_kind AS "sourceKind", source_ip AS ip, vpc_id AS "vpcId", exempt,
      grouping(exempt) AS "allServices", count(*) AS calls, count(DISTINCT CAST(event_time AS DATE)) AS days,
      min(event_time) AS "firstSeen", max(event_time) AS "lastSeen",
      count(error_code) AS "errorCalls", count_if(acl_denied) AS "deniedCalls",
      count_if(event_name IN (${SENSITIVE_APIS.map(sqlString).join(', ')})) AS "sensitiveCalls",
      list_sort(list(DISTINCT service_name) FILTER (WHERE ${exactSource} AND service_name IS NOT NULL)) AS services,
      list_slice(list_sort(list(DISTINCT event_name) FILTER (WHERE ${exactSource} AND event_name IS NOT NULL)), 1, 20) AS "eventNames",
      list_sort(list(DISTINCT error_code) FILTER (WHERE ${exactSource} AND error_code IS NOT NULL)) AS "errorCodes"
    FROM events
    WHERE access_key_id = ${sqlString(accessKeyId)} AND ${inWindow(window)}
    GROUP BY GROUPING SETS ((source_kind, source_ip, vpc_id, exempt), (source_kind, source_ip, vpc_id))`);
  let aggregates: SourceAggregate[] = [];
  const records: SourceRecord[] = [];
  let exactDetail: Pick<NonNullable<SourceHistory['source']>, 'services' | 'eventNames' | 'errorCodes'> = { services: [], eventNames: [], errorCodes: [] };
  for (const r of keyRows) {
    const row = {
      sourceKind: r.sourceKind as SourceKind,
      vpcId: (r.vpcId as string | null) ?? null,
      calls: Number(r.calls),
      days: Number(r.days),
      firstSeen: r.firstSeen as string,
      lastSeen: r.lastSeen as string,
      errorCalls: Number(r.errorCalls),
      deniedCalls: Number(r.deniedCalls),
    };
    if (Number(r.allServices) === 1) {
      records.push({ ...row, ip: (r.ip as string | null) ?? '' });
      if (r.ip === address.text && row.vpcId === vpcId) {
        exactDetail = { services: (r.services as string[] | null) ?? [], eventNames: (r.eventNames as string[] | null) ?? [], errorCodes: (r.errorCodes as string[] | null) ?? [] };
      }
    } else aggregates.push({ ...row, accessKeyId, keyKind: r.keyKind as KeyKind, ip: (r.ip as string | null) ?? null, exempt: r.exempt === true, sensitiveCalls: Number(r.sensitiveCalls) });
  }
  const cutoff = await prunedBefore(store);
  const rolledUpBefore = cutoff !== null && window.from < cutoff ? cutoff : null;
  if (rolledUpBefore) {
    const rolled = (await loadRollupRows(store, window)).filter((r) => r.accessKeyId === accessKeyId);
    aggregates = mergeRollupRows(aggregates, rolled);
    for (const r of rolled) addRolledUp(records, r);
  }
  const key = {
    accessKeyId,
    seen: records.length > 0,
    firstSeen: records.length ? records.reduce((m, r) => (r.firstSeen < m ? r.firstSeen : m), records[0]!.firstSeen) : null,
    lastSeen: records.length ? records.reduce((m, r) => (r.lastSeen > m ? r.lastSeen : m), records[0]!.lastSeen) : null,
    calls: records.reduce((s, r) => s + r.calls, 0),
    sources: records.length,
  };

  const exact = records.find((r) => r.ip === address.text && r.vpcId === vpcId) ?? null;
  const source: SourceHistory['source'] = exact ? { ...exact, ...exactDetail } : null;

  const length = NEIGHBOUR_PREFIX[address.family];
  const block = maskValue(address.value, address.family, length);
  const near = records.filter((r) => {
    if (r.vpcId !== vpcId || (r.ip === address.text)) return false;
    const a = parseAddress(r.ip);
    return a !== null && a.family === address.family && maskValue(a.value, a.family, length) === block;
  });
  near.sort((a, b) => b.calls - a.calls || (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : 0));
  const neighbours = {
    prefix: formatPrefix({ family: address.family, base: block, length }),
    addresses: near.length,
    calls: near.reduce((s, r) => s + r.calls, 0),
    sources: near.slice(0, NEIGHBOURS_LISTED),
  };

  const otherKeys = (await store.query<{ accessKeyId: string; calls: number }>(`
    SELECT access_key_id AS "accessKeyId", count(*) AS calls FROM events
    WHERE source_ip = ${sqlString(address.text)} AND access_key_id IS NOT NULL AND access_key_id <> ${sqlString(accessKeyId)}
      AND key_kind = 'permanent' AND ${inWindow(window)}
    GROUP BY 1 ORDER BY calls DESC, "accessKeyId" LIMIT ${OTHER_KEYS_LISTED}`)).map((r) => ({ accessKeyId: r.accessKeyId, calls: Number(r.calls) }));

  return { window, key, source, neighbours, otherKeys, looks: judge(aggregates, query, key, exact, neighbours.addresses), rolledUpBefore };
}

/** Adds a rolled-up row to the per-source records (pruned and kept spans are disjoint: sums, widened bounds). */
function addRolledUp(records: SourceRecord[], r: SourceAggregate): void {
  const ip = r.ip ?? '';
  const m = records.find((x) => x.sourceKind === r.sourceKind && x.ip === ip && x.vpcId === r.vpcId);
  if (!m) {
    records.push({ sourceKind: r.sourceKind, ip, vpcId: r.vpcId, calls: r.calls, days: r.days, firstSeen: r.firstSeen, lastSeen: r.lastSeen, errorCalls: r.errorCalls, deniedCalls: r.deniedCalls });
    return;
  }
  m.calls += r.calls;
  m.days += r.days;
  m.errorCalls += r.errorCalls;
  m.deniedCalls += r.deniedCalls;
  if (r.firstSeen < m.firstSeen) m.firstSeen = r.firstSeen;
  if (r.lastSeen > m.lastSeen) m.lastSeen = r.lastSeen;
}

function judge(aggregates: SourceAggregate[], query: HistoryQuery, key: SourceHistory['key'], exact: SourceRecord | null, neighbourAddresses: number): SourceHistory['looks'] {
  const reasons: string[] = [];
  const newAfterMs = SUSPICION_THRESHOLDS.newAfterDays * DAY_MS;
  let newSource = false;
  if (!key.seen) reasons.push('the key made no call in the window');
  else if (!exact) {
    newSource = true;
    reasons.push('never seen with this key in the window');
  } else if (Date.parse(exact.firstSeen) >= Date.parse(key.firstSeen!) + newAfterMs) {
    newSource = true;
    reasons.push(`new: first seen ${exact.firstSeen.slice(0, 10)}, the key's first call ${key.firstSeen!.slice(0, 10)}`);
  }
  if (exact && exact.calls > 0 && exact.deniedCalls === exact.calls) reasons.push('every call from it was refused: it never worked');
  else if (exact && exact.deniedCalls > 0) reasons.push(`${exact.calls - exact.deniedCalls} calls from it were allowed before or beside ${exact.deniedCalls} refused: the ACL or the source changed`);

  let poolLike = false;
  let possibleLeak = false;
  if (key.seen && query.vpcId === null) {
    const [profile] = profilesFromRows(aggregates, { keys: [query.accessKeyId] });
    if (profile) {
      const { leaks, pools } = classifySources(profile, { window: query.window });
      const pool = pools.find((p) => p.family === query.address.family && maskValue(query.address.value, p.family, p.length) === p.base);
      if (pool) {
        poolLike = true;
        reasons.push(`inside ${pool.cidr}: ${pool.reason}`);
      }
      const leak = leaks.find((l) => l.ip === query.address.text);
      if (leak) {
        possibleLeak = true;
        reasons.push(leak.reason);
      }
    }
  }
  if (!poolLike && neighbourAddresses >= SUSPICION_THRESHOLDS.poolMinMembers) {
    poolLike = true;
    reasons.push(`${neighbourAddresses} other addresses of the same block used this key: the source may be dynamic`);
  }
  return { newSource, poolLike, possibleLeak, reasons };
}
