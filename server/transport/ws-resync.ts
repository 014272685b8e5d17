/**
 * Backpressure for the WebSocket hub: direct sends to one socket (a job's snapshot or update, a
 * tag's `feed`) that remember whether they got through, and the resync when a congested socket
 * drains. uWS skips topic messages for a socket whose send buffer exceeds maxBackpressure, so
 * memory per socket stays bounded. Updates carry the full job, so a skipped update only matters
 * if it was the latest: when a congested socket drains below the low-water mark (a quarter of
 * maxBackpressure), it is sent the latest state of every job it follows that changed since it was
 * last known to be in sync, and for each followed tag the summaries sent to it since (or a whole
 * `feed` when too many changed). Clients ignore a seq they already have, so a resend is harmless.
 *
 * Separate from subscriptions (ws-subscriptions.ts), which decide what a socket follows: this
 * decides what a socket that fell behind is sent again. The skipped-update count is skip-counter.ts.
 */
import type { JobView } from '../core/job-view.js';
import type { SkipCounter } from './skip-counter.js';
import { failFeed, send, type HubContext, type HubSocket, type SocketData } from './ws-socket.js';
import { feedMessage, feedUpdateMessage, snapshotMessage, updateMessage } from './wire.js';

export class WsResync {
  private readonly lowWater: number;

  constructor(
    private readonly ctx: HubContext,
    private readonly skipped: SkipCounter<SocketData>,
  ) {
    this.lowWater = Math.floor(ctx.config.limits.maxBackpressureBytes / 4);
  }

  /** Sends a job's state directly to one socket, remembering whether it got through. */
  sendState(ws: HubSocket, d: SocketData, view: JobView, kind: 'snapshot' | 'update'): void {
    const result = send(this.ctx, ws, kind === 'snapshot' ? snapshotMessage(view) : updateMessage(view));
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

  /** The tag's `feed` message (its latest jobs); in sync from the counter read before the listing. */
  async sendFeed(ws: HubSocket, d: SocketData, tag: string): Promise<void> {
    const { feed } = this.ctx.service;
    const seq = feed.tagSeq(tag);
    const summaries = await feed.latest(tag);
    if (d.closed || !d.feeds?.has(tag)) return;
    ws.cork(() => {
      if (send(this.ctx, ws, feedMessage(tag, summaries)) === 2) {
        this.ctx.metrics.droppedBackpressure++;
        d.feeds!.set(tag, -1);
      } else d.feeds!.set(tag, seq);
    });
  }

  /** uWS's drain callback: below the low-water mark, what the socket missed while congested. */
  drain(ws: HubSocket): void {
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

  /** After congestion: each followed tag's changes since the socket was in sync, or a whole feed. */
  private resyncFeeds(ws: HubSocket, d: SocketData): void {
    const { service, metrics, config } = this.ctx;
    for (const [tag, synced] of d.feeds!) {
      const now = service.feed.tagSeq(tag);
      if (synced >= 0 && now <= synced) continue;
      if (ws.getBufferedAmount() > config.limits.maxBackpressureBytes) return;
      metrics.resyncs++;
      const changed = synced < 0 ? undefined : service.feed.changedSince(tag, synced);
      if (changed === undefined) {
        void this.sendFeed(ws, d, tag).catch((err) => failFeed(this.ctx, ws, err, tag));
        continue;
      }
      let sent = true;
      ws.cork(() => {
        for (const summary of changed) if (send(this.ctx, ws, feedUpdateMessage(tag, summary)) === 2) sent = false;
      });
      if (sent) d.feeds!.set(tag, now);
      else metrics.droppedBackpressure++;
    }
  }
}
