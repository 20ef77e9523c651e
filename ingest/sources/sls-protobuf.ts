// The wire format of a PullLogs body: a protobuf `LogGroupList` (Simple Log Service "data encoding").
// Decoded with protobufjs from the vendor's schema; the encoder serves the project's test server and fixtures.
import protobuf from 'protobufjs';

/** The vendor's schema. Fields the vendor marks `required` are optional here so a short message decodes and is checked by us. */
const SCHEMA = `
syntax = "proto2";
package sls;
message LogContent { optional string Key = 1; optional string Value = 2; }
message Log { optional uint32 Time = 1; repeated LogContent Contents = 2; optional fixed32 TimeNs = 4; }
message LogTag { optional string Key = 1; optional string Value = 2; }
message LogGroup { repeated Log Logs = 1; optional string Reserved = 2; optional string Topic = 3; optional string Source = 4; repeated LogTag LogTags = 6; }
message LogGroupList { repeated LogGroup logGroupList = 1; }
`;

const root = protobuf.parse(SCHEMA, { keepCase: true }).root;
const LogGroupListType = root.lookupType('sls.LogGroupList');
const LogGroupType = root.lookupType('sls.LogGroup');

/** One log: its time (seconds), and its fields in wire order. */
export interface SlsLog {
  time: number;
  contents: Array<[key: string, value: string]>;
}

export interface SlsLogGroup {
  topic: string;
  source: string;
  tags: Array<[key: string, value: string]>;
  logs: SlsLog[];
}

interface WireContent { Key?: string; Value?: string }
interface WireLog { Time?: number; Contents?: WireContent[] }
interface WireGroup { Logs?: WireLog[]; Topic?: string; Source?: string; LogTags?: WireContent[] }

function pairs(list: WireContent[] | undefined): Array<[string, string]> {
  return (list ?? []).map((c) => [c.Key ?? '', c.Value ?? '']);
}

/** Decodes a `LogGroupList`; throws on a malformed or truncated body. */
export function decodeLogGroupList(body: Uint8Array): SlsLogGroup[] {
  const message = LogGroupListType.decode(body) as unknown as { logGroupList?: WireGroup[] };
  return (message.logGroupList ?? []).map((g) => ({
    topic: g.Topic ?? '',
    source: g.Source ?? '',
    tags: pairs(g.LogTags),
    logs: (g.Logs ?? []).map((l) => ({ time: l.Time ?? 0, contents: pairs(l.Contents) })),
  }));
}

/** One log as the ActionTrail normalizer takes it: `__time__`, `__topic__`, `__source__`, `__tag__:*`, then its fields. */
export type SlsFlatLog = Record<string, string>;

/**
 * Decodes a `LogGroupList` straight into flat logs, in wire order: the same records as building them from
 * `decodeLogGroupList` (keys in the same order, later duplicates winning), without the intermediate message
 * objects and pairs. Throws on a truncated body. Returns the number of log groups too (the answer's declared count).
 */
export function decodeFlatLogs(body: Uint8Array): { groups: number; logs: SlsFlatLog[] } {
  const reader = protobuf.Reader.create(body);
  const logs: SlsFlatLog[] = [];
  let groups = 0;
  while (reader.pos < reader.len) {
    const tag = reader.uint32();
    if (tag >>> 3 === 1 && (tag & 7) === 2) {
      readGroup(reader, reader.uint32(), logs);
      groups++;
    } else reader.skipType(tag & 7);
  }
  return { groups, logs };
}

/** A log group's fields come in any order (protobuf writers put Logs first): its logs are built once it ends. */
function readGroup(reader: protobuf.Reader, length: number, out: SlsFlatLog[]): void {
  const end = reader.pos + length;
  let topic = '';
  let source = '';
  const tags: string[] = [];
  const times: number[] = [];
  const contents: string[][] = [];
  while (reader.pos < end) {
    const tag = reader.uint32();
    const field = tag >>> 3;
    if ((tag & 7) !== 2) reader.skipType(tag & 7);
    else if (field === 1) {
      const fields: string[] = [];
      times.push(readLog(reader, reader.uint32(), fields));
      contents.push(fields);
    } else if (field === 3) topic = reader.string();
    else if (field === 4) source = reader.string();
    else if (field === 6) readPair(reader, reader.uint32(), tags);
    else reader.skipType(2);
  }
  if (reader.pos !== end) throw new Error(`log group runs past its length (${reader.pos} > ${end})`);
  for (const [i, fields] of contents.entries()) {
    const log: SlsFlatLog = { __time__: String(times[i]), __topic__: topic, __source__: source };
    for (let t = 0; t < tags.length; t += 2) log[`__tag__:${tags[t]}`] = tags[t + 1]!;
    for (let f = 0; f < fields.length; f += 2) log[fields[f]!] = fields[f + 1]!;
    out.push(log);
  }
}

/** Reads one Log's contents as key, value, key, value… into `fields`; returns its time. */
function readLog(reader: protobuf.Reader, length: number, fields: string[]): number {
  const end = reader.pos + length;
  let time = 0;
  while (reader.pos < end) {
    const tag = reader.uint32();
    const field = tag >>> 3;
    if (field === 1 && (tag & 7) === 0) time = reader.uint32();
    else if (field === 2 && (tag & 7) === 2) readPair(reader, reader.uint32(), fields);
    else reader.skipType(tag & 7);
  }
  if (reader.pos !== end) throw new Error(`log runs past its length (${reader.pos} > ${end})`);
  return time;
}

/** Reads a LogContent / LogTag (Key = 1, Value = 2; missing ones empty) into `into` as key, value. */
function readPair(reader: protobuf.Reader, length: number, into: string[]): void {
  const end = reader.pos + length;
  let key = '';
  let value = '';
  while (reader.pos < end) {
    const tag = reader.uint32();
    const field = tag >>> 3;
    if (field === 1 && (tag & 7) === 2) key = reader.string();
    else if (field === 2 && (tag & 7) === 2) value = reader.string();
    else reader.skipType(tag & 7);
  }
  if (reader.pos !== end) throw new Error(`log content runs past its length (${reader.pos} > ${end})`);
  into.push(key, value);
}

function toWire(group: SlsLogGroup): WireGroup {
  return {
    Topic: group.topic,
    Source: group.source,
    LogTags: group.tags.map(([Key, Value]) => ({ Key, Value })),
    Logs: group.logs.map((l) => ({ Time: l.time, Contents: l.contents.map(([Key, Value]) => ({ Key, Value })) })),
  };
}

/** Encodes one `LogGroup` as the bytes of a `LogGroupList.logGroupList` entry (field 1, length-delimited), so lists concatenate. */
export function encodeLogGroupEntry(group: SlsLogGroup): Uint8Array {
  const inner = LogGroupType.encode(toWire(group)).finish();
  const writer = protobuf.Writer.create();
  writer.uint32((1 << 3) | 2).bytes(inner);
  return writer.finish();
}

export function encodeLogGroupList(groups: SlsLogGroup[]): Uint8Array {
  return LogGroupListType.encode({ logGroupList: groups.map(toWire) }).finish();
}
