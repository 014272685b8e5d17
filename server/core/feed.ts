/**
 * Tag feeds: which changes of which jobs a tag's followers hear (`feed_update`), decided once per
 * node for every transport (the WebSocket hub publishes them to the uWS topic `feed:<tag>`, the
 * SSE feed writes them to its streams).
 *
 * The rule, per job carrying a followed tag:
 * - created, or its status changed: sent at once;
 * - any other change a summary shows (progress, ETA, cancelRequested): at most once per
 *   LISTING.feedProgressIntervalMs (2 s) per job. A change inside the window is held, replaced by
 *   later ones, and sent when the window ends, so a feed never ends on a stale state; a status
 *   change in the meantime is sent at once and carries the latest state anyway;
 * - a change a summary does not show (a step's message) is not sent.
 * The summary is made once per sent change and shared by every tag and transport.
 *
 * Input: the job service's `created` and `update` (wired by JobService), and in a cluster the
 * changes other nodes committed to jobs with a tag followed here (cluster/node.ts, from the Redis
 * tag channels: the node subscribes to `{p}tagch:<tag>` while this feed follows the tag, through
 * `FeedInterest`). The same state may arrive twice (one message per tag channel, or the job channel
 * too): a job's changes are taken in seq order and a seq seen before is dropped. A job this node
 * has no state for (first seen, or followed since) is sent at once: it is news to this node.
 *
 * Resync after congestion: per followed tag the feed keeps a counter of what it sent and the latest
 * summary of each of the LISTING.feedJobs jobs sent most recently; a transport that skipped updates
 * for a congested client asks `changedSince(tag, counter)` and sends those again (or, when more
 * jobs than that changed, a whole new `feed`).
 *
 * State per job is dropped 30 s after it finished, and at once when no tag of it is followed.
 */
import { isTerminal, LISTING, summaryOf, type Job } from '../../protocol/index.js';
import type { Logger } from '../app/log.js';

/** A sent finished job is remembered this long (ms) to drop late duplicates, then forgotten. */
const FINISHED_KEPT_MS = 30_000;
const SWEEP_EVERY_MS = 10_000;

/** In a cluster: hearing the changes other nodes commit to jobs carrying a tag (cluster/bus.ts). */
export interface FeedInterest {
  /** Resolves once this node hears the tag's changes. */
  acquire(tag: string): Promise<void>;
  release(tag: string): void;
}

/** A sent change: to every follower of `tag`. `summaryJson` is the job's summary, made once. */
export type FeedListener = (tag: string, summaryJson: string, tagSeq: number) => void;

export interface JobFeedOptions {
  /** The tag's latest jobs, newest first (JobService.list). */
  latest: (tag: string, limit: number) => Promise<Job[]>;
  log: Logger;
  now?: () => number;
  /** Default LISTING.feedProgressIntervalMs. */
  intervalMs?: number;
}

interface TagState {
  refs: number;
  /** Changes sent to this tag so far. */
  seq: number;
  /** Latest summary per job, least recently sent first; at most LISTING.feedJobs. */
  recent: Map<string, { seq: number; json: string }>;
  /** A job dropped from `recent` was sent at this tag seq: older counters need a whole feed. */
  floor: number;
  ready: Promise<void>;
}

interface JobState {
  /** Highest seq taken. */
  seq: number;
  /** The state last sent, when. */
  sent: Job;
  sentAt: number;
  /** A change held by the window, sent when it ends. */
  pending?: Job;
  timer?: NodeJS.Timeout;
}

export class JobFeed {
  private readonly tags = new Map<string, TagState>();
  private readonly jobs = new Map<string, JobState>();
  private readonly listeners = new Set<FeedListener>();
  private readonly now: () => number;
  private readonly intervalMs: number;
  private readonly sweeper: NodeJS.Timeout;
  private interest: FeedInterest | undefined;

  constructor(private readonly o: JobFeedOptions) {
    this.now = o.now ?? Date.now;
    this.intervalMs = o.intervalMs ?? LISTING.feedProgressIntervalMs;
    this.sweeper = setInterval(() => this.sweep(), SWEEP_EVERY_MS);
    this.sweeper.unref();
  }

  /** Cluster mode: how this node hears other nodes' changes of a tag's jobs (set before any follow). */
  setInterest(interest: FeedInterest): void {
    this.interest = interest;
  }

  onUpdate(listener: FeedListener): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  /** A client follows `tag` (counted); resolves once its changes reach this node (at once, on one node). */
  follow(tag: string): Promise<void> {
    const known = this.tags.get(tag);
    if (known) {
      known.refs++;
      return known.ready;
    }
    const state: TagState = { refs: 1, seq: 0, recent: new Map(), floor: 0, ready: Promise.resolve() };
    this.tags.set(tag, state);
    if (this.interest) {
      state.ready = this.interest.acquire(tag).catch((err: unknown) => {
        // The bus resubscribes and resyncs on its own (cluster/bus.ts); the follower still gets local changes.
        this.o.log.warn({ tag, err: (err as Error).message }, 'feed: hearing the tag from other nodes failed for now');
      });
    }
    return state.ready;
  }

  /** A client stopped following `tag`. */
  unfollow(tag: string): void {
    const state = this.tags.get(tag);
    if (!state || --state.refs > 0) return;
    this.tags.delete(tag);
    this.interest?.release(tag);
  }

  isFollowed(tag: string): boolean {
    return this.tags.has(tag);
  }

  get followedTags(): string[] {
    return [...this.tags.keys()];
  }

  /** Changes sent to `tag` so far (0 when not followed). */
  tagSeq(tag: string): number {
    return this.tags.get(tag)?.seq ?? 0;
  }

  /**
   * The latest summary JSON of every job sent to `tag` after its counter was `seq`, oldest first;
   * undefined when too many jobs changed to say (send a whole `feed` instead).
   */
  changedSince(tag: string, seq: number): string[] | undefined {
    const state = this.tags.get(tag);
    if (!state) return [];
    if (seq < state.floor) return undefined;
    const out: string[] = [];
    for (const entry of state.recent.values()) if (entry.seq > seq) out.push(entry.json);
    return out;
  }

  /** Summary JSONs of the tag's latest LISTING.feedJobs jobs, newest first (the `feed` message). */
  async latest(tag: string): Promise<string[]> {
    const jobs = await this.o.latest(tag, LISTING.feedJobs);
    return jobs.map((job) => JSON.stringify(summaryOf(job)));
  }

  /** A committed state of a job (local, or from another node). */
  observe(job: Job): void {
    const tags = job.tags;
    if (!tags || tags.length === 0 || this.tags.size === 0) return;
    if (!tags.some((tag) => this.tags.has(tag))) return;
    const now = this.now();
    const state = this.jobs.get(job.id);
    if (!state) {
      // Created, or news to this node: at once.
      const fresh: JobState = { seq: job.seq, sent: job, sentAt: now };
      this.jobs.set(job.id, fresh);
      this.send(job, fresh, now);
      return;
    }
    if (job.seq <= state.seq) return;
    state.seq = job.seq;
    if (job.status !== state.sent.status) return this.send(job, state, now);
    if (!shownChange(state.sent, job)) {
      // Back to what was sent (nothing a summary shows differs): nothing to hold either.
      this.hold(state, undefined);
      return;
    }
    if (now - state.sentAt >= this.intervalMs) return this.send(job, state, now);
    this.hold(state, job);
    state.timer ??= setTimeout(() => this.flush(job.id), state.sentAt + this.intervalMs - now);
  }

  /** Jobs deleted (pruned): their state goes. */
  forget(ids: readonly string[]): void {
    for (const id of ids) this.drop(id);
  }

  /**
   * After an outage of the cluster bus: the latest jobs of each tag are taken again, so changes
   * missed meanwhile are sent (a seq already taken is not).
   */
  async resync(tags: readonly string[]): Promise<void> {
    for (const tag of tags) {
      if (!this.tags.has(tag)) continue;
      const jobs = await this.o.latest(tag, LISTING.feedJobs);
      for (const job of jobs.reverse()) this.observe(job);
    }
  }

  close(): void {
    clearInterval(this.sweeper);
    for (const state of this.jobs.values()) clearTimeout(state.timer);
    this.jobs.clear();
    this.listeners.clear();
  }

  // ------------------------------------------------------------------------------------------

  private hold(state: JobState, job: Job | undefined): void {
    if (job) {
      state.pending = job;
      return;
    }
    delete state.pending;
    clearTimeout(state.timer);
    delete state.timer;
  }

  private flush(id: string): void {
    const state = this.jobs.get(id);
    if (!state) return;
    delete state.timer;
    const pending = state.pending;
    if (pending) this.send(pending, state, this.now());
  }

  private send(job: Job, state: JobState, now: number): void {
    this.hold(state, undefined);
    state.sent = job;
    state.sentAt = now;
    const json = JSON.stringify(summaryOf(job));
    for (const tag of job.tags ?? []) {
      const t = this.tags.get(tag);
      if (!t) continue;
      const seq = ++t.seq;
      t.recent.delete(job.id);
      t.recent.set(job.id, { seq, json });
      if (t.recent.size > LISTING.feedJobs) {
        const [oldest, entry] = t.recent.entries().next().value as [string, { seq: number }];
        t.recent.delete(oldest);
        t.floor = entry.seq;
      }
      for (const listener of this.listeners) {
        try {
          listener(tag, json, seq);
        } catch (err) {
          this.o.log.error({ err, tag }, 'feed listener threw');
        }
      }
    }
  }

  private drop(id: string): void {
    const state = this.jobs.get(id);
    if (!state) return;
    clearTimeout(state.timer);
    this.jobs.delete(id);
  }

  /** Forgets finished jobs sent a while ago and jobs no tag of which is followed any more. */
  private sweep(): void {
    const now = this.now();
    for (const [id, state] of this.jobs) {
      const followed = state.sent.tags?.some((tag) => this.tags.has(tag)) ?? false;
      const settled = !state.pending && isTerminal(state.sent.status) && now - state.sentAt > FINISHED_KEPT_MS;
      if (!followed || settled) this.drop(id);
    }
  }
}

/** Whether a summary of `next` (same status) would show something `sent` does not. */
function shownChange(sent: Job, next: Job): boolean {
  if (sent.progress !== next.progress) return true;
  if (!sameEta(sent.eta, next.eta)) return true;
  if (sent.cancelRequested?.at !== next.cancelRequested?.at) return true;
  return sent.error?.code !== next.error?.code || sent.error?.message !== next.error?.message;
}

function sameEta(a: Job['eta'], b: Job['eta']): boolean {
  if (a === null || b === null) return a === b;
  return a.remainingMs === b.remainingMs && a.low === b.low && a.high === b.high && a.waitMs === b.waitMs;
}
