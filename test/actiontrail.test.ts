import { readFileSync } from 'node:fs';
import { SAMPLES_DIR } from './samples.ts';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { classifySource, normalizeRecord, parseEventTime, MAX_RECORD_CHARS } from '../ingest/actiontrail.ts';
import type { AuditEvent } from '../model/types.ts';

/** The vendor's real sample events (`../shared/samples`, or the committed copy: see test/samples.ts). */
const SAMPLES = SAMPLES_DIR;
const sample = (name: string): string => readFileSync(`${SAMPLES}/${name}.json`, 'utf8');

const bare = {
  eventId: 'e-1',
  eventTime: '2026-11-01T02:03:04Z',
  eventName: 'DescribeInstances',
  eventSource: 'ecs.cn-hangzhou.aliyuncs.com',
  serviceName: 'Ecs',
  eventType: 'ApiCall',
  acsRegion: 'cn-hangzhou',
  sourceIpAddress: '203.0.113.7',
  userAgent: 'aliyuncli/3.0',
  errorCode: '',
  errorMessage: '',
  requestId: 'R-1',
  userIdentity: { type: 'ram-user', accessKeyId: 'LTAI5tAbc', accountId: '1001', principalId: '2002', userName: 'ci-bot' },
};

function one(raw: unknown): AuditEvent {
  const r = normalizeRecord(raw);
  expect(r.rejections).toEqual([]);
  expect(r.events).toHaveLength(1);
  return r.events[0]!;
}

describe('the real ActionTrail samples', () => {
  it('reads the SDK call as a permanent old-style key from a public source on a governed service', () => {
    const e = one(sample('ram-user-sdk-call'));
    expect(e).toMatchObject({ accessKeyId: 'f6IzzFZMmzNwEI4d', keyKind: 'permanent', sourceKind: 'public', sourceIp: '42.120.74.96', ipFamily: 4, exemptService: false, aclDenied: false, userName: 'Alice' });
  });
  it('reads the console call as using no AccessKey at all', () => {
    expect(one(sample('ram-user-console'))).toMatchObject({ accessKeyId: null, keyKind: 'none', identityType: 'ram-user' });
  });
  it('reads the assumed-role call as temporary, its masked source as not an address, and its empty errorCode as success', () => {
    expect(one(sample('assumed-role-sts'))).toMatchObject({ keyKind: 'sts', sourceKind: 'invalid', sourceIp: '192.168.XX.XX', ipFamily: null, errorCode: null, errorMessage: null, aclDenied: false });
  });
});

describe('record shapes', () => {
  const expected = { eventId: 'e-1', accessKeyId: 'LTAI5tAbc', sourceIp: '203.0.113.7', sourceKind: 'public', eventTime: '2026-11-01T02:03:04Z' };
  it('reads an SLS export line whose event is a JSON string', () => {
    expect(one(JSON.stringify({ __topic__: 'actiontrail_audit_event', __source__: 'actiontrail', __time__: '1', event: JSON.stringify(bare) }))).toMatchObject(expected);
  });
  it('reads an SLS log whose event is an object', () => {
    expect(one({ __topic__: 'actiontrail_event', owner_id: '1', event: bare })).toMatchObject(expected);
  });
  it('reads flattened SLS keys', () => {
    const flat = {
      __topic__: 'actiontrail_audit_event',
      'event.eventId': 'e-1',
      'event.eventTime': '2026-11-01T02:03:04Z',
      'event.sourceIpAddress': '203.0.113.7',
      'event.userIdentity.accessKeyId': 'LTAI5tAbc',
      'event.userIdentity.type': 'ram-user',
      '__tag__:__receive_time__': '1',
    };
    expect(one(JSON.stringify(flat))).toMatchObject({ ...expected, identityType: 'ram-user' });
  });
  it('reads a bare event as delivered to OSS, from text or a parsed value', () => {
    expect(one(JSON.stringify(bare))).toMatchObject(expected);
    expect(one(bare)).toMatchObject(expected);
  });
  it('reads every event of a LookupEvents response and rejects only the bad one', () => {
    const r = normalizeRecord({ RequestId: 'x', NextToken: 't', Events: [bare, { ...bare, eventId: 'e-2' }, { ...bare, eventId: undefined }] });
    expect(r.events.map((e) => e.eventId)).toEqual(['e-1', 'e-2']);
    expect(r.rejections.map((x) => x.reason)).toEqual(['missing-event-id']);
    expect(r.rejections[0]!.detail).toContain('Events[2]');
  });
  it('reads a JSON array of records', () => {
    expect(normalizeRecord([bare, { ...bare, eventId: 'e-9' }]).events).toHaveLength(2);
  });
  it('keeps the request ID and turns empty strings into null', () => {
    expect(one(bare)).toMatchObject({ requestId: 'R-1', errorCode: null, errorMessage: null, vpcId: null });
  });
});

describe('key classification', () => {
  const key = (accessKeyId: string | undefined, type: string) => one({ ...bare, userIdentity: { type, accessKeyId } }).keyKind;
  it('is sts for an STS. key or an assumed role, permanent for any other key, none without a key', () => {
    expect(key('STS.NUQ', 'ram-user')).toBe('sts');
    expect(key('LTAI5x', 'assumed-role')).toBe('sts');
    expect(key(undefined, 'assumed-role')).toBe('sts');
    expect(key('LTAI5x', 'ram-user')).toBe('permanent');
    expect(key('f6IzzFZMmzNwEI4d', 'root-account')).toBe('permanent');
    expect(key(undefined, 'ram-user')).toBe('none');
    expect(key('', 'ram-user')).toBe('none');
  });
});

describe('source classification', () => {
  const cases: Array<[ip: string | null, vpc: string | null, kind: string, text: string | null, family: number | null]> = [
    ['203.0.113.7', null, 'public', '203.0.113.7', 4],
    ['2001:DB8:0:0:0:0:0:1', null, 'public', '2001:db8::1', 6],
    ['::ffff:203.0.113.9', null, 'public', '203.0.113.9', 4],
    ['172.16.1.5', 'vpc-abc', 'vpc', '172.16.1.5', 4],
    ['2408:4000::5', 'vpc-abc', 'vpc', '2408:4000::5', 6],
    ['10.1.2.3', null, 'internal', '10.1.2.3', 4],
    ['100.100.80.1', null, 'internal', '100.100.80.1', 4],
    ['fd00::1', null, 'internal', 'fd00::1', 6],
    ['internal', null, 'internal', 'internal', null],
    ['Internal', 'vpc-abc', 'internal', 'Internal', null],
    ['ecs.aliyuncs.com', null, 'service', 'ecs.aliyuncs.com', null],
    ['ecs.aliyuncs.com', 'vpc-abc', 'service', 'ecs.aliyuncs.com', null],
    ['192.168.XX.XX', null, 'invalid', '192.168.XX.XX', null],
    ['XX.XX.XX.XX', null, 'invalid', 'XX.XX.XX.XX', null],
    ['010.1.1.1', null, 'invalid', '010.1.1.1', null],
    ['1.2.3.256', null, 'invalid', '1.2.3.256', null],
    ['not an ip', null, 'invalid', 'not an ip', null],
    [null, null, 'invalid', null, null],
    [null, 'vpc-abc', 'invalid', null, null],
  ];
  it.each(cases)('%s with vpcId %s is %s', (ip, vpc, kind, text, family) => {
    expect(classifySource(ip, vpc)).toEqual({ sourceKind: kind, sourceIp: text, ipFamily: family });
  });
  it('stores an event with an unparseable sourceIpAddress as invalid rather than rejecting it', () => {
    expect(one({ ...bare, sourceIpAddress: '999.1.1.1' })).toMatchObject({ sourceKind: 'invalid', sourceIp: '999.1.1.1' });
    expect(one({ ...bare, sourceIpAddress: '' })).toMatchObject({ sourceKind: 'invalid', sourceIp: null });
  });
});

describe('service and denial classification', () => {
  it('marks exempt services by serviceName or by the first label of eventSource', () => {
    expect(one({ ...bare, serviceName: 'Mns' }).exemptService).toBe(true);
    expect(one({ ...bare, serviceName: 'X', eventSource: 'eventbridge.cn-hangzhou.aliyuncs.com' }).exemptService).toBe(true);
    expect(one(bare).exemptService).toBe(false);
  });
  it('marks ACL denials from errorCode or errorMessage, case-insensitively', () => {
    expect(one({ ...bare, errorCode: 'AccessKeyId.AccessPolicyDenied' }).aclDenied).toBe(true);
    expect(one({ ...bare, errorMessage: 'Specified access key DENIED due to access policy.' }).aclDenied).toBe(true);
    expect(one({ ...bare, errorCode: 'Forbidden.RAM' }).aclDenied).toBe(false);
  });
});

describe('event time', () => {
  it('normalizes ISO 8601 with an offset to UTC and refuses impossible dates', () => {
    expect(parseEventTime('2021-01-01T08:00:00+08:00')).toBe('2021-01-01T00:00:00Z');
    expect(parseEventTime('2021-01-01 00:00:00')).toBe('2021-01-01T00:00:00Z');
    expect(parseEventTime('2021-01-01T00:00:00.250Z')).toBe('2021-01-01T00:00:00.250Z');
    for (const bad of ['2021-02-30T00:00:00Z', '2021-13-01T00:00:00Z', 'yesterday', '1609459200', '2021-01-01T24:00:00Z']) {
      expect(parseEventTime(bad), bad).toBeNull();
    }
  });

  it('reads the YYYY-MM-DDTHH:MM:SSZ form ActionTrail writes exactly as the general ISO 8601 reading does', () => {
    // A leading space takes the general path (it trims); the bare text takes the one for ActionTrail's form.
    const two = (n: number): string => String(n).padStart(2, '0');
    fc.assert(
      fc.property(
        fc.integer({ min: 1000, max: 9999 }), fc.integer({ min: 0, max: 13 }), fc.integer({ min: 0, max: 32 }),
        fc.integer({ min: 0, max: 25 }), fc.integer({ min: 0, max: 61 }), fc.integer({ min: 0, max: 61 }),
        (year, month, day, hour, minute, second) => {
          const text = `${year}-${two(month)}-${two(day)}T${two(hour)}:${two(minute)}:${two(second)}Z`;
          expect(parseEventTime(text)).toBe(parseEventTime(` ${text}`));
        },
      ),
      { numRuns: 5000 },
    );
    for (const leap of ['2024-02-29T00:00:00Z', '2000-02-29T23:59:59Z']) expect(parseEventTime(leap)).toBe(leap);
    for (const notLeap of ['2023-02-29T00:00:00Z', '1900-02-29T00:00:00Z', '2100-02-29T00:00:00Z']) expect(parseEventTime(notLeap)).toBeNull();
  });
});

describe('source classification', () => {
  it('gives the same answer for a source text however often it is asked, with or without a vpcId', () => {
    for (const ip of ['203.0.113.9', '10.0.0.1', '2408:4000::5', 'internal', 'ecs.aliyuncs.com', 'garbage']) {
      const first = [classifySource(ip, null), classifySource(ip, 'vpc-a')];
      for (let i = 0; i < 3; i++) expect([classifySource(ip, null), classifySource(ip, 'vpc-b')]).toEqual(first);
    }
    expect(classifySource('10.0.0.1', 'vpc-a').sourceKind).toBe('vpc');
    expect(classifySource('10.0.0.1', null).sourceKind).toBe('internal');
  });
});

describe('rejections', () => {
  const reasonOf = (raw: unknown): string[] => normalizeRecord(raw).rejections.map((r) => r.reason);
  it('names why a record cannot be an event and keeps its raw text', () => {
    const r = normalizeRecord('{"eventId": "x", ');
    expect(r.rejections[0]).toMatchObject({ reason: 'malformed-json', raw: '{"eventId": "x", ' });
    expect(reasonOf({ ...bare, eventId: undefined })).toEqual(['missing-event-id']);
    expect(reasonOf({ ...bare, eventId: '  ' })).toEqual(['missing-event-id']);
    expect(reasonOf({ ...bare, userIdentity: undefined })).toEqual(['missing-user-identity']);
    expect(reasonOf({ ...bare, userIdentity: 'alice' })).toEqual(['missing-user-identity']);
    expect(reasonOf({ ...bare, eventTime: undefined })).toEqual(['missing-event-time']);
    expect(reasonOf({ ...bare, eventTime: 'last tuesday' })).toEqual(['bad-event-time']);
    expect(reasonOf('"just a string"')).toEqual(['not-an-object']);
    expect(reasonOf({ hello: 'world' })).toEqual(['unknown-shape']);
    expect(reasonOf({ event: '{not json' })).toEqual(['malformed-json']);
    expect(reasonOf('{"a":"\u0000\u0001"}')).toEqual(['binary-data']);
    expect(reasonOf('x'.repeat(MAX_RECORD_CHARS + 1))).toEqual(['line-too-long']);
  });
});
