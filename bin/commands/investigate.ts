// explain, denials, simulate, backtest, drift: registration only. Each handler is in a module of its own
// (explain.ts, denials.ts, …), imported when its command runs, so `explain` never loads the replay or
// recommend code. Handlers open the store read-only, call analyze/ and recommend/, and print text or one JSON
// object; the exit code says whether a person is needed.
import type { Command } from 'commander';
import { lazyAction, withCommonOptions } from '../common.ts';

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

export function registerInvestigate(program: Command): void {
  withCommonOptions(
    program
      .command('explain')
      .description('why would (or did) a call with this key from this source pass or fail the ACLs, and the smallest fix')
      .requiredOption('--key <accessKeyId>', 'the AccessKey ID')
      .requiredOption('--ip <address>', 'the source address as ActionTrail recorded it')
      .option('--vpc <vpcId>', 'the VPC ID, when the call came through a VPC endpoint')
      .option('--service <name>', 'the service or endpoint, e.g. ecs.aliyuncs.com (exempt services are never denied)')
      .option('--acl <file>', 'the ACLs in force (proposal JSON with statuses, or AccessKeyPolicy documents)')
      .option('--since <duration>', 'history to look back over', '90d'),
    { multiDb: true },
  ).action(lazyAction(async () => (await import('./explain.ts')).explainCommand));

  withCommonOptions(
    program
      .command('denials')
      .description('calls refused by an ACL (AccessPolicyDenied), grouped by key and source, each explained')
      .option('--since <duration>', 'look back over', '7d')
      .option('--key <accessKeyId>', 'only this key (repeatable)', collect)
      .option('--acl <file>', 'the ACLs in force, to explain each denial'),
    { multiDb: true },
  ).action(lazyAction(async () => (await import('./denials.ts')).denialsCommand));

  withCommonOptions(
    program
      .command('simulate')
      .description('replay stored history against a proposal (or --acl): what would be denied; exit 4 when legitimate traffic would break')
      .argument('[proposal]', 'proposal JSON (or approval record); applied over --acl when both are given')
      .option('--since <duration>', 'history to replay', '30d')
      .option('--acl <file>', 'the ACLs in force')
      .option('--examples <n>', 'denied sources listed per key', '5'),
    { multiDb: true },
  ).action(lazyAction(async () => (await import('./simulate.ts')).simulateCommand));

  withCommonOptions(
    program
      .command('backtest')
      .description('recommend on a training window, replay the test window after it, report what would have broken')
      .option('--train <duration>', 'training window', '30d')
      .option('--test <duration>', 'test window (the newest days)', '7d')
      .option('--scope <scope>', 'key | account | auto')
      .option('--min-days <n>', 'recommend: minimum active days of a source')
      .option('--min-calls <n>', 'recommend: minimum calls of a source')
      .option('--headroom <x>', 'recommend: how far an entry may widen beyond what was seen')
      .option('--allow-broad', 'recommend: allow prefixes shorter than /16 (IPv4) or /32 (IPv6)')
      .option('--include <source>', 'recommend: admit this source even if it looks like a leak (repeatable)', collect)
      .option('--truth <file>', 'the fixtures generator\'s truth.json: adds the ground-truth view')
      .option('--acl <file>', 'the ACLs in force: the proposal is replayed applied over them'),
    { multiDb: true },
  ).action(lazyAction(async () => (await import('./backtest.ts')).backtestCommand));

  withCommonOptions(
    program
      .command('drift')
      .description('what changed since approval: new sources that would be denied, unused entries, dormant and new keys; exit 4 when anything needs a person')
      .requiredOption('--approved <file>', 'the approved proposal (or approval record)')
      .option('--since <duration>', 'recent traffic to check against the approval', '1d')
      .option('--unused-days <n>', 'entries and keys with no call in this many days are reported', '30')
      .option('--acl <file>', 'the ACLs in force: the approval is checked applied over them'),
    { multiDb: true },
  ).action(lazyAction(async () => (await import('./drift.ts')).driftCommand));
}
