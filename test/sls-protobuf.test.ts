import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { decodeFlatLogs, decodeLogGroupList, encodeLogGroupList, type SlsLogGroup } from '../ingest/sources/sls-protobuf.ts';

/** The flat logs built from the schema-generated decoder: the reference decodeFlatLogs must match, key order included. */
function reference(body: Uint8Array): Array<[string, string][]> {
  const out: Array<[string, string][]> = [];
  for (const group of decodeLogGroupList(body)) {
    for (const log of group.logs) {
      const raw: Record<string, string> = { __time__: String(log.time), __topic__: group.topic, __source__: group.source };
      for (const [k, v] of group.tags) raw[`__tag__:${k}`] = v;
      for (const [k, v] of log.contents) raw[k] = v;
      out.push(Object.entries(raw));
    }
  }
  return out;
}

const flat = (body: Uint8Array): Array<[string, string][]> => decodeFlatLogs(body).logs.map((log) => Object.entries(log));

const groups: SlsLogGroup[] = [
  {
    topic: 'actiontrail_audit_event',
    source: 'actiontrail',
    tags: [['__receive_time__', '1761955200'], ['region', 'cn-hangzhou']],
    logs: [
      { time: 1761955200, contents: [['event', '{"eventId":"e1","note":"中文 😀 \\"q\\""}']] },
      { time: 4294967295, contents: [['event.eventId', 'e2'], ['event.userIdentity.accessKeyId', 'LTAI5t']] },
    ],
  },
  // Repeated keys (the last wins, as in an object built pair by pair), empty key and value, a log without fields.
  { topic: '', source: '', tags: [['a', '1'], ['a', '2']], logs: [{ time: 0, contents: [['event', 'first'], ['event', 'second'], ['', '']] }, { time: 7, contents: [] }] },
  { topic: 'no logs', source: 'x', tags: [], logs: [] },
];

describe('decodeFlatLogs', () => {
  it('builds the same logs as the schema-generated decoder, keys in the same order, and counts the log groups', () => {
    const body = encodeLogGroupList(groups);
    expect(flat(body)).toEqual(reference(body));
    expect(decodeFlatLogs(body).groups).toBe(3);
    expect(decodeFlatLogs(body).logs[2]).toEqual({ __time__: '0', __topic__: '', __source__: '', '__tag__:a': '2', event: 'second', '': '' });
  });

  it('reads a log group whose topic, source and tags come before its logs, skipping fields it does not know', () => {
    const content = protobuf.Writer.create().uint32((1 << 3) | 2).string('event').uint32((2 << 3) | 2).string('{"eventId":"e3"}').finish();
    const log = protobuf.Writer.create().uint32((1 << 3) | 0).uint32(42).uint32((2 << 3) | 2).bytes(content).uint32((4 << 3) | 5).fixed32(9).finish();
    const tag = protobuf.Writer.create().uint32((1 << 3) | 2).string('k').uint32((2 << 3) | 2).string('v').finish();
    const group = protobuf.Writer.create()
      .uint32((3 << 3) | 2).string('topic-first')
      .uint32((6 << 3) | 2).bytes(tag)
      .uint32((2 << 3) | 2).string('reserved')
      .uint32((9 << 3) | 0).uint32(5) // unknown varint field
      .uint32((1 << 3) | 2).bytes(log)
      .uint32((4 << 3) | 2).string('source-last')
      .finish();
    const body = protobuf.Writer.create().uint32((1 << 3) | 2).bytes(group).finish();
    expect(flat(body)).toEqual(reference(body));
    expect(decodeFlatLogs(body).logs).toEqual([{ __time__: '42', __topic__: 'topic-first', __source__: 'source-last', '__tag__:k': 'v', event: '{"eventId":"e3"}' }]);
  });

  it('throws on a body cut inside a log group, and decodes an empty body to nothing', () => {
    const body = encodeLogGroupList(groups);
    expect(() => decodeFlatLogs(body.subarray(0, body.length - 3))).toThrow();
    expect(() => decodeFlatLogs(body.subarray(0, 40))).toThrow();
    expect(decodeFlatLogs(new Uint8Array(0))).toEqual({ groups: 0, logs: [] });
  });
});
