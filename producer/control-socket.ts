/**
 * The SDK's side of `onRetry`: WebSocket connections to `/v1/ws` that subscribe to the producer's
 * jobs and turn the server's `control` messages into RetryControl calls. A producer must hear
 * about every retry exactly once even across reconnects, so a socket also infers a retry it
 * missed while down from the job's snapshot. Reconnect backoff is protocol/timing.ts's, like
 * every other client's.
 */
import WebSocket from 'ws';
import { backoffDelay, CloseCode, LIMITS, type Job, type JobStatus, type ServerMessage } from '../protocol/index.js';
import { ProducerError } from './errors.js';

/** A retry request for a job, delivered to `onRetry` handlers. */
export interface RetryControl {
  jobId: string;
  /** The step to resume from: the failed step; it and every later step are pending again. */
  step: string;
  /**
   * True when the `control` message itself was missed (the socket was down when the user
   * retried) and the SDK inferred the retry from the job's snapshot on re-subscribe.
   */
  recovered: boolean;
  /** The latest job state the socket has seen, when it has seen one. */
  job?: Job;
}

export type RetryHandler = (control: RetryControl) => void | Promise<void>;

/** Removes a listener. */
export type Unsubscribe = () => void;

/** The socket's state, for `onConnection`. */
export type ConnectionState = 'connecting' | 'open' | 'closed';

export interface ControlSocketOptions {
  /** `ws(s)://…/v1/ws`, without the token. */
  url: string;
  token: () => Promise<string>;
  onError: (err: ProducerError) => void;
  onConnection?: (state: ConnectionState) => void;
  /** Reconnect backoff bounds (ms). */
  minDelayMs?: number;
  maxDelayMs?: number;
  /** Application-level ping interval (ms): a silent socket is replaced after two of them. */
  pingIntervalMs?: number;
}

interface Watch {
  handlers: Set<RetryHandler>;
  /** Latest status/attempts seen (or, before any, what the producer knows it reported). */
  lastStatus?: JobStatus;
  lastAttempts?: number;
  lastJob?: Job;
  /** A `control` arrived after the latest job state: a snapshot must not replay it. */
  controlSinceState: boolean;
}

/**
 * One WebSocket to `/v1/ws` that subscribes to jobs and delivers their `control` messages.
 * It reconnects with backoff and jitter, takes a fresh token on every connect, re-subscribes
 * everything, and infers a retry it missed while down from the snapshot, so a producer always
 * hears about a retry once. Holds at most `LIMITS.maxSubscriptionsPerSocket` jobs.
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
   * Listen for retries of `jobId`. `knownStatus` is what the producer last reported (say
   * `failed`), so a retry that happened before the first snapshot is not missed.
   */
  watch(jobId: string, handler: RetryHandler, knownStatus?: JobStatus): Unsubscribe {
    let w = this.watches.get(jobId);
    if (!w) {
      w = { handlers: new Set(), lastStatus: knownStatus, controlSinceState: false };
      this.watches.set(jobId, w);
      if (this.ws?.readyState === WebSocket.OPEN) this.send({ type: 'subscribe', jobId });
      else this.connect();
    }
    w.handlers.add(handler);
    return () => {
      const current = this.watches.get(jobId);
      if (!current?.handlers.delete(handler) || current.handlers.size > 0) return;
      this.watches.delete(jobId);
      if (this.ws?.readyState === WebSocket.OPEN) this.send({ type: 'unsubscribe', jobId });
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
    const url = new URL(this.opts.url);
    url.searchParams.set('access_token', token);
    const ws = new WebSocket(url, { maxPayload: 4 * 1024 * 1024 });
    this.ws = ws;
    let refused = false;

    ws.on('open', () => {
      this.failures = 0;
      this.lastMessageAt = Date.now();
      this.opts.onConnection?.('open');
      for (const jobId of this.watches.keys()) this.send({ type: 'subscribe', jobId });
      this.startPing();
    });
    ws.on('message', (data, isBinary) => {
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
      this.opts.onConnection?.('closed');
      if (this.closed || this.watches.size === 0) return;
      // An expired token closes with 4001: reconnect at once with a fresh one.
      if (code === CloseCode.TokenExpired) this.connect();
      else this.scheduleReconnect();
    });
  }

  private handle(msg: ServerMessage): void {
    switch (msg.type) {
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
        if (missedRetry) {
          const step = job.steps.find((s) => s.status !== 'completed')?.id;
          if (step) this.dispatch(w, { jobId: job.id, step, recovered: true, job });
        }
        return;
      }
      case 'control': {
        const w = this.watches.get(msg.jobId);
        if (!w || msg.action !== 'retry') return;
        w.controlSinceState = true;
        this.dispatch(w, { jobId: msg.jobId, step: msg.step, recovered: false, job: w.lastJob });
        return;
      }
      case 'error':
        this.opts.onError(
          new ProducerError(msg.code, msg.jobId ? `${msg.message} (job ${msg.jobId})` : msg.message),
        );
        return;
      default:
        return; // pong and future message types
    }
  }

  private dispatch(w: Watch, control: RetryControl): void {
    for (const handler of [...w.handlers]) {
      try {
        Promise.resolve(handler(control)).catch((err) => this.reportHandlerError(control, err));
      } catch (err) {
        this.reportHandlerError(control, err);
      }
    }
  }

  private reportHandlerError(control: RetryControl, err: unknown): void {
    this.opts.onError(
      new ProducerError('handler_error', `onRetry handler for job ${control.jobId} threw: ${String(err)}`, {
        cause: err,
      }),
    );
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
    const ws = this.ws;
    this.ws = undefined;
    if (ws) {
      this.opts.onConnection?.('closed');
      if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
      else ws.close(1000);
    }
  }
}
