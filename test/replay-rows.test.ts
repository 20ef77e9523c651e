// The replay rows read from a real DuckDB file of the demo history equal a plain reference aggregate written
// the obvious way (per-day rows summed, DISTINCT days, an IN list), whichever way the days are counted (a
// 64-bit or 128-bit day mask, or DISTINCT for long windows), with free-text key IDs and keyless calls.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Store, sqlString } from '../ingest/store.ts';
import { ingestFiles } from '../ingest/file-ingest.ts';
import { SENSITIVE_APIS } from '../model/acl-rules.ts';
import type { TimeWindow } from '../model/types.ts';
import { loadReplayRows, replaySql } from '../analyze/replay.ts';
import { loadProfiles } from '../analyze/profiles.ts';
import type { SourceAggregate } from '../recommend/simulate.ts';
import { DEMO_TRAIL, tempDir } from './report-helpers.ts';

const ODD_KEY = 'LTAI\u001eodd\u001fkey';
let dir: string;
let store: Store;
let newest: number;

beforeAll(async () => {
  dir = tempDir('replay-rows');
  store = await Store.open(join(dir, 'store.duckdb'));
  await ingestFiles(store, [DEMO_TRAIL]);
  // A key ID carrying the separators, and calls without a key: both must come back as they are.
  await store.run(`INSERT INTO events SELECT * REPLACE (${sqlString(ODD_KEY)} AS access_key_id, event_id || '-odd' AS event_id) FROM events WHERE key_kind = 'permanent' AND source_kind = 'public' LIMIT 40`);
  await store.run(`INSERT INTO events SELECT * REPLACE (NULL AS access_key_id, event_id || '-nokey' AS event_id) FROM events WHERE key_kind = 'permanent' LIMIT 25`);
  const [row] = await store.query<{ t: string }>('SELECT max(event_time) AS t FROM events');
  newest = Date.parse(row!.t);
}, 60_000);

afterAll(() => {
  store?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The replay aggregate written the obvious way: per-day rows, summed; days counted as rows. */
async function reference(window: TimeWindow): Promise<SourceAggregate[]> {
  const governed = `key_kind = 'permanent' AND NOT exempt AND source_kind IN ('public', 'vpc')`;
  return (await store.query(`
WITH per_day AS (
  SELECT CASE WHEN key_kind = 'sts' THEN 'STS.*' ELSE access_key_id END AS key_id, key_kind, source_kind,
    CASE WHEN ${governed} THEN source_ip END AS ip, CASE WHEN ${governed} AND source_kind = 'vpc' THEN vpc_id END AS vpc, exempt,
    CAST(event_time AS DATE) AS day, count(*) AS calls, count_if(acl_denied) AS denied, count(error_code) AS errors,
    count_if(event_name IN (${SENSITIVE_APIS.map(sqlString).join(', ')})) AS sensitive, min(event_time) AS first_seen, max(event_time) AS last_seen
  FROM events
  WHERE event_time >= CAST(${sqlString(window.from)} AS TIMESTAMP) AND event_time < CAST(${sqlString(window.to)} AS TIMESTAMP)
  GROUP BY ALL)
SELECT key_id AS "accessKeyId", key_kind AS "keyKind", source_kind AS "sourceKind", ip, vpc AS "vpcId", exempt,
  CAST(sum(calls) AS DOUBLE) AS calls, CAST(sum(denied) AS DOUBLE) AS "deniedCalls", CAST(sum(errors) AS DOUBLE) AS "errorCalls",
  CAST(sum(sensitive) AS DOUBLE) AS "sensitiveCalls", CAST(count(*) AS DOUBLE) AS days,
  strftime(min(first_seen), '%Y-%m-%dT%H:%M:%SZ') AS "firstSeen", strftime(max(last_seen), '%Y-%m-%dT%H:%M:%SZ') AS "lastSeen"
FROM per_day GROUP BY ALL`)) as unknown as SourceAggregate[];
}

const identity = (r: SourceAggregate): string => JSON.stringify([r.accessKeyId, r.keyKind, r.sourceKind, r.ip, r.vpcId, r.exempt]);
const sorted = (rows: readonly SourceAggregate[]): SourceAggregate[] => [...rows].sort((a, b) => (identity(a) < identity(b) ? -1 : identity(a) > identity(b) ? 1 : 0));

function windowOfDays(days: number, endOffsetMs = 1000): TimeWindow {
  const to = newest + endOffsetMs;
  return { from: new Date(to - days * 86_400_000).toISOString().replace('.000Z', 'Z'), to: new Date(to).toISOString().replace('.000Z', 'Z') };
}

describe('replay rows', () => {
  it.each([
    ['7 days (64-bit day mask)', 7, 1000],
    ['30 days, from mid-day (64-bit day mask)', 30, 5 * 3_600_000 + 1000],
    ['100 days (128-bit day mask)', 100, 1000],
    ['400 days (DISTINCT days)', 400, 1000],
  ])('equal the reference aggregate over %s', async (_, days, endOffsetMs) => {
    const window = windowOfDays(days, endOffsetMs);
    const rows = await loadReplayRows(store, { window });
    const expected = await reference(window);
    expect(rows.length).toBeGreaterThan(10);
    expect(sorted(rows)).toEqual(sorted(expected));
    expect(rows.some((r) => r.days > 1)).toBe(true);
  });

  it('bring back a key ID that carries the separators, and keyless calls, as they are', async () => {
    const rows = await loadReplayRows(store, { window: windowOfDays(400) });
    expect(rows.filter((r) => r.accessKeyId === ODD_KEY).reduce((n, r) => n + r.calls, 0)).toBe(40);
    const [keyless] = await store.query<{ n: number }>('SELECT count(*) AS n FROM events WHERE access_key_id IS NULL');
    expect(keyless!.n).toBeGreaterThanOrEqual(25);
    expect(rows.filter((r) => r.accessKeyId === null).reduce((n, r) => n + r.calls, 0)).toBe(keyless!.n);
  });

  it('keep the SQL retention rolls up (same columns) answering as the rows read back', async () => {
    const window = windowOfDays(400);
    const viaSql = (await store.query(replaySql({ window }))) as unknown as SourceAggregate[];
    expect(sorted(viaSql)).toEqual(sorted(await loadReplayRows(store, { window })));
  });
});

describe('profiles without user agents (what recommend and backtest read)', () => {
  const withoutAgents = (profiles: unknown): string => JSON.stringify(profiles, (k, v) => (k === 'userAgents' ? undefined : v));

  it.each([
    ['7 days', 7],
    ['30 days', 30],
    ['100 days, with a key ID carrying separators (every value read cleaned)', 100],
  ])('are loadProfiles less user agents: %s', async (_, days) => {
    const window = windowOfDays(days);
    const full = await loadProfiles(store, { window });
    const lean = await loadProfiles(store, { window, userAgents: false });
    expect(lean.length).toBeGreaterThan(3);
    expect(lean.some((p) => p.publicSources.length > 1 && p.exemptOnlySources.length + p.vpcSources.length > 0)).toBe(true);
    expect(JSON.parse(withoutAgents(lean))).toEqual(JSON.parse(withoutAgents(full)));
    expect(lean.flatMap((p) => [...p.publicSources, ...p.vpcSources]).every((s) => s.userAgents.length === 0)).toBe(true);
    expect(full.flatMap((p) => p.publicSources).some((s) => s.userAgents.length > 0)).toBe(true);
  });
});
