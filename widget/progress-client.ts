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
import { SseTransport } from './sse-transport.js';
import { TokenRefresher } from './token-refresh.js';
import { onWakeUp } from './wake-up.js';

export { deriveApiBase, parseEndpoints, type EndpointList } from './endpoints.js';

/**
 * - `connecting`: first attempt under way.
 * - `live`: updates are pushed (WebSocket or SSE: see `ConnectionTransport`).
 * - `reconnecting`: the live transport dropped; trying again.
 * - `polling`: no push transport works; HTTP polling keeps the job current.
 * - `offline`: nothing reaches the server; the last ETA drives an estimate.
 * - `closed`: not connected (not opened yet, closed, or the job has ended).
 */
export type ConnectionState = 'connecting' | 'live' | 'reconnecting' | 'polling' | 'offline' | 'closed';

/**
 * Which transport delivers the job: `websocket` and `sse` while `live`, `polling` while
 * `polling`, `none` otherwise (connecting, reconnecting, offline — the local estimate — closed).
 */
export type ConnectionTransport = 'websocket' | 'sse' | 'polling' | 'none';

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
  /** The job failed or was canceled, or the server refused a request (auth, not found, retry, cancel). */
  error: (error: ProgressErrorInfo) => void;
  /** The state or the transport changed (a move between WebSocket and SSE keeps `live`). */
  connection: (state: ConnectionState, transport: ConnectionTransport) => void;
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
   * HTTP base URL of the API, for SSE, polling and HTTP retry (default: derived from the `src`
   * URL in use, e.g. `https://host`). Several are tried in turn when one cannot be reached.
   */
  api?: EndpointList;
  token?: string;
  /**
   * Called before every connection attempt, every poll and every token refresh; return a fresh
   * token.
   */
  tokenProvider?: TokenProvider;
  /** Failed socket attempts in a row before the fallback (SSE, then polling) starts (default 3). */
  socketAttemptsBeforePolling?: number;
  /** Failed SSE attempts in a row before polling starts (default 2). */
  sseAttemptsBeforePolling?: number;
  /** Reconnect backoff (ms) of the socket and the stream: first delay, cap, socket growth per attempt. Jitter is added. */
  minReconnectDelayMs?: number;
  maxReconnectDelayMs?: number;
  reconnectGrowFactor?: number;
  /** Give up on a socket or stream attempt after this long (default 4000 ms). */
  connectTimeoutMs?: number;
  /** Polling interval bounds (ms); the interval adapts to the ETA inside them. */
  minPollIntervalMs?: number;
  maxPollIntervalMs?: number;
  /** Client ping interval; a socket silent for another interval is replaced (default 20000 ms). */
  heartbeatMs?: number;
  /** On wake-up (page visible, `online`), retry after a random 0..this ms (default 1000). */
  wakeJitterMs?: number;
  /**
   * Put the token in the socket URL (`?access_token=`) instead of the first message, for servers
   * without first-message auth. Default false: tokens stay out of URLs and logs.
   */
  tokenInUrl?: boolean;
  /** WebSocket implementation (default: globalThis.WebSocket; null or missing: no socket). */
  WebSocket?: typeof WebSocket | null;
  /** EventSource implementation (default: globalThis.EventSource; null or missing: no SSE). */
  EventSource?: typeof EventSource | null;
}

/** WebSocket.OPEN / CLOSED (the constants, without touching a global that may be missing). */
const OPEN = 1;
const CLOSED = 3;

export class ProgressClient {
  readonly jobId: string;
  private readonly options: ProgressClientOptions;
  private readonly emitter: Emitter<ProgressClientEvents> = createNanoEvents<ProgressClientEvents>();
  private socket: ReconnectingWebSocket | undefined;
  /** The socket is authenticated and subscribed: the top of the chain works. */
  private socketLive = false;
  /** The token fetched for the socket attempt under way, sent as its first message. */
  private socketToken: string | undefined;
  private readonly refresher: TokenRefresher;
  private readonly sse: SseTransport | undefined;
  private readonly poller: Poller;
  /** What the last poll found: nothing yet, a server answering, or no base reachable. */
  private pollReach: 'pending' | 'reachable' | 'unreachable' = 'pending';
  private _state: ConnectionState = 'closed';
  private _transport: ConnectionTransport = 'none';
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
  /** Base for polling and HTTP retry; SSE moves along the list on its own (a base that refuses streams may still answer polls). */
  private apiIndex = 0;
  private sseIndex = 0;
  /** Messages to send once subscribed (a retry asked for while disconnected). */
  private pending: ClientMessage[] = [];
  /** Which way the latest state came: a retry goes the same way (SSE is read-only: 'http'). */
  private lastTransport: 'ws' | 'http' | undefined;
  private retryFallback: ReturnType<typeof setTimeout> | undefined;
  /** A retry was sent and the job has not left its ended state yet: keep listening. */
  private retryInFlight = false;
  private heartbeat: ReturnType<typeof setInterval> | undefined;
  private lastMessageAt = 0;
  private wakeTimer: ReturnType<typeof setTimeout> | undefined;
  private stopWakeUp: (() => void) | undefined;

  constructor(options: ProgressClientOptions) {
    this.options = options;
    this.jobId = options.jobId;
    this.srcs = parseEndpoints(options.src);
    const apis = parseEndpoints(options.api);
    this.apiGiven = apis.length > 0;
    this.apiBases = (this.apiGiven ? apis : this.srcs.map(deriveApiBase)).map((b) => b.replace(/\/$/, ''));
    const jobPath = `/v1/jobs/${encodeURIComponent(options.jobId)}`;
    const min = options.minReconnectDelayMs ?? 1000;
    this.refresher = new TokenRefresher({
      getToken: () => this.token(),
      send: (token) => this.send({ type: 'auth', token }),
    });
    const ES = options.EventSource === undefined ? globalThis.EventSource : options.EventSource;
    this.sse = ES
      ? new SseTransport({
          EventSource: ES,
          url: () => `${this.apiBases[this.sseIndex] ?? ''}${jobPath}/stream`,
          getToken: () => this.token(),
          onMessage: (msg) => this.onMessage(msg),
          onLive: () => {
            this.everLive = true;
            this.lastTransport = 'http';
            // HTTP retry goes to the server whose stream works.
            this.apiIndex = this.sseIndex;
            this.poller.stop();
            this.updateState();
          },
          onDown: () => this.updateState(),
          onFailure: (count) => {
            if (this.apiBases.length > 1) this.sseIndex = (this.sseIndex + 1) % this.apiBases.length;
            if (count >= (options.sseAttemptsBeforePolling ?? 2)) this.startPolling();
            this.updateState();
          },
          connectTimeoutMs: options.connectTimeoutMs ?? 4000,
          minDelayMs: min,
          maxDelayMs: options.maxReconnectDelayMs ?? 10_000,
        })
      : undefined;
    this.poller = new Poller({
      url: () => `${this.apiBase}${jobPath}`,
      getToken: () => this.token(),
      onJob: (job) => {
        if (!this.socketLive) this.lastTransport = 'http';
        this.ingest(job);
      },
      onHttpError: (_status, code, message) => {
        // The server is there but refuses: polling continues slowly (a fresh token may fix it).
        this.emitter.emit('error', { code, message });
      },
      onUnreachable: (count) => {
        // Several HTTP bases: try the next one; offline once each has failed in a row.
        if (this.apiBases.length > 1) this.apiIndex = (this.apiIndex + 1) % this.apiBases.length;
        if (count >= this.apiBases.length) this.pollReach = 'unreachable';
        this.updateState();
      },
      onReachable: () => {
        this.pollReach = 'reachable';
        this.updateState();
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

  /** The transport delivering the job now: `websocket`, `sse`, `polling`, or `none`. */
  get transport(): ConnectionTransport {
    return this._transport;
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
    this.updateState();
    const WS = this.socketConstructor();
    if (WS && this.srcs.length > 0) this.openSocket(WS);
    else this.fallBack();
    this.stopWakeUp = onWakeUp(() => this.wakeUp());
  }

  /** Stop all network activity. `open()` starts again. */
  close(): void {
    if (!this.opened) return;
    this.opened = false;
    this.socketLive = false;
    clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    clearTimeout(this.retryFallback);
    clearTimeout(this.wakeTimer);
    this.refresher.stop();
    const socket = this.socket;
    this.socket = undefined;
    socket?.close(1000, 'done');
    this.sse?.stop();
    this.poller.stop();
    this.stopWakeUp?.();
    this.stopWakeUp = undefined;
    this.updateState();
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

  /**
   * The state and transport follow from what works, best first: the socket, the stream,
   * polling (answering or not), else waiting for a first or renewed connection.
   */
  private updateState(): void {
    let state: ConnectionState;
    let transport: ConnectionTransport = 'none';
    if (!this.opened) state = 'closed';
    else if (this.socketLive) [state, transport] = ['live', 'websocket'];
    else if (this.sse?.live) [state, transport] = ['live', 'sse'];
    else if (this.poller.active && this.pollReach === 'reachable') [state, transport] = ['polling', 'polling'];
    else if (this.poller.active && this.pollReach === 'unreachable') state = 'offline';
    else state = this.everLive ? 'reconnecting' : 'connecting';
    if (state === this._state && transport === this._transport) return;
    this._state = state;
    this._transport = transport;
    this.emitter.emit('connection', state, transport);
  }

  /** The level below the socket: SSE when the browser has it, else polling. */
  private fallBack(): void {
    if (!this.sse) return this.startPolling();
    if (this.sse.active) return;
    this.sseIndex = this.apiIndex;
    this.sse.start();
  }

  /** Polls the HTTP base of the socket URL in use (unless `api` names the bases). */
  private startPolling(): void {
    if (this.poller.active) return;
    if (!this.apiGiven) this.apiIndex = this.srcIndex;
    this.pollReach = 'pending';
    this.poller.start();
  }

  private openSocket(WS: typeof WebSocket): void {
    const min = this.options.minReconnectDelayMs ?? 1000;
    let attempts = 0;
    const socket = new ReconnectingWebSocket(
      // partysocket awaits this before every attempt: a fresh token each time, plus jitter
      // (its own backoff has none) so a fleet of clients does not reconnect in lockstep.
      // Not protocol's backoffDelay: partysocket already waits its own exponential delay
      // (min·grow^n up to max); this only adds 0–50% of the first delay on top of it.
      async () => {
        const url = toSocketUrl(this.srcs[this.srcIndex]!);
        // Replaced meanwhile (wake-up): partysocket will not connect; no token needed.
        if (this.socket !== socket) return url.href;
        if (attempts++ > 0) await sleep(Math.random() * min * 0.5);
        const token = await this.token();
        this.socketToken = token;
        if (token && this.options.tokenInUrl) url.searchParams.set('access_token', token);
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
        // Retry forever; the fallback covers the gap. partysocket ≥1.1 also resets its retry
        // count on reconnect(), so the "no-op after maxRetries" bug cannot bite here.
        maxRetries: Number.POSITIVE_INFINITY,
      },
    );
    this.socket = socket;
    socket.addEventListener('open', () => {
      if (this.socket !== socket) return;
      this.lastMessageAt = Date.now();
      const token = this.socketToken;
      // No token at all: the server serves nothing and closes the socket (4001) after its auth
      // deadline; the fallback then reports the refusal over HTTP.
      if (!token) return;
      if (this.options.tokenInUrl) {
        this.refresher.adopt(token);
        this.socketReady();
        return;
      }
      // First-message auth: the token goes first, the subscription once it is accepted.
      this.refresher.sent(token);
      this.send({ type: 'auth', token });
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
      this.socketLive = false;
      this.refresher.stop();
      clearInterval(this.heartbeat);
      this.socketFailures++;
      // Failover: the next attempt (after partysocket's backoff and our jitter) goes to the next URL.
      if (this.srcs.length > 1) this.srcIndex = (this.srcIndex + 1) % this.srcs.length;
      // Every URL gets its try before the fallback starts; the socket keeps retrying meanwhile.
      if (this.socketFailures >= Math.max(this.options.socketAttemptsBeforePolling ?? 3, this.srcs.length)) this.fallBack();
      this.updateState();
    });
  }

  /** The socket is authenticated: subscribe (resuming from the last seq), and leave the fallback. */
  private socketReady(): void {
    this.socketLive = true;
    this.socketFailures = 0;
    this.everLive = true;
    this.lastTransport = 'ws';
    // HTTP (a retry, a later fallback) goes to the server whose socket works.
    if (!this.apiGiven) this.apiIndex = this.srcIndex;
    this.sse?.stop();
    this.poller.stop();
    const since = this._job?.seq;
    this.send(since === undefined ? { type: 'subscribe', jobId: this.jobId } : { type: 'subscribe', jobId: this.jobId, since });
    clearTimeout(this.retryFallback);
    for (const m of this.pending.splice(0)) this.send(m);
    this.updateState();
    this.startHeartbeat();
  }

  private onMessage(msg: ServerMessage): void {
    switch (msg.type) {
      case 'snapshot':
      case 'update':
        this.ingest(msg.job);
        break;
      case 'auth_ok':
        // The first one opens the socket for business; later ones answer a refresh.
        this.refresher.accepted(msg.exp);
        if (!this.socketLive) this.socketReady();
        break;
      case 'error':
        // A refused `auth` (first or refresh): the refresher tries again while the token lasts.
        if (msg.code === 'unauthorized' && msg.jobId === undefined) this.refresher.refused();
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

  /** Only on an open socket: partysocket would queue it and send it before the next `auth`. */
  private send(message: ClientMessage): void {
    if (this.socket?.readyState === OPEN) this.socket.send(JSON.stringify(message));
  }

  /**
   * Page visible again or back online: whatever waits in backoff tries now, after a random
   * 0..wakeJitterMs so the tabs (or the clients of a whole office) do not arrive together. A
   * socket that looks live is probed: after a sleep it may be dead without knowing it.
   */
  private wakeUp(): void {
    clearTimeout(this.wakeTimer);
    this.wakeTimer = setTimeout(() => {
      if (!this.opened) return;
      if (this.socketLive) return this.probeSocket();
      const WS = this.socketConstructor();
      // partysocket cannot cut its backoff wait short (reconnect() is ignored while it waits):
      // a waiting socket is replaced by a new one, which connects at once.
      if (WS && this.socket && this.socket.readyState === CLOSED) {
        const old = this.socket;
        this.socket = undefined;
        old.close();
        this.openSocket(WS);
      }
      this.sse?.wake();
      this.poller.pollNow();
    }, Math.random() * (this.options.wakeJitterMs ?? 1000));
  }

  /** Ping; a socket that does not answer within the connect timeout is replaced. */
  private probeSocket(): void {
    const sentAt = Date.now();
    const socket = this.socket;
    this.send({ type: 'ping' });
    setTimeout(() => {
      if (this.socket === socket && this.socketLive && this.lastMessageAt < sentAt) socket?.reconnect(4000, 'no answer after wake-up');
    }, this.options.connectTimeoutMs ?? 4000);
  }

  /** A socket can die without a close event (sleeping laptop, dead NAT): ping, and replace it when silent. */
  private startHeartbeat(): void {
    clearInterval(this.heartbeat);
    const every = this.options.heartbeatMs ?? 20_000;
    this.heartbeat = setInterval(() => {
      if (!this.socket || !this.socketLive) return;
      if (Date.now() - this.lastMessageAt > every * 2) {
        this.socket.reconnect(4000, 'heartbeat timeout');
        return;
      }
      this.send({ type: 'ping' });
    }, every);
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
      error = { code: answer.error?.code ?? `http_${res.status}`, message: answer.error?.message ?? `${what} failed (HTTP ${res.status})` };
    } catch (err) {
      error = { code: 'network', message: err instanceof Error ? err.message : String(err) };
    }
    if (action === 'retry') this.retryInFlight = false;
    this.emitter.emit('error', error);
  }
}
