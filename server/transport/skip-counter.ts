/**
 * Counts the updates uWS skipped for congested sockets (pt_ws_dropped_backpressure_total). uWS
 * skips topic messages silently, and a JS callback per delivery would take the fan-out out of
 * native code. But a socket only skips while its buffer is over maxBackpressure, and the buffer
 * only shrinks in a drain callback. So the counter looks for sockets over the limit every second
 * and after every max(32, sockets / 2) publishes: one getBufferedAmount per socket per check, at
 * most two per publish amortized, nothing per delivery (at sockets / 16, 5,000 sockets each
 * following its own job cost 16 native calls per publish, ~2% of the event loop). A socket found
 * over the limit gets `skips`: per followed job, the seq from which its updates count as skipped,
 * taken from before the previous check (the socket was not over the limit then, or that check
 * would have found it) and never below what was counted for it before. At each drain callback, and
 * when it closes or unsubscribes, every seq published since is counted; counting stops once the
 * buffer is back under the limit. So every update skipped while a socket is over the limit at a
 * check is counted, and updates delivered between that earlier check and the moment the buffer
 * went over the limit (at most two check periods' publishes) may be counted too. A congestion that
 * starts and ends between two checks (fewer than max(32, sockets / 2) publishes, under a second)
 * goes unseen. Each publish costs a Map lookup.
 */
import type { WebSocket } from 'uWebSockets.js';

/** Congestion checks: every this many ms, and after this many publishes (or sockets / 2, if more). */
const CHECK_MS = 1000;
const CHECK_PUBLISHES = 32;

/** What the counter keeps on a socket's data. */
export interface Skipping {
  /** Followed jobs → the seq the socket was last sent (its keys are the subscriptions). */
  subs: Map<string, number>;
  /**
   * Once found over maxBackpressure: `over` while it is, and per followed job the seq its updates
   * are counted up to (from there while over; a floor for the next time after).
   */
  skips?: { over: boolean; seqs: Map<string, number> };
}

export interface SkipCounterOptions<D extends Skipping> {
  sockets: Iterable<WebSocket<D>>;
  maxBackpressureBytes: number;
  /** The job's current seq (the published state in memory). */
  seqOf(jobId: string): number | undefined;
  count(skipped: number): void;
}

export class SkipCounter<D extends Skipping> {
  /** Job → its seq before its first publish since the last check, and the same for the check before. */
  private publishedSince = new Map<string, number>();
  private publishedBefore = new Map<string, number>();
  private publishesSinceCheck = 0;
  private readonly timer: NodeJS.Timeout;
  private checkSoon?: NodeJS.Immediate;

  constructor(private readonly o: SkipCounterOptions<D>) {
    this.timer = setInterval(() => this.check(), CHECK_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    clearImmediate(this.checkSoon);
  }

  /** A job's update was published to its topic (`socketCount`: how many sockets are open). */
  published(jobId: string, seq: number, socketCount: number): void {
    if (!this.publishedSince.has(jobId)) this.publishedSince.set(jobId, seq - 1);
    if (++this.publishesSinceCheck >= Math.max(CHECK_PUBLISHES, socketCount >> 1) && !this.checkSoon) {
      // After this turn's callbacks. uWS may still hold small messages until the end of the turn,
      // so a socket they push over the limit is found by the next check: hence marks from the check before.
      this.checkSoon = setImmediate(() => this.check());
    }
  }

  /** The socket drained (`stillOver`: its buffer is still over the limit). */
  drained(d: D, stillOver: boolean): void {
    if (d.skips?.over) this.countSkipped(d, stillOver);
  }

  /** The socket closed. */
  closed(d: D): void {
    if (d.skips?.over) this.countSkipped(d, false);
  }

  /** A direct send to the socket was refused: it is over the limit now. */
  over(d: D): void {
    if (!d.skips?.over) this.startSkipping(d);
  }

  /** The socket stopped following `jobId`. */
  unsubscribed(d: D, jobId: string): void {
    if (d.skips?.over) this.countSkipped(d, true, jobId);
    d.skips?.seqs.delete(jobId);
  }

  /** Marks the sockets found over the limit; nothing to look at when nothing was published. */
  private check(): void {
    clearImmediate(this.checkSoon);
    this.checkSoon = undefined;
    this.publishesSinceCheck = 0;
    if (this.publishedSince.size > 0 || this.publishedBefore.size > 0) {
      for (const ws of this.o.sockets) {
        const d = ws.getUserData();
        if (!d.skips?.over && d.subs.size > 0 && ws.getBufferedAmount() > this.o.maxBackpressureBytes) this.startSkipping(d);
      }
    }
    this.publishedBefore = this.publishedSince;
    this.publishedSince = new Map();
  }

  /** Over the limit since some time after the check before the last one: count from there (not below what was counted). */
  private startSkipping(d: D): void {
    const seqs = new Map<string, number>();
    for (const [jobId, sent] of d.subs) {
      const from = this.publishedBefore.get(jobId) ?? this.publishedSince.get(jobId) ?? this.o.seqOf(jobId);
      if (from !== undefined) seqs.set(jobId, Math.max(from, sent, d.skips?.seqs.get(jobId) ?? 0));
    }
    d.skips = { over: true, seqs };
  }

  /** Counts what was published since the marks (of `onlyJob` only); counting goes on while `stillOver`. */
  private countSkipped(d: D, stillOver: boolean, onlyJob?: string): void {
    const { seqs } = d.skips!;
    let skipped = 0;
    for (const [jobId, from] of seqs) {
      if (onlyJob !== undefined && jobId !== onlyJob) continue;
      const seq = this.o.seqOf(jobId) ?? from;
      if (seq > from) {
        skipped += seq - from;
        seqs.set(jobId, seq);
      }
    }
    this.o.count(skipped);
    if (onlyJob === undefined) d.skips!.over = stillOver;
  }
}
