// One error hierarchy. Every error says what went wrong and what to do; the CLI edge maps it to an exit code.

/** Exit codes, documented in README. */
export const EXIT = {
  OK: 0,
  /** Bad flags or arguments, unknown key, contradictory options. */
  USAGE: 1,
  /** Some input was rejected (quarantined) but everything valid was committed. */
  PARTIAL: 2,
  /** Nothing (more) could be done: I/O failure, corrupt database, unreachable source. */
  FATAL: 3,
  /** The command worked and found something a person must look at: a simulation that would break traffic,
   *  drift or new findings in a nightly run, a tampered approval. */
  ATTENTION: 4,
} as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export interface KeyfenceErrorOptions {
  /** What the operator can do about it. */
  hint?: string;
  cause?: unknown;
  retriable?: boolean;
  /** Structured context: file, line, JSON path, key, … */
  context?: Record<string, unknown>;
}

export class KeyfenceError extends Error {
  readonly hint: string | undefined;
  readonly retriable: boolean;
  readonly context: Record<string, unknown>;
  readonly exitCode: ExitCode = EXIT.FATAL;

  constructor(message: string, options: KeyfenceErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'KeyfenceError';
    this.hint = options.hint;
    this.retriable = options.retriable ?? false;
    this.context = options.context ?? {};
  }
}

/** The command line asked for something impossible or contradictory. */
export class UsageError extends KeyfenceError {
  override readonly exitCode = EXIT.USAGE;
  constructor(message: string, options?: KeyfenceErrorOptions) {
    super(message, options);
    this.name = 'UsageError';
  }
}

/** An input file (proposal, ACL, config) is invalid; `context.path` names the offending entry. */
export class InvalidInputError extends KeyfenceError {
  override readonly exitCode = EXIT.USAGE;
  constructor(message: string, options?: KeyfenceErrorOptions) {
    super(message, options);
    this.name = 'InvalidInputError';
  }
}

/** The store is missing, empty for the request, or not a keyfence database. */
export class StoreError extends KeyfenceError {
  constructor(message: string, options?: KeyfenceErrorOptions) {
    super(message, options);
    this.name = 'StoreError';
  }
}

/** A source (file, SLS, Kafka) failed in a way retries did not cure. */
export class SourceError extends KeyfenceError {
  constructor(message: string, options?: KeyfenceErrorOptions) {
    super(message, options);
    this.name = 'SourceError';
  }
}

export function isKeyfenceError(e: unknown): e is KeyfenceError {
  return e instanceof KeyfenceError;
}
