// analyze/: per-key profiles from a real DuckDB file, the pure fold, windows, bad input, several --db parts,
// and the `keyfence analyze` command as a real process.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Store } from '../ingest/store.ts';
import { StoreError, UsageError } from '../model/errors.ts';
import type { AuditEvent, KeyProfile } from '../model/types.ts';
import { DEFAULT_RECOMMEND_OPTIONS, recommend } from '../recommend/proposal.ts';
import { analyzeStore } from '../analyze/analysis.ts';
import { buildProfiles, loadProfiles, loadSourceAggregates, loadDailyActivity, loadStsSummary, sourceAggregateSql, type SourceAggregateRow } from '../analyze/profiles.ts';
import { newestEventTime, resolveStoreWindow } from '../analyze/window.ts';

const run = promisify(execFile);
const root = join(import.meta.dirname, '..');
const dir = mkdtempSync(join(tmpdir(), 'kf-analyze-'));

let seq = 0;
function ev(e: Partial<AuditEvent>): AuditEvent {
  seq += 1;
  return {
    eventId: e.eventId ?? `ev-${seq}`,
    eventTime: '2026-11-01T10:00:00Z',
    eventName: 'DescribeInstances',
    eventSource: 'ecs.aliyuncs.com',
    serviceName: 'Ecs',
    eventType: 'ApiCall',
    acsRegion: 'cn-hangzhou',
    sourceIp: '203.0.113.10',
    sourceKind: 'public',
    ipFamily: 4,
    vpcId: null,
    userAgent: 'aliyun-sdk-java/4.0',
    errorCode: null,
    errorMessage: null,
    accessKeyId: 'LTAIalpha',
    keyKind: 'permanent',
    identityType: 'ram-user',
    accountId: '1001',
    principalId: 'p-1',
    userName: 'ci-bot',
    exemptService: false,
    aclDenied: false,
    ...e,
  };
}

/** The profiles with every source's user agents left out. */
function withoutAgents(profiles: KeyProfile[]): KeyProfile[] {
  return profiles.map((p) => ({
    ...p,
    publicSources: p.publicSources.map((src) => ({ ...src, userAgents: [] })),
    vpcSources: p.vpcSources.map((src) => ({ ...src, userAgents: [] })),
  }));
}

async function makeDb(name: string, events: AuditEvent[]): Promise<string> {
  const path = join(dir, name);
  const store = await Store.open(path);
  try {
    if (events.length > 0) {
      const runId = await store.beginRun('file');
      await store.writeBatch({ runId, events, rejections: [], checkpoints: [] });
    }
  } finally {
    store.close();
  }
  return path;
}

/** A small history: key alpha (public + VPC + exempt-only + internal), beta (root, VPC only), an STS key. */
function history(): AuditEvent[] {
  return [
    // alpha, public 203.0.113.10: 3 calls on 2 days, one error, one sensitive, one denied
    ev({ eventTime: '2026-11-01T10:00:00Z', userAgent: 'ua-b' }),
    ev({ eventTime: '2026-11-01T11:00:00Z', errorCode: 'Forbidden', eventName: 'ListUsers', serviceName: 'Ram', userAgent: 'ua-a' }),
    ev({ eventTime: '2026-11-03T09:30:00Z', aclDenied: true, errorCode: 'AccessKeyId.AccessPolicyDenied' }),
    // alpha, public 203.0.113.9 governed + exempt: only the governed call counts as the source's use
    ev({ sourceIp: '203.0.113.9', eventTime: '2026-11-02T00:00:00Z' }),
    ev({ sourceIp: '203.0.113.9', eventTime: '2026-11-02T00:00:01Z', serviceName: 'mns', exemptService: true }),
    // alpha, public 198.51.100.7 seen only on an exempt service
    ev({ sourceIp: '198.51.100.7', serviceName: 'mns', exemptService: true, eventTime: '2026-11-02T05:00:00Z' }),
    // alpha, IPv6
    ev({ sourceIp: '2001:db8::1', ipFamily: 6, eventTime: '2026-11-02T06:00:00Z' }),
    // alpha, VPC
    ev({ sourceIp: '172.16.0.10', sourceKind: 'vpc', vpcId: 'vpc-b', eventTime: '2026-11-02T07:00:00Z' }),
    ev({ sourceIp: '172.16.0.9', sourceKind: 'vpc', vpcId: 'vpc-a', eventTime: '2026-11-02T07:00:00Z' }),
    // alpha, internal / service / invalid sources: counted apart
    ev({ sourceIp: 'internal', sourceKind: 'internal', ipFamily: null, eventTime: '2026-11-02T08:00:00Z' }),
    ev({ sourceIp: 'oss.aliyuncs.com', sourceKind: 'service', ipFamily: null, eventTime: '2026-11-02T08:00:00Z' }),
    ev({ sourceIp: '192.168.XX.XX', sourceKind: 'invalid', ipFamily: null, eventTime: '2026-11-02T08:00:00Z' }),
    // beta: root account key, VPC only
    ev({ accessKeyId: 'LTAIbeta', identityType: 'root-account', userName: null, sourceIp: '10.0.0.5', sourceKind: 'vpc', vpcId: 'vpc-a', eventTime: '2026-11-04T00:00:00Z' }),
    // STS key
    ev({ accessKeyId: 'STS.tok1', keyKind: 'sts', identityType: 'assumed-role', userName: 'role-x:sess1', eventTime: '2026-11-04T01:00:00Z' }),
    ev({ accessKeyId: 'STS.tok2', keyKind: 'sts', identityType: 'assumed-role', userName: 'role-x:sess2', eventTime: '2026-11-04T02:00:00Z' }),
    // console call without a key
    ev({ accessKeyId: null, keyKind: 'none', eventTime: '2026-11-04T03:00:00Z' }),
    // gamma: only exempt and internal traffic
    ev({ accessKeyId: 'LTAIgamma', serviceName: 'mns', exemptService: true, sourceIp: '198.51.100.20', eventTime: '2026-11-04T04:00:00Z' }),
    ev({ accessKeyId: 'LTAIgamma', sourceIp: 'internal', sourceKind: 'internal', ipFamily: null, eventTime: '2026-11-04T04:00:00Z' }),
    // delta: only long before the window (dormant)
    ev({ accessKeyId: 'LTAIdelta', eventTime: '2026-08-01T00:00:00Z' }),
  ];
}

let mainDb: string;
let emptyDb: string;

beforeAll(async () => {
  mainDb = await makeDb('main.duckdb', history());
  emptyDb = await makeDb('empty.duckdb', []);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function withStore<T>(paths: string | string[], work: (s: Store) => Promise<T>): Promise<T> {
  const store = await Store.open(paths, { readOnly: true });
  try {
    return await work(store);
  } finally {
    store.close();
  }
}

const WINDOW = { from: '2026-10-05T00:00:00Z', to: '2026-11-05T00:00:00Z' };

describe('windows', () => {
  it('counts back from the newest event by default, ending just after it', async () => {
    await withStore(mainDb, async (s) => {
      expect((await newestEventTime(s))?.toISOString()).toBe('2026-11-04T04:00:00.000Z');
      expect(await resolveStoreWindow(s, {})).toEqual({ from: '2026-10-05T04:00:01Z', to: '2026-11-04T04:00:01Z' });
      expect(await resolveStoreWindow(s, { since: '7d' })).toEqual({ from: '2026-10-28T04:00:01Z', to: '2026-11-04T04:00:01Z' });
      expect(await resolveStoreWindow(s, { from: '2026-11-01', to: '2026-11-02' })).toEqual({ from: '2026-11-01T00:00:00Z', to: '2026-11-02T00:00:00Z' });
      expect(await resolveStoreWindow(s, { since: '1d', to: '2026-11-02' })).toEqual({ from: '2026-11-01T00:00:00Z', to: '2026-11-02T00:00:00Z' });
    });
  });

  it('rejects contradictory or malformed flags as usage errors', async () => {
    await withStore(mainDb, async (s) => {
      await expect(resolveStoreWindow(s, { since: '7d', from: '2026-11-01' })).rejects.toThrow(UsageError);
      await expect(resolveStoreWindow(s, { from: '2026-11-02', to: '2026-11-01' })).rejects.toThrow(/not before/);
      await expect(resolveStoreWindow(s, { since: 'a week' })).rejects.toThrow(/not a duration/);
      await expect(resolveStoreWindow(s, { from: 'yesterday' })).rejects.toThrow(/not a date/);
    });
  });

  it('reports an empty store as a store error', async () => {
    await withStore(emptyDb, async (s) => {
      expect(await newestEventTime(s)).toBeNull();
      await expect(resolveStoreWindow(s, {})).rejects.toThrow(StoreError);
    });
  });
});

describe('source aggregates (SQL)', () => {
  it('aggregates one row per key, source and exempt flag, with every count', async () => {
    const rows = await withStore(mainDb, (s) => loadSourceAggregates(s, { window: WINDOW }));
    const main = rows.find((r) => r.accessKeyId === 'LTAIalpha' && r.sourceIp === '203.0.113.10')!;
    expect(main).toEqual({
      accessKeyId: 'LTAIalpha', keyKind: 'permanent', identityType: 'ram-user', userName: 'ci-bot', accountId: '1001',
      sourceKind: 'public', sourceIp: '203.0.113.10', ipFamily: 4, vpcId: null, exempt: false,
      calls: 3, days: 2, firstSeen: '2026-11-01T10:00:00Z', lastSeen: '2026-11-03T09:30:00Z',
      errorCalls: 2, deniedCalls: 1, sensitiveCalls: 1, services: ['Ecs', 'Ram'], userAgents: ['aliyun-sdk-java/4.0', 'ua-a', 'ua-b'],
    } satisfies SourceAggregateRow);
    // STS keys, keyless calls and events outside the window are not rows; inter-service sources lose their address.
    expect(rows.some((r) => r.keyKind !== 'permanent')).toBe(false);
    expect(rows.some((r) => r.accessKeyId === 'LTAIdelta')).toBe(false);
    const internal = rows.find((r) => r.accessKeyId === 'LTAIalpha' && r.sourceKind === 'internal')!;
    expect([internal.sourceIp, internal.ipFamily, internal.vpcId, internal.calls]).toEqual([null, null, null, 1]);
    const exempt = rows.filter((r) => r.sourceIp === '203.0.113.9');
    expect(exempt.map((r) => [r.exempt, r.calls]).sort()).toEqual([[false, 1], [true, 1]]);
  });

  it('includes a named STS key, with its address blanked', async () => {
    const rows = await withStore(mainDb, (s) => loadSourceAggregates(s, { window: WINDOW, keys: ['STS.tok1'] }));
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ accessKeyId: 'STS.tok1', keyKind: 'sts', sourceKind: 'public', sourceIp: null, calls: 1 });
  });

  it('keeps the window half-open: an event at `to` is outside, one at `from` inside', async () => {
    const rows = await withStore(mainDb, (s) => loadSourceAggregates(s, { window: { from: '2026-11-01T11:00:00Z', to: '2026-11-03T09:30:00Z' }, keys: ['LTAIalpha'] }));
    const main = rows.find((r) => r.sourceIp === '203.0.113.10')!;
    expect([main.calls, main.firstSeen, main.lastSeen]).toEqual([1, '2026-11-01T11:00:00Z', '2026-11-01T11:00:00Z']);
  });

  it('returns no rows for a window with no events', async () => {
    expect(await withStore(mainDb, (s) => loadSourceAggregates(s, { window: { from: '2020-01-01T00:00:00Z', to: '2020-02-01T00:00:00Z' } }))).toEqual([]);
  });

  it('cannot be fooled by separator characters inside values', async () => {
    const path = await makeDb('hostile.duckdb', [
      ev({ accessKeyId: 'LTAIhostile', userAgent: 'evil\u001f1\u001e\u001dLTAIforged\u001fpermanent', userName: 'a\u001fb' }),
    ]);
    const rows = await withStore(path, (s) => loadSourceAggregates(s, { window: WINDOW }));
    expect(rows).toHaveLength(1);
    expect(rows[0]!.accessKeyId).toBe('LTAIhostile');
    expect(rows[0]!.calls).toBe(1);
    expect(rows[0]!.userAgents).toEqual(['evil 1  LTAIforged permanent']);
    expect(rows[0]!.userName).toBe('a\u001fb');
  });

  it('reads rows back cleaned, never forged, when a key or VPC ID itself carries a separator', async () => {
    const path = await makeDb('hostile-ids.duckdb', [
      ev({ accessKeyId: 'LTAIx\u001e\u001fLTAIforged', sourceIp: '10.0.0.1', sourceKind: 'vpc', vpcId: 'vpc-1\u001f9\u001f9' }),
      ev({ accessKeyId: 'LTAIplain' }),
    ]);
    const rows = await withStore(path, (s) => loadSourceAggregates(s, { window: WINDOW }));
    expect(rows.map((r) => [r.accessKeyId, r.vpcId, r.calls]).sort()).toEqual([
      ['LTAIplain', null, 1],
      ['LTAIx  LTAIforged', 'vpc-1 9 9', 1],
    ]);
  });

  it('reads every row back cleaned when only a key ID carries a separator', async () => {
    const path = await makeDb('hostile-key.duckdb', [ev({ accessKeyId: 'LTAIy\u001eLTAIforged' }), ev({ accessKeyId: 'LTAIplain', userAgent: 'ua\u001dx' })]);
    const rows = await withStore(path, (s) => loadSourceAggregates(s, { window: WINDOW }));
    expect(rows.map((r) => [r.accessKeyId, r.calls, r.userName, r.userAgents]).sort()).toEqual([
      ['LTAIplain', 1, 'ci-bot', ['ua x']],
      ['LTAIy LTAIforged', 1, null, ['aliyun-sdk-java/4.0']],
    ]);
  });

  it('computes exactly what the plain reference SQL computes, whatever the window length and number of services', async () => {
    // 70 services force the 127-bit service mask; windows of 30, 100 and 200 days take the 63-bit day mask,
    // the 127-bit one and the plain count(DISTINCT).
    const events: AuditEvent[] = [];
    for (let i = 0; i < 400; i++) {
      events.push(ev({
        accessKeyId: `LTAIk${i % 3}`,
        eventTime: new Date(Date.UTC(2026, 4, 1) + ((i * 7919) % 200) * 86_400_000 + (i % 24) * 3_600_000).toISOString().replace('.000Z', 'Z'),
        serviceName: i % 11 === 0 ? null : `Svc${String(i % 70).padStart(2, '0')}`,
        ...(i % 19 === 0 ? { sourceKind: 'service' as const, sourceIp: `svc${i}.aliyuncs.com`, ipFamily: null } : { sourceIp: `192.0.2.${i % 5}` }),
        userAgent: i % 13 === 0 ? null : `ua-${i % 7}`,
        exemptService: i % 17 === 0,
        errorCode: i % 4 === 0 ? 'E' : null,
      }));
    }
    // Second calls on a day already counted: days are distinct days, not calls.
    for (const e of events.filter((_, i) => i % 10 === 0)) events.push({ ...e, eventId: `${e.eventId}-again`, eventTime: e.eventTime.replace(/T(\d\d)/, (_, h: string) => `T${h === '23' ? '22' : '23'}`) });
    const path = await makeDb('reference.duckdb', events);
    await withStore(path, async (s) => {
      for (const window of [
        { from: '2026-10-15T06:00:00Z', to: '2026-11-14T00:00:00Z' },
        { from: '2026-08-01T00:00:00Z', to: '2026-11-09T00:00:00Z' },
        { from: '2026-05-01T00:00:00Z', to: '2026-11-17T00:00:00Z' },
      ]) {
        const fast = await loadSourceAggregates(s, { window });
        const reference = (await s.query<Record<string, unknown>>(sourceAggregateSql({ window }))).map((r) => ({
          key: `${r.access_key_id}|${r.source_kind}|${r.source_ip}|${r.vpc_id}|${r.exempt}`,
          calls: r.calls, days: r.days, firstSeen: r.first_seen, lastSeen: r.last_seen, errorCalls: r.error_calls,
          services: ((r.services as Array<string | null> | null) ?? []).filter((x) => x !== null), userAgents: ((r.user_agents as Array<string | null> | null) ?? []).filter((x) => x !== null),
        }));
        const mine = fast.map((r) => ({
          key: `${r.accessKeyId}|${r.sourceKind}|${r.sourceIp}|${r.vpcId}|${r.exempt}`,
          calls: r.calls, days: r.days, firstSeen: r.firstSeen, lastSeen: r.lastSeen, errorCalls: r.errorCalls, services: r.services, userAgents: r.userAgents,
        }));
        const byKey = (a: { key: string }, b: { key: string }) => (a.key < b.key ? -1 : 1);
        expect(mine.length).toBeGreaterThan(5);
        expect(mine.sort(byKey)).toEqual(reference.sort(byKey));
        // One grouping level without user agents (the masks' and the plain lists' forms alike): the same profiles otherwise.
        const lean = await loadProfiles(s, { window, userAgents: false });
        expect(JSON.parse(JSON.stringify(lean))).toEqual(JSON.parse(JSON.stringify(withoutAgents(await loadProfiles(s, { window })))));
        // Inter-service sources lose their address before grouping: one row per key, kind and exempt flag.
        const serviceRows = fast.filter((r) => r.sourceKind === 'service');
        expect(serviceRows.length).toBeGreaterThan(0);
        expect(new Set(serviceRows.map((r) => `${r.accessKeyId}|${r.exempt}`)).size).toBe(serviceRows.length);
      }
    });
  });
});

describe('profiles (pure fold)', () => {
  it('folds the aggregate text into the same profiles as building them from its rows (agents shared or not, VPC, times to the second)', async () => {
    // No exempt calls: those keys take the rows path anyway. Agents: the same agent with other call counts on
    // neighbouring sources, several agents on one source, none at all.
    const events: AuditEvent[] = [];
    for (let i = 0; i < 600; i++) {
      const vpc = i % 9 === 0;
      events.push(ev({
        accessKeyId: `LTAIfold${i % 4}`,
        eventTime: new Date(Date.UTC(2026, 9, 6) + ((i * 7919) % 29) * 86_400_000 + ((i * 104_729) % 86_400) * 1000).toISOString().replace('.000Z', 'Z'),
        sourceIp: vpc ? `172.16.0.${i % 13}` : `198.51.100.${(i * 31) % 40}`,
        sourceKind: vpc ? 'vpc' : 'public',
        vpcId: vpc ? `vpc-${i % 2}` : null,
        userAgent: !vpc && (i * 31) % 40 === 39 ? null : i % 5 === 0 ? `agent-${i % 3}` : 'agent-0',
        serviceName: `Svc${i % 3}`,
        errorCode: i % 6 === 0 ? 'E' : null,
        aclDenied: i % 50 === 0,
        eventName: i % 10 === 0 ? 'ListUsers' : 'DescribeInstances',
      }));
    }
    const path = await makeDb('fold.duckdb', events);
    const [folded, rows] = await withStore(path, async (s) => [await loadProfiles(s, { window: WINDOW }), await loadSourceAggregates(s, { window: WINDOW })] as const);
    expect(folded.length).toBe(4);
    expect(folded.some((p) => p.publicSources.some((src) => src.userAgents.length > 1))).toBe(true);
    expect(folded.some((p) => p.publicSources.some((src) => src.userAgents.length === 0))).toBe(true);
    expect(JSON.parse(JSON.stringify(folded))).toEqual(JSON.parse(JSON.stringify(buildProfiles(rows))));
    // Without user agents (what recommend asks for): the same profiles with empty agent lists, the same proposal.
    const lean = await withStore(path, (s) => loadProfiles(s, { window: WINDOW, userAgents: false }));
    expect(JSON.parse(JSON.stringify(lean))).toEqual(JSON.parse(JSON.stringify(withoutAgents(folded))));
    const options = { ...DEFAULT_RECOMMEND_OPTIONS, window: WINDOW, generatedAt: WINDOW.to };
    expect(recommend(lean, options)).toEqual(recommend(folded, options));
  });

  it('separates governed, exempt-only and inter-service traffic', async () => {
    const profiles = await withStore(mainDb, (s) => loadProfiles(s, { window: WINDOW }));
    expect(profiles.map((p) => p.accessKeyId)).toEqual(['LTAIalpha', 'LTAIbeta', 'LTAIgamma']);
    const alpha = profiles[0]!;
    expect(alpha.totalCalls).toBe(12);
    expect(alpha.publicSources.map((s) => [s.ip, s.calls])).toEqual([['203.0.113.9', 1], ['203.0.113.10', 3], ['2001:db8::1', 1]]);
    expect(alpha.vpcSources.map((s) => [s.vpcId, s.ip])).toEqual([['vpc-a', '172.16.0.9'], ['vpc-b', '172.16.0.10']]);
    expect(alpha.exemptOnlySources).toEqual([{ ip: '198.51.100.7', vpcId: null, calls: 1, services: ['mns'] }]);
    expect([alpha.internalCalls, alpha.serviceCalls, alpha.invalidSourceCalls, alpha.stsCalls, alpha.deniedCalls]).toEqual([1, 1, 1, 0, 1]);
    expect(alpha.firstSeen).toBe('2026-11-01T10:00:00Z');
    expect(alpha.lastSeen).toBe('2026-11-03T09:30:00Z');
    const beta = profiles[1]!;
    expect(beta.identityType).toBe('root-account');
    expect(beta.publicSources).toEqual([]);
    const gamma = profiles[2]!;
    expect(gamma.publicSources.length + gamma.vpcSources.length).toBe(0);
  });

  it('counts every call of an STS key as STS and gives it no sources', () => {
    const row: SourceAggregateRow = {
      accessKeyId: 'STS.x', keyKind: 'sts', identityType: 'assumed-role', userName: 'r:s', accountId: '1', sourceKind: 'public',
      sourceIp: null, ipFamily: null, vpcId: null, exempt: false, calls: 7, days: 1, firstSeen: '2026-11-01T00:00:00Z',
      lastSeen: '2026-11-01T00:00:00Z', errorCalls: 0, deniedCalls: 0, sensitiveCalls: 0, services: [], userAgents: [],
    };
    const [p] = buildProfiles([row]);
    expect([p!.keyKind, p!.stsCalls, p!.totalCalls, p!.publicSources.length]).toEqual(['sts', 7, 7, 0]);
  });

  it('takes the identity most calls carry and sorts keys whatever the row order', () => {
    const base: SourceAggregateRow = {
      accessKeyId: 'LTAIb', keyKind: 'permanent', identityType: 'ram-user', userName: 'old', accountId: '1', sourceKind: 'public',
      sourceIp: '192.0.2.1', ipFamily: 4, vpcId: null, exempt: false, calls: 1, days: 1, firstSeen: '2026-11-01T00:00:00Z',
      lastSeen: '2026-11-01T00:00:00Z', errorCalls: 0, deniedCalls: 0, sensitiveCalls: 0, services: [], userAgents: [],
    };
    const rows = [
      { ...base, userName: 'old' },
      { ...base, sourceIp: '192.0.2.2', userName: 'new', calls: 5 },
      { ...base, accessKeyId: 'LTAIa' },
    ];
    const profiles = buildProfiles(rows);
    expect(profiles.map((p) => p.accessKeyId)).toEqual(['LTAIa', 'LTAIb']);
    expect(profiles[1]!.userName).toBe('new');
    expect(buildProfiles([...rows].reverse())).toEqual(profiles);
  });

  it('sorts sources by VPC ID, then numerically by address (IPv4 before IPv6), then by text, whatever the row order', () => {
    const base: SourceAggregateRow = {
      accessKeyId: 'LTAIs', keyKind: 'permanent', identityType: 'ram-user', userName: 'u', accountId: '1', sourceKind: 'public',
      sourceIp: '192.0.2.1', ipFamily: 4, vpcId: null, exempt: false, calls: 1, days: 1, firstSeen: '2026-11-01T00:00:00Z',
      lastSeen: '2026-11-01T00:00:00Z', errorCalls: 0, deniedCalls: 0, sensitiveCalls: 0, services: [], userAgents: [],
    };
    const publicIps = ['198.51.100.7', '9.9.9.9', '10.0.0.1', '010.0.0.1', '255.255.255.255', '100.0.0.0'];
    const vpc = (vpcId: string, ip: string): SourceAggregateRow => ({ ...base, sourceKind: 'vpc', vpcId, sourceIp: ip });
    const vpcRows = [vpc('vpc-b', '10.0.0.2'), vpc('vpc-a', '10.0.0.9'), vpc('vpc-b', '10.0.0.1'), vpc('vpc-a', '10.0.0.10')];
    const withV6 = [{ ...base, accessKeyId: 'LTAIt', sourceIp: '2001:db8::1', ipFamily: 6 as const }, { ...base, accessKeyId: 'LTAIt', sourceIp: '203.0.113.5' }];
    const rows = [...publicIps.map((ip) => ({ ...base, sourceIp: ip })), ...vpcRows, ...withV6];
    const expected = [
      ['9.9.9.9', '010.0.0.1', '10.0.0.1', '100.0.0.0', '198.51.100.7', '255.255.255.255'],
      ['vpc-a 10.0.0.9', 'vpc-a 10.0.0.10', 'vpc-b 10.0.0.1', 'vpc-b 10.0.0.2'],
      ['203.0.113.5', '2001:db8::1'],
    ];
    for (const order of [rows, [...rows].reverse()]) {
      const [s, t] = buildProfiles(order);
      expect([s!.publicSources.map((x) => x.ip), s!.vpcSources.map((x) => `${x.vpcId} ${x.ip}`), t!.publicSources.map((x) => x.ip)]).toEqual(expected);
    }
  });
});

describe('analysis requests', () => {
  it('refuses a key the store has never seen', async () => {
    await withStore(mainDb, async (s) => {
      await expect(analyzeStore(s, { keys: ['LTAInobody'] })).rejects.toThrow(/no event in the store uses key LTAInobody/);
    });
  });

  it('reports a known key idle in the window, and keys with no governed traffic', async () => {
    await withStore(mainDb, async (s) => {
      const idle = await analyzeStore(s, { keys: ['LTAIdelta'] });
      expect(idle.profiles).toEqual([]);
      expect(idle.keysWithoutTraffic).toEqual([{ accessKeyId: 'LTAIdelta', lastSeen: '2026-08-01T00:00:00Z' }]);
      const all = await analyzeStore(s, {});
      expect(all.notes).toContain('LTAIgamma: no governed traffic in the window (1 calls to exempt services, 1 internal): nothing to put in an ACL');
      expect(all.notes.some((n) => n.startsWith('LTAIbeta: VPC traffic only'))).toBe(true);
      expect(all.sts).toEqual({ keys: 2, calls: 2, identities: [{ identityType: 'assumed-role', userName: 'role-x', accountId: '1001', keys: 2, calls: 2 }] });
    });
  });

  it('says so when the window holds events but none of a permanent key', async () => {
    await withStore(mainDb, async (s) => {
      const onlySts = await analyzeStore(s, { from: '2026-11-04T00:30:00Z', to: '2026-11-04T03:30:00Z' });
      expect(onlySts.profiles).toEqual([]);
      expect(onlySts.sts?.calls).toBe(2);
      expect(onlySts.notes).toEqual(['no permanent AccessKey made a call between 2026-11-04T00:30:00Z and 2026-11-04T03:30:00Z: there is nothing to propose']);
    });
  });

  it('refuses an explicit window that holds no events, saying what the store holds', async () => {
    await withStore(mainDb, async (s) => {
      await expect(analyzeStore(s, { from: '2020-01-01', to: '2020-02-01' })).rejects.toThrow(UsageError);
    });
  });

  it('gives per-day activity for the report timeline', async () => {
    const days = await withStore(mainDb, (s) => loadDailyActivity(s, { window: WINDOW, keys: ['LTAIalpha'] }));
    expect(days.filter((d) => d.sourceIp === '203.0.113.10')).toEqual([
      { accessKeyId: 'LTAIalpha', sourceKind: 'public', sourceIp: '203.0.113.10', vpcId: null, day: '2026-11-01', calls: 2, errorCalls: 1 },
      { accessKeyId: 'LTAIalpha', sourceKind: 'public', sourceIp: '203.0.113.10', vpcId: null, day: '2026-11-03', calls: 1, errorCalls: 1 },
    ]);
    const sts = await withStore(mainDb, (s) => loadStsSummary(s, { window: { from: '2026-11-04T01:30:00Z', to: '2026-11-05T00:00:00Z' } }));
    expect([sts.keys, sts.calls]).toEqual([1, 1]);
  });
});

describe('several databases read together', () => {
  it('give the same profiles as one database holding all the events, even when parts overlap', async () => {
    const events = history();
    const partA = await makeDb('part-a.duckdb', events.filter((_, i) => i % 2 === 0));
    // part B repeats two of part A's events (a consumer-group rebalance delivers them twice)
    const partB = await makeDb('part-b.duckdb', [...events.filter((_, i) => i % 2 === 1), events[0]!, events[2]!]);
    const single = await withStore(mainDb, (s) => analyzeStore(s, {}));
    const merged = await withStore([partA, partB], (s) => analyzeStore(s, {}));
    expect(merged).toEqual(single);
  });
});

describe('keyfence analyze (process)', () => {
  async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    try {
      const { stdout, stderr } = await run('node', ['bin/keyfence.js', 'analyze', ...args], { cwd: root });
      return { code: 0, stdout, stderr };
    } catch (e) {
      const err = e as { code: number; stdout: string; stderr: string };
      return { code: err.code, stdout: err.stdout, stderr: err.stderr };
    }
  }

  it('prints the profiles and window as JSON', async () => {
    const r = await cli(['--db', mainDb, '--json']);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.window).toEqual({ from: '2026-10-05T04:00:01Z', to: '2026-11-04T04:00:01Z' });
    expect(out.profiles.map((p: { accessKeyId: string }) => p.accessKeyId)).toEqual(['LTAIalpha', 'LTAIbeta', 'LTAIgamma']);
    expect(out.sts.calls).toBe(2);
  });

  it('prints a table per key as text', async () => {
    const r = await cli(['--db', mainDb, '--key', 'LTAIalpha,LTAIbeta']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^LTAIalpha\s+ci-bot\s+12\s+3\s+2 in 2\s+1\s+0\s+1\s+1\s+1\s+1$/m);
    expect(r.stdout).toMatch(/^LTAIbeta \(root\)/m);
  });

  it('exits 1 on contradictory flags and on an unknown key, 3 on an empty or missing store', async () => {
    expect((await cli(['--db', mainDb, '--since', '7d', '--from', '2026-11-01'])).code).toBe(1);
    const unknown = await cli(['--db', mainDb, '--key', 'LTAInobody', '--json']);
    expect(unknown.code).toBe(1);
    expect(JSON.parse(unknown.stdout).error.type).toBe('UsageError');
    const empty = await cli(['--db', emptyDb]);
    expect(empty.code).toBe(3);
    expect(empty.stderr).toMatch(/holds no events/);
    expect((await cli(['--db', join(dir, 'missing.duckdb')])).code).toBe(3);
  });
});
