/**
 * The job service: the one place where jobs change. HTTP handlers, the WebSocket hub and the
 * polling adapters (server/polling/) all go through it, so every change follows the same path:
 *
 *   serialize per job → state machine (jobs.ts) → estimate (Estimator) → enqueue the save (Store)
 *   → [commit] → cache → emit `update` (the hub publishes it once to the job's topic) → observe
 *
 * Nothing is acknowledged or published before the store has committed it. Changes to one job are
 * applied one at a time in arrival order; different jobs proceed independently. A single node
 * pipelines a job's changes (see `change`); a cluster waits for each commit before the next.
 *
 * Each change is serialized to JSON exactly once (`JobView.json`); every socket, HTTP poll and
 * snapshot reuses that string.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { ApiError, isTerminal, JOB_ID_PATTERN, LIMITS, notFound, type CreateJobRequest, type Eta, type Job, type JobEvent, type JobStatus } from '../../protocol/index.js';
import type { Estimate, Estimator } from './estimator.js';
import { applyEvent, applyRetry, createJob, weightedProgress } from './job-machine.js';
import type { Logger } from '../app/log.js';
import { SeqConflictError, type EventIdEntry, type JobRecord, type Store } from '../store/store.js';
import { deliverWebhook, type WebhookOptions } from './webhook.js';

/** An immutable published state of a job: the object, its JSON (serialized once) and its ETag. */
export interface JobView {
  readonly job: Job;
  readonly json: string;
  readonly etag: string;
}

export interface RetryNotice {
  jobId: string;
  /** The step the producer should resume from. */
  step: string;
  seq: number;
  view: JobView;
}

export interface EventsResult {
  /** The job's seq after the request (for an all-duplicate request: the first acceptance's seq). */
  seq: number;
  applied: number;
  duplicates: number;
  view: JobView;
}

export interface JobServiceEvents {
  /** A job was created (polling adapters start following `record.source` here). */
  created: (view: JobView, record: Readonly<JobRecord>) => void;
  /** A job changed; `prev` is the state before. Emitted after the change is durable. */
  update: (view: JobView, prev: Job) => void;
  /** Someone asked to retry a failed job: the producer should resume from `notice.step`. */
  retry: (notice: RetryNotice, record: Readonly<JobRecord>) => void;
  /** Finished jobs past retention were deleted. */
  pruned: (ids: readonly string[]) => void;
}

export interface JobServiceOptions {
  store: Store;
  log: Logger;
  /** The ETA engine; default: progress weighted by step complexity and no ETA. */
  estimator?: Estimator;
  now?: () => number;
  /** Re-estimate running jobs this often (ms); 0 disables. Default 1000. */
  tickMs?: number;
  /** Keep finished jobs this long (ms). Default 24 h. */
  retentionMs?: number;
  webhook?: WebhookOptions;
  /** Finished jobs kept in memory for fast polls and snapshots (running ones always are). */
  finishedCacheSize?: number;
  /**
   * Set when other server nodes change the same jobs (Redis, docs/cluster.md). The cached state of
   * a job is then trusted only while `isFresh(id)` (the node hears the job's changes live); other
   * reads go to the store, saves are seq-checked and a lost race is re-applied on the fresh state,
   * and ETA re-estimates run on the node that committed a job's latest change.
   */
  cluster?: {
    isFresh(id: string): boolean;
    /** Counts saves that lost a race to another node. */
    onConflict?(id: string): void;
  };
}

/** A save that lost a race is re-applied this many times on the fresh state before giving up (503). */
const MAX_CONFLICT_RETRIES = 10;

/** The estimator used until the ETA engine is plugged in: complexity-weighted progress, no ETA. */
export const complexityEstimator: Estimator = {
  estimate: (job: Job): Estimate => ({ progress: weightedProgress(job), eta: null }),
  observe: () => undefined,
  changedMeaningfully: (shown: Eta | null, next: Eta | null) => {
    if (shown === null || next === null) return shown !== next;
    const diff = Math.abs(shown.remainingMs - next.remainingMs);
    return diff > 1000 && diff > 0.1 * Math.max(shown.remainingMs, next.remainingMs);
  },
};

const etagOf = (job: Job) => `"${job.createdAt.toString(36)}.${job.seq}"`;
const viewOf = (job: Job): JobView => ({ job, json: JSON.stringify(job), etag: etagOf(job) });
const isActive = (status: JobStatus) => status === 'queued' || status === 'running';

type Listener<K extends keyof JobServiceEvents> = JobServiceEvents[K];

interface CacheEntry {
  record: JobRecord;
  view: JobView;
}

/** A job's latest applied state while some of its writes still wait for their commit. */
interface Head {
  record: JobRecord;
  inFlight: number;
  /** The latest write's outcome: FIFO commits make it the outcome of all of them. */
  last: Promise<unknown>;
  /** eventIds of uncommitted changes (the store does not know them yet) → their seq. */
  events: Map<string, number>;
}

export class JobService {
  readonly estimator: Estimator;
  private readonly store: Store;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly options: JobServiceOptions;
  /** Running/queued jobs stay; finished ones are kept LRU up to finishedCacheSize. */
  private readonly cache = new Map<string, CacheEntry>();
  private readonly chains = new Map<string, Promise<unknown>>();
  private readonly heads = new Map<string, Head>();
  private readonly writes = new Set<Promise<unknown>>();
  /** Cluster mode: running jobs whose latest state this node committed (it runs their ETA tick). */
  private readonly lastWriter = new Set<string>();
  private readonly listeners: { [K in keyof JobServiceEvents]: Set<Listener<K>> } = {
    created: new Set(),
    update: new Set(),
    retry: new Set(),
    pruned: new Set(),
  };
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly webhooks = new AbortController();
  private readonly pendingWebhooks = new Set<Promise<unknown>>();
  private closed = false;

  constructor(options: JobServiceOptions) {
    this.options = options;
    this.store = options.store;
    this.log = options.log;
    this.estimator = options.estimator ?? complexityEstimator;
    this.now = options.now ?? Date.now;
  }

  // ------------------------------------------------------------------------------------------
  // Lifecycle
  // ------------------------------------------------------------------------------------------

  /** Loads running jobs, prunes expired ones, starts the ETA tick and the retention timer. */
  async start(): Promise<void> {
    for (const record of await this.store.listByStatus(['queued', 'running'], 100_000)) {
      this.remember(record, viewOf(record.job));
    }
    await this.prune();
    const tickMs = this.options.tickMs ?? 1000;
    if (tickMs > 0) this.timers.push(setInterval(() => void this.tick(), tickMs).unref());
    const retention = this.options.retentionMs ?? 86_400_000;
    const every = Math.min(3_600_000, Math.max(1000, Math.floor(retention / 4)));
    this.timers.push(setInterval(() => void this.prune(), every).unref());
  }

  /** Stops timers, waits for in-flight changes and lets webhooks finish their current attempt. */
  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    await Promise.allSettled([...this.chains.values()]);
    await Promise.allSettled([...this.writes]);
    this.webhooks.abort();
    await Promise.allSettled([...this.pendingWebhooks]);
  }

  on<K extends keyof JobServiceEvents>(event: K, listener: JobServiceEvents[K]): () => void {
    const set = this.listeners[event] as Set<JobServiceEvents[K]>;
    set.add(listener);
    return () => void set.delete(listener);
  }

  /** Shorthand for `on('retry', ...)`: how a producer-side adapter learns it should resume. */
  onRetry(listener: JobServiceEvents['retry']): () => void {
    return this.on('retry', listener);
  }

  onUpdate(listener: JobServiceEvents['update']): () => void {
    return this.on('update', listener);
  }

  private emit<K extends keyof JobServiceEvents>(event: K, ...args: Parameters<JobServiceEvents[K]>): void {
    for (const listener of this.listeners[event]) {
      try {
        (listener as (...a: Parameters<JobServiceEvents[K]>) => void)(...args);
      } catch (err) {
        this.log.error({ err, event }, 'job service listener threw');
      }
    }
  }

  // ------------------------------------------------------------------------------------------
  // Reads
  // ------------------------------------------------------------------------------------------

  /** The latest state from memory, if the job is cached (always true for running jobs). */
  peek(id: string): JobView | undefined {
    if (this.options.cluster && !this.options.cluster.isFresh(id)) return undefined;
    return this.cache.get(id)?.view;
  }

  /**
   * A state another node committed (cluster mode): cached and published to local subscribers when
   * newer than what this node has. Returns whether it was newer.
   */
  applyRemote(job: Job, record?: JobRecord): boolean {
    const cached = this.cache.get(job.id);
    if (cached && cached.record.job.seq >= job.seq) return false;
    const view = viewOf(job);
    if (!cached) {
      // Local sockets following a job got its snapshot through get(), which cached it: an uncached
      // job has no local audience yet. Keep the full record when we have it; the snapshot follows.
      if (record) this.remember(record, view);
      return true;
    }
    this.remember({ ...cached.record, job }, view);
    this.lastWriter.delete(job.id);
    this.emit('update', view, cached.record.job);
    return true;
  }

  async get(id: string): Promise<JobView | undefined> {
    return (await this.entry(id))?.view;
  }

  /** The full record, including webhook and polling source (never send it to clients). */
  async getRecord(id: string): Promise<Readonly<JobRecord> | undefined> {
    return (await this.entry(id))?.record;
  }

  /** Queued and running jobs (polling adapters resume following their sources from these). */
  activeRecords(): Readonly<JobRecord>[] {
    return [...this.cache.values()].filter((e) => isActive(e.record.job.status)).map((e) => e.record);
  }

  async countByStatus(): Promise<Record<JobStatus, number>> {
    return this.store.countByStatus();
  }

  // ------------------------------------------------------------------------------------------
  // Changes
  // ------------------------------------------------------------------------------------------

  /**
   * Creates a job. Without `req.id` the id is `idPrefix` + a random UUID.
   * Throws ApiError 409 `duplicate_job` when the id exists.
   */
  async create(req: CreateJobRequest, options: { idPrefix?: string } = {}): Promise<JobView> {
    this.assertOpen();
    const id = req.id ?? `${options.idPrefix ?? ''}${randomUUID()}`;
    if (!JOB_ID_PATTERN.test(id)) throw new ApiError(400, 'bad_request', `id must match ${JOB_ID_PATTERN.source}`);
    const now = this.now();
    const job = createJob({ ...req, id }, now);
    this.withEstimate(job, now);
    const record: JobRecord = { job };
    if (req.webhook) record.webhook = req.webhook;
    if (req.source) record.source = req.source;
    return this.serialize(id, async () => {
      const inserted = await this.persist(() => this.store.insert(record));
      if (!inserted) throw new ApiError(409, 'duplicate_job', `a job with id "${id}" already exists`);
      const view = viewOf(job);
      this.remember(record, view);
      this.observe(undefined, job, now);
      this.emit('created', view, record);
      return view;
    });
  }

  /**
   * Applies producer events (one request = one atomic batch: all are accepted or none).
   * Events whose `eventId` was seen before are skipped. The changes are durable when this
   * resolves. Polling adapters call this too, with the events they derived from upstream.
   */
  async applyEvents(id: string, events: readonly JobEvent[]): Promise<EventsResult> {
    this.assertOpen();
    if (events.length === 0) throw new ApiError(400, 'bad_request', 'no events');
    if (events.length > LIMITS.maxEventsPerRequest) {
      throw new ApiError(400, 'bad_request', `at most ${LIMITS.maxEventsPerRequest} events per request`);
    }
    return this.change(id, async () => {
      const base = await this.head(id);
      if (!base) throw notFound(`job ${id} not found`);
      const now = this.now();
      const start = base.job;
      let job = start;
      const steps: Job[] = [];
      const accepted: EventIdEntry[] = [];
      const seenInBatch = new Map<string, number>();
      let duplicates = 0;
      let duplicateSeq = start.seq;
      for (const [i, event] of events.entries()) {
        if (event.eventId !== undefined) {
          const first =
            seenInBatch.get(event.eventId) ?? this.heads.get(id)?.events.get(event.eventId) ?? (await this.store.findEvent(id, event.eventId));
          if (first !== undefined) {
            duplicates++;
            duplicateSeq = first;
            continue;
          }
        }
        const outcome = applyEvent(job, event, now);
        if (!outcome.ok) {
          const e = outcome.error;
          throw events.length > 1 ? new ApiError(e.status, e.code, `events[${i}]: ${e.message}`) : e;
        }
        job = outcome.value;
        steps.push(job);
        if (event.eventId !== undefined) {
          accepted.push({ eventId: event.eventId, seq: job.seq });
          seenInBatch.set(event.eventId, job.seq);
        }
      }
      if (steps.length === 0) {
        // Acknowledged once what it saw (its originals included) is committed, or fails with it.
        const pending = this.heads.get(id)?.last;
        return async () => {
          await pending;
          const cached = this.cache.get(id);
          const view = cached?.record.job.seq === start.seq ? cached.view : viewOf(start);
          return { seq: events.length === 1 ? duplicateSeq : start.seq, applied: 0, duplicates, view };
        };
      }
      this.withEstimate(job, now);
      const durable = this.write(base, job, accepted);
      return async () => {
        const view = await durable;
        let prev = start;
        for (const next of steps) {
          this.observe(prev, next, now);
          prev = next;
        }
        return { seq: job.seq, applied: steps.length, duplicates, view };
      };
    });
  }

  /** Same as applyEvents: the entry point for polling adapters feeding upstream changes. */
  ingest(id: string, events: readonly JobEvent[]): Promise<EventsResult> {
    return this.applyEvents(id, events);
  }

  /**
   * Retries a failed job from `step` (default: its first failed step). Notifies the producer
   * through `retry` listeners (the hub sends `control` messages) and the job's webhook.
   * Throws ApiError 409 `nothing_to_retry` when nothing failed.
   */
  async retry(id: string, step?: string): Promise<RetryNotice> {
    this.assertOpen();
    return this.change(id, async () => {
      const base = await this.head(id);
      if (!base) throw notFound(`job ${id} not found`);
      const now = this.now();
      const outcome = applyRetry(base.job, step, now);
      if (!outcome.ok) throw outcome.error;
      const { job, step: from } = outcome.value;
      this.withEstimate(job, now);
      const durable = this.write(base, job, []);
      return async () => {
        const view = await durable;
        this.observe(base.job, job, now);
        const notice: RetryNotice = { jobId: id, step: from, seq: job.seq, view };
        const record = this.cache.get(id)?.record ?? { ...base, job };
        this.emit('retry', notice, record);
        if (record.webhook) this.sendWebhook(record.webhook, notice);
        return notice;
      };
    });
  }

  /** Re-estimates running jobs; publishes those whose ETA changed meaningfully (seq + 1). */
  async tick(): Promise<void> {
    if (this.closed) return;
    const now = this.now();
    const work: Promise<unknown>[] = [];
    for (const [id, { record }] of this.cache) {
      if (record.job.status !== 'running') continue;
      // In a cluster the node that committed a job's latest change re-estimates it, so ticks never
      // race another node's events (a race would be resolved, but costs a round trip).
      if (this.options.cluster && !this.lastWriter.has(id)) continue;
      let estimate: Estimate;
      try {
        estimate = this.estimator.estimate(record.job, now);
      } catch (err) {
        this.log.error({ err, jobId: id }, 'estimator failed');
        continue;
      }
      if (!this.estimator.changedMeaningfully(record.job.eta, estimate.eta)) continue;
      work.push(
        this.change(id, async () => {
          const current = this.heads.get(id)?.record ?? this.cache.get(id)?.record;
          // A change since (events, another node) was estimated when applied; the next tick looks again.
          if (!current || current.job.seq !== record.job.seq) return async () => undefined;
          const prev = current.job;
          const job: Job = { ...prev, seq: prev.seq + 1, updatedAt: now, progress: clamp01(estimate.progress), eta: estimate.eta };
          const durable = this.write(current, job, []);
          return async () => void (await durable);
        }, false).catch((err) => {
          // A lost race in a cluster: the other node's newer state wins, the next tick re-estimates.
          if (err instanceof SeqConflictError) this.cache.delete(id);
          else this.log.error({ err, jobId: id }, 'ETA update failed');
        }),
      );
    }
    await Promise.all(work);
  }

  /** Deletes finished jobs older than the retention period. */
  async prune(): Promise<string[]> {
    if (this.closed) return [];
    const before = this.now() - (this.options.retentionMs ?? 86_400_000);
    try {
      const ids = await this.store.pruneFinished(before);
      if (ids.length === 0) return ids;
      for (const id of ids) {
        this.cache.delete(id);
        this.lastWriter.delete(id);
      }
      this.log.info({ count: ids.length }, 'pruned finished jobs past retention');
      this.emit('pruned', ids);
      return ids;
    } catch (err) {
      this.log.error({ err }, 'pruning failed');
      return [];
    }
  }

  // ------------------------------------------------------------------------------------------
  // Internals
  // ------------------------------------------------------------------------------------------

  private assertOpen(): void {
    if (this.closed) throw new ApiError(503, 'internal', 'server is shutting down');
  }

  /** Runs `fn` after every earlier change to the same job has finished. */
  private serialize<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.chains.get(id) ?? Promise.resolve();
    const run = previous.then(fn, fn);
    const settled = run.catch(() => undefined);
    this.chains.set(id, settled);
    void settled.then(() => {
      if (this.chains.get(id) === settled) this.chains.delete(id);
    });
    return run;
  }

  /**
   * Runs one change of job `id`. `apply` runs serialized per job against the job's head (its
   * latest applied state), enqueues the write and returns `finish`, which waits for that write's
   * commit. On a single node the next change is applied as soon as the write is enqueued, so a
   * busy job gets many changes into one group commit (server/store/sqlite.ts) instead of one per
   * loop turn; commits are FIFO, so each request is answered and published in seq order. In a
   * cluster (the store may refuse a save and the change is re-applied on the fresh state) the
   * next change waits for the commit.
   */
  private change<T>(id: string, apply: () => Promise<() => Promise<T>>, reapplyOnConflict = true): Promise<T> {
    if (!this.options.cluster) return this.serialize(id, apply).then((finish) => finish());
    const run = async () => (await apply())();
    return this.serialize(id, reapplyOnConflict ? () => this.onFreshState(id, run) : run);
  }

  /** The state the next change applies to: the latest applied (maybe not yet committed) one. */
  private async head(id: string): Promise<JobRecord | undefined> {
    return this.heads.get(id)?.record ?? (await this.entry(id))?.record;
  }

  private async entry(id: string): Promise<CacheEntry | undefined> {
    let cached = this.cache.get(id);
    if (cached && this.options.cluster && !this.options.cluster.isFresh(id)) {
      // Another node may have changed it: the store has the truth.
      const stored = await this.store.get(id);
      if (!stored) {
        this.cache.delete(id);
        return undefined;
      }
      cached = this.cache.get(id) ?? cached;
      if (stored.job.seq > cached.record.job.seq) return this.caughtUp(cached, stored);
    }
    if (cached) {
      if (!isActive(cached.record.job.status)) {
        // LRU: refresh the position of finished jobs on access.
        this.cache.delete(id);
        this.cache.set(id, cached);
      }
      return cached;
    }
    if (!JOB_ID_PATTERN.test(id)) return undefined;
    const record = await this.store.get(id);
    if (!record) return undefined;
    // Another call may have loaded it while we waited.
    const raced = this.cache.get(id);
    if (raced) return raced;
    return this.remember(record, viewOf(record.job));
  }

  private remember(record: JobRecord, view: JobView): CacheEntry {
    const entry = { record, view };
    this.cache.delete(record.job.id);
    this.cache.set(record.job.id, entry);
    const limit = this.options.finishedCacheSize ?? 10_000;
    if (this.cache.size > limit) {
      let finished = 0;
      for (const e of this.cache.values()) if (!isActive(e.record.job.status)) finished++;
      for (const [id, e] of this.cache) {
        if (finished <= limit) break;
        if (!isActive(e.record.job.status)) {
          this.cache.delete(id);
          finished--;
        }
      }
    }
    return entry;
  }

  private withEstimate(job: Job, now: number): void {
    if (job.status === 'completed') {
      job.progress = 1;
      job.eta = null;
      return;
    }
    try {
      const estimate = this.estimator.estimate(job, now);
      job.progress = clamp01(estimate.progress);
      job.eta = isTerminal(job.status) ? null : estimate.eta;
    } catch (err) {
      this.log.error({ err, jobId: job.id }, 'estimator failed; using complexity-weighted progress');
      job.progress = weightedProgress(job);
      job.eta = null;
    }
  }

  private observe(prev: Job | undefined, next: Job, now: number): void {
    try {
      this.estimator.observe(prev, next, now);
    } catch (err) {
      this.log.error({ err, jobId: next.id }, 'estimator.observe failed');
    }
  }

  /**
   * Makes `job` the head and enqueues its save now; the promise resolves once it is committed,
   * cached and published. Nothing is visible before the store committed. When a write fails, the
   * store refuses every later write of the job (each expects its predecessor's seq), so they fail
   * too, and the head goes back to the last committed state (the cache).
   */
  private write(base: JobRecord, job: Job, eventIds: readonly EventIdEntry[]): Promise<JobView> {
    const id = job.id;
    const next: JobRecord = { ...base, job };
    let head = this.heads.get(id);
    if (!head) this.heads.set(id, (head = { record: next, inFlight: 0, last: Promise.resolve(), events: new Map() }));
    const mine = head;
    mine.record = next;
    mine.inFlight++;
    const settle = () => {
      mine.inFlight--;
      for (const e of eventIds) mine.events.delete(e.eventId);
    };
    const durable = this.persist(() => this.store.save(next, eventIds, base.job.seq)).then(
      () => {
        settle();
        if (mine.inFlight === 0 && this.heads.get(id) === mine) this.heads.delete(id);
        const view = viewOf(job);
        const cached = this.cache.get(id);
        if (this.options.cluster) {
          // A newer state from another node may already be here: never go back.
          if (cached && cached.record.job.seq > job.seq) return view;
          if (job.status === 'running') this.lastWriter.add(id);
          else this.lastWriter.delete(id);
        } else if (cached) {
          assert.equal(cached.record.job.seq, base.job.seq, `job ${id}: commits out of seq order`);
        }
        this.remember(next, view);
        this.emit('update', view, base.job);
        return view;
      },
      (err: unknown) => {
        settle();
        if (this.heads.get(id) === mine) this.heads.delete(id);
        if (err instanceof SeqConflictError && !this.options.cluster) {
          throw new ApiError(503, 'internal', 'an earlier change of this job could not be stored; nothing was applied, retry later');
        }
        throw err;
      },
    );
    for (const e of eventIds) mine.events.set(e.eventId, e.seq);
    const tracked = durable.catch(() => undefined);
    mine.last = durable;
    this.writes.add(tracked);
    void tracked.then(() => this.writes.delete(tracked));
    return durable;
  }

  private async persist<T>(write: () => Promise<T>): Promise<T> {
    try {
      return await write();
    } catch (err) {
      if (err instanceof SeqConflictError) throw err; // handled by onFreshState
      this.log.error({ err }, 'store write failed');
      throw new ApiError(503, 'internal', 'the change could not be stored; nothing was applied, retry later');
    }
  }

  /**
   * Cluster mode: the store has a newer state than this node's cache (another node changed the
   * job and its message is still on the way). Local subscribers get it now (the full state covers
   * anything in between); the bus message arriving later is dropped as not newer.
   */
  private caughtUp(cached: CacheEntry, stored: JobRecord): CacheEntry {
    const view = viewOf(stored.job);
    const entry = this.remember(stored, view);
    this.lastWriter.delete(stored.job.id);
    this.emit('update', view, cached.record.job);
    return entry;
  }

  /**
   * Runs a change; when its save lost a race to another node (cluster mode), drops the cached
   * state and runs it again on the fresh one. Events are re-checked against that state, so a
   * change that no longer applies gets its ordinary 400/409, and a repeated eventId its first seq.
   */
  private async onFreshState<T>(id: string, change: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await change();
      } catch (err) {
        if (!(err instanceof SeqConflictError)) throw err;
        this.options.cluster?.onConflict?.(id);
        const cached = this.cache.get(id);
        const stored = await this.store.get(id).catch(() => undefined);
        if (!stored) this.cache.delete(id);
        else if (!cached) this.remember(stored, viewOf(stored.job));
        else if (stored.job.seq > cached.record.job.seq) this.caughtUp(cached, stored);
        if (attempt >= MAX_CONFLICT_RETRIES) {
          this.log.error({ jobId: id }, 'job kept changing on other nodes; change not applied');
          throw new ApiError(503, 'internal', 'the job is changing concurrently on other nodes; nothing was applied, retry later');
        }
      }
    }
  }

  private sendWebhook(url: string, notice: RetryNotice): void {
    const delivery = deliverWebhook(
      url,
      { type: 'retry', jobId: notice.jobId, step: notice.step, seq: notice.seq },
      this.log,
      this.options.webhook,
      this.webhooks.signal,
    );
    this.pendingWebhooks.add(delivery);
    void delivery.finally(() => this.pendingWebhooks.delete(delivery));
  }
}

const clamp01 = (n: number) => (Number.isFinite(n) ? Math.min(1, Math.max(0, n)) : 0);
