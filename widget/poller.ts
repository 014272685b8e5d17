/**
 * HTTP polling of `GET /v1/jobs/{id}`: the fallback when the WebSocket cannot be opened.
 * One @lit/task run per poll (its AbortSignal cancels a request made stale by stop(), and its
 * call-id guard drops late answers); conditional requests with ETag so an unchanged job costs
 * a 304; the interval follows the ETA (fast near the end, slow for long jobs) and backs off
 * while the server is unreachable.
 */
import { Task } from '@lit/task';
import type { ReactiveController, ReactiveControllerHost } from 'lit';
import type { Job } from '../protocol/index.js';

export interface PollerOptions {
  /** Full URL of the job resource, read before every poll (it follows failover). */
  url: () => string;
  getToken: () => Promise<string | undefined>;
  onJob: (job: Job) => void;
  /** An HTTP error answer (4xx/5xx) with the server's error body. */
  onHttpError: (status: number, code: string, message: string) => void;
  /** Network-level failure (server down, CORS, DNS): `count` consecutive ones so far. */
  onUnreachable: (count: number) => void;
  /** The server answered (200 or 304). */
  onReachable: () => void;
  /** Remaining ms of the current job, to adapt the interval. */
  remainingMs: () => number | null;
  minIntervalMs: number;
  maxIntervalMs: number;
}

/** A host for the Task outside of any element: Task only needs these to report status. */
class DetachedHost implements ReactiveControllerHost {
  addController(_c: ReactiveController): void {}
  removeController(_c: ReactiveController): void {}
  requestUpdate(): void {}
  get updateComplete(): Promise<boolean> {
    return Promise.resolve(true);
  }
}

type PollResult = 'changed' | 'not-modified';

export class Poller {
  private readonly task: Task<[string | undefined], PollResult>;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private etag: string | undefined;
  private failures = 0;
  private running = false;

  constructor(private readonly options: PollerOptions) {
    this.task = new Task<[string | undefined], PollResult>(new DetachedHost(), {
      autoRun: false,
      task: ([etag], { signal }) => this.fetchOnce(etag, signal),
    });
  }

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
    this.task.abort();
  }

  /** Poll now (e.g. the page became visible again). */
  pollNow(): void {
    if (!this.running) return;
    clearTimeout(this.timer);
    void this.poll();
  }

  private async poll(): Promise<void> {
    try {
      await this.task.run([this.etag]);
    } catch {
      // Reported through the callbacks in fetchOnce.
    }
    if (!this.running) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.poll(), this.nextDelay());
  }

  private nextDelay(): number {
    const { minIntervalMs: min, maxIntervalMs: max } = this.options;
    let delay: number;
    if (this.failures > 0) {
      delay = Math.min(max, min * 2 ** Math.min(this.failures - 1, 6));
    } else {
      const remaining = this.options.remainingMs();
      // A tenth of the remaining time: about ten polls until the end, more often near it.
      delay = remaining === null ? min * 2 : Math.min(max, Math.max(min, remaining / 10));
    }
    if (typeof document !== 'undefined' && document.visibilityState === 'hidden') delay = Math.min(max, delay * 3);
    // ±20% jitter so many clients do not poll in lockstep.
    return Math.round(delay * (0.8 + Math.random() * 0.4));
  }

  private async fetchOnce(etag: string | undefined, signal: AbortSignal): Promise<PollResult> {
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
      this.options.onUnreachable(this.failures);
      throw err;
    }
    this.failures = 0;
    this.options.onReachable();
    if (res.status === 304) return 'not-modified';
    if (!res.ok) {
      let code = `http_${res.status}`;
      let message = res.statusText || `HTTP ${res.status}`;
      try {
        const body = (await res.json()) as { error?: { code?: string; message?: string } };
        if (body.error?.code) code = body.error.code;
        if (body.error?.message) message = body.error.message;
      } catch {
        // Not JSON: keep the status line.
      }
      this.options.onHttpError(res.status, code, message);
      return 'not-modified';
    }
    const body = (await res.json()) as Job | { job: Job };
    const job = 'job' in body && body.job && typeof body.job === 'object' ? body.job : (body as Job);
    this.etag = res.headers.get('ETag') ?? undefined;
    this.options.onJob(job);
    return 'changed';
  }
}
