/**
 * The SDK's side of `onRetry` and `onCancel`: WebSocket connections to `/v1/ws` that subscribe to
 * the producer's jobs and turn the server's `control` messages into RetryControl and CancelControl
 * calls. A producer must hear about every retry and every cancel exactly once even across
 * reconnects, so a socket also infers a retry it missed while down from the job's snapshot, and a
 * cancel from the job's `cancelRequested`. Reconnect backoff is protocol/timing.ts's, like
 * every other client's.
 *
 * Credentials (protocol/messages.ts): the token never goes in the URL. Every (re)connect sends
 * `{"type":"auth","token"}` first and subscribes once the server answers `auth_ok`. Before the
 * token expires (at REFRESH_AT of its lifetime, read from the JWT's `iat`/`exp` without verifying
 * it) the socket asks the token provider for a fresh one and sends `auth` again on the same
 * socket: the server swaps the credentials in place, so nothing is missed and nothing
 * reconnects. A 4001 close (the token expired anyway) still reconnects at once with a fresh token.
 */
import WebSocket from 'ws';
import { backoffDelay, CloseCode, LIMITS, type Job, type JobStatus, type ServerMessage } from '../protocol/index.js';
import type { CancelControl, ConnectionState, ControlListener, RetryControl, RetryHandler, Unsubscribe } from './control.js';
import { ProducerError } from './errors.js';
import { credentialsOf, MAX_TIMER_MS, MIN_REFRESH_RETRY_MS, REFRESH_AT, REFRESH_RETRIES, type Credentials } from './token-lifetime.js';

export interface ControlSocketOptions {
  /** `ws(s)://…/v1/ws`, without the token: it is sent in the first message, never in the URL. */
  url: string;
  token: () => Promise<string>;
  /**
   * Whether `token()` can return a fresh token (a provider rather than a fixed string). Only
   * then does the socket refresh its credentials in place before they expire.
   */
  refreshable?: boolean;
  onError: (err: ProducerError) => void;
  onConnection?: (state: ConnectionState) => void;
  /** Reconnect backoff bounds (ms). */
  minDelayMs?: number;
  maxDelayMs?: number;
  /** Application-level ping interval (ms): a silent socket is replaced after two of them. */
  pingIntervalMs?: number;
}

interface Watch {
  listeners: Set<ControlListener>;
  /** Latest status/attempts seen (or, before any, what the producer knows it reported). */
  lastStatus?: JobStatus;
  lastAttempts?: number;
  lastJob?: Job;
  /** A `control` arrived after the latest job state: a snapshot must not replay it. */
  controlSinceState: boolean;
  /**
   * The cancel heard for the job's current run (from a `control`, or read from a job state's
   * `cancelRequested`): delivered once; a retry starts a new run and forgets it.
   */
  cancel?: CancelControl;
}

/**
 * One WebSocket to `/v1/ws` that subscribes to jobs and delivers their `control` messages.
 * It reconnects with backoff and jitter, authenticates with its first message (a fresh token on
 * every connect), re-subscribes everything once accepted, refreshes its token in place before it
 * expires, and infers a retry it missed while down from the snapshot, so a producer always hears
 * about a retry once; a cancel is delivered once per run of the job, from the `control` message or,
 * when that was missed, from the job state's `cancelRequested`. A job the server stops granting
 * (`forbidden`) is dropped and reported.
 * Holds at most `LIMITS.maxSubscriptionsPerSocket` jobs.
 */
export class ControlSocket {
  private readonly watches = new Map<string, Watch>();
  private ws: WebSocket | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private lastMessageAt = 0;
  private failures = 0;
  private closed = false;
  /** Between connect() and the WebSocket's creation (awaiting the token). */
  private opening = false;
  /** The credentials in force on the current socket: set by its first `auth_ok`; until then nothing is served. */
  private current: Credentials | undefined;
  /** The `auth` sent on the current socket and not answered yet (one at a time). */
  private pendingAuth: Credentials | undefined;
  private refreshTimer: NodeJS.Timeout | undefined;
  /** Failed refresh attempts since the last successful one. */
  private refreshFailures = 0;

  constructor(private readonly opts: ControlSocketOptions) {}

  get size(): number {
    return this.watches.size;
  }

  get hasRoom(): boolean {
    return this.watches.size < LIMITS.maxSubscriptionsPerSocket;
  }

  has(jobId: string): boolean {
    return this.watches.has(jobId);
  }

  /**
   * Listen for retries (a bare handler) or for retries, cancels and states of `jobId`.
   * `knownStatus` is what the producer last reported (say `failed`), so a retry that happened
   * before the first snapshot is not missed. A cancel this socket already heard for the job's
   * current run is delivered to a new listener too (once, on the next microtask).
   */
  watch(jobId: string, handlerOrListener: RetryHandler | ControlListener, knownStatus?: JobStatus): Unsubscribe {
    const listener: ControlListener =
      typeof handlerOrListener === 'function' ? { retry: handlerOrListener } : handlerOrListener;
    let w = this.watches.get(jobId);
    if (!w) {
      w = { listeners: new Set(), lastStatus: knownStatus, controlSinceState: false };
      this.watches.set(jobId, w);
      // Before `auth_ok`, the subscriptions go out with the rest when it arrives.
      if (this.ready) this.send({ type: 'subscribe', jobId });
      else this.connect();
    }
    w.listeners.add(listener);
    const heard = w.cancel;
    const onCancel = listener.cancel;
    if (heard && onCancel) {
      const watch = w;
      queueMicrotask(() => {
        if (watch.listeners.has(listener) && watch.cancel === heard) this.call(onCancel, heard, 'onCancel');
      });
    }
    return () => {
      const current = this.watches.get(jobId);
      if (!current?.listeners.delete(listener) || current.listeners.size > 0) return;
      this.watches.delete(jobId);
      if (this.ready) this.send({ type: 'unsubscribe', jobId });
      if (this.watches.size === 0) this.disconnect();
    };
  }

  /** The producer reported a status (e.g. it failed a step) before the socket saw it. */
  noteStatus(jobId: string, status: JobStatus): void {
    const w = this.watches.get(jobId);
    if (w) {
      w.lastStatus = status;
      w.controlSinceState = false;
    }
  }

  close(): void {
    this.closed = true;
    this.watches.clear();
    this.disconnect();
  }

  /** Open and authenticated: subscriptions can be sent. */
  private get ready(): boolean {
    return this.ws?.readyState === WebSocket.OPEN && this.current !== undefined;
  }

  private connect(): void {
    if (this.closed || this.ws || this.reconnectTimer || this.opening) return;
    this.opening = true;
    this.opts.onConnection?.('connecting');
    void this.open().finally(() => (this.opening = false));
  }

  private async open(): Promise<void> {
    let token: string;
    try {
      token = await this.opts.token();
    } catch (err) {
      this.opts.onError(new ProducerError('unauthorized', 'The token provider failed', { cause: err }));
      return this.scheduleReconnect();
    }
    if (this.closed || this.watches.size === 0) return;
    // No `access_token` in the URL (URLs end up in logs): the token is the first message.
    const ws = new WebSocket(this.opts.url, { maxPayload: 4 * 1024 * 1024 });
    this.ws = ws;
    let refused = false;

    ws.on('open', () => {
      this.lastMessageAt = Date.now();
      // 'open' is reported on `auth_ok`, and the subscriptions are sent then.
      this.sendAuth(token);
    });
    ws.on('message', (data, isBinary) => {
      if (this.ws !== ws) return; // a socket being closed: its state is gone
      this.lastMessageAt = Date.now();
      if (isBinary) return;
      let msg: ServerMessage;
      try {
        msg = JSON.parse(data.toString()) as ServerMessage;
      } catch {
        return this.opts.onError(new ProducerError('bad_response', 'Non-JSON WebSocket message from the server'));
      }
      this.handle(msg);
    });
    ws.on('unexpected-response', (_req, res) => {
      // The upgrade was refused (401 bad token, 403 origin…): report with the status, then back off.
      const status = res.statusCode ?? 0;
      const code = status === 401 ? 'unauthorized' : status === 403 ? 'forbidden' : 'bad_response';
      this.opts.onError(
        new ProducerError(code, `WebSocket upgrade refused: HTTP ${status}`, { status, retryable: status >= 500 }),
      );
      refused = true;
      res.resume();
      ws.terminate();
    });
    ws.on('error', (err) => {
      if (!refused) {
        this.opts.onError(new ProducerError('network_error', `WebSocket: ${err.message}`, { retryable: true, cause: err }));
      }
    });
    ws.on('close', (code) => {
      if (this.ws !== ws) return;
      this.ws = undefined;
      this.stopPing();
      this.forgetCredentials();
      this.opts.onConnection?.('closed');
      if (this.closed || this.watches.size === 0) return;
      // An expired token closes with 4001: reconnect at once with a fresh one.
      if (code === CloseCode.TokenExpired) this.connect();
      else this.scheduleReconnect();
    });
  }

  private handle(msg: ServerMessage): void {
    switch (msg.type) {
      case 'auth_ok':
        return this.authenticated(msg.exp);
      case 'snapshot':
      case 'update': {
        const w = this.watches.get(msg.job.id);
        if (!w) return;
        const job = msg.job;
        const missedRetry =
          msg.type === 'snapshot' &&
          !w.controlSinceState &&
          job.status === 'queued' &&
          (w.lastStatus === 'failed' || (w.lastAttempts !== undefined && (job.attempts ?? 0) > w.lastAttempts));
        w.lastStatus = job.status;
        w.lastAttempts = job.attempts ?? 0;
        w.lastJob = job;
        w.controlSinceState = false;
        for (const l of [...w.listeners]) l.state?.(job);
        if (missedRetry) {
          const step = job.steps.find((s) => s.status !== 'completed')?.id;
          if (step) {
            w.cancel = undefined; // a retried job runs again: an earlier cancel is history
            this.dispatchRetry(w, { jobId: job.id, step, recovered: true, job });
          }
        }
        // A cancel whose `control` this socket has not heard (it was down, or the job was canceled
        // before we subscribed, or the update came first): the job's state says so.
        const requested = job.cancelRequested;
        if (requested && !w.cancel && job.status !== 'completed' && job.status !== 'canceled') {
          const reason = requested.reason;
          this.dispatchCancel(w, {
            jobId: job.id,
            ...(reason !== undefined && { reason }),
            recovered: msg.type === 'snapshot',
            job,
          });
        }
        return;
      }
      case 'control': {
        const w = this.watches.get(msg.jobId);
        if (!w) return;
        if (msg.action === 'retry') {
          w.controlSinceState = true;
          w.cancel = undefined; // a retried job runs again: an earlier cancel is history
          this.dispatchRetry(w, { jobId: msg.jobId, step: msg.step, recovered: false, job: w.lastJob });
        } else if (msg.action === 'cancel' && !w.cancel) {
          this.dispatchCancel(w, {
            jobId: msg.jobId,
            ...(typeof msg.reason === 'string' && { reason: msg.reason }),
            recovered: false,
            job: w.lastJob,
          });
        }
        return;
      }
      case 'error':
        // Without a jobId, `unauthorized` answers our `auth` (nothing else is sent before `auth_ok`).
        if (msg.code === 'unauthorized' && msg.jobId === undefined && this.pendingAuth) return this.authRefused(msg.message);
        if (msg.code === 'forbidden' && msg.jobId !== undefined) return this.revoked(msg.jobId, msg.message);
        this.opts.onError(
          new ProducerError(msg.code, msg.jobId ? `${msg.message} (job ${msg.jobId})` : msg.message, {
            ...(msg.jobId !== undefined && { jobId: msg.jobId }),
          }),
        );
        return;
      default:
        return; // pong and future message types
    }
  }

  // ---- credentials ------------------------------------------------------------------------

  private sendAuth(token: string): void {
    this.pendingAuth = credentialsOf(token);
    this.send({ type: 'auth', token });
  }

  /** `auth_ok`: the first one opens the socket for business, each one schedules the next refresh. */
  private authenticated(exp: number): void {
    const sent = this.pendingAuth;
    if (!sent) return;
    this.pendingAuth = undefined;
    const previous = this.current;
    this.current = sent;
    if (!previous) {
      this.failures = 0;
      this.opts.onConnection?.('open');
      for (const jobId of this.watches.keys()) this.send({ type: 'subscribe', jobId });
      this.startPing();
    }
    // Not a JWT, or no `exp`: nothing to schedule (a 4001 would still reconnect).
    if (!this.opts.refreshable || sent.expiresAtMs === undefined) return;
    // The server's word on the expiry (epoch seconds), else the token's own.
    if (Number.isFinite(exp)) sent.expiresAtMs = exp * 1000;
    if (previous?.expiresAtMs !== undefined && sent.expiresAtMs <= previous.expiresAtMs) {
      return this.refreshFailed(); // accepted, but no later than the one it replaced: try again
    }
    this.refreshFailures = 0;
    const due = sent.issuedAtMs + REFRESH_AT * (sent.expiresAtMs - sent.issuedAtMs);
    this.scheduleRefresh(due - Date.now());
  }

  /** The server refused our `auth`: on a new socket, close it and reconnect with backoff; on refresh, retry. */
  private authRefused(reason: string): void {
    this.pendingAuth = undefined;
    if (!this.current) {
      this.opts.onError(new ProducerError('unauthorized', `WebSocket auth refused: ${reason}`));
      this.ws?.close(1000, 'auth refused'); // 'close' reconnects with backoff and a fresh token
      return;
    }
    this.opts.onError(
      new ProducerError('unauthorized', `WebSocket token refresh refused: ${reason}`, { retryable: true }),
    );
    this.refreshFailed();
  }

  private scheduleRefresh(delayMs: number): void {
    clearTimeout(this.refreshTimer);
    const ws = this.ws;
    const dueAt = Date.now() + Math.max(0, delayMs);
    const wait = () => {
      const left = dueAt - Date.now();
      this.refreshTimer = setTimeout(() => {
        this.refreshTimer = undefined;
        if (dueAt > Date.now()) wait();
        else void this.refresh(ws);
      }, Math.min(Math.max(0, left), MAX_TIMER_MS));
      this.refreshTimer.unref();
    };
    wait();
  }

  /** Takes a token from the provider and sends it on the open socket (`auth`, answered by `auth_ok`). */
  private async refresh(ws: WebSocket | undefined): Promise<void> {
    let token: string;
    try {
      token = await this.opts.token();
    } catch (err) {
      if (ws !== this.ws || !this.current) return;
      this.opts.onError(
        new ProducerError('unauthorized', 'The token provider failed (WebSocket token refresh)', {
          retryable: true,
          cause: err,
        }),
      );
      return this.refreshFailed();
    }
    if (ws !== this.ws || !this.ready || this.pendingAuth) return;
    // The provider still hands out the token in force (its own cache): ask again a bit later.
    if (token === this.current!.token) return this.refreshFailed();
    this.sendAuth(token);
  }

  /**
   * A refresh attempt failed: try again, spreading the attempts over the time left. Past the
   * last one, the server's 4001 at expiry makes the socket reconnect with a fresh token.
   */
  private refreshFailed(): void {
    const expiresAtMs = this.current?.expiresAtMs;
    if (expiresAtMs === undefined || this.refreshFailures >= REFRESH_RETRIES) return;
    const left = REFRESH_RETRIES - this.refreshFailures++;
    const remaining = expiresAtMs - Date.now();
    if (remaining <= 0) return;
    this.scheduleRefresh(Math.max(MIN_REFRESH_RETRY_MS, remaining / (left + 1)));
  }

  /** The server stopped granting a job (a refreshed token without it, or a refused subscribe). */
  private revoked(jobId: string, reason: string): void {
    // The server has already dropped the subscription: forget it, so no reconnect re-subscribes.
    const followed = this.watches.delete(jobId);
    this.opts.onError(
      new ProducerError(
        'forbidden',
        `${reason} (job ${jobId})${followed ? '; onRetry and onCancel no longer hear about this job' : ''}`,
        { jobId },
      ),
    );
    if (followed && this.watches.size === 0) this.disconnect();
  }

  private forgetCredentials(): void {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = undefined;
    this.current = undefined;
    this.pendingAuth = undefined;
    this.refreshFailures = 0;
  }

  private dispatchRetry(w: Watch, control: RetryControl): void {
    for (const l of [...w.listeners]) if (l.retry) this.call(l.retry, control, 'onRetry');
  }

  private dispatchCancel(w: Watch, control: CancelControl): void {
    w.cancel = control;
    for (const l of [...w.listeners]) if (l.cancel) this.call(l.cancel, control, 'onCancel');
  }

  /** Calls a handler; what it throws or rejects with is reported through `onError` (`handler_error`). */
  private call<C extends { jobId: string }>(
    handler: (control: C) => void | Promise<void>,
    control: C,
    what: 'onRetry' | 'onCancel',
  ): void {
    const report = (err: unknown) =>
      this.opts.onError(
        new ProducerError('handler_error', `${what} handler for job ${control.jobId} threw: ${String(err)}`, {
          cause: err,
          jobId: control.jobId,
        }),
      );
    try {
      Promise.resolve(handler(control)).catch(report);
    } catch (err) {
      report(err);
    }
  }

  private send(msg: object): void {
    this.ws?.send(JSON.stringify(msg));
  }

  private scheduleReconnect(): void {
    if (this.closed || this.reconnectTimer) return;
    const delay = backoffDelay(this.failures++, {
      baseMs: this.opts.minDelayMs ?? 250,
      maxMs: this.opts.maxDelayMs ?? 15_000,
    });
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.connect();
    }, delay);
  }

  private startPing(): void {
    const interval = this.opts.pingIntervalMs ?? 20_000;
    this.pingTimer = setInterval(() => {
      if (Date.now() - this.lastMessageAt > 2 * interval) {
        this.ws?.terminate(); // silent for too long: a dead TCP path; 'close' reconnects
        return;
      }
      this.send({ type: 'ping' });
    }, interval);
    this.pingTimer.unref();
  }

  private stopPing(): void {
    clearInterval(this.pingTimer);
    this.pingTimer = undefined;
  }

  private disconnect(): void {
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.stopPing();
    this.forgetCredentials();
    const ws = this.ws;
    this.ws = undefined;
    if (ws) {
      this.opts.onConnection?.('closed');
      if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
      else ws.close(1000);
    }
  }
}
