/**
 * HTTP polling of `GET /v1/jobs/{id}` (a tracker) or `GET /v1/jobs?tag=` (a feed): the last
 * fallback, when neither the WebSocket nor the SSE stream can be used (a proxy that blocks or
 * buffers both).
 * One AbortController per poll (a poll started by pollNow() or stop() aborts the request still
 * under way, so a stale answer is never reported); conditional requests with ETag so an
 * unchanged job costs a 304; the interval follows the ETA (fast near the end, slow for long
 * jobs) and backs off while the server is unreachable.
 */
import { clamp } from '../protocol/index.js';

/** Gateway answers meaning "the server behind me is not there": Bad Gateway, Service Unavailable, Gateway Timeout. */
export const GATEWAY_DOWN: ReadonlySet<number> = new Set([502, 503, 504]);

export interface PollerOptions {
  /** Full URL of the resource, read before every poll (it follows failover). */
  url: () => string;
  getToken: () => Promise<string | undefined>;
  /** A 200 answer's JSON body. */
  onBody: (body: unknown) => void;
  /** An HTTP error answer (4xx/5xx) with the server's error body. */
  onHttpError: (status: number, code: string, message: string) => void;
  /**
   * No server answered: a network-level failure (server down, CORS, DNS) or a gateway's 502/503/504
   * (a proxy whose upstream is gone). `count` consecutive ones so far; `reason` the raw cause.
   */
  onUnreachable: (count: number, reason: { code: string; message: string; status?: number }) => void;
  /** The server answered (200 or 304). */
  onReachable: () => void;
  /** Remaining ms of the current job, to adapt the interval. */
  remainingMs: () => number | null;
  minIntervalMs: number;
  maxIntervalMs: number;
}

export class Poller {
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** The request under way (or the last one); aborted by the next poll and by stop(). */
  private request: AbortController | undefined;
  private etag: string | undefined;
  private failures = 0;
  private running = false;

  constructor(private readonly options: PollerOptions) {}

  get active(): boolean {
    return this.running;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.failures = 0;
    void this.poll();
  }

  stop(): void {
    this.running = false;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.request?.abort();
    this.request = undefined;
  }

  /** Poll now (e.g. the page became visible again). */
  pollNow(): void {
    if (!this.running) return;
    clearTimeout(this.timer);
    void this.poll();
  }

  private async poll(): Promise<void> {
    this.request?.abort();
    const request = (this.request = new AbortController());
    try {
      await this.fetchOnce(this.etag, request.signal);
    } catch {
      // Reported through the callbacks in fetchOnce (an aborted request: not at all).
    }
    // Stopped, or superseded by a newer poll that schedules the next one itself.
    if (!this.running || this.request !== request) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.poll(), this.nextDelay());
  }

  /**
   * The wait before the next poll. Deliberately not protocol's backoffDelay (equal jitter:
   * 50–100% of the ceiling): polling is a steady cadence, not only a retry, so one symmetric
   * ±20% jitter applies to every interval — ETA-paced, backed off or slowed while hidden — and
   * keeps its mean where it was set; while unreachable the interval doubles from the minimum
   * (at most 64×) up to the maximum.
   */
  private nextDelay(): number {
    const { minIntervalMs: min, maxIntervalMs: max } = this.options;
    let delay: number;
    if (this.failures > 0) {
      delay = Math.min(max, min * 2 ** Math.min(this.failures - 1, 6));
    } else {
      const remaining = this.options.remainingMs();
      // A tenth of the remaining time: about ten polls until the end, more often near it.
      delay = remaining === null ? min * 2 : clamp(remaining / 10, min, max);
    }
    if (typeof document !== 'undefined' && document.visibilityState === 'hidden') delay = Math.min(max, delay * 3);
    // ±20% jitter so many clients do not poll in lockstep.
    return Math.round(delay * (0.8 + Math.random() * 0.4));
  }

  private async fetchOnce(etag: string | undefined, signal: AbortSignal): Promise<void> {
    const headers: Record<string, string> = { Accept: 'application/json' };
    const token = await this.options.getToken();
    if (token) headers.Authorization = `Bearer ${token}`;
    if (etag) headers['If-None-Match'] = etag;
    let res: Response;
    try {
      res = await fetch(this.options.url(), { headers, signal, cache: 'no-store' });
    } catch (err) {
      if (signal.aborted) throw err;
      this.failures++;
      this.options.onUnreachable(this.failures, { code: 'network', message: err instanceof Error ? err.message : String(err) });
      throw err;
    }
    if (GATEWAY_DOWN.has(res.status)) {
      // A proxy answered for a server that did not: not "reachable" (that would hide the estimate).
      this.failures++;
      this.options.onUnreachable(this.failures, { code: `http_${res.status}`, message: `HTTP ${res.status} ${res.statusText}`.trim(), status: res.status });
      return;
    }
    this.failures = 0;
    this.options.onReachable();
    if (res.status === 304) return;
    if (!res.ok) {
      let code = `http_${res.status}`;
      let message = res.statusText || `HTTP ${res.status}`;
      try {
        const body = (await res.json()) as { error?: { code?: string; message?: string } };
        if (body.error?.code) code = body.error.code;
        if (body.error?.message) message = body.error.message;
      } catch {
        // Not JSON (or aborted meanwhile: checked below): keep the status line.
      }
      if (signal.aborted) throw signal.reason;
      this.options.onHttpError(res.status, code, message);
      return;
    }
    const body: unknown = await res.json();
    if (signal.aborted) throw signal.reason;
    this.etag = res.headers.get('ETag') ?? undefined;
    this.options.onBody(body);
  }
}
