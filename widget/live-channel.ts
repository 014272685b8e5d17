/**
 * LiveChannel: the transport chain shared by ProgressClient (one job) and FeedClient (a tag's
 * feed). It follows one subscription down the chain — WebSocket (`/v1/ws`, socket-transport.ts:
 * partysocket with backoff + jitter, first-message auth, token refresh, heartbeat) → Server-Sent
 * Events (sse-transport.ts) → HTTP polling (poller.ts) — moving down after repeated failures and
 * back up as soon as a better transport works again (the ones above the level in use keep
 * retrying in the background). `state` says how it is followed, `transport` which transport
 * delivers it (connection-state.ts derives both from what works).
 *
 * What stays here is what ties the transports together: `src` may list several servers — when the
 * one in use cannot be opened or drops, the next one is tried, re-subscribing and resyncing from
 * its first message — and `api` several HTTP bases; the fallback and the way back up; the token
 * provider (one failure report for all transports); waking up (page visible again, `online`,
 * wake-up.ts) cuts any backoff short.
 *
 * A subclass says what it follows: the subscribe message (`subscription()`), the stream and poll
 * paths (constructor), what to do with a server message (`handle`) and a polled body (`polled`).
 * The options, errors and events are in channel-types.ts.
 */
import { createNanoEvents, type Emitter, type Unsubscribe } from 'nanoevents';
import type { ClientMessage, ServerMessage } from '../protocol/index.js';
import type { ChannelError, ChannelEvents, ChannelFailure, ChannelOptions } from './channel-types.js';
import { deriveConnection, type ConnectionState, type ConnectionTransport, type PollReach } from './connection-state.js';
import { deriveApiBase, parseEndpoints } from './endpoints.js';
import { Poller } from './poller.js';
import { SocketTransport } from './socket-transport.js';
import { SseTransport } from './sse-transport.js';
import { onWakeUp } from './wake-up.js';

export abstract class LiveChannel<E extends ChannelEvents> {
  protected readonly options: ChannelOptions;
  protected readonly emitter: Emitter<E> = createNanoEvents<E>();
  private readonly socket: SocketTransport;
  private readonly sse: SseTransport | undefined;
  private readonly poller: Poller;
  /** What the last poll found: nothing yet, a server answering, or no base reachable. */
  private pollReach: PollReach = 'pending';
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
    this.socket = new SocketTransport({
      options,
      url: () => this.srcs[this.srcIndex]!,
      getToken: () => this.token(),
      onMessage: (msg) => this.onMessage(msg),
      onReady: () => this.socketReady(),
      onClose: (event) => {
        this._failure = { code: `ws_${event.code}`, message: `WebSocket closed: ${event.code} ${event.reason}`, transport: 'websocket' };
        this.socketFailures++;
        // Failover: the next attempt (after partysocket's backoff and our jitter) goes to the next URL.
        if (this.srcs.length > 1) this.srcIndex = (this.srcIndex + 1) % this.srcs.length;
        // Every URL gets its try before the fallback starts; the socket keeps retrying meanwhile.
        if (this.socketFailures >= Math.max(options.socketAttemptsBeforePolling ?? 3, this.srcs.length)) this.fallBack();
        this.updateState();
      },
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
          minDelayMs: options.minReconnectDelayMs ?? 1000,
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

  /** The socket is authenticated and subscribed: the top of the chain works. */
  protected get socketLive(): boolean {
    return this.socket.live;
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
    if (WS && this.srcs.length > 0) this.socket.start(WS);
    else this.fallBack();
    this.stopWakeUp = onWakeUp(() => this.wakeUp());
  }

  /** Stop all network activity. `open()` starts again. */
  close(): void {
    if (!this.opened) return;
    this.opened = false;
    clearTimeout(this.wakeTimer);
    this.socket.stop();
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

  /** Emits `connection` when what works changed what is said (connection-state.ts). */
  private updateState(): void {
    const [state, transport] = deriveConnection({
      opened: this.opened,
      socketLive: this.socket.live,
      sseLive: !!this.sse?.live,
      polling: this.poller.active,
      pollReach: this.pollReach,
      everLive: this.everLive,
    });
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

  /** The socket is authenticated: subscribe, and leave the fallback. */
  private socketReady(): void {
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
  }

  private onMessage(msg: ServerMessage): void {
    if (msg.type === 'auth_ok') {
      this.socket.accepted(msg.exp);
      return;
    }
    if (msg.type === 'error' && msg.code === 'unauthorized' && msg.jobId === undefined) this.socket.refused();
    this.handle(msg);
  }

  /** Only on an open socket: partysocket would queue it and send it before the next `auth`. */
  protected send(message: ClientMessage): void {
    this.socket.send(message);
  }

  /**
   * Page visible again or back online: whatever waits in backoff tries now, after a random
   * 0..wakeJitterMs so the tabs (or the clients of a whole office) do not arrive together. A
   * socket that looks live is only probed.
   */
  private wakeUp(): void {
    clearTimeout(this.wakeTimer);
    this.wakeTimer = setTimeout(() => {
      if (!this.opened) return;
      if (this.socket.live) return this.socket.wake(undefined);
      this.socket.wake(this.socketConstructor());
      this.sse?.wake();
      this.poller.pollNow();
    }, Math.random() * (this.options.wakeJitterMs ?? 1000));
  }
}
