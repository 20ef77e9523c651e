// What each finding means, as data: code emits only an ID, and the title, severity and advice come from here.
// An ID missing from the catalogue is a programming error and fails loudly.

export type Severity = 'high' | 'medium' | 'low' | 'info';

/** Most severe first: the order findings are listed in. */
export const SEVERITY_ORDER: readonly Severity[] = ['high', 'medium', 'low', 'info'];

export interface FindingMeta {
  id: string;
  title: string;
  severity: Severity;
  /** What a person should do about it. */
  advice: string;
}

const CATALOG = {
  'root-key-in-use': {
    title: 'Root-account AccessKey in use',
    severity: 'high',
    advice: 'The root account should have no AccessKey. Move each workload to a RAM user or role with least privilege, then disable and delete the root AccessKey.',
  },
  'possible-leak': {
    title: 'Burst from a never-seen source: possible leaked key',
    severity: 'high',
    advice: 'Confirm with the key owner whether the source is theirs. If not, rotate the key now (create a new one, switch the workload, disable the old one), review what the calls did, and keep the source out of any ACL.',
  },
  'possible-quiet-leak': {
    title: 'A run of calls from a new, distant source that then stopped: possible leaked key',
    severity: 'medium',
    advice: 'Ask the key owner whether the source was theirs (a temporary job, a move). If nobody claims it, treat it as a leak: rotate the key and review what the calls did.',
  },
  'acl-denied-calls': {
    title: 'Calls refused by a network ACL',
    severity: 'medium',
    advice: 'Run `keyfence explain` on a denied call: either a legitimate workload is broken (add its source to the ACL) or the ACL is keeping out someone who holds the key (rotate it).',
  },
  'dormant-key': {
    title: 'Dormant AccessKey',
    severity: 'medium',
    advice: 'Disable the key; delete it after a grace period if nothing breaks. Keys nobody uses are keys nobody watches.',
  },
  'unusual-source-count': {
    title: 'Key used from far more sources than the account\'s other keys',
    severity: 'medium',
    advice: 'Check whether one key is shared by many workloads or people (give each its own key or role), or whether it runs from a dynamic pool (see dynamic-pool findings).',
  },
  'permanent-key-in-vpc': {
    title: 'Permanent AccessKey used from VPC private addresses',
    severity: 'low',
    advice: 'Applications on ECS, ACK or Function Compute inside a VPC should use an instance or service RAM role (temporary STS credentials) instead of a stored AccessKey.',
  },
  'dynamic-pool': {
    title: 'Sources spread over a dynamic address pool',
    severity: 'low',
    advice: 'The key is used from rotating addresses (autoscaling, Function Compute, hosted CI): an ACL must admit the pool block, or the workload should move to fixed egress (NAT gateway / static IP) or a RAM role.',
  },
} as const satisfies Record<string, Omit<FindingMeta, 'id'>>;

export type FindingId = keyof typeof CATALOG;

/** Every known finding, sorted by ID. */
export function findingCatalog(): FindingMeta[] {
  return (Object.keys(CATALOG) as FindingId[]).sort().map((id) => ({ id, ...CATALOG[id] }));
}

/** The metadata of one finding; an unknown ID throws (a finding the catalogue does not describe is a bug). */
export function findingMeta(id: string): FindingMeta {
  if (!Object.hasOwn(CATALOG, id)) throw new Error(`unknown finding ID ${JSON.stringify(id)}: add it to model/findings-catalog.ts`);
  return { id, ...CATALOG[id as FindingId] };
}

export function severityRank(severity: Severity): number {
  return SEVERITY_ORDER.indexOf(severity);
}
