/**
 * How every client of the protocol waits: retry backoff, the server's `Retry-After`, and the
 * small helpers around them. One copy for the widget, the producer SDK and the server's own
 * outbound calls (polling adapters, webhooks), so they all back off the same way.
 * Browser-safe: timers and AbortSignal only.
 */

export interface BackoffOptions {
  /** Delay ceiling of the first retry (ms). */
  baseMs: number;
  /** Largest ceiling (ms). */
  maxMs: number;
  /** 0..1 source of randomness (injectable for tests). */
  random?: () => number;
}

/**
 * Exponential backoff with "equal jitter" before retry number `attempt` (0 = the first retry):
 * the ceiling base·2^attempt, capped at maxMs, then a random value in its upper half, so many
 * clients failing together (a server restart, an upstream down) do not come back in lockstep.
 */
export function backoffDelay(attempt: number, { baseMs, maxMs, random = Math.random }: BackoffOptions): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** clamp(attempt, 0, 30));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/**
 * `Retry-After` (delta-seconds or an HTTP date) in ms from `now`, at most `maxMs`; undefined when
 * absent or invalid.
 */
export function parseRetryAfter(value: string | null | undefined, now = Date.now(), maxMs = Infinity): number | undefined {
  const text = value?.trim();
  if (!text) return undefined;
  const ms = /^\d+(\.\d+)?$/.test(text) ? Number(text) * 1000 : Date.parse(text) - now;
  if (!Number.isFinite(ms)) return undefined;
  return Math.round(clamp(ms, 0, maxMs));
}

/** setTimeout as a promise; rejects with the signal's reason when aborted. */
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

/** `value` within lo..hi; NaN becomes lo. */
export const clamp = (value: number, lo: number, hi: number): number => (value > hi ? hi : value >= lo ? value : lo);

/** A fraction within 0..1 (progress); anything not finite becomes 0. */
export const clamp01 = (value: number): number => (Number.isFinite(value) ? clamp(value, 0, 1) : 0);
