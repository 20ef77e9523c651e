// Owning the retry loop around each SLS call: bounded attempts, exponential backoff with full jitter. Transient
// failures (throttling, server busy, 5xx, connection resets, a truncated body) are retried; signature, permission
// and not-found errors never are, and the caller sees a SourceError that says what to do.
import { SourceError } from '../../model/errors.ts';
import { SlsServiceError } from './sls-gateway.ts';

export interface RetryPolicy {
  /** Total attempts, the first included. */
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** Injected for tests and benchmarks. */
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
  /** Told about each retry (for counters and logs; never the credentials: errors carry none). */
  onRetry?: (info: { call: string; attempt: number; delayMs: number; reason: string }) => void;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { attempts: 8, baseDelayMs: 200, maxDelayMs: 15_000 };

/** SLS error codes worth another try: quota and load shedding, and the server's own failures. */
const TRANSIENT_CODES = new Set([
  'ReadQuotaExceed', 'WriteQuotaExceed', 'ShardReadQuotaExceed', 'ServerBusy', 'InternalServerError', 'RequestTimeout',
  'ExceedQuota', 'QuotaExceed', 'ServiceUnavailable', 'Throttling',
  // ours: an answer that is not whole (short body, Incomplete query progress, a shard that stops short of its end)
  'IncompleteAnswer', 'QueryIncomplete', 'ShardStalled',
]);
/** Credentials or permissions: retrying cannot help and may lock the key out. */
const AUTH_CODES = new Set(['SignatureNotMatch', 'Unauthorized', 'InvalidAccessKeyId', 'SecurityTokenExpired', 'InvalidSecurityToken', 'RequestTimeExpired', 'ProjectForbidden', 'AccessDenied']);
const NETWORK_CODES = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'ECONNREFUSED', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH', 'ERR_STREAM_PREMATURE_CLOSE', 'UND_ERR_SOCKET', 'ReadTimeout', 'ConnectTimeout']);

export type Disposition = 'transient' | 'auth' | 'fatal';

function errorCode(e: unknown): string {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : '';
}

export function classifySlsError(e: unknown): Disposition {
  if (e instanceof SlsServiceError) {
    if (AUTH_CODES.has(e.code) || e.statusCode === 401 || (e.statusCode === 403 && !TRANSIENT_CODES.has(e.code))) return 'auth';
    if (TRANSIENT_CODES.has(e.code) || e.statusCode >= 500 || e.statusCode === 429) return 'transient';
    return 'fatal';
  }
  const code = errorCode(e);
  if (NETWORK_CODES.has(code)) return 'transient';
  const message = e instanceof Error ? e.message : String(e);
  // The default credential chain found nothing usable (no env, profile, RAM role, OIDC).
  if (/unable to get credentials/i.test(message)) return 'auth';
  // A connection cut mid-body surfaces as "aborted", "socket hang up", a premature close, or a short body that the
  // gateway's decompressor or our protobuf decoder rejects: all are the same transient cut.
  if (/socket hang up|aborted|premature close|ECONNRESET|timeout|Failed to decompress|unexpected uncompressed size|index out of range|invalid wire type/i.test(message)) return 'transient';
  return 'fatal';
}

function describe(e: unknown): string {
  if (e instanceof SlsServiceError) return `${e.code} (HTTP ${e.statusCode}${e.requestId ? `, request ${e.requestId}` : ''}): ${e.message.replace(/^[^:]+: /, '')}`;
  return e instanceof Error ? e.message : String(e);
}

function toSourceError(call: string, e: unknown, disposition: Disposition, attempts: number): SourceError {
  const context: Record<string, unknown> = { call };
  if (e instanceof SlsServiceError) Object.assign(context, { code: e.code, statusCode: e.statusCode, requestId: e.requestId });
  if (disposition === 'auth') {
    return new SourceError(`SLS refused ${call}: ${describe(e)}`, {
      cause: e,
      context,
      hint: 'check the credentials the default chain resolves (env ALIBABA_CLOUD_ACCESS_KEY_ID/SECRET, profile, ECS RAM role, OIDC) and that the RAM policy grants log:ListShards and log:GetCursorOrData (log:GetLogStoreLogs for --engine sls) on this project/logstore',
    });
  }
  if (disposition === 'transient') {
    const stalled = e instanceof SlsServiceError && e.code === 'ShardStalled';
    return new SourceError(`SLS ${call} still failing after ${attempts} attempts: ${describe(e)}`, {
      cause: e,
      context,
      retriable: true,
      hint: stalled
        ? 'the shard gives no logs before its end cursor: if --to is earlier than where the last run stopped, the stored cursor is already past it (drop --to)'
        : 'the service is throttling or unreachable; everything committed so far is checkpointed, run the same command again later to resume',
    });
  }
  return new SourceError(`SLS ${call} failed: ${describe(e)}`, { cause: e, context, hint: 'check --endpoint, --project and --logstore' });
}

const realSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs `fn` until it succeeds, a non-transient error occurs, or the attempts run out. */
export async function withRetries<T>(call: string, fn: () => Promise<T>, policy: RetryPolicy = DEFAULT_RETRY_POLICY): Promise<T> {
  const sleep = policy.sleep ?? realSleep;
  const random = policy.random ?? Math.random;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      const disposition = classifySlsError(e);
      if (disposition !== 'transient' || attempt >= policy.attempts) throw toSourceError(call, e, disposition, attempt);
      const cap = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
      const delayMs = Math.round(cap / 2 + random() * (cap / 2));
      policy.onRetry?.({ call, attempt, delayMs, reason: describe(e) });
      await sleep(delayMs);
    }
  }
}
