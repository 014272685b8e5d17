/**
 * WebSocket hub on `/v1/ws`: live job updates for browsers, retry control for producers. This
 * file is the hub itself: the socket lifecycle uWS calls back (open, message, drain, close), the
 * per-socket message handling (size, rate and format limits, then dispatch), the commands a socket
 * may send (retry, cancel) and the fan-out of the service's changes. The rest is its own module:
 * - ws-admission.ts: the upgrade (Origin, connections per address, `?access_token=`), the
 *   `{"type":"auth"}` message and token refresh, closing sockets whose token expired (4001);
 * - ws-subscriptions.ts: what a socket follows (jobs and tag feeds), authorized and counted;
 * - ws-resync.ts: backpressure — direct sends that remember whether they got through, and the
 *   resync of a congested socket when it drains;
 * - ws-socket.ts: the per-socket state, topic names and sending to one socket, shared by all.
 *
 * Fan-out: each job has a uWS topic `job:<id>`; a change is serialized once and published once.
 * Producers (write scope) subscribed to a job also join `ctl:<id>` for `control` messages. Tag
 * feeds (core/feed.ts): each `feed_update` the feed decides on is published once to `feed:<tag>`.
 * Counting what uWS skipped (pt_ws_dropped_backpressure_total) without per-delivery work:
 * skip-counter.ts.
 *
 * Every retry and cancel is authorized against the token's scopes and jobs; nothing but `auth` is
 * served before the socket has credentials.
 *
 * Limits: frames larger than maxMessageBytes close with 1009 (uWS's own maxPayloadLength is set
 * far higher because uWS would drop such a frame with a bare 1006), 100 subscriptions per socket
 * (jobs and tags together, ws-subscriptions.ts),
 * a token bucket of messages per second (4008 on a sustained flood), idle timeout with pings,
 * connections per client address (ws-admission.ts).
 */
import type { TemplatedApp } from 'uWebSockets.js';
import { canCancel, canRetry } from './auth.js';
import { ClientMessageError, CloseCode, parseClientMessage, type ClientMessage, type ControlMessage } from '../../protocol/index.js';
import { SkipCounter } from './skip-counter.js';
import { controlMessage, feedUpdateMessage, updateMessage } from './wire.js';
import { WsAdmission } from './ws-admission.js';
import { WsResync } from './ws-resync.js';
import { WsSubscriptions } from './ws-subscriptions.js';
import { controlTopic, failFeed, failJob, feedTopic, jobTopic, send, sendError, type HubContext, type HubSocket, type SocketData } from './ws-socket.js';

/** uWS cuts frames above this with 1006; we enforce the documented, lower limit ourselves. */
const TRANSPORT_MAX_PAYLOAD = 1024 * 1024;

export class WsHub {
  private readonly sockets = new Set<HubSocket>();
  private readonly unbind: Array<() => void> = [];
  private readonly skipped: SkipCounter<SocketData>;
  private readonly resync: WsResync;
  private readonly subscriptions: WsSubscriptions;
  private readonly admission: WsAdmission;

  constructor(
    private readonly app: TemplatedApp,
    private readonly ctx: HubContext,
  ) {
    const { service, metrics } = ctx;
    this.skipped = new SkipCounter({
      sockets: this.sockets,
      maxBackpressureBytes: ctx.config.limits.maxBackpressureBytes,
      seqOf: (jobId) => service.peek(jobId)?.job.seq,
      count: (n) => void (metrics.droppedBackpressure += n),
    });
    this.resync = new WsResync(ctx, this.skipped);
    this.subscriptions = new WsSubscriptions(ctx, this.skipped, this.resync);
    this.admission = new WsAdmission(ctx, this.subscriptions);
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
        // One serialization, one publish: uWS fans out to every subscriber in native code. A job
        // nobody follows here (most of them, most of the time) costs neither.
        const topic = jobTopic(view.job.id);
        if (app.numSubscribers(topic) > 0) app.publish(topic, updateMessage(view), false, false);
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
      upgrade: (res, req, context) => this.admission.upgrade(res, req, context),
      open: (ws) => this.open(ws),
      message: (ws, message, isBinary) => this.message(ws, message, isBinary),
      drain: (ws) => this.resync.drain(ws),
      close: (ws, code) => this.closed(ws, code),
    });
    this.admission.start();
  }

  /** Closes every socket with 1001 (server going away). */
  closeAll(): void {
    this.admission.stop();
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

  private open(ws: HubSocket): void {
    const { metrics, log } = this.ctx;
    const d = ws.getUserData();
    this.sockets.add(ws);
    this.ctx.addresses.add(d.remote);
    metrics.connections++;
    metrics.connectionsTotal++;
    this.admission.opened(ws, d);
    log.debug({ socket: d.id, remote: d.remote, origin: d.origin || undefined, sub: d.principal?.subject, auth: d.principal ? 'url' : 'message' }, 'websocket connected');
  }

  private closed(ws: HubSocket, code: number): void {
    const { metrics, log } = this.ctx;
    const d = ws.getUserData();
    d.closed = true;
    this.admission.closed(ws);
    this.sockets.delete(ws);
    this.ctx.addresses.remove(d.remote);
    metrics.connections--;
    const subscriptions = this.subscriptions.closed(d);
    log.debug({ socket: d.id, code, subscriptions }, 'websocket closed');
  }

  private message(ws: HubSocket, message: ArrayBuffer, isBinary: boolean): void {
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
        sendError(this.ctx, ws, 'rate_limited', `more than ${config.limits.messagesPerSecond} messages per second; message ignored`);
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
      if (err instanceof ClientMessageError) return sendError(this.ctx, ws, err.code, err.message, err.jobId, err.tag);
      return sendError(this.ctx, ws, 'bad_request', 'message is not valid JSON');
    }
    if (msg.type === 'auth') return this.admission.authenticate(ws, d, msg.token);
    if (!d.principal) return sendError(this.ctx, ws, 'unauthorized', 'send {"type":"auth","token":"<jwt>"} first');
    switch (msg.type) {
      case 'ping':
        send(this.ctx, ws, '{"type":"pong"}');
        return;
      case 'unsubscribe':
        return 'tag' in msg ? this.subscriptions.unsubscribeFeed(ws, d, msg.tag) : this.subscriptions.unsubscribe(ws, d, msg.jobId);
      case 'subscribe': {
        if ('tag' in msg) {
          const { tag } = msg;
          this.subscriptions.subscribeFeed(ws, d, tag).catch((err) => failFeed(this.ctx, ws, err, tag));
          return;
        }
        const { jobId } = msg;
        this.subscriptions.subscribe(ws, d, jobId).catch((err) => failJob(this.ctx, ws, err, jobId));
        return;
      }
      case 'retry': {
        const { jobId, step } = msg;
        this.retry(ws, d, jobId, step).catch((err) => failJob(this.ctx, ws, err, jobId));
        return;
      }
      case 'cancel': {
        const { jobId, reason } = msg;
        this.cancel(ws, d, jobId, reason).catch((err) => failJob(this.ctx, ws, err, jobId));
        return;
      }
    }
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

  private async retry(ws: HubSocket, d: SocketData, jobId: string, step: string | undefined): Promise<void> {
    const principal = d.principal!;
    if (!canRetry(principal, await this.subscriptions.jobRef(principal, jobId))) {
      return sendError(this.ctx, ws, 'forbidden', `the token does not grant retrying job ${jobId}`, jobId);
    }
    await this.ctx.service.retry(jobId, step);
    // Success is visible to every subscriber as the update that follows (status queued).
  }

  private async cancel(ws: HubSocket, d: SocketData, jobId: string, reason: string | undefined): Promise<void> {
    const principal = d.principal!;
    if (!canCancel(principal, await this.subscriptions.jobRef(principal, jobId))) {
      return sendError(this.ctx, ws, 'forbidden', `the token does not grant canceling job ${jobId}`, jobId);
    }
    await this.ctx.service.cancel(jobId, { ...(principal.subject !== undefined && { by: principal.subject }), ...(reason !== undefined && { reason }) });
    // Success is visible to every subscriber as the update that follows (cancelRequested).
  }
}
