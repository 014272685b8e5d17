/**
 * ProgressClient: the headless half of `<progress-tracker>`. It follows one job down a fallback
 * chain — WebSocket (`/v1/ws`, partysocket with backoff + jitter) → Server-Sent Events
 * (`/v1/jobs/{id}/stream`) → HTTP polling → a labelled local estimate (`offline`) — moving down
 * after repeated failures and back up as soon as a better transport works again (the ones above
 * the level in use keep retrying in the background). `state` says how the job is followed,
 * `transport` which transport delivers it. It never emits a job older than one already emitted
 * (`seq`), and stops all network activity once the job has ended.
 *
 * Credentials: the token goes in the socket's first message (`{"type":"auth"}`), not the URL, and
 * is refreshed in place before it expires (token-refresh.ts). Waking up (page visible again,
 * `online`) cuts any backoff short. `src` may list several servers: when the one in use cannot
 * be opened or drops, the next one is tried, re-subscribing and resyncing from its snapshot.
 * The chain itself is live-channel.ts (shared with FeedClient, a tag's feed); this file is the
 * job's part: the seq guard, retry, cancel, and stopping once the job has ended.
 *
 *   const client = new ProgressClient({ src: 'wss://host/v1/ws', jobId, tokenProvider });
 *   const off = client.on('update', (job) => draw(job));
 *   client.open();   // … later: off(); client.close();
 */
import { isTerminal, type ClientMessage, type Job, type ServerMessage } from '../protocol/index.js';
import type { ChannelOptions } from './channel-types.js';
import type { ConnectionState, ConnectionTransport } from './connection-state.js';
import { isNewer } from './job-order.js';
import { LiveChannel } from './live-channel.js';
import { GATEWAY_DOWN } from './poller.js';

export { deriveApiBase, parseEndpoints, type EndpointList } from './endpoints.js';
export type { ChannelOptions, TokenProvider } from './channel-types.js';
export type { ConnectionState, ConnectionTransport } from './connection-state.js';

/**
 * `progress-error`'s detail. `kind` says what went wrong: `job` — the job failed or was canceled
 * (`job` set); `request` — the server refused a request (auth, not found, retry, cancel); `connection`
 * — no server answered (transient: the element keeps trying, shows a labelled estimate, and fires
 * one such error per outage). `code` and `message` are raw (the server's, or the network error's
 * text) — for logs, not for users; the element shows its own translated sentence.
 */
export interface ProgressErrorInfo {
  kind?: 'job' | 'request' | 'connection';
  code: string;
  message: string;
  /** HTTP status of the answer, when one came (e.g. 502 from a proxy). */
  status?: number;
  /** `connection`: which transport failed last ('websocket', 'sse', 'polling', or 'token' for the token provider). */
  transport?: string;
  /** The failed step's id, for a failed job. */
  step?: string;
  /** The failed job, when the error is the job's own failure. */
  job?: Job;
}

export interface ProgressClientEvents {
  /** A newer state of the job (snapshot or update, from any transport). */
  update: (job: Job) => void;
  /** The job completed. */
  complete: (job: Job) => void;
  /** The job failed or was canceled, or the server refused a request (auth, not found, retry, cancel). */
  error: (error: ProgressErrorInfo) => void;
  /** The state or the transport changed (a move between WebSocket and SSE keeps `live`). */
  connection: (state: ConnectionState, transport: ConnectionTransport) => void;
}

/** The transport options (live-channel.ts `ChannelOptions`: src, api, token, tokenProvider, tuning) and the job. */
export interface ProgressClientOptions extends ChannelOptions {
  jobId: string;
}

export class ProgressClient extends LiveChannel<ProgressClientEvents> {
  readonly jobId: string;
  private _job: Job | undefined;
  /** Messages to send once subscribed (a retry asked for while disconnected). */
  private pending: ClientMessage[] = [];
  private retryFallback: ReturnType<typeof setTimeout> | undefined;
  /** A retry was sent and the job has not left its ended state yet: keep listening. */
  private retryInFlight = false;

  constructor(options: ProgressClientOptions) {
    const jobPath = `/v1/jobs/${encodeURIComponent(options.jobId)}`;
    super(options, `${jobPath}/stream`, jobPath);
    this.jobId = options.jobId;
  }

  /** The newest job state seen, if any. */
  get job(): Job | undefined {
    return this._job;
  }

  /** Start following the job. Does nothing when it has already ended (unless a retry is under way). */
  override open(): void {
    if (this._job && isTerminal(this._job.status) && !this.retryInFlight) return;
    super.open();
  }

  /** Stop all network activity. `open()` starts again. */
  override close(): void {
    clearTimeout(this.retryFallback);
    super.close();
  }

  /**
   * Ask the server to retry the failed job, from `step` (default: the failed step). Reopens
   * the connection when it was closed because the job had failed.
   */
  async retry(step?: string): Promise<void> {
    const message: ClientMessage = step ? { type: 'retry', jobId: this.jobId, step } : { type: 'retry', jobId: this.jobId };
    this.retryInFlight = true;
    if (this.socketLive) {
      this.send(message);
      return;
    }
    if (this.lastTransport !== 'http' && this.socketConstructor()) {
      // The job ended while the socket worked: reopen it, subscribe, then send the retry.
      this.pending.push(message);
      if (!this.opened) this.open();
      // Should the socket not open in time, the HTTP endpoint does the same.
      clearTimeout(this.retryFallback);
      this.retryFallback = setTimeout(() => {
        const i = this.pending.indexOf(message);
        if (i < 0) return;
        this.pending.splice(i, 1);
        void this.retryOverHttp(step);
      }, (this.options.connectTimeoutMs ?? 4000) + 1000);
      return;
    }
    // Only HTTP worked lately (SSE or polling): the HTTP retry endpoint.
    await this.retryOverHttp(step);
    if (!this.opened) this.open();
  }

  /**
   * Ask the server to cancel the job (scope `progress:cancel`): `{"type":"cancel"}` on the live
   * socket, else `POST /v1/jobs/{id}/cancel`. The job then carries `cancelRequested` (a new seq,
   * same status) until its producer — or the server, after its grace period — ends it
   * `canceled`. A refusal (no scope, `already_finished`) comes back as an `error` event.
   */
  async cancel(reason?: string): Promise<void> {
    const body = reason === undefined ? {} : { reason };
    if (this.socketLive) this.send({ type: 'cancel', jobId: this.jobId, ...body });
    else await this.post('cancel', body);
  }

  /**
   * Feed a job state from elsewhere (a server-rendered snapshot, an app's own transport).
   * Returns whether it was newer than the state already shown and was emitted.
   */
  ingest(job: Job): boolean {
    if (job.id !== this.jobId) return false;
    const shown = this._job;
    // The same rule as the element's `snapshot` setter (job-order.ts).
    if (!isNewer(job, shown)) return false;
    this._job = job;
    if (!isTerminal(job.status)) this.retryInFlight = false;
    this.emitter.emit('update', job);
    const ended = isTerminal(job.status) && (!shown || shown.seq !== job.seq || !isTerminal(shown.status));
    if (ended) {
      if (job.status === 'completed') this.emitter.emit('complete', job);
      else {
        const failedStep = job.steps.find((s) => s.status === 'failed');
        const error = job.error ?? failedStep?.error;
        this.emitter.emit('error', {
          kind: 'job',
          code: error?.code ?? job.status,
          message: error?.message ?? (job.status === 'canceled' ? 'The job was canceled.' : 'The job failed.'),
          step: error?.step ?? failedStep?.id,
          job,
        });
      }
    }
    // Nothing changes an ended job except a retry: stop all network activity.
    if (isTerminal(job.status) && !this.retryInFlight && this.pending.length === 0) this.close();
    return true;
  }

  /** Subscribe, resuming from the last seq shown. */
  protected subscription(): ClientMessage {
    const since = this._job?.seq;
    return since === undefined ? { type: 'subscribe', jobId: this.jobId } : { type: 'subscribe', jobId: this.jobId, since };
  }

  /** Subscribed: what waited for the socket (a retry) goes out now. */
  protected override subscribed(): void {
    clearTimeout(this.retryFallback);
    for (const m of this.pending.splice(0)) this.send(m);
  }

  protected override remainingMs(): number | null {
    return this._job?.eta?.remainingMs ?? null;
  }

  /** `GET /v1/jobs/{id}` answers the job (or `{job}`). */
  protected polled(body: unknown): void {
    const b = body as Job | { job: Job };
    this.ingest('job' in b && b.job && typeof b.job === 'object' ? b.job : (b as Job));
  }

  protected handle(msg: ServerMessage): void {
    if (msg.type === 'snapshot' || msg.type === 'update') this.ingest(msg.job);
    else if (msg.type === 'error' && (msg.jobId === undefined || msg.jobId === this.jobId)) {
      const wasRetrying = this.retryInFlight;
      this.retryInFlight = false;
      this.emitter.emit('error', { kind: 'request', code: msg.code, message: msg.message });
      // A refused retry leaves the job ended: nothing more to listen for.
      if (wasRetrying && this._job && isTerminal(this._job.status)) this.close();
    }
  }

  private async retryOverHttp(step?: string): Promise<void> {
    await this.post('retry', step ? { step } : {});
  }

  /** `POST /v1/jobs/{id}/retry|cancel`; a refusal or a network error is emitted as `error`. */
  private async post(action: 'retry' | 'cancel', body: object): Promise<void> {
    const base = this.apiBase;
    const token = await this.token();
    const headers: Record<string, string> = { 'Content-Type': 'application/json' };
    if (token) headers.Authorization = `Bearer ${token}`;
    let error: ProgressErrorInfo;
    try {
      const res = await fetch(`${base}/v1/jobs/${encodeURIComponent(this.jobId)}/${action}`, { method: 'POST', headers, body: JSON.stringify(body) });
      if (res.ok) return;
      const answer = (await res.json().catch(() => ({}))) as { error?: { code?: string; message?: string } };
      const what = action === 'retry' ? 'Retry' : 'Cancel';
      error = {
        kind: GATEWAY_DOWN.has(res.status) ? 'connection' : 'request',
        code: answer.error?.code ?? `http_${res.status}`,
        message: answer.error?.message ?? `${what} failed (HTTP ${res.status})`,
        status: res.status,
      };
    } catch (err) {
      error = { kind: 'connection', code: 'network', message: err instanceof Error ? err.message : String(err) };
    }
    if (action === 'retry') this.retryInFlight = false;
    this.emitter.emit('error', error);
  }
}
