/**
 * WebSocket hub on `/v1/ws`: live job updates for browsers, retry control for producers.
 *
 * Security (OWASP WebSocket cheat sheet): the Origin is checked against the allow-list and a
 * token given as `?access_token=` verified in the upgrade handler, before any socket exists: 403 /
 * 401 otherwise. Without `access_token` (tokens stay out of URLs and logs), the socket must send
 * `{"type":"auth","token"}` first, within LIMITS.authTimeoutSeconds; nothing else is served
 * before. The same message later replaces the credentials in place (token refresh): every
 * subscription is re-checked against the new claims and the ones no longer granted are dropped
 * with a `forbidden` error. Every subscribe and every retry is authorized against the token's
 * scopes and jobs. A socket is closed with 4001 when its token expires (or its auth deadline
 * passes): sockets are bucketed by that second and one timer, ticking on whole seconds, sweeps the
 * due buckets, so an idle socket costs no timer or closure of its own.
 *
 * Fan-out: each job has a uWS topic `job:<id>`; a change is serialized once and published once.
 * Producers (write scope) subscribed to a job also join `ctl:<id>` for `control` messages.
 *
 * Backpressure: uWS skips topic messages for a socket whose send buffer exceeds
 * maxBackpressure, so memory per socket stays bounded. Updates carry the full job, so a skipped
 * update only matters if it was the latest: when a congested socket drains below the low-water
 * mark, it is sent the latest state of every job it follows that changed since it was last known
 * to be in sync. Clients ignore a seq they already have, so a resend is harmless.
 *
 * Counting what uWS skipped (pt_ws_dropped_backpressure_total) without per-delivery work:
 * skip-counter.ts.
 *
 * Tag feeds (`{"type":"subscribe","tag"}`, core/feed.ts): authorized by a grant naming the tag or
 * `*` (auth.ts canReadTag), counted with the socket's job subscriptions. The socket joins the uWS
 * topic `feed:<tag>` and gets `feed` (the tag's latest jobs) every time it subscribes; each
 * `feed_update` the feed decides on is published once to the topic. After congestion, a draining
 * socket gets again the latest summary of each job sent to its tags since it was last in sync
 * (or a whole `feed` when too many changed), like the jobs it follows.
 *
 * Limits: frames larger than maxMessageBytes close with 1009 (uWS's own maxPayloadLength is set
 * far higher because uWS would drop such a frame with a bare 1006), 100 subscriptions per socket
 * (jobs and tags together),
 * a token bucket of messages per second (4008 on a sustained flood), idle timeout with pings,
 * connections per client address.
 */
import type { HttpRequest, HttpResponse, TemplatedApp, us_socket_context_t, WebSocket } from 'uWebSockets.js';
import { canCancel, canRead, canReadTag, canRetry, canWrite, hasTagGrants, type JobRef, type Principal, type Verifier } from './auth.js';
import type { ServerConfig } from '../app/config.js';
import { ApiError, ClientMessageError, CloseCode, LIMITS, parseClientMessage, type ClientMessage, type ControlMessage, type ErrorCode, type ServerMessage } from '../../protocol/index.js';
import { errorReply, rawQuery, remoteAddress, writeReply } from './uws-http.js';
import type { JobService, JobView } from '../core/job-service.js';
import type { Logger } from '../app/log.js';
import type { Metrics } from '../app/metrics.js';
import type { AddressLimit } from './address-limit.js';
import { ExpirySweep, type ExpirySlot } from './expiry-sweep.js';
import { SkipCounter, type Skipping } from './skip-counter.js';
import { controlMessage, feedMessage, feedUpdateMessage, snapshotMessage, updateMessage } from './wire.js';

/** uWS cuts frames above this with 1006; we enforce the documented, lower limit ourselves. */
const TRANSPORT_MAX_PAYLOAD = 1024 * 1024;

/** Per-socket state, kept small: idle memory per connection is a benchmarked figure. */
interface SocketData extends Skipping, ExpirySlot {
  id: number;
  /** Shared by every socket with the same token (the verifier caches it); frozen. Undefined until a first-message `auth`. */
  principal: Principal | undefined;
  remote: string;
  origin: string;
  /**
   * Followed jobs → the seq this socket is known to have been sent (snapshot or resync; 0 until
   * then). Its keys are the subscriptions.
   */
  subs: Map<string, number>;
  /** Jobs whose direct send was dropped under backpressure: resend on drain. Created on the first drop. */
  pendingResync?: Set<string>;
  /** Followed tag feeds → the feed's counter for the tag when this socket was last in sync (-1: send a whole feed). Created on the first. */
  feeds?: Map<string, number>;
  tokens: number;
  lastRefill: number;
  flood: number;
  closed: boolean;
}

export interface HubContext {
  config: ServerConfig;
  log: Logger;
  metrics: Metrics;
  verifier: Verifier;
  service: JobService;
  /** Connections per client address, shared with the SSE streams. */
  addresses: AddressLimit;
  /**
   * Cluster mode (docs/cluster.md): told when local sockets start and stop following a job, so the
   * node hears that job's changes from other nodes only while someone here watches it. `acquire`
   * resolves once the node hears them; the snapshot is read after that, so nothing falls between.
   */
  interest?: { acquire(jobId: string): Promise<void>; release(jobId: string): void };
}

const jobTopic = (id: string) => `job:${id}`;
const controlTopic = (id: string) => `ctl:${id}`;
const feedTopic = (tag: string) => `feed:${tag}`;

export class WsHub {
  private readonly sockets = new Set<WebSocket<SocketData>>();
  private nextId = 1;
  private shuttingDown = false;
  private readonly unbind: Array<() => void> = [];
  private readonly lowWater: number;
  /** Closes sockets whose token expired, or whose first-message auth did not come in time. */
  private readonly expiry = new ExpirySweep<WebSocket<SocketData>>(
    (ws) => ws.getUserData(),
    (ws) => {
      try {
        ws.end(CloseCode.TokenExpired, ws.getUserData().principal ? 'token expired' : 'no auth message in time');
      } catch {
        /* already closed */
      }
    },
  );
  private readonly skipped: SkipCounter<SocketData>;

  constructor(
    private readonly app: TemplatedApp,
    private readonly ctx: HubContext,
  ) {
    this.lowWater = Math.floor(ctx.config.limits.maxBackpressureBytes / 4);
    const { service, metrics } = ctx;
    this.skipped = new SkipCounter({
      sockets: this.sockets,
      maxBackpressureBytes: ctx.config.limits.maxBackpressureBytes,
      seqOf: (jobId) => service.peek(jobId)?.job.seq,
      count: (n) => void (metrics.droppedBackpressure += n),
    });
    metrics.bufferedBytes = () => {
      let total = 0;
      let max = 0;
      for (const ws of this.sockets) {
        const n = ws.getBufferedAmount();
        total += n;
        if (n > max) max = n;
      }
      return { total, max };
    };
    this.unbind.push(
      service.on('update', (view) => {
        // One serialization, one publish: uWS fans out to every subscriber in native code.
        app.publish(jobTopic(view.job.id), updateMessage(view), false, false);
        metrics.published++;
        this.skipped.published(view.job.id, view.job.seq, this.sockets.size);
      }),
      // A feed change: published once to the tag's topic, like a job's update.
      service.feed.onUpdate((tag, summary) => void app.publish(feedTopic(tag), feedUpdateMessage(tag, summary), false, false)),
      service.on('retry', (notice) => this.deliverControl({ type: 'control', action: 'retry', jobId: notice.jobId, step: notice.step })),
      service.on('cancel', (notice) =>
        this.deliverControl({ type: 'control', action: 'cancel', jobId: notice.jobId, ...(notice.reason !== undefined && { reason: notice.reason }) }),
      ),
    );
  }

  get connectionCount(): number {
    return this.sockets.size;
  }

  /** A retry or cancel (local or from another node): `control` to the producer sockets of the job. */
  deliverControl(msg: ControlMessage): void {
    this.app.publish(controlTopic(msg.jobId), controlMessage(msg), false, false);
    this.ctx.metrics.published++;
  }

  register(path = '/v1/ws'): void {
    const { config } = this.ctx;
    this.app.ws<SocketData>(path, {
      maxPayloadLength: TRANSPORT_MAX_PAYLOAD,
      maxBackpressure: config.limits.maxBackpressureBytes,
      closeOnBackpressureLimit: 0,
      idleTimeout: config.limits.idleTimeoutSeconds,
      sendPingsAutomatically: true,
      compression: 0,
      upgrade: (res, req, context) => this.upgrade(res, req, context),
      open: (ws) => this.open(ws),
      message: (ws, message, isBinary) => this.message(ws, message, isBinary),
      drain: (ws) => this.drain(ws),
      close: (ws, code) => this.closed(ws, code),
    });
    this.expiry.start();
  }

  /** Closes every socket with 1001 (server going away). */
  closeAll(): void {
    this.shuttingDown = true;
    this.expiry.stop();
    this.skipped.stop();
    for (const fn of this.unbind) fn();
    for (const ws of [...this.sockets]) {
      try {
        ws.end(CloseCode.GoingAway, 'server shutting down');
      } catch {
        /* already closed */
      }
    }
  }

  // ------------------------------------------------------------------------------------------

  private upgrade(res: HttpResponse, req: HttpRequest, context: us_socket_context_t): void {
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

  private open(ws: WebSocket<SocketData>): void {
    const { metrics, log } = this.ctx;
    const d = ws.getUserData();
    this.sockets.add(ws);
    this.ctx.addresses.add(d.remote);
    metrics.connections++;
    metrics.connectionsTotal++;
    // Closed by the sweep when the token expires, or when the first-message auth deadline passes.
    this.expiry.at(ws, d.principal ? d.principal.expiresAt : Date.now() + LIMITS.authTimeoutSeconds * 1000);
    log.debug({ socket: d.id, remote: d.remote, origin: d.origin || undefined, sub: d.principal?.subject, auth: d.principal ? 'url' : 'message' }, 'websocket connected');
  }

  /**
   * `auth`: verifies the token, then makes it the socket's credentials. Subscriptions the new
   * claims no longer grant are dropped (`forbidden`), and producer `control` follows write scope.
   */
  private authenticate(ws: WebSocket<SocketData>, d: SocketData, token: string): void {
    const { verifier, metrics, log } = this.ctx;
    verifier.verify(token).then(
      (principal) => {
        if (d.closed) return;
        const first = d.principal === undefined;
        d.principal = principal;
        this.expiry.at(ws, principal.expiresAt);
        ws.cork(() => this.send(ws, { type: 'auth_ok', exp: Math.floor(principal.expiresAt / 1000) }));
        // Tag grants decide by the job's tags: read them (from memory for followed running jobs).
        for (const jobId of [...d.subs.keys()]) {
          void this.jobRef(principal, jobId).then((job) => {
            if (d.closed || d.principal !== principal || !d.subs.has(jobId)) return;
            ws.cork(() => {
              if (!canRead(principal, job)) {
                this.unsubscribe(ws, d, jobId);
                this.error(ws, 'forbidden', `the new token does not grant reading job ${jobId}; unsubscribed`, jobId);
              } else if (canWrite(principal, job)) ws.subscribe(controlTopic(jobId));
              else ws.unsubscribe(controlTopic(jobId));
            });
          });
        }
        for (const tag of d.feeds?.keys() ?? []) {
          if (canReadTag(principal, tag)) continue;
          this.unsubscribeFeed(ws, d, tag);
          ws.cork(() => this.error(ws, 'forbidden', `the new token does not grant the feed of tag ${tag}; unsubscribed`, undefined, tag));
        }
        log.debug({ socket: d.id, sub: principal.subject, first }, first ? 'websocket authenticated' : 'websocket token refreshed');
      },
      (err: unknown) => {
        if (d.closed) return;
        metrics.authFailures++;
        const reason = err instanceof ApiError ? err.message : 'token is invalid';
        log.warn({ socket: d.id, remote: d.remote, reason }, 'websocket auth message refused');
        ws.cork(() => this.error(ws, 'unauthorized', reason));
      },
    );
  }

  private closed(ws: WebSocket<SocketData>, code: number): void {
    const { metrics, log } = this.ctx;
    const d = ws.getUserData();
    d.closed = true;
    this.expiry.remove(ws);
    this.sockets.delete(ws);
    this.ctx.addresses.remove(d.remote);
    metrics.connections--;
    const subscriptions = d.subs.size;
    metrics.subscriptions -= subscriptions;
    this.skipped.closed(d);
    if (this.ctx.interest) for (const jobId of d.subs.keys()) this.ctx.interest.release(jobId);
    if (d.feeds) {
      metrics.subscriptions -= d.feeds.size;
      for (const tag of d.feeds.keys()) this.ctx.service.feed.unfollow(tag);
      d.feeds = undefined;
    }
    d.subs.clear();
    d.pendingResync = undefined;
    log.debug({ socket: d.id, code, subscriptions }, 'websocket closed');
  }

  private send(ws: WebSocket<SocketData>, msg: ServerMessage | string): number {
    const d = ws.getUserData();
    if (d.closed) return 2;
    this.ctx.metrics.messagesOut++;
    return ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg), false, false);
  }

  private error(ws: WebSocket<SocketData>, code: ErrorCode, message: string, jobId?: string, tag?: string): void {
    this.send(ws, { type: 'error', code, message, ...(jobId !== undefined && { jobId }), ...(tag !== undefined && { tag }) });
  }

  private message(ws: WebSocket<SocketData>, message: ArrayBuffer, isBinary: boolean): void {
    const { config, metrics, log } = this.ctx;
    const d = ws.getUserData();
    metrics.messagesIn++;
    if (message.byteLength > config.limits.maxMessageBytes) {
      metrics.oversizedFrames++;
      log.warn({ socket: d.id, remote: d.remote, bytes: message.byteLength }, 'websocket message too big');
      ws.end(CloseCode.MessageTooBig, `message larger than ${config.limits.maxMessageBytes} bytes`);
      return;
    }
    if (isBinary) {
      ws.end(CloseCode.UnsupportedData, 'binary frames are not supported: send JSON text');
      return;
    }
    if (!this.takeToken(d)) {
      metrics.rateLimited++;
      d.flood++;
      if (d.flood === 1) {
        log.warn({ socket: d.id, remote: d.remote }, 'websocket rate limited');
        this.error(ws, 'rate_limited', `more than ${config.limits.messagesPerSecond} messages per second; message ignored`);
      }
      // A client that keeps flooding for a full second's worth of messages is cut off.
      if (d.flood > config.limits.messagesPerSecond) ws.end(CloseCode.RateLimited, 'rate limit exceeded');
      return;
    }
    d.flood = 0;
    let msg: ClientMessage;
    try {
      msg = parseClientMessage(JSON.parse(Buffer.from(message).toString('utf8')));
    } catch (err) {
      if (err instanceof ClientMessageError) return this.error(ws, err.code, err.message, err.jobId, err.tag);
      return this.error(ws, 'bad_request', 'message is not valid JSON');
    }
    if (msg.type === 'auth') return this.authenticate(ws, d, msg.token);
    if (!d.principal) return this.error(ws, 'unauthorized', 'send {"type":"auth","token":"<jwt>"} first');
    switch (msg.type) {
      case 'ping':
        this.send(ws, '{"type":"pong"}');
        return;
      case 'unsubscribe':
        return 'tag' in msg ? this.unsubscribeFeed(ws, d, msg.tag) : this.unsubscribe(ws, d, msg.jobId);
      case 'subscribe': {
        if ('tag' in msg) {
          const { tag } = msg;
          this.subscribeFeed(ws, d, tag).catch((err) => this.failFeed(ws, err, tag));
          return;
        }
        const { jobId } = msg;
        this.subscribe(ws, d, jobId).catch((err) => this.fail(ws, err, jobId));
        return;
      }
      case 'retry': {
        const { jobId, step } = msg;
        this.retry(ws, d, jobId, step).catch((err) => this.fail(ws, err, jobId));
        return;
      }
      case 'cancel': {
        const { jobId, reason } = msg;
        this.cancel(ws, d, jobId, reason).catch((err) => this.fail(ws, err, jobId));
        return;
      }
    }
  }

  /** What grants are checked against: the id, or the job itself for a token with `tag:` grants. */
  private async jobRef(principal: Principal, jobId: string): Promise<JobRef> {
    if (!hasTagGrants(principal)) return jobId;
    return (this.ctx.service.peek(jobId) ?? (await this.ctx.service.get(jobId)))?.job ?? jobId;
  }

  private fail(ws: WebSocket<SocketData>, err: unknown, jobId: string): void {
    if (ws.getUserData().closed) return;
    if (!(err instanceof ApiError)) this.ctx.log.error({ err, jobId }, 'websocket request failed');
    const e = err instanceof ApiError ? err : new ApiError(500, 'internal', 'internal error');
    ws.cork(() => this.error(ws, e.code, e.message, jobId));
  }

  private takeToken(d: SocketData): boolean {
    const rate = this.ctx.config.limits.messagesPerSecond;
    const now = Date.now();
    d.tokens = Math.min(rate * 2, d.tokens + ((now - d.lastRefill) / 1000) * rate);
    d.lastRefill = now;
    if (d.tokens < 1) return false;
    d.tokens -= 1;
    return true;
  }

  private async subscribe(ws: WebSocket<SocketData>, d: SocketData, jobId: string): Promise<void> {
    const { service, metrics, config } = this.ctx;
    const principal = d.principal!;
    const job = canRead(principal, jobId) ? jobId : await this.jobRef(principal, jobId);
    if (d.closed) return;
    if (!canRead(principal, job)) {
      return this.error(ws, 'forbidden', `the token does not grant reading job ${jobId}`, jobId);
    }
    const already = d.subs.has(jobId);
    if (!already && d.subs.size + (d.feeds?.size ?? 0) >= config.limits.maxSubscriptionsPerSocket) {
      metrics.subscriptionsRefused++;
      return this.error(ws, 'too_many_subscriptions', `at most ${config.limits.maxSubscriptionsPerSocket} subscriptions per socket`, jobId);
    }
    if (!already) {
      // Join the topic before reading the state, so no update can fall in between.
      d.subs.set(jobId, 0);
      metrics.subscriptions++;
      ws.subscribe(jobTopic(jobId));
      if (canWrite(principal, job)) ws.subscribe(controlTopic(jobId));
      if (this.ctx.interest) {
        await this.ctx.interest.acquire(jobId);
        if (d.closed || !d.subs.has(jobId)) return;
      }
    }
    const view = service.peek(jobId) ?? (await service.get(jobId));
    if (d.closed || !d.subs.has(jobId)) return;
    if (!view) {
      this.unsubscribe(ws, d, jobId);
      ws.cork(() => this.error(ws, 'not_found', `job ${jobId} not found`, jobId));
      return;
    }
    if (d.skips?.over && !d.skips.seqs.has(jobId)) d.skips.seqs.set(jobId, view.job.seq);
    // The freshest state (an update may have been applied while we read the store).
    ws.cork(() => this.sendState(ws, d, service.peek(jobId) ?? view, 'snapshot'));
  }

  private unsubscribe(ws: WebSocket<SocketData>, d: SocketData, jobId: string): void {
    if (!d.subs.delete(jobId)) return;
    this.ctx.metrics.subscriptions--;
    this.skipped.unsubscribed(d, jobId);
    this.ctx.interest?.release(jobId);
    d.pendingResync?.delete(jobId);
    ws.unsubscribe(jobTopic(jobId));
    ws.unsubscribe(controlTopic(jobId));
  }

  /** `{"type":"subscribe","tag"}`: the tag's feed (see the header); `feed` every time, then its topic's `feed_update`s. */
  private async subscribeFeed(ws: WebSocket<SocketData>, d: SocketData, tag: string): Promise<void> {
    const { service, metrics, config } = this.ctx;
    if (!canReadTag(d.principal!, tag)) {
      return this.error(ws, 'forbidden', `the token does not grant the feed of tag ${tag} (it needs a jobs grant tag:${tag} or *)`, undefined, tag);
    }
    const feeds = (d.feeds ??= new Map());
    if (!feeds.has(tag)) {
      if (d.subs.size + feeds.size >= config.limits.maxSubscriptionsPerSocket) {
        metrics.subscriptionsRefused++;
        return this.error(ws, 'too_many_subscriptions', `at most ${config.limits.maxSubscriptionsPerSocket} subscriptions per socket`, undefined, tag);
      }
      // Join the topic before reading the feed, so no change can fall in between (clients keep the highest seq per job).
      feeds.set(tag, -1);
      metrics.subscriptions++;
      ws.subscribe(feedTopic(tag));
      await service.feed.follow(tag);
      if (d.closed || !feeds.has(tag)) return;
    }
    await this.sendFeed(ws, d, tag);
  }

  /** The tag's `feed` message (its latest jobs); in sync from the counter read before the listing. */
  private async sendFeed(ws: WebSocket<SocketData>, d: SocketData, tag: string): Promise<void> {
    const { feed } = this.ctx.service;
    const seq = feed.tagSeq(tag);
    const summaries = await feed.latest(tag);
    if (d.closed || !d.feeds?.has(tag)) return;
    ws.cork(() => {
      if (this.send(ws, feedMessage(tag, summaries)) === 2) {
        this.ctx.metrics.droppedBackpressure++;
        d.feeds!.set(tag, -1);
      } else d.feeds!.set(tag, seq);
    });
  }

  private unsubscribeFeed(ws: WebSocket<SocketData>, d: SocketData, tag: string): void {
    if (!d.feeds?.delete(tag)) return;
    this.ctx.metrics.subscriptions--;
    this.ctx.service.feed.unfollow(tag);
    ws.unsubscribe(feedTopic(tag));
  }

  private failFeed(ws: WebSocket<SocketData>, err: unknown, tag: string): void {
    if (ws.getUserData().closed) return;
    if (!(err instanceof ApiError)) this.ctx.log.error({ err, tag }, 'websocket feed request failed');
    const e = err instanceof ApiError ? err : new ApiError(500, 'internal', 'internal error');
    ws.cork(() => this.error(ws, e.code, e.message, undefined, tag));
  }

  /** After congestion: each followed tag's changes since the socket was in sync, or a whole feed. */
  private resyncFeeds(ws: WebSocket<SocketData>, d: SocketData): void {
    const { service, metrics, config } = this.ctx;
    for (const [tag, synced] of d.feeds!) {
      const now = service.feed.tagSeq(tag);
      if (synced >= 0 && now <= synced) continue;
      if (ws.getBufferedAmount() > config.limits.maxBackpressureBytes) return;
      metrics.resyncs++;
      const changed = synced < 0 ? undefined : service.feed.changedSince(tag, synced);
      if (changed === undefined) {
        void this.sendFeed(ws, d, tag).catch((err) => this.failFeed(ws, err, tag));
        continue;
      }
      let sent = true;
      ws.cork(() => {
        for (const summary of changed) if (this.send(ws, feedUpdateMessage(tag, summary)) === 2) sent = false;
      });
      if (sent) d.feeds!.set(tag, now);
      else metrics.droppedBackpressure++;
    }
  }

  private async retry(ws: WebSocket<SocketData>, d: SocketData, jobId: string, step: string | undefined): Promise<void> {
    const principal = d.principal!;
    if (!canRetry(principal, await this.jobRef(principal, jobId))) {
      return this.error(ws, 'forbidden', `the token does not grant retrying job ${jobId}`, jobId);
    }
    await this.ctx.service.retry(jobId, step);
    // Success is visible to every subscriber as the update that follows (status queued).
  }

  private async cancel(ws: WebSocket<SocketData>, d: SocketData, jobId: string, reason: string | undefined): Promise<void> {
    const principal = d.principal!;
    if (!canCancel(principal, await this.jobRef(principal, jobId))) {
      return this.error(ws, 'forbidden', `the token does not grant canceling job ${jobId}`, jobId);
    }
    await this.ctx.service.cancel(jobId, { ...(principal.subject !== undefined && { by: principal.subject }), ...(reason !== undefined && { reason }) });
    // Success is visible to every subscriber as the update that follows (cancelRequested).
  }

  /** Sends a job's state directly to one socket, remembering whether it got through. */
  private sendState(ws: WebSocket<SocketData>, d: SocketData, view: JobView, kind: 'snapshot' | 'update'): void {
    const result = this.send(ws, kind === 'snapshot' ? snapshotMessage(view) : updateMessage(view));
    if (result === 2) {
      // Dropped: the socket is over its backpressure limit. Retry when it drains.
      this.ctx.metrics.droppedBackpressure++;
      (d.pendingResync ??= new Set()).add(view.job.id);
      this.skipped.over(d);
    } else {
      d.pendingResync?.delete(view.job.id);
      // The map's keys are the subscriptions: never add one here.
      if (d.subs.has(view.job.id)) d.subs.set(view.job.id, view.job.seq);
    }
  }

  private drain(ws: WebSocket<SocketData>): void {
    const d = ws.getUserData();
    if (d.closed) return;
    const buffered = ws.getBufferedAmount();
    this.skipped.drained(d, buffered > this.ctx.config.limits.maxBackpressureBytes);
    if (buffered > this.lowWater) return;
    const { service, metrics } = this.ctx;
    ws.cork(() => {
      for (const [jobId, syncedSeq] of d.subs) {
        const view = service.peek(jobId);
        if (!view) {
          // Evicted from memory (finished long ago): load it and resend on the next drain.
          void service.get(jobId).then((loaded) => {
            if (loaded && !d.closed && d.subs.has(jobId)) ws.cork(() => this.sendState(ws, d, loaded, 'update'));
          });
          continue;
        }
        if (view.job.seq > syncedSeq || d.pendingResync?.has(jobId)) {
          metrics.resyncs++;
          this.sendState(ws, d, view, 'update');
          if (ws.getBufferedAmount() > this.ctx.config.limits.maxBackpressureBytes) break;
        }
      }
    });
    if (d.feeds) this.resyncFeeds(ws, d);
  }
}
