/**
 * ProgressClient: the headless half of `<progress-tracker>`. It follows one job over the
 * WebSocket (`/v1/ws`, partysocket with backoff + jitter), falls back to HTTP polling when the
 * socket cannot be opened, goes back to the socket as soon as it opens again, and says when the
 * server cannot be reached at all (`offline`: show an estimate). It never emits a job older
 * than one already emitted (`seq`), and stops all network activity once the job has ended.
 * `src` may list several servers: when the one in use cannot be opened or drops, the next one
 * is tried (with the same backoff and jitter), re-subscribing and resyncing from its snapshot.
 *
 *   const client = new ProgressClient({ src: 'wss://host/v1/ws', jobId, tokenProvider });
 *   const off = client.on('update', (job) => draw(job));
 *   client.open();   // … later: off(); client.close();
 */
import { createNanoEvents, type Emitter, type Unsubscribe } from 'nanoevents';
import { WebSocket as ReconnectingWebSocket } from 'partysocket';
import { isTerminal, sleep, type ClientMessage, type Job, type ServerMessage } from '../protocol/index.js';
import { deriveApiBase, parseEndpoints, toSocketUrl, type EndpointList } from './endpoints.js';
import { isNewer } from './job-order.js';
import { Poller } from './poller.js';

export { deriveApiBase, parseEndpoints, type EndpointList } from './endpoints.js';

/**
 * - `connecting`: first attempt under way.
 * - `live`: subscribed over the WebSocket.
 * - `reconnecting`: the socket dropped; trying again.
 * - `polling`: the socket cannot be opened; HTTP polling keeps the job current.
 * - `offline`: neither works; the last ETA drives an estimate.
 * - `closed`: not connected (not opened yet, closed, or the job has ended).
 */
export type ConnectionState = 'connecting' | 'live' | 'reconnecting' | 'polling' | 'offline' | 'closed';

export interface ProgressErrorInfo {
  code: string;
  message: string;
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
  /** The job failed or was canceled, or the server refused a request (auth, not found, retry). */
  error: (error: ProgressErrorInfo) => void;
  connection: (state: ConnectionState) => void;
}

export type TokenProvider = () => string | undefined | Promise<string | undefined>;

export interface ProgressClientOptions {
  jobId: string;
  /**
   * WebSocket URL of `/v1/ws` (ws:, wss:, or http(s): which is mapped to ws(s):). Several
   * (an array, or a space/comma-separated string) for failover: tried in turn, round-robin.
   */
  src: EndpointList;
  /**
   * HTTP base URL of the API (default: derived from the `src` URL in use, e.g. `https://host`).
   * Several are tried in turn when one cannot be reached.
   */
  api?: EndpointList;
  token?: string;
  /** Called before every connection attempt and every poll; return a fresh token. */
  tokenProvider?: TokenProvider;
  /** Failed socket attempts in a row before polling starts (default 3). */
  socketAttemptsBeforePolling?: number;
  /** Reconnect backoff (ms): first delay, cap, growth per attempt. Jitter adds 0–50%. */
  minReconnectDelayMs?: number;
  maxReconnectDelayMs?: number;
  reconnectGrowFactor?: number;
  /** Give up on a socket attempt after this long (default 4000 ms). */
  connectTimeoutMs?: number;
  /** Polling interval bounds (ms); the interval adapts to the ETA inside them. */
  minPollIntervalMs?: number;
  maxPollIntervalMs?: number;
  /** Client ping interval; a socket silent for another interval is replaced (default 20000 ms). */
  heartbeatMs?: number;
  /** WebSocket implementation (default: globalThis.WebSocket; polling only when missing). */
  WebSocket?: typeof WebSocket | null;
}

export class ProgressClient {
  readonly jobId: string;
  private readonly options: ProgressClientOptions;
  private readonly emitter: Emitter<ProgressClientEvents> = createNanoEvents<ProgressClientEvents>();
  private socket: ReconnectingWebSocket | undefined;
  private readonly poller: Poller;
  private _state: ConnectionState = 'closed';
  private _job: Job | undefined;
  private opened = false;
  private everLive = false;
  private socketFailures = 0;
  /** The socket URLs (failover order) and which one is in use. */
  private readonly srcs: string[];
  private srcIndex = 0;
  /** The HTTP bases: `api`'s list, or one derived from each socket URL. */
  private readonly apiBases: string[];
  private readonly apiGiven: boolean;
  private apiIndex = 0;
  /** Messages to send once subscribed (a retry asked for while disconnected). */
  private pending: ClientMessage[] = [];
  /** Which transport delivered the latest state: a retry goes the same way. */
  private lastTransport: 'ws' | 'http' | undefined;
  private retryFallback: ReturnType<typeof setTimeout> | undefined;
  /** A retry was sent and the job has not left its ended state yet: keep listening. */
  private retryInFlight = false;
  private heartbeat: ReturnType<typeof setInterval> | undefined;
  private lastMessageAt = 0;
  private readonly onVisibility = () => {
    if (document.visibilityState === 'visible') this.poller.pollNow();
  };

  constructor(options: ProgressClientOptions) {
    this.options = options;
    this.jobId = options.jobId;
    this.srcs = parseEndpoints(options.src);
    const apis = parseEndpoints(options.api);
    this.apiGiven = apis.length > 0;
    this.apiBases = (this.apiGiven ? apis : this.srcs.map(deriveApiBase)).map((b) => b.replace(/\/$/, ''));
    this.poller = new Poller({
      url: () => `${this.apiBase}/v1/jobs/${encodeURIComponent(options.jobId)}`,
      getToken: () => this.token(),
      onJob: (job) => {
        if (this._state !== 'live') this.lastTransport = 'http';
        this.ingest(job);
      },
      onHttpError: (status, code, message) => {
        this.emitter.emit('error', { code, message });
        // The server is there but refuses: polling continues slowly (a fresh token may fix it).
        if (status >= 500 && this._state !== 'live') this.setState('polling');
      },
      onUnreachable: (count) => {
        // Several HTTP bases: try the next one; offline once each has failed in a row.
        if (this.apiBases.length > 1) this.apiIndex = (this.apiIndex + 1) % this.apiBases.length;
        if (count >= this.apiBases.length && this._state !== 'live') this.setState('offline');
      },
      onReachable: () => {
        if (this._state !== 'live') this.setState('polling');
      },
      remainingMs: () => this._job?.eta?.remainingMs ?? null,
      minIntervalMs: options.minPollIntervalMs ?? 2000,
      maxIntervalMs: options.maxPollIntervalMs ?? 15000,
    });
  }

  /** The newest job state seen, if any. */
  get job(): Job | undefined {
    return this._job;
  }

  get state(): ConnectionState {
    return this._state;
  }

  /** The socket URL in use (or tried next), one of `src`'s. */
  get currentSrc(): string | undefined {
    return this.srcs[this.srcIndex];
  }

  /** The HTTP base in use for polling and HTTP retry. */
  get apiBase(): string {
    return this.apiBases[this.apiIndex] ?? '';
  }

  on<K extends keyof ProgressClientEvents>(event: K, cb: ProgressClientEvents[K]): Unsubscribe {
    return this.emitter.on(event, cb);
  }

  /** Start following the job. Does nothing when it has already ended (unless a retry is under way). */
  open(): void {
    if (this._job && isTerminal(this._job.status) && !this.retryInFlight) return;
    if (this.opened) return;
    this.opened = true;
    this.socketFailures = 0;
    this.everLive = false;
    this.setState('connecting');
    const WS = this.socketConstructor();
    if (WS && this.srcs.length > 0) this.openSocket(WS);
    else this.startPolling();
    if (typeof document !== 'undefined') document.addEventListener('visibilitychange', this.onVisibility);
  }

  /** Stop all network activity. `open()` starts again. */
  close(): void {
    if (!this.opened) return;
    this.opened = false;
    clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    clearTimeout(this.retryFallback);
    const socket = this.socket;
    this.socket = undefined;
    socket?.close(1000, 'done');
    this.poller.stop();
    if (typeof document !== 'undefined') document.removeEventListener('visibilitychange', this.onVisibility);
    this.setState('closed');
  }

  /**
   * Ask the server to retry the failed job, from `step` (default: the failed step). Reopens
   * the connection when it was closed because the job had failed.
   */
  async retry(step?: string): Promise<void> {
    const message: ClientMessage = step ? { type: 'retry', jobId: this.jobId, step } : { type: 'retry', jobId: this.jobId };
    this.retryInFlight = true;
    if (this._state === 'live' && this.socket) {
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
    // Only HTTP worked lately: the HTTP retry endpoint.
    await this.retryOverHttp(step);
    if (!this.opened) this.open();
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

  private socketConstructor(): typeof WebSocket | undefined {
    const WS = this.options.WebSocket === undefined ? globalThis.WebSocket : this.options.WebSocket;
    return WS ?? undefined;
  }

  private async token(): Promise<string | undefined> {
    if (this.options.tokenProvider) {
      try {
        return (await this.options.tokenProvider()) ?? this.options.token;
      } catch (err) {
        this.emitter.emit('error', { code: 'token_provider', message: err instanceof Error ? err.message : String(err) });
      }
    }
    return this.options.token;
  }

  private openSocket(WS: typeof WebSocket): void {
    const min = this.options.minReconnectDelayMs ?? 1000;
    const socket = new ReconnectingWebSocket(
      // partysocket awaits this before every attempt: a fresh token each time, plus jitter
      // (its own backoff has none) so a fleet of clients does not reconnect in lockstep.
      // Not protocol's backoffDelay: partysocket already waits its own exponential delay
      // (min·grow^n up to max); this only adds 0–50% of the first delay on top of it.
      async () => {
        if (this.socketFailures > 0) await sleep(Math.random() * min * 0.5);
        const url = toSocketUrl(this.srcs[this.srcIndex]!);
        const token = await this.token();
        if (token) url.searchParams.set('access_token', token);
        return url.href;
      },
      undefined,
      {
        WebSocket: WS,
        minReconnectionDelay: min,
        maxReconnectionDelay: this.options.maxReconnectDelayMs ?? 10_000,
        reconnectionDelayGrowFactor: this.options.reconnectGrowFactor ?? 1.5,
        connectionTimeout: this.options.connectTimeoutMs ?? 4000,
        minUptime: 2000,
        // Retry forever; polling covers the gap. partysocket ≥1.1 also resets its retry
        // count on reconnect(), so the "no-op after maxRetries" bug cannot bite here.
        maxRetries: Number.POSITIVE_INFINITY,
      },
    );
    this.socket = socket;
    socket.addEventListener('open', () => {
      if (this.socket !== socket) return;
      this.socketFailures = 0;
      this.everLive = true;
      this.lastTransport = 'ws';
      this.lastMessageAt = Date.now();
      // HTTP (a retry, a later fallback) goes to the server whose socket works.
      if (!this.apiGiven) this.apiIndex = this.srcIndex;
      this.poller.stop();
      const since = this._job?.seq;
      this.send(since === undefined ? { type: 'subscribe', jobId: this.jobId } : { type: 'subscribe', jobId: this.jobId, since });
      clearTimeout(this.retryFallback);
      for (const m of this.pending.splice(0)) this.send(m);
      this.setState('live');
      this.startHeartbeat();
    });
    socket.addEventListener('message', (event: MessageEvent) => {
      if (this.socket !== socket) return;
      this.lastMessageAt = Date.now();
      let msg: ServerMessage;
      try {
        msg = JSON.parse(String(event.data)) as ServerMessage;
      } catch {
        return;
      }
      this.onMessage(msg);
    });
    socket.addEventListener('close', () => {
      if (this.socket !== socket || !this.opened) return;
      clearInterval(this.heartbeat);
      this.socketFailures++;
      // Failover: the next attempt (after partysocket's backoff and our jitter) goes to the next URL.
      if (this.srcs.length > 1) this.srcIndex = (this.srcIndex + 1) % this.srcs.length;
      // Every URL gets its try before polling starts.
      const limit = Math.max(this.options.socketAttemptsBeforePolling ?? 3, this.srcs.length);
      if (this.socketFailures >= limit || !this.everLive) {
        if (this.socketFailures >= limit && !this.poller.active) this.startPolling();
        if (this._state !== 'offline' && this._state !== 'polling') this.setState(this.everLive ? 'reconnecting' : 'connecting');
      } else {
        this.setState('reconnecting');
      }
    });
  }

  /** Polls the HTTP base of the socket URL in use (unless `api` names the bases). */
  private startPolling(): void {
    if (!this.apiGiven && !this.poller.active) this.apiIndex = this.srcIndex;
    this.poller.start();
  }

  private onMessage(msg: ServerMessage): void {
    switch (msg.type) {
      case 'snapshot':
      case 'update':
        this.ingest(msg.job);
        break;
      case 'error':
        if (msg.jobId === undefined || msg.jobId === this.jobId) {
          const wasRetrying = this.retryInFlight;
          this.retryInFlight = false;
          this.emitter.emit('error', { code: msg.code, message: msg.message });
          // A refused retry leaves the job ended: nothing more to listen for.
          if (wasRetrying && this._job && isTerminal(this._job.status)) this.close();
        }
        break;
      default:
        break;
    }
  }

  private send(message: ClientMessage): void {
    this.socket?.send(JSON.stringify(message));
  }

  /** A socket can die without a close event (sleeping laptop, dead NAT): ping, and replace it when silent. */
  private startHeartbeat(): void {
    clearInterval(this.heartbeat);
    const every = this.options.heartbeatMs ?? 20_000;
    this.heartbeat = setInterval(() => {
      if (!this.socket || this._state !== 'live') return;
      if (Date.now() - this.lastMessageAt > every * 2) {
        this.socket.reconnect(4000, 'heartbeat timeout');
        return;
      }
      this.send({ type: 'ping' });
    }, every);
  }

  private async retryOverHttp(step?: string): Promise<void> {
    const base = this.apiBase;
    const token = await this.token();
    const headers: Record<string, string> = { 'Content-Type': 'application/json' };
    if (token) headers.Authorization = `Bearer ${token}`;
    try {
      const res = await fetch(`${base}/v1/jobs/${encodeURIComponent(this.jobId)}/retry`, {
        method: 'POST',
        headers,
        body: JSON.stringify(step ? { step } : {}),
      });
      if (!res.ok) {
        this.retryInFlight = false;
        const body = (await res.json().catch(() => ({}))) as { error?: { code?: string; message?: string } };
        this.emitter.emit('error', { code: body.error?.code ?? `http_${res.status}`, message: body.error?.message ?? `Retry failed (HTTP ${res.status})` });
      }
    } catch (err) {
      this.retryInFlight = false;
      this.emitter.emit('error', { code: 'network', message: err instanceof Error ? err.message : String(err) });
    }
  }

  private setState(state: ConnectionState): void {
    if (state === this._state) return;
    this._state = state;
    this.emitter.emit('connection', state);
  }
}
