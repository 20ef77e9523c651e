// The nightly configuration file (keyfence.config.json), validated with a schema so that every error
// names the exact field. Secrets never live here: SLS uses the credentials chain, Kafka a password variable.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { z } from 'zod';
import { InvalidInputError } from '../model/errors.ts';
import { parseDuration } from '../model/window.ts';

const duration = z.string().refine((s) => parseDuration(s) !== null, { message: 'must be a duration such as 30d, 12h or 2w' });

const kafkaSource = z.strictObject({
  brokers: z.array(z.string().min(1)).min(1),
  topic: z.string().min(1),
  group: z.string().min(1),
  ssl: z.boolean().optional(),
  saslMechanism: z.enum(['plain', 'scram-sha-256', 'scram-sha-512']).optional(),
  saslUsername: z.string().optional(),
  /** Name of the environment variable holding the SASL password. */
  saslPasswordEnv: z.string().optional(),
});

const slsSource = z.strictObject({
  endpoint: z.string().min(1),
  project: z.string().min(1),
  logstore: z.string().min(1),
});

export const nightlyConfigSchema = z.strictObject({
  /** Database file (relative paths are relative to the config file). */
  db: z.string().min(1).default('keyfence.duckdb'),
  /** Folder for dated artifacts. */
  output: z.string().min(1).default('keyfence-out'),
  sources: z
    .strictObject({
      files: z.array(z.string().min(1)).optional(),
      sls: slsSource.optional(),
      kafka: kafkaSource.optional(),
    })
    .default({}),
  window: duration.default('30d'),
  recommend: z
    .strictObject({
      scope: z.enum(['key', 'account', 'auto']).optional(),
      minDays: z.number().int().min(0).optional(),
      minCalls: z.number().int().min(0).optional(),
      headroom: z.number().int().min(0).max(16).optional(),
      allowBroad: z.boolean().optional(),
    })
    .default({}),
  /** The approval file drift is measured against. */
  approved: z.string().min(1).optional(),
  findings: z.strictObject({ dormantDays: z.number().int().min(1).optional() }).default({}),
  drift: z.strictObject({ since: duration.optional(), unusedDays: z.number().int().min(1).optional() }).default({}),
  /** Prune events older than this (aggregates needed by drift are kept). */
  keep: duration.optional(),
});

export type NightlyConfig = z.infer<typeof nightlyConfigSchema>;

/** Turns a zod issue path into the JSON path people read: `sources.kafka.brokers[0]`. */
export function jsonPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const part of path) out += typeof part === 'number' ? `[${part}]` : out ? `.${String(part)}` : String(part);
  return out || '(root)';
}

export function parseNightlyConfig(value: unknown, file: string): NightlyConfig {
  const result = nightlyConfigSchema.safeParse(value);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const path = jsonPath(issue.path.length > 0 ? issue.path : 'keys' in issue && Array.isArray(issue.keys) ? [issue.keys[0] as string] : []);
    throw new InvalidInputError(`${file}: ${path}: ${issue.message}`, {
      context: { file, path, issues: result.error.issues.map((i) => ({ path: jsonPath(i.path), message: i.message })) },
      hint: 'see docs/review.md, "Configuration", for the fields',
    });
  }
  const base = dirname(resolve(file));
  const config = result.data;
  return {
    ...config,
    db: resolve(base, config.db),
    output: resolve(base, config.output),
    approved: config.approved ? resolve(base, config.approved) : undefined,
    sources: { ...config.sources, files: config.sources.files?.map((f) => resolve(base, f)) },
  };
}

export function loadNightlyConfig(file: string): NightlyConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new InvalidInputError(`cannot read ${file}: ${(e as Error).message}`, { hint: 'pass --config FILE', context: { file } });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new InvalidInputError(`${file} is not valid JSON: ${(e as Error).message}`, { context: { file } });
  }
  return parseNightlyConfig(value, file);
}
