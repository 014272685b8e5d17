/**
 * How the producer SDK retries transient HTTP failures: the public `retry` option and its
 * defaults. The waiting itself (backoff with jitter, `Retry-After`, sleep) is the protocol's one
 * copy in protocol/timing.ts, shared with the widget and the server, so every client of a
 * progress-tracker server backs off the same way; this file only holds the SDK's numbers.
 */

/** How the SDK retries transient failures (network errors, timeouts, 5xx, 429). */
export interface RetryPolicy {
  /** Retries after the first attempt (0 disables retrying). Default 6. */
  retries: number;
  /** First backoff delay in ms. Default 200. */
  minDelayMs: number;
  /** Largest backoff delay in ms (a server's `Retry-After` may ask for more, up to 60 s). Default 10 000. */
  maxDelayMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { retries: 6, minDelayMs: 200, maxDelayMs: 10_000 };

/** A `Retry-After` above this is treated as this: a producer should not stall for minutes. */
export const MAX_RETRY_AFTER_MS = 60_000;
