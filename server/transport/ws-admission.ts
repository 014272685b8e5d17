/**
 * Who a WebSocket is, and for how long: admission on `/v1/ws` and the socket's credentials.
 *
 * Security (OWASP WebSocket cheat sheet): the Origin is checked against the allow-list and a
 * token given as `?access_token=` verified in the upgrade handler, before any socket exists: 403 /
 * 401 otherwise (and 429 past the connections per client address, 503 while shutting down).
 * Without `access_token` (tokens stay out of URLs and logs), the socket must send
 * `{"type":"auth","token"}` first, within LIMITS.authTimeoutSeconds; nothing else is served
 * before (ws-hub.ts). The same message later replaces the credentials in place (token refresh):
 * every subscription is re-checked against the new claims (ws-subscriptions.ts). A socket is
 * closed with 4001 when its token expires (or its auth deadline passes): sockets are bucketed by
 * that second and one timer, ticking on whole seconds, sweeps the due buckets (expiry-sweep.ts),
 * so an idle socket costs no timer or closure of its own.
 *
 * Separate from the hub's message dispatch because it runs before a socket exists and outside
 * any request a client made: it decides whether there is a socket at all and when it must end.
 */
import type { HttpRequest, HttpResponse, us_socket_context_t } from 'uWebSockets.js';
import { ApiError, CloseCode, LIMITS } from '../../protocol/index.js';
import { errorReply, rawQuery, remoteAddress, writeReply } from './uws-http.js';
import { ExpirySweep } from './expiry-sweep.js';
import type { WsSubscriptions } from './ws-subscriptions.js';
import { send, sendError, type HubContext, type HubSocket, type SocketData } from './ws-socket.js';

export class WsAdmission {
  private nextId = 1;
  private shuttingDown = false;
  /** Closes sockets whose token expired, or whose first-message auth did not come in time. */
  private readonly expiry = new ExpirySweep<HubSocket>(
    (ws) => ws.getUserData(),
    (ws) => {
      try {
        ws.end(CloseCode.TokenExpired, ws.getUserData().principal ? 'token expired' : 'no auth message in time');
      } catch {
        /* already closed */
      }
    },
  );

  constructor(
    private readonly ctx: HubContext,
    private readonly subscriptions: WsSubscriptions,
  ) {}

  start(): void {
    this.expiry.start();
  }

  /** Shutting down: upgrades are refused (503) and the expiry timer stops. */
  stop(): void {
    this.shuttingDown = true;
    this.expiry.stop();
  }

  upgrade(res: HttpResponse, req: HttpRequest, context: us_socket_context_t): void {
    const { config, log, metrics, verifier } = this.ctx;
    // HttpRequest dies when this function returns: copy what we need now.
    const key = req.getHeader('sec-websocket-key');
    // A server must answer at most one of the offered subprotocols (RFC 6455 §4.2.2).
    const protocol = req.getHeader('sec-websocket-protocol').split(',')[0]!.trim();
    const extensions = req.getHeader('sec-websocket-extensions');
    const origin = req.getHeader('origin');
    // Absent: first-message auth. Present (even empty): verified now.
    const token = new URLSearchParams(rawQuery(req)).get('access_token');
    const remote = remoteAddress(res, req, config.trustProxy);
    let aborted = false;
    res.onAborted(() => {
      aborted = true;
    });
    const refuse = (err: ApiError) => {
      if (aborted) return;
      res.cork(() => writeReply(res, errorReply(err, err.status === 401 ? { 'WWW-Authenticate': 'Bearer' } : undefined)));
    };
    if (this.shuttingDown) return refuse(new ApiError(503, 'internal', 'server shutting down'));
    // Browsers always send Origin; non-browser clients (producers) may not, and cannot be
    // abused cross-site, so only a present, disallowed Origin is refused.
    if (origin && config.allowedOrigins.length > 0 && !config.allowedOrigins.includes(origin)) {
      metrics.originRejections++;
      log.warn({ remote, origin }, 'websocket origin refused');
      return refuse(new ApiError(403, 'forbidden', `origin ${origin} is not allowed`));
    }
    if (this.ctx.addresses.full(remote)) {
      metrics.rateLimited++;
      metrics.connectionLimited++;
      log.warn({ remote }, 'websocket connection limit per address reached');
      return refuse(new ApiError(429, 'rate_limited', `too many connections from this address (max ${config.limits.maxConnectionsPerIp})`));
    }
    (token === null ? Promise.resolve(undefined) : verifier.verify(token)).then(
      (principal) => {
        if (aborted) return;
        if (this.shuttingDown) return refuse(new ApiError(503, 'internal', 'server shutting down'));
        const data: SocketData = {
          id: this.nextId++,
          principal,
          remote,
          origin,
          subs: new Map(),
          expirySecond: 0,
          tokens: config.limits.messagesPerSecond * 2,
          lastRefill: Date.now(),
          flood: 0,
          closed: false,
        };
        res.cork(() => res.upgrade(data, key, protocol, extensions, context));
      },
      (err: unknown) => {
        metrics.authFailures++;
        const reason = err instanceof ApiError ? err.message : 'token is invalid';
        log.warn({ remote, origin, reason }, 'websocket auth failure');
        refuse(err instanceof ApiError ? err : new ApiError(401, 'unauthorized', reason));
      },
    );
  }

  /** A socket opened: closed by the sweep when the token expires, or when the first-message auth deadline passes. */
  opened(ws: HubSocket, d: SocketData): void {
    this.expiry.at(ws, d.principal ? d.principal.expiresAt : Date.now() + LIMITS.authTimeoutSeconds * 1000);
  }

  closed(ws: HubSocket): void {
    this.expiry.remove(ws);
  }

  /**
   * `auth`: verifies the token, then makes it the socket's credentials. Subscriptions the new
   * claims no longer grant are dropped (`forbidden`), and producer `control` follows write scope.
   */
  authenticate(ws: HubSocket, d: SocketData, token: string): void {
    const { verifier, metrics, log } = this.ctx;
    verifier.verify(token).then(
      (principal) => {
        if (d.closed) return;
        const first = d.principal === undefined;
        d.principal = principal;
        this.expiry.at(ws, principal.expiresAt);
        ws.cork(() => send(this.ctx, ws, { type: 'auth_ok', exp: Math.floor(principal.expiresAt / 1000) }));
        this.subscriptions.reauthorize(ws, d, principal);
        log.debug({ socket: d.id, sub: principal.subject, first }, first ? 'websocket authenticated' : 'websocket token refreshed');
      },
      (err: unknown) => {
        if (d.closed) return;
        metrics.authFailures++;
        const reason = err instanceof ApiError ? err.message : 'token is invalid';
        log.warn({ socket: d.id, remote: d.remote, reason }, 'websocket auth message refused');
        ws.cork(() => sendError(this.ctx, ws, 'unauthorized', reason));
      },
    );
  }
}
