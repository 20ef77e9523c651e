// One analysis of a store: the window, the per-key profiles, and what a person must be told about the request
// (unknown keys, keys idle in the window, keys with no governed traffic, STS traffic). Shared by `analyze`,
// `findings` and `recommend` so they agree on every one of those answers.
import { UsageError } from '../model/errors.ts';
import type { KeyProfile, TimeWindow } from '../model/types.ts';
import { sqlString, type Store } from '../ingest/store.ts';
import { loadProfiles, loadStsSummary, type StsSummary } from './profiles.ts';
import { resolveStoreWindow, storeSpan, type WindowRequest } from './window.ts';

export interface AnalysisRequest extends WindowRequest {
  /** Only these keys. Every one must exist in the store, or the request is a usage error. */
  keys?: string[];
  /** False: sources carry no user agents, for a cheaper aggregate (`recommend` never reads them). */
  userAgents?: boolean;
}

export interface AnalysisResult {
  window: TimeWindow;
  profiles: KeyProfile[];
  /** Requested keys that are in the store but made no call in the window, with their last call. */
  keysWithoutTraffic: Array<{ accessKeyId: string; lastSeen: string }>;
  /** Temporary credentials in the window: never governed, summarized (null when `keys` was given). */
  sts: StsSummary | null;
  /** Plain sentences for a person: what is missing or not ACL material. Sorted by key. */
  notes: string[];
}

/** Profiles with no public or VPC source on a governed service: nothing to put in an ACL. */
export function hasGovernedTraffic(profile: KeyProfile): boolean {
  return profile.publicSources.length > 0 || profile.vpcSources.length > 0;
}

/**
 * Resolves the window and loads the profiles. Throws StoreError (empty store) and UsageError (bad flags,
 * keys the store has never seen, an explicit window with no events at all).
 */
export async function analyzeStore(store: Store, request: AnalysisRequest, defaultLookback = '30d'): Promise<AnalysisResult> {
  const window = await resolveStoreWindow(store, request, defaultLookback);
  const keys = request.keys && request.keys.length > 0 ? [...new Set(request.keys)].sort() : undefined;
  const lastSeen = keys ? await lastCalls(store, keys) : new Map<string, string>();
  if (keys) {
    const unknown = keys.filter((k) => !lastSeen.has(k));
    if (unknown.length > 0) {
      throw new UsageError(`no event in the store uses ${unknown.length === 1 ? 'key' : 'keys'} ${unknown.join(', ')}`, {
        hint: 'check the AccessKey ID (run `keyfence analyze` without --key to list the keys seen), or ingest the events that use it',
        context: { keys: unknown },
      });
    }
  }
  const eventsInWindow = await countEvents(store, window);
  if (eventsInWindow === 0) {
    const span = await storeSpan(store);
    throw new UsageError(`no events between ${window.from} and ${window.to}`, {
      hint: span ? `the store holds ${span.events} events from ${span.oldest} to ${span.newest}: widen --since or move --from/--to` : 'ingest events first',
      context: { window },
    });
  }
  const profiles = await loadProfiles(store, { window, keys, userAgents: request.userAgents });
  const seen = new Set(profiles.map((p) => p.accessKeyId));
  const keysWithoutTraffic = (keys ?? []).filter((k) => !seen.has(k)).map((k) => ({ accessKeyId: k, lastSeen: lastSeen.get(k)! }));
  const sts = keys ? null : await loadStsSummary(store, { window });
  const notes: string[] = [];
  if (!keys && profiles.length === 0) notes.push(`no permanent AccessKey made a call between ${window.from} and ${window.to}: there is nothing to propose`);
  for (const k of keysWithoutTraffic) notes.push(`${k.accessKeyId}: no call in the window (last call ${k.lastSeen})`);
  for (const p of profiles) {
    if (p.keyKind === 'sts') notes.push(`${p.accessKeyId}: temporary STS credentials (${p.stsCalls} calls) are never governed by network ACLs`);
    else if (!hasGovernedTraffic(p)) notes.push(`${p.accessKeyId}: no governed traffic in the window (${describeUngoverned(p)}): nothing to put in an ACL`);
    else if (p.publicSources.length === 0) notes.push(`${p.accessKeyId}: VPC traffic only: an enabled ACL for it has no public rule and so denies every public call`);
  }
  notes.sort();
  return { window, profiles, keysWithoutTraffic, sts, notes };
}

function describeUngoverned(p: KeyProfile): string {
  const parts: string[] = [];
  const exemptCalls = p.exemptOnlySources.reduce((n, s) => n + s.calls, 0);
  if (exemptCalls > 0) parts.push(`${exemptCalls} calls to exempt services`);
  if (p.internalCalls > 0) parts.push(`${p.internalCalls} internal`);
  if (p.serviceCalls > 0) parts.push(`${p.serviceCalls} from service addresses`);
  if (p.invalidSourceCalls > 0) parts.push(`${p.invalidSourceCalls} with no usable source address`);
  return parts.length > 0 ? parts.join(', ') : `${p.totalCalls} calls`;
}

async function lastCalls(store: Store, keys: string[]): Promise<Map<string, string>> {
  const rows = await store.query<{ key: string; last: string }>(
    `SELECT access_key_id AS key, strftime(max(event_time), '%Y-%m-%dT%H:%M:%SZ') AS last FROM events WHERE access_key_id IN (${keys.map(sqlString).join(', ')}) GROUP BY 1`,
  );
  return new Map(rows.map((r) => [r.key, r.last]));
}

async function countEvents(store: Store, window: TimeWindow): Promise<number> {
  const [row] = await store.query<{ n: number }>(
    `SELECT count(*) AS n FROM events WHERE event_time >= CAST(${sqlString(window.from)} AS TIMESTAMP) AND event_time < CAST(${sqlString(window.to)} AS TIMESTAMP)`,
  );
  return row?.n ?? 0;
}
