/**
 * The Producer: the SDK's entry point, holding what a process shares across its jobs (the HTTP
 * context, the control WebSockets behind `onRetry` and `onCancel`, the open JobHandles). It
 * implements JobTransport for its handles, so job-handle.ts never imports this file and the SDK's
 * imports have no cycle (only index.ts imports client.ts). Like every file here, it imports nothing outside producer/ but
 * protocol/, Node built-ins and `ws`: the SDK ships without the server.
 */
import { randomUUID } from 'node:crypto';
import {
  LIMITS,
  type CreateJobRequest,
  type EventsAccepted,
  type Job,
  type JobEvent,
  type JobStatus,
} from '../protocol/index.js';
import type { CancelHandler, ConnectionState, ControlListener, RetryControl, RetryHandler, Unsubscribe } from './control.js';
import { ControlSocket } from './control-socket.js';
import { ProducerError } from './errors.js';
import { requestJson, type HttpContext, type RetryAttempt } from './http.js';
import { JobHandle, type JobTransport } from './job-handle.js';
import { DEFAULT_RETRY_POLICY, type RetryPolicy } from './retry-policy.js';

export interface ProducerOptions {
  /** The server's base URL, e.g. `https://progress.example.com` (a path prefix is kept). */
  url: string | URL;
  /** A JWT with scope `progress:write` (add `progress:read` to read jobs back). */
  token?: string;
  /**
   * Returns a JWT; called before every request, every WebSocket connect, and when the `onRetry`
   * WebSocket's token nears its expiry (at 80% of its `iat`…`exp` lifetime; the socket then
   * switches to the new token in place, without reconnecting), so it can refresh an expiring
   * token (cache it yourself: it is called often). Use instead of `token`.
   */
  tokenProvider?: () => string | Promise<string>;
  /** WebSocket URL for `onRetry` and `onCancel` (`job.signal`); default: `url` with ws(s) and `/v1/ws`. */
  wsUrl?: string | URL;
  /**
   * Retries of transient HTTP failures (network, timeout, 5xx, 429 with `Retry-After`): until
   * `maxRetryTime` (default 600 000 ms = 10 minutes) has passed since a request's first attempt,
   * or `retries` retries (default unbounded) were made, whichever comes first. When a job's
   * events still could not be delivered, its calls reject with `producer_gave_up`.
   */
  retry?: Partial<RetryPolicy>;
  /** Per-attempt HTTP timeout in ms. Default 10 000. */
  timeoutMs?: number;
  /**
   * Most events per request when calls pile up while a request is in flight (they are sent as
   * one array). Default `LIMITS.maxEventsPerRequest`; 1 sends one event per request.
   */
  maxBatch?: number;
  /**
   * Most `progress` entries one job's queue holds while the server is unreachable (default 1000;
   * progress for a step already replaces the unsent one for that step, so this is rarely reached):
   * beyond it the oldest is dropped. Structural events (`step_start`, `step_end`, `step_failed`,
   * `job_end`) are never dropped.
   */
  maxQueuedEvents?: number;
  /**
   * Every failed call of a job handle (also rejected to whoever awaits it, and reported once
   * however many calls share it, so calls fired without awaiting never reject unhandled), and
   * failures that no call can reject with: WebSocket problems (including a token the socket's
   * `auth` could not use, and a job dropped because a refreshed token no longer grants it:
   * code `forbidden`, with its `jobId`), `onRetry` and `onCancel` handlers that throw.
   */
  onError?: (err: ProducerError) => void;
  /** The control WebSocket's state changes (`open` once the server accepted its token). */
  onConnection?: (state: ConnectionState) => void;
  /** Called before every HTTP retry (for logs or metrics). */
  onRetryAttempt?: (info: RetryAttempt) => void;
  /**
   * Prefix of the ids the SDK generates for jobs created without one. Default: the token's
   * single `prefix*` grant in its `jobs` claim (so `jobs: ["acme-*"]` gives `acme-<uuid>`).
   */
  idPrefix?: string;
  /** A fetch implementation (default: the global `fetch`). */
  fetch?: typeof fetch;
}

/**
 * A client for the progress-tracker producer API. Create one per process with
 * {@link createProducer}, and {@link Producer.close} it on shutdown.
 *
 * Every write is safe to retry: jobs get a client-side id and events an `eventId`, so the SDK
 * retries transient failures itself and the server never applies an event twice.
 */
export class Producer implements JobTransport {
  private readonly http: HttpContext;
  private readonly abort = new AbortController();
  private readonly wsUrl: string;
  private readonly sockets: ControlSocket[] = [];
  private readonly handles = new Map<string, JobHandle>();
  private readonly globalHandlers = new Set<RetryHandler>();
  private readonly globalWatches = new Map<string, Unsubscribe>();
  private readonly globalCancelHandlers = new Set<CancelHandler>();
  private readonly globalCancelWatches = new Map<string, Unsubscribe>();
  private readonly maxBatch: number;
  private readonly maxQueued: number;
  private readonly token: () => Promise<string>;

  constructor(private readonly options: ProducerOptions) {
    const { token, tokenProvider } = options;
    if (!token && !tokenProvider) throw new TypeError('createProducer: give `token` or `tokenProvider`');
    this.token = tokenProvider ? async () => String(await tokenProvider()) : async () => token!;
    const base = new URL(String(options.url));
    if (base.protocol !== 'http:' && base.protocol !== 'https:') {
      throw new TypeError(`createProducer: url must be http(s), got ${base.protocol}`);
    }
    const baseUrl = base.href.replace(/\/+$/, '');
    this.wsUrl = options.wsUrl
      ? String(options.wsUrl)
      : baseUrl.replace(/^http/, 'ws') + '/v1/ws';
    this.maxBatch = Math.max(1, Math.min(options.maxBatch ?? LIMITS.maxEventsPerRequest, LIMITS.maxEventsPerRequest));
    this.maxQueued = Math.max(1, Math.floor(options.maxQueuedEvents ?? 1000));
    this.http = {
      baseUrl,
      token: this.token,
      refreshableToken: Boolean(tokenProvider),
      retry: retryPolicy(options.retry),
      timeoutMs: options.timeoutMs ?? 10_000,
      fetch: options.fetch ?? globalThis.fetch,
      signal: this.abort.signal,
      onRetryAttempt: options.onRetryAttempt,
    };
  }

  /**
   * Creates a job (`POST /v1/jobs`) and returns its handle. Without `id`, the SDK generates one
   * (`idPrefix` + a UUID), which is what makes a retried create safe: if the first attempt reached the server
   * but its answer was lost, the retry's 409 is recognised as our own job.
   *
   * @throws {ProducerError} `duplicate_job` (409) when `id` belongs to another job,
   *   `bad_request` (400) for an invalid body, `unauthorized` / `forbidden` for the token.
   */
  async createJob(request: CreateJobRequest): Promise<JobHandle> {
    const prefix = this.options.idPrefix ?? creationPrefix(await this.token());
    const body: CreateJobRequest = { ...request, id: request.id ?? `${prefix}${randomUUID()}` };
    const id = body.id!;
    let job: Job | undefined;
    let retried = false;
    const onRetryAttempt = (info: RetryAttempt) => {
      retried = true;
      this.http.onRetryAttempt?.(info);
    };
    try {
      const res = await requestJson<Job>({ ...this.http, onRetryAttempt }, 'POST', '/v1/jobs', body, id);
      job = res.body;
    } catch (err) {
      // A 409 after a retried attempt is most likely our own first attempt: read it back.
      if (!(err instanceof ProducerError && err.status === 409 && retried)) throw err;
      job = await this.getJob(id).catch(() => {
        if (request.id !== undefined) throw err; // the caller's id: cannot tell whose job it is
        return undefined; // our fresh UUID: certainly ours, even if this token cannot read it
      });
      // With the caller's id, only a job of the same shape can be our own first attempt.
      const sameShape = (j: Job) =>
        j.kind === request.kind && j.steps.map((s) => s.id).join('\n') === request.steps.map((s) => s.id).join('\n');
      if (job && request.id !== undefined && !sameShape(job)) throw err;
    }
    const handle = this.job(id);
    if (job) handle.snapshot = job;
    return handle;
  }

  /** A handle for an existing job, e.g. one created before this process restarted. */
  job(id: string): JobHandle {
    let handle = this.handles.get(id);
    if (!handle) {
      handle = new JobHandle(id, this, this.maxBatch, this.maxQueued);
      this.handles.set(id, handle);
      if (this.globalHandlers.size > 0) this.watchForGlobal(id);
      if (this.globalCancelHandlers.size > 0) this.cancelForGlobal(handle);
    }
    return handle;
  }

  /** `GET /v1/jobs/{id}` (needs `progress:read`). */
  async getJob(id: string): Promise<Job> {
    return (await requestJson<Job>(this.http, 'GET', `/v1/jobs/${encodeURIComponent(id)}`, undefined, id)).body;
  }

  /**
   * Sends events as they are (`POST /v1/jobs/{id}/events`), adding an `eventId` where missing.
   * Prefer the {@link JobHandle} methods, which also keep a job's events in order.
   */
  async sendEvents(jobId: string, events: JobEvent | JobEvent[]): Promise<EventsAccepted> {
    const list = (Array.isArray(events) ? events : [events]).map((e) => ({ ...e, eventId: e.eventId ?? randomUUID() }));
    const body = list.length === 1 ? list[0] : list;
    return (
      await requestJson<EventsAccepted>(this.http, 'POST', `/v1/jobs/${encodeURIComponent(jobId)}/events`, body, jobId)
    ).body;
  }

  /** `POST /v1/jobs/{id}/retry` (needs `progress:retry`): what a user's Retry button does. */
  async retryJob(jobId: string, step?: string): Promise<void> {
    await requestJson<unknown>(
      this.http,
      'POST',
      `/v1/jobs/${encodeURIComponent(jobId)}/retry`,
      step === undefined ? {} : { step },
      jobId,
    );
  }

  /**
   * `POST /v1/jobs/{id}/cancel` (needs `progress:cancel`): what a user's Cancel button does. It
   * asks the job's producer to stop (its `onCancel` handlers run, its `job.signal` aborts); the
   * job ends as `canceled` when that producer calls `job.cancel()`, or when the server's grace
   * period (`PT_CANCEL_GRACE`) runs out. A repeated cancel changes nothing (same `seq`).
   *
   * @throws {ProducerError} `already_finished` (409) when the job has ended.
   */
  async cancelJob(jobId: string, reason?: string): Promise<{ seq: number }> {
    return (
      await requestJson<{ seq: number }>(
        this.http,
        'POST',
        `/v1/jobs/${encodeURIComponent(jobId)}/cancel`,
        reason === undefined ? {} : { reason },
        jobId,
      )
    ).body;
  }

  /**
   * Calls `handler` when someone retries the job (the server's `control` message over the
   * WebSocket; needs `progress:write`). Resume from `control.step`: it and the steps after it
   * are pending again, earlier steps stay completed. The socket reconnects and re-subscribes by
   * itself, and a retry that happened while it was down is still delivered (`recovered: true`).
   *
   * With only a handler, listens to every job this producer creates or opens with
   * {@link Producer.job}, from creation until the job completes or is canceled.
   */
  onRetry(jobId: string, handler: RetryHandler): Unsubscribe;
  onRetry(handler: RetryHandler): Unsubscribe;
  onRetry(jobIdOrHandler: string | RetryHandler, maybeHandler?: RetryHandler): Unsubscribe {
    if (typeof jobIdOrHandler === 'function') {
      this.globalHandlers.add(jobIdOrHandler);
      for (const id of this.handles.keys()) this.watchForGlobal(id);
      return () => {
        this.globalHandlers.delete(jobIdOrHandler);
        if (this.globalHandlers.size > 0) return;
        for (const stop of this.globalWatches.values()) stop();
        this.globalWatches.clear();
      };
    }
    if (!maybeHandler) throw new TypeError('onRetry(jobId, handler): handler is missing');
    const jobId = jobIdOrHandler;
    return this.watch(jobId, (control) => {
      this.handles.get(jobId)?.noteRetry(); // a new run: its job.signal is a fresh one
      return maybeHandler(control);
    });
  }

  /**
   * Calls `handler` once when someone cancels the job (the server's `control` message over the
   * WebSocket; needs `progress:write`): stop the work, then end the job with `job.cancel()`. A
   * cancel made while the socket was down, or before the SDK listened, is read from the job's
   * `cancelRequested` when it subscribes (`recovered: true`), so it is still heard, once. Same as
   * `producer.job(jobId).onCancel(handler)`; see also `job.signal`.
   *
   * With only a handler, listens to every job this producer creates or opens with
   * {@link Producer.job}, from creation until the job completes or is canceled.
   */
  onCancel(jobId: string, handler: CancelHandler): Unsubscribe;
  onCancel(handler: CancelHandler): Unsubscribe;
  onCancel(jobIdOrHandler: string | CancelHandler, maybeHandler?: CancelHandler): Unsubscribe {
    if (typeof jobIdOrHandler === 'function') {
      if (this.abort.signal.aborted) throw new ProducerError('aborted', 'The producer is closed');
      this.globalCancelHandlers.add(jobIdOrHandler);
      for (const handle of this.handles.values()) this.cancelForGlobal(handle);
      return () => {
        this.globalCancelHandlers.delete(jobIdOrHandler);
        if (this.globalCancelHandlers.size > 0) return;
        for (const stop of this.globalCancelWatches.values()) stop();
        this.globalCancelWatches.clear();
      };
    }
    if (!maybeHandler) throw new TypeError('onCancel(jobId, handler): handler is missing');
    return this.job(jobIdOrHandler).onCancel(maybeHandler);
  }

  /**
   * Waits for everything queued to be answered (unless `flush: false`), then stops: closes the
   * WebSocket and aborts pending HTTP retries. Calls made after `close()` reject with `aborted`.
   * While the server is unreachable the wait lasts until it answers again or the retry budget
   * (`retry.maxRetryTime`) runs out; `flush: false` rejects what is still queued with `aborted`.
   */
  async close(options: { flush?: boolean } = {}): Promise<void> {
    if (options.flush !== false) await Promise.all([...this.handles.values()].map((h) => h.flush()));
    this.abort.abort();
    for (const socket of this.sockets) socket.close();
    this.sockets.length = 0;
    this.handles.clear();
  }

  // ---- JobTransport: used by JobHandle ---------------------------------------------------

  /** @internal */
  watch(jobId: string, handler: RetryHandler | ControlListener): Unsubscribe {
    if (this.abort.signal.aborted) throw new ProducerError('aborted', 'The producer is closed');
    let socket = this.sockets.find((s) => s.has(jobId)) ?? this.sockets.find((s) => s.hasRoom);
    if (!socket) {
      socket = new ControlSocket({
        url: this.wsUrl,
        token: this.token,
        refreshable: Boolean(this.options.tokenProvider),
        onError: (err) => this.reportError(err),
        onConnection: this.options.onConnection,
      });
      this.sockets.push(socket);
    }
    return socket.watch(jobId, handler, this.handles.get(jobId)?.status);
  }

  /** @internal The handle learnt a status the sockets may not have seen yet. */
  noteStatus(jobId: string, status: JobStatus): void {
    for (const s of this.sockets) s.noteStatus(jobId, status);
    if (status === 'completed' || status === 'canceled') {
      this.globalWatches.get(jobId)?.();
      this.globalWatches.delete(jobId);
      this.globalCancelWatches.get(jobId)?.();
      this.globalCancelWatches.delete(jobId);
      this.handles.delete(jobId);
    }
  }

  /** @internal */
  post(jobId: string, events: JobEvent[]): Promise<EventsAccepted> {
    return this.sendEvents(jobId, events);
  }

  private watchForGlobal(jobId: string): void {
    if (this.globalWatches.has(jobId)) return;
    const dispatch: RetryHandler = async (control: RetryControl) => {
      this.handles.get(jobId)?.noteRetry(); // a new run: its job.signal is a fresh one
      for (const h of [...this.globalHandlers]) await h(control);
    };
    this.globalWatches.set(jobId, this.watch(jobId, dispatch));
  }

  private cancelForGlobal(handle: JobHandle): void {
    if (this.globalCancelWatches.has(handle.id)) return;
    // Through the handle, so a cancel reaches the producer's handlers once, like the job's own.
    this.globalCancelWatches.set(
      handle.id,
      handle.onCancel(async (control) => {
        for (const h of [...this.globalCancelHandlers]) await h(control);
      }),
    );
  }

  /** @internal */
  reportError(err: ProducerError): void {
    if (this.options.onError) this.options.onError(err);
    else if (err.code !== 'network_error') console.warn(`[progress-tracker producer] ${err.code}: ${err.message}`);
  }
}

/**
 * Creates a producer client.
 *
 * @example
 * const producer = createProducer({ url: 'http://localhost:8080', token: process.env.PT_TOKEN });
 * const job = await producer.createJob({ kind: 'report', steps: [{ id: 'fetch' }, { id: 'render' }] });
 * await job.startStep('fetch');
 * await job.progress(0.5, { message: 'Half way' });
 * await job.endStep();
 */
export function createProducer(options: ProducerOptions): Producer {
  return new Producer(options);
}

/** The defaults overlaid with what the caller set (an `undefined` field keeps its default). */
function retryPolicy(given: Partial<RetryPolicy> | undefined): RetryPolicy {
  const policy = { ...DEFAULT_RETRY_POLICY };
  for (const key of Object.keys(policy) as Array<keyof RetryPolicy>) {
    const value = given?.[key];
    if (typeof value === 'number' && !Number.isNaN(value)) policy[key] = Math.max(0, value);
  }
  return policy;
}

/**
 * The id prefix a token lets us create jobs under: its single `prefix*` grant, '' for `*` or
 * anything else. Reads the JWT payload without verifying it: only the server's check matters.
 */
function creationPrefix(token: string): string {
  try {
    const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as {
      jobs?: unknown;
    };
    const grants = Array.isArray(payload.jobs) ? payload.jobs.filter((g): g is string => typeof g === 'string') : [];
    if (grants.includes('*')) return '';
    const prefixes = grants.filter((g) => g.endsWith('*'));
    return prefixes.length === 1 ? prefixes[0]!.slice(0, -1) : '';
  } catch {
    return '';
  }
}
