/**
 * LiveChannel: the transport chain shared by ProgressClient (one job) and FeedClient (a tag's
 * feed). It follows one subscription down the chain — WebSocket (`/v1/ws`, partysocket with
 * backoff + jitter) → Server-Sent Events → HTTP polling — moving down after repeated failures and
 * back up as soon as a better transport works again (the ones above the level in use keep
 * retrying in the background). `state` says how it is followed, `transport` which transport
 * delivers it.
 *
 * Credentials: the token goes in the socket's first message (`{"type":"auth"}`), not the URL, and
 * is refreshed in place before it expires (token-refresh.ts). Waking up (page visible again,
 * `online`) cuts any backoff short. `src` may list several servers: when the one in use cannot
 * be opened or drops, the next one is tried, re-subscribing and resyncing from its first message.
 *
 * A subclass says what it follows: the subscribe message (`subscription()`), the stream and poll
 * paths (constructor), what to do with a server message (`handle`) and a polled body (`polled`).
 */
import { createNanoEvents, type Emitter, type Unsubscribe } from 'nanoevents';
import { WebSocket as ReconnectingWebSocket } from 'partysocket';
import { sleep, type ClientMessage, type ServerMessage } from '../protocol/index.js';
import { deriveApiBase, parseEndpoints, toSocketUrl, type EndpointList } from './endpoints.js';
import { Poller } from './poller.js';
import { SseTransport } from './sse-transport.js';
import { TokenRefresher } from './token-refresh.js';
import { onWakeUp } from './wake-up.js';

/**
 * - `connecting`: first attempt under way.
 * - `live`: updates are pushed (WebSocket or SSE: see `ConnectionTransport`).
 * - `reconnecting`: the live transport dropped; trying again.
 * - `polling`: no push transport works; HTTP polling keeps the view current.
 * - `offline`: nothing reaches the server (a job's tracker then shows a local estimate).
 * - `closed`: not connected (not opened yet, closed, or the job has ended).
 */
export type ConnectionState = 'connecting' | 'live' | 'reconnecting' | 'polling' | 'offline' | 'closed';

/**
 * Which transport delivers: `websocket` and `sse` while `live`, `polling` while `polling`,
 * `none` otherwise (connecting, reconnecting, offline, closed).
 */
export type ConnectionTransport = 'websocket' | 'sse' | 'polling' | 'none';

export type TokenProvider = () => string | undefined | Promise<string | undefined>;

/**
 * A refusal or failure: `{code, message}` (ProgressClient adds the job's fields). `kind`
 * `connection`: no server answered (network error, a gateway's 502/503/504, a token provider
 * that failed) — transient, never the job's failure; `request`: the server answered no.
 */
export interface ChannelError {
  code: string;
  message: string;
  kind?: 'request' | 'connection';
  /** The HTTP status, when an answer came. */
  status?: number;
}

/** The latest reason no server answered, raw (for `progress-error`'s detail, never the UI). */
export interface ChannelFailure {
  code: string;
  message: string;
  status?: number;
  transport: 'websocket' | 'sse' | 'polling' | 'token';
}

/** The events every channel emits. */
export interface ChannelEvents {
  error: (error: ChannelError) => void;
  /** The state or the transport changed (a move between WebSocket and SSE keeps `live`). */
  connection: (state: ConnectionState, transport: ConnectionTransport) => void;
}

export interface ChannelOptions {
  /**
   * WebSocket URL of `/v1/ws` (ws:, wss:, or http(s): which is mapped to ws(s):). Several
   * (an array, or a space/comma-separated string) for failover: tried in turn, round-robin.
   */
  src: EndpointList;
  /**
   * HTTP base URL of the API, for SSE, polling and HTTP requests (default: derived from the `src`
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
  /** Polling interval bounds (ms); a job's interval adapts to its ETA inside them. */
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

export abstract class LiveChannel<E extends ChannelEvents> {
  protected readonly options: ChannelOptions;
  protected readonly emitter: Emitter<E> = createNanoEvents<E>();
  private socket: ReconnectingWebSocket | undefined;
  /** The socket is authenticated and subscribed: the top of the chain works. */
  protected socketLive = false;
  /** The token fetched for the socket attempt under way, sent as its first message. */
  private socketToken: string | undefined;
  private readonly refresher: TokenRefresher;
  private readonly sse: SseTransport | undefined;
  private readonly poller: Poller;
  /** What the last poll found: nothing yet, a server answering, or no base reachable. */
  private pollReach: 'pending' | 'reachable' | 'unreachable' = 'pending';
  private _state: ConnectionState = 'closed';
  private _transport: ConnectionTransport = 'none';
  protected opened = false;
  private everLive = false;
  private socketFailures = 0;
  /** The socket URLs (failover order) and which one is in use. */
  private readonly srcs: string[];
  private srcIndex = 0;
  /** The HTTP bases: `api`'s list, or one derived from each socket URL. */
  private readonly apiBases: string[];
  private readonly apiGiven: boolean;
  /** Base for polling and HTTP requests; SSE moves along the list on its own (a base that refuses streams may still answer polls). */
  private apiIndex = 0;
  private sseIndex = 0;
  /** Which way the latest state came: a retry goes the same way (SSE is read-only: 'http'). */
  protected lastTransport: 'ws' | 'http' | undefined;
  private heartbeat: ReturnType<typeof setInterval> | undefined;
  private lastMessageAt = 0;
  private wakeTimer: ReturnType<typeof setTimeout> | undefined;
  private stopWakeUp: (() => void) | undefined;
  private _failure: ChannelFailure | undefined;

  /** `streamPath` and `pollPath` follow the HTTP base (e.g. `/v1/jobs/j1/stream`, `/v1/jobs/j1`). */
  constructor(options: ChannelOptions, streamPath: string, pollPath: string) {
    this.options = options;
    this.srcs = parseEndpoints(options.src);
    const apis = parseEndpoints(options.api);
    this.apiGiven = apis.length > 0;
    this.apiBases = (this.apiGiven ? apis : this.srcs.map(deriveApiBase)).map((b) => b.replace(/\/$/, ''));
    const min = options.minReconnectDelayMs ?? 1000;
    this.refresher = new TokenRefresher({
      getToken: () => this.token(),
      send: (token) => this.send({ type: 'auth', token }),
    });
    const ES = options.EventSource === undefined ? globalThis.EventSource : options.EventSource;
    this.sse = ES
      ? new SseTransport({
          EventSource: ES,
          url: () => `${this.apiBases[this.sseIndex] ?? ''}${streamPath}`,
          getToken: () => this.token(),
          onMessage: (msg) => this.onMessage(msg),
          onLive: () => {
            this.everLive = true;
            this.lastTransport = 'http';
            // HTTP requests go to the server whose stream works.
            this.apiIndex = this.sseIndex;
            this.poller.stop();
            this.updateState();
          },
          onDown: () => this.updateState(),
          onFailure: (count) => {
            this._failure = { code: 'stream_failed', message: 'event stream failed', transport: 'sse' };
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
      url: () => `${this.apiBase}${pollPath}`,
      getToken: () => this.token(),
      onBody: (body) => {
        if (!this.socketLive) this.lastTransport = 'http';
        this.polled(body);
      },
      onHttpError: (status, code, message) => {
        // The server is there but refuses: polling continues slowly (a fresh token may fix it).
        this.fail({ code, message, kind: status >= 500 ? 'connection' : 'request', status });
      },
      onUnreachable: (count, reason) => {
        this._failure = { ...reason, transport: 'polling' };
        // Several HTTP bases: try the next one; offline once each has failed in a row.
        if (this.apiBases.length > 1) this.apiIndex = (this.apiIndex + 1) % this.apiBases.length;
        if (count >= this.apiBases.length) this.pollReach = 'unreachable';
        this.updateState();
      },
      onReachable: () => {
        this.pollReach = 'reachable';
        this.updateState();
      },
      remainingMs: () => this.remainingMs(),
      minIntervalMs: options.minPollIntervalMs ?? 2000,
      maxIntervalMs: options.maxPollIntervalMs ?? 15000,
    });
  }

  /** The subscribe message sent once the socket is authenticated (every time it is). */
  protected abstract subscription(): ClientMessage;
  /** A server message other than `auth_ok` (from the socket or the stream). */
  protected abstract handle(msg: ServerMessage): void;
  /** A polled body (200). */
  protected abstract polled(body: unknown): void;
  /** Remaining ms of what is followed, to pace polling (null: the default pace). */
  protected remainingMs(): number | null {
    return null;
  }
  /** Called right after the subscribe message went out on a freshly authenticated socket. */
  protected subscribed(): void {}

  get state(): ConnectionState {
    return this._state;
  }

  /** Why the latest attempt of any transport got no answer (raw, for developers). */
  get lastFailure(): ChannelFailure | undefined {
    return this._failure;
  }

  /** The transport delivering now: `websocket`, `sse`, `polling`, or `none`. */
  get transport(): ConnectionTransport {
    return this._transport;
  }

  /** The socket URL in use (or tried next), one of `src`'s. */
  get currentSrc(): string | undefined {
    return this.srcs[this.srcIndex];
  }

  /** The HTTP base in use for polling and HTTP requests. */
  get apiBase(): string {
    return this.apiBases[this.apiIndex] ?? '';
  }

  on<K extends keyof E>(event: K, cb: E[K]): Unsubscribe {
    return this.emitter.on(event, cb);
  }

  /** Start following. */
  open(): void {
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

  /** Emits `error` (typed for the base's events). */
  protected fail(error: ChannelError): void {
    (this.emitter as unknown as Emitter<ChannelEvents>).emit('error', error);
  }

  protected socketConstructor(): typeof WebSocket | undefined {
    const WS = this.options.WebSocket === undefined ? globalThis.WebSocket : this.options.WebSocket;
    return WS ?? undefined;
  }

  protected async token(): Promise<string | undefined> {
    if (this.options.tokenProvider) {
      try {
        return (await this.options.tokenProvider()) ?? this.options.token;
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        this._failure = { code: 'token_provider', message, transport: 'token' };
        this.fail({ code: 'token_provider', message, kind: 'connection' });
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
    (this.emitter as unknown as Emitter<ChannelEvents>).emit('connection', state, transport);
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
    socket.addEventListener('close', (event: CloseEvent) => {
      if (this.socket !== socket || !this.opened) return;
      this._failure = { code: `ws_${event.code}`, message: `WebSocket closed: ${event.code} ${event.reason}`, transport: 'websocket' };
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

  /** The socket is authenticated: subscribe, and leave the fallback. */
  private socketReady(): void {
    this.socketLive = true;
    this.socketFailures = 0;
    this.everLive = true;
    this.lastTransport = 'ws';
    // HTTP (a retry, a later fallback) goes to the server whose socket works.
    if (!this.apiGiven) this.apiIndex = this.srcIndex;
    this.sse?.stop();
    this.poller.stop();
    this.send(this.subscription());
    this.subscribed();
    this.updateState();
    this.startHeartbeat();
  }

  private onMessage(msg: ServerMessage): void {
    if (msg.type === 'auth_ok') {
      // The first one opens the socket for business; later ones answer a refresh.
      this.refresher.accepted(msg.exp);
      if (!this.socketLive) this.socketReady();
      return;
    }
    // A refused `auth` (first or refresh): the refresher tries again while the token lasts.
    if (msg.type === 'error' && msg.code === 'unauthorized' && msg.jobId === undefined) this.refresher.refused();
    this.handle(msg);
  }

  /** Only on an open socket: partysocket would queue it and send it before the next `auth`. */
  protected send(message: ClientMessage): void {
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
}
