/**
 * The top of the transport chain: the WebSocket to `/v1/ws`, through partysocket (reconnects with
 * exponential backoff; here plus jitter, and a fresh token before every attempt), with the
 * credentials of that socket and the checks that it is still alive.
 *
 * Contract:
 * - `start(WS)` opens a socket to `url()` (read before every attempt, so failover moves it) and
 *   keeps reconnecting until `stop()`; `onClose` tells of every close (the channel counts them,
 *   fails over and falls back).
 * - First-message auth: the token goes in the socket's first message (`{"type":"auth"}`), never
 *   the URL (unless `tokenInUrl`), and is refreshed in place on the same socket before it expires
 *   (token-refresh.ts). The channel passes the server's answers in: `accepted(exp)` for `auth_ok`,
 *   `refused()` for a refused `auth`. The first acceptance makes the socket `live` and calls
 *   `onReady` (the channel subscribes there; `send` before that sends nothing).
 * - A live socket can die without a close event (sleeping laptop, dead NAT): it is pinged every
 *   `heartbeatMs` and replaced when silent for two; on wake-up `wake()` probes a live socket and
 *   replaces one waiting in backoff (partysocket cannot cut that wait short).
 *
 * Why its own file: the socket's lifecycle (attempt → auth → live → heartbeat → close) is one
 * concept with its own state; the channel (live-channel.ts) only needs to know when it is live
 * and when it closed, as with the stream (sse-transport.ts) and polling (poller.ts).
 */
import { WebSocket as ReconnectingWebSocket } from 'partysocket';
import { sleep, type ClientMessage, type ServerMessage } from '../protocol/index.js';
import type { ChannelOptions } from './channel-types.js';
import { toSocketUrl } from './endpoints.js';
import { TokenRefresher } from './token-refresh.js';

/** WebSocket.OPEN / CLOSED (the constants, without touching a global that may be missing). */
const OPEN = 1;
const CLOSED = 3;

export interface SocketTransportOptions {
  /** Backoff, timeouts, heartbeat and `tokenInUrl`, as the channel was given them. */
  options: ChannelOptions;
  /** The socket URL (one of `src`'s) for the next attempt. */
  url: () => string;
  getToken: () => Promise<string | undefined>;
  /** A server message arrived (the channel routes `auth_ok` and a refused `auth` back to `accepted`/`refused`). */
  onMessage: (msg: ServerMessage) => void;
  /** Authenticated: the socket is live. */
  onReady: () => void;
  /** The socket closed (not by `stop()`); partysocket tries again after its backoff. */
  onClose: (event: CloseEvent) => void;
}

export class SocketTransport {
  /** Authenticated (and subscribed by the channel): the top of the chain works. */
  live = false;
  private socket: ReconnectingWebSocket | undefined;
  /** The token fetched for the attempt under way, sent as its first message. */
  private socketToken: string | undefined;
  private readonly refresher: TokenRefresher;
  private heartbeat: ReturnType<typeof setInterval> | undefined;
  private lastMessageAt = 0;

  constructor(private readonly o: SocketTransportOptions) {
    this.refresher = new TokenRefresher({
      getToken: o.getToken,
      send: (token) => this.send({ type: 'auth', token }),
    });
  }

  start(WS: typeof WebSocket): void {
    const { options } = this.o;
    const min = options.minReconnectDelayMs ?? 1000;
    let attempts = 0;
    const socket = new ReconnectingWebSocket(
      // partysocket awaits this before every attempt: a fresh token each time, plus jitter
      // (its own backoff has none) so a fleet of clients does not reconnect in lockstep.
      // Not protocol's backoffDelay: partysocket already waits its own exponential delay
      // (min·grow^n up to max); this only adds 0–50% of the first delay on top of it.
      async () => {
        const url = toSocketUrl(this.o.url());
        // Replaced meanwhile (wake-up): partysocket will not connect; no token needed.
        if (this.socket !== socket) return url.href;
        if (attempts++ > 0) await sleep(Math.random() * min * 0.5);
        const token = await this.o.getToken();
        this.socketToken = token;
        if (token && options.tokenInUrl) url.searchParams.set('access_token', token);
        return url.href;
      },
      undefined,
      {
        WebSocket: WS,
        minReconnectionDelay: min,
        maxReconnectionDelay: options.maxReconnectDelayMs ?? 10_000,
        reconnectionDelayGrowFactor: options.reconnectGrowFactor ?? 1.5,
        connectionTimeout: options.connectTimeoutMs ?? 4000,
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
      if (options.tokenInUrl) {
        this.refresher.adopt(token);
        this.ready();
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
      this.o.onMessage(msg);
    });
    socket.addEventListener('close', (event: CloseEvent) => {
      if (this.socket !== socket) return;
      this.live = false;
      this.refresher.stop();
      clearInterval(this.heartbeat);
      this.o.onClose(event);
    });
  }

  /** Close for good (`start` opens a new one). */
  stop(): void {
    this.live = false;
    clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    this.refresher.stop();
    const socket = this.socket;
    this.socket = undefined;
    socket?.close(1000, 'done');
  }

  /** Only on an open socket: partysocket would queue it and send it before the next `auth`. */
  send(message: ClientMessage): void {
    if (this.socket?.readyState === OPEN) this.socket.send(JSON.stringify(message));
  }

  /** `auth_ok`: the first one opens the socket for business; later ones answer a refresh. */
  accepted(exp: number): void {
    this.refresher.accepted(exp);
    if (!this.live) this.ready();
  }

  /** A refused `auth` (first or refresh): the refresher tries again while the token lasts. */
  refused(): void {
    this.refresher.refused();
  }

  /**
   * Waking up: a live socket is probed (after a sleep it may be dead without knowing it); one
   * waiting in backoff is replaced by a new one, which connects at once (partysocket ignores
   * reconnect() while it waits).
   */
  wake(WS: typeof WebSocket | undefined): void {
    if (this.live) return this.probe();
    if (WS && this.socket && this.socket.readyState === CLOSED) {
      const old = this.socket;
      this.socket = undefined;
      old.close();
      this.start(WS);
    }
  }

  private ready(): void {
    this.live = true;
    this.o.onReady();
    this.startHeartbeat();
  }

  /** Ping; a socket that does not answer within the connect timeout is replaced. */
  private probe(): void {
    const sentAt = Date.now();
    const socket = this.socket;
    this.send({ type: 'ping' });
    setTimeout(() => {
      if (this.socket === socket && this.live && this.lastMessageAt < sentAt) socket?.reconnect(4000, 'no answer after wake-up');
    }, this.o.options.connectTimeoutMs ?? 4000);
  }

  /** Ping every `heartbeatMs`; a socket silent for two intervals is replaced. */
  private startHeartbeat(): void {
    clearInterval(this.heartbeat);
    const every = this.o.options.heartbeatMs ?? 20_000;
    this.heartbeat = setInterval(() => {
      if (!this.socket || !this.live) return;
      if (Date.now() - this.lastMessageAt > every * 2) {
        this.socket.reconnect(4000, 'heartbeat timeout');
        return;
      }
      this.send({ type: 'ping' });
    }, every);
  }
}
