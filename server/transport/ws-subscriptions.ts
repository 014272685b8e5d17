/**
 * Subscription bookkeeping for the WebSocket hub: what each socket follows — jobs (uWS topic
 * `job:<id>`, plus `ctl:<id>` for `control` messages when the token may write the job) and tag
 * feeds (`feed:<tag>`, core/feed.ts) — authorized against the socket's token, at most
 * maxSubscriptionsPerSocket of both together, re-checked when the token is replaced, and the
 * metrics, cluster interest and feed follows that go with them, given back when the socket closes.
 * A socket joins a topic before it reads the state it is sent, so no change can fall in between.
 *
 * Separate from message dispatch (ws-hub.ts), which decides what a message asks for, and from
 * backpressure (ws-resync.ts), which decides what a congested socket is sent again.
 */
import { canRead, canReadTag, canWrite, hasTagGrants, type JobRef, type Principal } from './auth.js';
import type { SkipCounter } from './skip-counter.js';
import type { WsResync } from './ws-resync.js';
import { controlTopic, feedTopic, jobTopic, sendError, type HubContext, type HubSocket, type SocketData } from './ws-socket.js';

export class WsSubscriptions {
  constructor(
    private readonly ctx: HubContext,
    private readonly skipped: SkipCounter<SocketData>,
    private readonly resync: WsResync,
  ) {}

  /** What grants are checked against: the id, or the job itself for a token with `tag:` grants. */
  async jobRef(principal: Principal, jobId: string): Promise<JobRef> {
    if (!hasTagGrants(principal)) return jobId;
    return (this.ctx.service.peek(jobId) ?? (await this.ctx.service.get(jobId)))?.job ?? jobId;
  }

  /** `{"type":"subscribe","jobId"}`: joins the job's topics, then sends its `snapshot` (every time). */
  async subscribe(ws: HubSocket, d: SocketData, jobId: string): Promise<void> {
    const { service, metrics, config } = this.ctx;
    const principal = d.principal!;
    const job = canRead(principal, jobId) ? jobId : await this.jobRef(principal, jobId);
    if (d.closed) return;
    if (!canRead(principal, job)) {
      return sendError(this.ctx, ws, 'forbidden', `the token does not grant reading job ${jobId}`, jobId);
    }
    const already = d.subs.has(jobId);
    if (!already && d.subs.size + (d.feeds?.size ?? 0) >= config.limits.maxSubscriptionsPerSocket) {
      metrics.subscriptionsRefused++;
      return sendError(this.ctx, ws, 'too_many_subscriptions', `at most ${config.limits.maxSubscriptionsPerSocket} subscriptions per socket`, jobId);
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
      ws.cork(() => sendError(this.ctx, ws, 'not_found', `job ${jobId} not found`, jobId));
      return;
    }
    if (d.skips?.over && !d.skips.seqs.has(jobId)) d.skips.seqs.set(jobId, view.job.seq);
    // The freshest state (an update may have been applied while we read the store).
    ws.cork(() => this.resync.sendState(ws, d, service.peek(jobId) ?? view, 'snapshot'));
  }

  unsubscribe(ws: HubSocket, d: SocketData, jobId: string): void {
    if (!d.subs.delete(jobId)) return;
    this.ctx.metrics.subscriptions--;
    this.skipped.unsubscribed(d, jobId);
    this.ctx.interest?.release(jobId);
    d.pendingResync?.delete(jobId);
    ws.unsubscribe(jobTopic(jobId));
    ws.unsubscribe(controlTopic(jobId));
  }

  /** `{"type":"subscribe","tag"}`: the tag's feed; `feed` every time, then its topic's `feed_update`s. */
  async subscribeFeed(ws: HubSocket, d: SocketData, tag: string): Promise<void> {
    const { service, metrics, config } = this.ctx;
    if (!canReadTag(d.principal!, tag)) {
      return sendError(this.ctx, ws, 'forbidden', `the token does not grant the feed of tag ${tag} (it needs a jobs grant tag:${tag} or *)`, undefined, tag);
    }
    const feeds = (d.feeds ??= new Map());
    if (!feeds.has(tag)) {
      if (d.subs.size + feeds.size >= config.limits.maxSubscriptionsPerSocket) {
        metrics.subscriptionsRefused++;
        return sendError(this.ctx, ws, 'too_many_subscriptions', `at most ${config.limits.maxSubscriptionsPerSocket} subscriptions per socket`, undefined, tag);
      }
      // Join the topic before reading the feed, so no change can fall in between (clients keep the highest seq per job).
      feeds.set(tag, -1);
      metrics.subscriptions++;
      ws.subscribe(feedTopic(tag));
      await service.feed.follow(tag);
      if (d.closed || !feeds.has(tag)) return;
    }
    await this.resync.sendFeed(ws, d, tag);
  }

  unsubscribeFeed(ws: HubSocket, d: SocketData, tag: string): void {
    if (!d.feeds?.delete(tag)) return;
    this.ctx.metrics.subscriptions--;
    this.ctx.service.feed.unfollow(tag);
    ws.unsubscribe(feedTopic(tag));
  }

  /**
   * The socket's token was replaced: subscriptions the new claims no longer grant are dropped
   * (`forbidden`), and producer `control` follows write scope. Tag grants decide by the job's
   * tags: read them (from memory for followed running jobs).
   */
  reauthorize(ws: HubSocket, d: SocketData, principal: Principal): void {
    for (const jobId of [...d.subs.keys()]) {
      void this.jobRef(principal, jobId).then((job) => {
        if (d.closed || d.principal !== principal || !d.subs.has(jobId)) return;
        ws.cork(() => {
          if (!canRead(principal, job)) {
            this.unsubscribe(ws, d, jobId);
            sendError(this.ctx, ws, 'forbidden', `the new token does not grant reading job ${jobId}; unsubscribed`, jobId);
          } else if (canWrite(principal, job)) ws.subscribe(controlTopic(jobId));
          else ws.unsubscribe(controlTopic(jobId));
        });
      });
    }
    for (const tag of d.feeds?.keys() ?? []) {
      if (canReadTag(principal, tag)) continue;
      this.unsubscribeFeed(ws, d, tag);
      ws.cork(() => sendError(this.ctx, ws, 'forbidden', `the new token does not grant the feed of tag ${tag}; unsubscribed`, undefined, tag));
    }
  }

  /** The socket closed: gives back everything its subscriptions held; returns how many jobs it followed. */
  closed(d: SocketData): number {
    const { metrics } = this.ctx;
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
    return subscriptions;
  }
}
