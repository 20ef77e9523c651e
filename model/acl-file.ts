// Reading "the ACLs in force" (or a proposal) from JSON text: the proposal contract (a `status` per ACL) and
// the IMS `AccessKeyPolicy` documents (`account` and each AccessKey ID → `{Version, Status, Statements}`).
// Everything is validated against the vendor's limits before it reaches `compileAcl`; the first problem is
// reported with the exact JSON path of the offending entry (`accessKeys[3].public.cidrs[12]`).
// Pure: the caller reads the file.
import { isPrivateV4, isPublicAddress, parsePrefix } from './address.ts';
import {
  ALLOW_ALL_VPC,
  MAX_ENTRIES_PER_ACL,
  MAX_PUBLIC_ACLS,
  MAX_VPC_RULES,
  compileAcl,
  isTemporaryKey,
  type AclsInForce,
} from './acl-rules.ts';
import { InvalidInputError } from './errors.ts';
import type { AclProposal, AclRules, AclStatus, Excluded } from './types.ts';

export type AclFileShape = 'proposal' | 'ims';

/** What a valid file holds, as plain rules (for display and fixes) and compiled (for `decide`). */
export interface LoadedAcls {
  shape: AclFileShape;
  /** Whether the file was an approval record wrapping the proposal in a `proposal` field. */
  wrapped: boolean;
  accountLevel: AclRules | null;
  /** Key-level ACLs, sorted by AccessKey ID. */
  keyLevel: Map<string, AclRules>;
  /** Every AccessKey ID the file names, sorted (also keys whose Inactive empty policy means "no ACL"). */
  namedKeys: string[];
  inForce: AclsInForce;
  /** The proposal itself when the file was one (evidence, warnings, window…). */
  proposal: AclProposal | null;
  /** Accepted but worth saying: host bits masked, duplicates. Each names its path. */
  notes: string[];
}

export interface AclFileOptions {
  /** Name of the file, for messages. */
  source?: string;
  /** AccessKey IDs the store knows: a key outside it is rejected (a typo, or the wrong store). */
  knownKeys?: ReadonlySet<string> | null;
  /**
   * `note`: IMS documents naming a key outside `knownKeys` are read, with a note, instead of rejected: a dump
   * of the account's policies lists every key, and keys that never made a call are normal there. Proposals
   * stay strict (they name only keys they were computed from). Default `reject`.
   */
  unknownKeysInIms?: 'reject' | 'note';
}

const STATUSES: readonly AclStatus[] = ['draft', 'approved', 'enabled', 'disabled'];
const VPC_ID = /^vpc-[0-9a-z]+$/i;

class Reader {
  readonly notes: string[] = [];
  constructor(private readonly source: string) {}

  fail(path: string, problem: string, hint?: string): never {
    const where = path === '' ? '(top level)' : path;
    throw new InvalidInputError(`${this.source}: ${where}: ${problem}`, {
      hint: hint ?? 'fix that entry and run again',
      context: { file: this.source, path: where },
    });
  }
}

/** Parses and validates an ACL or proposal file's text. Throws InvalidInputError naming the JSON path. */
export function parseAclText(text: string, options: AclFileOptions = {}): LoadedAcls {
  const source = options.source ?? 'ACL file';
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new InvalidInputError(`${source}: (top level): not valid JSON (${e instanceof Error ? e.message : String(e)})`, {
      hint: 'give a proposal JSON (keyfence recommend --format json), an approval record, or AccessKeyPolicy documents',
      context: { file: source, path: '(top level)' },
    });
  }
  return readAclValue(value, options);
}

/** Validates an already-parsed value (see `parseAclText`). */
export function readAclValue(value: unknown, options: AclFileOptions = {}): LoadedAcls {
  const r: Reader = new Reader(options.source ?? 'ACL file');
  if (!isObject(value)) r.fail('', 'expected a JSON object');
  let body: Record<string, unknown> = value;
  let prefix = '';
  let wrapped = false;
  if ('proposal' in value && !('accessKeys' in value)) {
    if (!isObject(value.proposal)) r.fail('proposal', 'expected the wrapped proposal object');
    body = value.proposal;
    prefix = 'proposal.';
    wrapped = true;
  }
  const loaded = looksLikeProposal(body) ? readProposal(r, body, prefix) : readImsDocuments(r, body);
  if (options.knownKeys) {
    for (const [id, path] of loaded.keyPaths) {
      if (options.knownKeys.has(id)) continue;
      // A proposal names only keys it was computed from: an unknown one is a typo or the wrong store. An IMS
      // dump lists every key of the account, and keys that never made a call are normal there.
      if (loaded.shape === 'ims' && options.unknownKeysInIms === 'note') r.notes.push(`${path}: AccessKey ${id} has no event in the store (an unused key, or its history is in another --db): its policy is read, nothing is checked against it`);
      else r.fail(path, `unknown AccessKey ${id}: the store holds no event with it`, 'check the key ID, or pass the --db that holds its history');
    }
  }
  const keyLevel = new Map([...loaded.keyLevel.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return {
    shape: loaded.shape,
    wrapped,
    accountLevel: loaded.accountLevel,
    keyLevel,
    namedKeys: [...new Set(loaded.keyPaths.map(([id]) => id))].sort(),
    inForce: {
      accountLevel: loaded.accountLevel ? compileAcl(loaded.accountLevel) : null,
      keyLevel: new Map([...keyLevel.entries()].map(([k, v]) => [k, compileAcl(v)])),
    },
    proposal: loaded.shape === 'proposal' ? (body as unknown as AclProposal) : null,
    notes: r.notes,
  };
}

/** A proposal built in memory (e.g. by `recommend`) read as ACLs in force, after the same validation. */
export function aclsFromProposal(proposal: AclProposal, options: AclFileOptions = {}): LoadedAcls {
  return readAclValue(JSON.parse(JSON.stringify(proposal)) as unknown, { source: 'proposal', ...options });
}

interface RawLoaded {
  shape: AclFileShape;
  accountLevel: AclRules | null;
  keyLevel: Map<string, AclRules>;
  /** Each key ID with the path of its entry, for the unknown-key check. */
  keyPaths: Array<[string, string]>;
}

function looksLikeProposal(o: Record<string, unknown>): boolean {
  return 'accessKeys' in o || 'accountLevel' in o || ('version' in o && !('Statements' in o));
}

// ---------------------------------------------------------------- the proposal contract

function readProposal(r: Reader, o: Record<string, unknown>, prefix: string): RawLoaded {
  if ('version' in o && o.version !== 1) r.fail(`${prefix}version`, `unsupported version ${JSON.stringify(o.version)}: this keyfence reads version 1`);
  const accountLevel = o.accountLevel === undefined || o.accountLevel === null ? null : readRules(r, o.accountLevel, `${prefix}accountLevel`);
  const keyLevel = new Map<string, AclRules>();
  const keyPaths: Array<[string, string]> = [];
  const keys = o.accessKeys ?? [];
  if (!Array.isArray(keys)) r.fail(`${prefix}accessKeys`, 'expected an array of key-level ACLs');
  const firstPath = new Map<string, string>();
  keys.forEach((k: unknown, i: number) => {
    const path = `${prefix}accessKeys[${i}]`;
    if (!isObject(k)) r.fail(path, 'expected an object with accessKeyId, public and vpc');
    const id = k.accessKeyId;
    if (typeof id !== 'string' || id.trim() === '') r.fail(`${path}.accessKeyId`, 'expected a non-empty AccessKey ID');
    checkKeyId(r, id, `${path}.accessKeyId`);
    const earlier = firstPath.get(id);
    if (earlier) r.fail(`${path}.accessKeyId`, `${id} already has an ACL at ${earlier}: one key-level ACL per key`);
    firstPath.set(id, path);
    keyLevel.set(id, readRules(r, k, path));
    keyPaths.push([id, `${path}.accessKeyId`]);
  });
  return { shape: 'proposal', accountLevel, keyLevel, keyPaths };
}

function readRules(r: Reader, v: unknown, path: string): AclRules {
  if (!isObject(v)) r.fail(path, 'expected an object with public and vpc rules');
  let status: AclStatus | undefined;
  if (v.status !== undefined) {
    if (typeof v.status !== 'string' || !STATUSES.includes(v.status as AclStatus)) {
      r.fail(`${path}.status`, `unknown status ${JSON.stringify(v.status)}`, `use one of ${STATUSES.join(', ')}`);
    }
    status = v.status as AclStatus;
  }
  let publicRule: AclRules['public'] = null;
  if (Array.isArray(v.public)) {
    if (v.public.length > MAX_PUBLIC_ACLS) r.fail(`${path}.public[${MAX_PUBLIC_ACLS}]`, `${v.public.length} public ACLs: at most ${MAX_PUBLIC_ACLS} per account or key`, 'merge them into one public rule of at most 50 entries');
    r.fail(`${path}.public`, 'expected one object {"cidrs": [...]}, not an array');
  }
  if (v.public !== undefined && v.public !== null) {
    if (!isObject(v.public)) r.fail(`${path}.public`, 'expected {"cidrs": [...]} or null (no public rule)');
    const cidrs = readCidrs(r, v.public.cidrs, `${path}.public.cidrs`, 'public');
    publicRule = cidrs.length > 0 ? { cidrs } : null;
  }
  const vpc = readVpcRules(r, v.vpc ?? [], `${path}.vpc`, (rule, i) => ({
    vpcId: rule.vpcId,
    cidrsValue: rule.cidrs,
    idPath: `${path}.vpc[${i}].vpcId`,
    cidrsPath: `${path}.vpc[${i}].cidrs`,
  }));
  return status === undefined ? { public: publicRule, vpc } : { status, public: publicRule, vpc };
}

interface VpcRuleInput {
  vpcId: unknown;
  cidrsValue: unknown;
  idPath: string;
  cidrsPath: string;
}

function readVpcRules(r: Reader, value: unknown, path: string, view: (rule: Record<string, unknown>, i: number) => VpcRuleInput): AclRules['vpc'] {
  if (!Array.isArray(value)) r.fail(path, 'expected an array of VPC rules');
  if (value.length > MAX_VPC_RULES) {
    r.fail(`${path}[${MAX_VPC_RULES}]`, `${value.length} VPC rules: at most ${MAX_VPC_RULES} (8 ACLs per account or key, one of them public)`);
  }
  return readVpcList(r, value.map((rule: unknown, i: number) => {
    if (!isObject(rule)) r.fail(`${path}[${i}]`, 'expected {"vpcId": "vpc-…", "cidrs": [...]}');
    return view(rule, i);
  }));
}

function readVpcList(r: Reader, rules: VpcRuleInput[]): AclRules['vpc'] {
  const seen = new Map<string, string>();
  const out: AclRules['vpc'] = [];
  for (const rule of rules) {
    const id = rule.vpcId;
    if (typeof id !== 'string' || !(id === ALLOW_ALL_VPC || VPC_ID.test(id))) {
      r.fail(rule.idPath, `${JSON.stringify(id)} is not a VPC ID`, `use vpc-… or ${ALLOW_ALL_VPC}`);
    }
    const earlier = seen.get(id);
    if (earlier) r.fail(rule.idPath, `${id} already has a rule at ${earlier}: one rule per VPC`, 'merge the two rules');
    seen.set(id, rule.idPath);
    const cidrs = readCidrs(r, rule.cidrsValue, rule.cidrsPath, 'vpc');
    if (cidrs.length > 0) out.push({ vpcId: id, cidrs });
  }
  return out;
}

function readCidrs(r: Reader, value: unknown, path: string, kind: 'public' | 'vpc'): string[] {
  if (!Array.isArray(value)) r.fail(path, 'expected an array of IP addresses or CIDR blocks');
  if (value.length > MAX_ENTRIES_PER_ACL) {
    r.fail(`${path}[${MAX_ENTRIES_PER_ACL}]`, `${value.length} entries: at most ${MAX_ENTRIES_PER_ACL} IPs or CIDR blocks per ACL`, 'merge entries into wider blocks (keyfence recommend does it optimally)');
  }
  return value.map((entry: unknown, i: number) => {
    const at = `${path}[${i}]`;
    if (typeof entry !== 'string') r.fail(at, `expected an IP or CIDR string, got ${JSON.stringify(entry)}`);
    const prefix = parsePrefix(entry);
    if (!prefix) {
      r.fail(at, `${JSON.stringify(entry)} is not an IP address or CIDR block`, 'write four-part decimal IPv4 or standard IPv6, one entry per string, e.g. 203.0.113.0/24');
    }
    if (prefix.hadHostBits) r.notes.push(`${at}: ${entry} has host bits set; the vendor admits ${prefix.text}`);
    const first = { family: prefix.family, value: prefix.base };
    if (prefix.length > 0) {
      if (kind === 'public' && !isPublicAddress(first)) {
        r.fail(at, `${entry} is not a public address: a public rule admits public egress addresses only`, 'private sources go in a VPC rule with their VPC ID');
      }
      if (kind === 'vpc' && prefix.family === 4 && !isPrivateV4(first)) {
        r.fail(at, `${entry} is a public IPv4 address: a VPC rule admits private addresses inside the VPC`, 'public egress addresses go in the public rule');
      }
    }
    return entry.trim();
  });
}

// ---------------------------------------------------------------- IMS AccessKeyPolicy documents

function readImsDocuments(r: Reader, o: Record<string, unknown>): RawLoaded {
  const names = Object.keys(o);
  if (names.length === 0) r.fail('', 'no ACL: expected a proposal ({"accessKeys": [...]}) or AccessKeyPolicy documents ({"account": {...}, "LTAI…": {...}})');
  let accountLevel: AclRules | null = null;
  const keyLevel = new Map<string, AclRules>();
  const keyPaths: Array<[string, string]> = [];
  for (const name of names) {
    const path = memberPath('', name);
    if (name !== 'account') checkKeyId(r, name, path);
    const rules = readImsPolicy(r, o[name], path);
    if (name === 'account') accountLevel = rules;
    else {
      keyPaths.push([name, path]);
      if (rules) keyLevel.set(name, rules);
    }
  }
  return { shape: 'ims', accountLevel, keyLevel, keyPaths };
}

/** One document, as an object, a JSON string (as the API returns it), or a response `{AccessKeyPolicy: …}`. */
function readImsPolicy(r: Reader, value: unknown, path: string): AclRules | null {
  let doc = value;
  let at = path;
  if (isObject(doc) && 'AccessKeyPolicy' in doc) {
    doc = doc.AccessKeyPolicy;
    at = `${path}.AccessKeyPolicy`;
  }
  if (typeof doc === 'string') {
    try {
      doc = JSON.parse(doc);
    } catch {
      r.fail(at, 'the AccessKeyPolicy string is not valid JSON');
    }
  }
  if (!isObject(doc)) r.fail(at, 'expected an AccessKeyPolicy document {"Version", "Status", "Statements"}');
  if (doc.Version !== undefined && doc.Version !== 1 && doc.Version !== '1') r.fail(`${at}.Version`, `unsupported Version ${JSON.stringify(doc.Version)}: expected 1`);
  if (doc.Status !== 'Active' && doc.Status !== 'Inactive') r.fail(`${at}.Status`, `expected "Active" or "Inactive", got ${JSON.stringify(doc.Status)}`);
  if (!Array.isArray(doc.Statements)) r.fail(`${at}.Statements`, 'expected an array of statements ([] for none; never null)');
  let publicRule: AclRules['public'] = null;
  let publicAt: string | null = null;
  const vpcInputs: VpcRuleInput[] = [];
  doc.Statements.forEach((s: unknown, i: number) => {
    const sp = `${at}.Statements[${i}]`;
    if (!isObject(s)) r.fail(sp, 'expected a statement {"Type", "IPList"}');
    if (s.Type === 'ClassicWhiteList') {
      if (publicAt) r.fail(sp, `a second public statement (the first is ${publicAt}): at most ${MAX_PUBLIC_ACLS} public ACL`, 'merge them into one ClassicWhiteList of at most 50 entries');
      publicAt = sp;
      const cidrs = readCidrs(r, s.IPList, `${sp}.IPList`, 'public');
      publicRule = cidrs.length > 0 ? { cidrs } : null;
    } else if (s.Type === 'VPCWhiteList') {
      if (vpcInputs.length === MAX_VPC_RULES) r.fail(sp, `more than ${MAX_VPC_RULES} VPC statements (8 ACLs, one of them public)`);
      vpcInputs.push({ vpcId: s.Value, cidrsValue: s.IPList, idPath: `${sp}.Value`, cidrsPath: `${sp}.IPList` });
    } else {
      r.fail(`${sp}.Type`, `unknown statement type ${JSON.stringify(s.Type)}`, 'use ClassicWhiteList (public) or VPCWhiteList (VPC)');
    }
  });
  const vpc = readVpcList(r, vpcInputs);
  // The vendor: an Inactive policy with no statements is the same as no policy.
  if (doc.Status === 'Inactive' && doc.Statements.length === 0) return null;
  return { status: doc.Status === 'Active' ? 'enabled' : 'disabled', public: publicRule, vpc };
}

// ---------------------------------------------------------------- helpers

function checkKeyId(r: Reader, id: string, path: string): void {
  if (isTemporaryKey(id)) r.fail(path, `${id} is a temporary STS key: network ACLs never govern STS credentials`, 'remove it; ACLs apply to permanent AccessKeys only');
  if (!/^[A-Za-z0-9.]{8,64}$/.test(id)) r.fail(path, `${JSON.stringify(id)} does not look like an AccessKey ID`);
}

function memberPath(prefix: string, name: string): string {
  const member = /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(name) ? name : `[${JSON.stringify(name)}]`;
  if (prefix === '') return member;
  return member.startsWith('[') ? `${prefix}${member}` : `${prefix}.${member}`;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * A proposal applied over the ACLs in force: its account-level ACL (when it has one) replaces the one in
 * force, and its key-level ACLs replace or add to those in force; the rest stays as configured.
 */
export function overlayAcls(inForce: AclsInForce, proposal: AclsInForce): AclsInForce {
  const keyLevel = new Map(inForce.keyLevel);
  for (const [key, acl] of proposal.keyLevel) keyLevel.set(key, acl);
  return { accountLevel: proposal.accountLevel ?? inForce.accountLevel, keyLevel };
}

/** What a proposal file leaves out on purpose, per key (ACLs-in-force documents have none). */
export function proposalExclusions(file: LoadedAcls | null): Map<string, Excluded[]> {
  const out = new Map<string, Excluded[]>();
  for (const key of file?.proposal?.accessKeys ?? []) if (Array.isArray(key.excluded)) out.set(key.accessKeyId, key.excluded);
  return out;
}
