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

/** Exponential backoff with "equal jitter": half fixed, half random, so retries spread out. */
export function backoffDelay(attempt: number, policy: Pick<RetryPolicy, 'minDelayMs' | 'maxDelayMs'>): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.minDelayMs * 2 ** attempt);
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

/** `Retry-After` is either delta-seconds or an HTTP date. Returns ms, or undefined when absent/invalid. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null || value.trim() === '') return undefined;
  const seconds = Number(value);
  const ms = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(value) - now;
  if (!Number.isFinite(ms)) return undefined;
  return Math.min(Math.max(ms, 0), MAX_RETRY_AFTER_MS);
}

/** setTimeout as a promise that rejects with the signal's reason when aborted. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
