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
