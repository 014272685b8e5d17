/**
 * How the producer SDK retries transient HTTP failures: the public `retry` option and its
 * defaults. The waiting itself (backoff with jitter, `Retry-After`, sleep) is the protocol's one
 * copy in protocol/timing.ts, shared with the widget and the server, so every client of a
 * progress-tracker server backs off the same way; this file only holds the SDK's numbers.
 */

/**
 * How the SDK retries transient failures (network errors, timeouts, 5xx, 429). A request is
 * retried until `maxRetryTime` has passed since its first attempt or `retries` retries were
 * made, whichever comes first; by default only the time budget applies (10 minutes).
 */
export interface RetryPolicy {
  /**
   * The retry budget in time (ms), counted from a request's first attempt: no retry starts after
   * it, and the last backoff is shortened to end on it. Default 600 000 (10 minutes).
   */
  maxRetryTime: number;
  /**
   * Most retries after the first attempt (0 disables retrying). Default `Infinity`: only
   * `maxRetryTime` bounds retrying. A finite value ends the retrying earlier if reached first.
   */
  retries: number;
  /** First backoff delay in ms. Default 200. */
  minDelayMs: number;
  /** Largest backoff delay in ms (a server's `Retry-After` may ask for more, up to 60 s). Default 10 000. */
  maxDelayMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  maxRetryTime: 600_000,
  retries: Number.POSITIVE_INFINITY,
  minDelayMs: 200,
  maxDelayMs: 10_000,
};

/** A `Retry-After` above this is treated as this: a producer should not stall for minutes. */
export const MAX_RETRY_AFTER_MS = 60_000;
