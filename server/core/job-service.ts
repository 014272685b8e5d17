/**
 * The job service: the one place where jobs change. HTTP handlers, the WebSocket hub and the
 * polling adapters (server/polling/) all go through it, so every change follows the same path:
 *
 *   JobWriter.change (ordered per job) → state machine (job-machine.ts) → estimate (Estimator)
 *   → JobWriter.write (Store) → [commit] → JobCache → emit `update` (the hub publishes it once
 *   to the job's topic) → observe (the estimator learns)
 *
 * Nothing is acknowledged or published before the store has committed it. Whether the cached
 * state is the truth (one node) or must be checked against the store (a cluster) is the
 * Freshness strategy's call (freshness.ts). Listeners (hub, polling, webhooks, cluster) are wired
 * in assembly (server/app/start-server.ts).
 *
 * Reads of many jobs: `list` (job-list.ts, newest first with a keyset cursor) serves
 * `GET /v1/jobs` and the first message of a tag feed; `feed` (feed.ts) is this service's tag feed,
 * fed by its own `created` and `update` (and, in a cluster, by cluster/node.ts), which the
 * transports deliver.
 *
 * This file is the service's commands (create, events, retry, cancel, silence), its lifecycle
 * (start, retention, close) and its reads; the rest is its own module:
 * - published-state.ts: the latest state of each job (cache kept coherent with the store and
 *   other nodes) and the `update` that publishes it;
 * - job-estimates.ts: progress and ETA stamped on every change, the estimator's learning, the tick;
 * - job-service-events.ts: the events the service emits and their payloads;
 * - stall-watch.ts and cancel-deadlines.ts: changes the server decides from a job's silence.
 */
import { randomUUID } from 'node:crypto';
import { ApiError, JOB_ID_PATTERN, LIMITS, notFound, type CreateJobRequest, type Job, type JobEvent, type JobStatus } from '../../protocol/index.js';
import type { Logger } from '../app/log.js';
import type { EventIdEntry, JobRecord, Store } from '../store/store.js';
import type { Estimator } from './estimator.js';
import { singleNode, type Freshness } from './freshness.js';
import { JobFeed } from './feed.js';
import { JobCache } from './job-cache.js';
import { complexityEstimator, JobEstimates } from './job-estimates.js';
import { listJobs, type JobListQuery, type JobListResult } from './job-list.js';
import { applyCancel, applyEvent, applyProgressRun, applyRetry, createJob, progressRunLength } from './job-machine.js';
import { ServiceEmitter, type CancelNotice, type EventsResult, type JobServiceEvents, type RetryNotice } from './job-service-events.js';
import { viewOf, type JobView } from './job-view.js';
import { JobWriter } from './job-writer.js';
import { PublishedState } from './published-state.js';

export type { JobView } from './job-view.js';
export type { JobListQuery, JobListResult } from './job-list.js';

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
  /** Finished jobs kept in memory for fast polls and snapshots (running ones always are). */
  finishedCacheSize?: number;
  /** Whether the cache is the truth: `singleNode` (default) or a ClusterFreshness (docs/cluster.md). */
  freshness?: Freshness;
}

export class JobService {
  readonly estimator: Estimator;
  /** Tag feeds (feed.ts): what followers of a tag hear. */
  readonly feed: JobFeed;
  private readonly store: Store;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly options: JobServiceOptions;
  private readonly fresh: Freshness;
  private readonly cache: JobCache;
  private readonly state: PublishedState;
  private readonly estimates: JobEstimates;
  private readonly events: ServiceEmitter;
  private readonly writer: JobWriter;
  private readonly timers: NodeJS.Timeout[] = [];
  private closed = false;

  constructor(options: JobServiceOptions) {
    this.options = options;
    this.store = options.store;
    this.log = options.log;
    this.estimator = options.estimator ?? complexityEstimator;
    this.estimates = new JobEstimates(this.estimator, this.log);
    this.now = options.now ?? Date.now;
    this.fresh = options.freshness ?? singleNode;
    this.cache = new JobCache(options.finishedCacheSize);
    this.events = new ServiceEmitter(this.log);
    this.state = new PublishedState(this.store, this.cache, this.fresh, (view, prev) => this.emit('update', view, prev));
    this.writer = new JobWriter({
      store: this.store,
      freshness: this.fresh,
      log: this.log,
      onCommitted: (record, view, prev) => this.state.committed(record, view, prev),
      reload: (id) => this.state.reload(id),
    });
    this.feed = new JobFeed({ latest: async (tag, limit) => (await this.list({ tags: [tag], limit })).jobs, log: this.log });
    this.on('created', (view) => this.feed.observe(view.job));
    this.on('update', (view) => this.feed.observe(view.job));
    this.on('pruned', (ids) => this.feed.forget(ids));
  }

  // ------------------------------------------------------------------------------------------
  // Lifecycle
  // ------------------------------------------------------------------------------------------

  /** Loads running jobs, prunes expired ones, starts the ETA tick and the retention timer. */
  async start(): Promise<void> {
    for (const record of await this.store.listByStatus(['queued', 'running'], 100_000)) {
      this.cache.set(record, viewOf(record.job));
    }
    await this.prune();
    const tickMs = this.options.tickMs ?? 1000;
    if (tickMs > 0) this.timers.push(setInterval(() => void this.tick(), tickMs).unref());
    const retention = this.options.retentionMs ?? 86_400_000;
    const every = Math.min(3_600_000, Math.max(1000, Math.floor(retention / 4)));
    this.timers.push(setInterval(() => void this.prune(), every).unref());
  }

  /** Stops timers and waits for in-flight changes. */
  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    await this.writer.settled();
    this.feed.close();
  }

  on<K extends keyof JobServiceEvents>(event: K, listener: JobServiceEvents[K]): () => void {
    return this.events.on(event, listener);
  }

  private emit<K extends keyof JobServiceEvents>(event: K, ...args: Parameters<JobServiceEvents[K]>): void {
    this.events.emit(event, ...args);
  }

  // ------------------------------------------------------------------------------------------
  // Reads
  // ------------------------------------------------------------------------------------------

  /** The latest state from memory, if the job is cached and current (always true for running jobs on one node). */
  peek(id: string): JobView | undefined {
    return this.state.peek(id);
  }

  async get(id: string): Promise<JobView | undefined> {
    return (await this.state.entry(id))?.view;
  }

  /** The full record, including webhook and polling source (never send it to clients). */
  async getRecord(id: string): Promise<Readonly<JobRecord> | undefined> {
    return (await this.state.entry(id))?.record;
  }

  /** Queued and running jobs (polling adapters resume following their sources from these). */
  activeRecords(): Readonly<JobRecord>[] {
    return this.cache.activeRecords();
  }

  async countByStatus(): Promise<Record<JobStatus, number>> {
    return this.store.countByStatus();
  }

  /**
   * Committed jobs newest first, `limit` at most, continuing after `before` (job-list.ts): the
   * caller (a transport) has turned the token's grants into `tags` and `where`.
   */
  async list(query: JobListQuery): Promise<JobListResult> {
    return listJobs(this.store, query);
  }

  /**
   * A state another node committed (cluster mode): cached and published to local subscribers when
   * newer than what this node has. Returns whether it was newer.
   */
  applyRemote(job: Job, record?: JobRecord): boolean {
    return this.state.applyRemote(job, record);
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
    return this.writer.serialize(id, async () => {
      const inserted = await this.writer.persist(() => this.store.insert(record));
      if (!inserted) throw new ApiError(409, 'duplicate_job', `a job with id "${id}" already exists`);
      const view = viewOf(job);
      this.cache.set(record, view);
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
    return this.writer.change(id, async () => {
      const base = await this.head(id);
      if (!base) throw notFound(`job ${id} not found`);
      const now = this.now();
      const start = base.job;
      let job = start;
      const steps: Job[] = [];
      const accepted: EventIdEntry[] = [];
      let seenInBatch: Map<string, number> | undefined; // eventIds are optional: made for the first one
      let duplicates = 0;
      let duplicateSeq = start.seq;
      let applied = 0;
      const refused = (e: ApiError, i: number) => (events.length > 1 ? new ApiError(e.status, e.code, `events[${i}]: ${e.message}`) : e);
      for (let i = 0; i < events.length; i++) {
        // A run of progress reports for one step becomes one state (job-machine.ts), seq + 1 per report.
        const run = progressRunLength(events, i);
        if (run > 1) {
          const outcome = applyProgressRun(job, events, i, run, now);
          if (!outcome.ok) throw refused(outcome.error, i);
          job = outcome.value;
          steps.push(job);
          applied += run;
          i += run - 1;
          continue;
        }
        const event = events[i]!;
        if (event.eventId !== undefined) {
          const first =
            seenInBatch?.get(event.eventId) ?? this.writer.pendingEvent(id, event.eventId) ?? (await this.store.findEvent(id, event.eventId));
          if (first !== undefined) {
            duplicates++;
            duplicateSeq = first;
            continue;
          }
        }
        const outcome = applyEvent(job, event, now);
        if (!outcome.ok) throw refused(outcome.error, i);
        job = outcome.value;
        steps.push(job);
        applied++;
        if (event.eventId !== undefined) {
          accepted.push({ eventId: event.eventId, seq: job.seq });
          (seenInBatch ??= new Map()).set(event.eventId, job.seq);
        }
      }
      if (steps.length === 0) {
        // Acknowledged once what it saw (its originals included) is committed, or fails with it.
        const pending = this.writer.lastSave(id);
        return async () => {
          await pending;
          const cached = this.cache.peek(id);
          const view = cached?.record.job.seq === start.seq ? cached.view : viewOf(start);
          return { seq: events.length === 1 ? duplicateSeq : start.seq, applied: 0, duplicates, view };
        };
      }
      const acceptedAt = performance.now(); // the events are accepted: pt_event_publish_seconds starts here
      this.withEstimate(job, now);
      const durable = this.writer.write(base, job, accepted, acceptedAt);
      return async () => {
        const view = await durable;
        let prev = start;
        for (const next of steps) {
          this.observe(prev, next, now);
          prev = next;
        }
        return { seq: job.seq, applied, duplicates, view };
      };
    });
  }

  /**
   * Retries a failed job from `step` (default: its first failed step). `retry` listeners tell the
   * producer (the hub's `control` messages, the job's webhook, a polled job's upstream).
   * Throws ApiError 409 `nothing_to_retry` when nothing failed.
   */
  async retry(id: string, step?: string): Promise<RetryNotice> {
    this.assertOpen();
    return this.writer.change(id, async () => {
      const base = await this.head(id);
      if (!base) throw notFound(`job ${id} not found`);
      const now = this.now();
      const outcome = applyRetry(base.job, step, now);
      if (!outcome.ok) throw outcome.error;
      const { job, step: from } = outcome.value;
      this.withEstimate(job, now);
      const durable = this.writer.write(base, job, []);
      return async () => {
        const view = await durable;
        this.observe(base.job, job, now);
        const notice: RetryNotice = { jobId: id, step: from, seq: job.seq, view };
        this.emit('retry', notice, this.cache.peek(id)?.record ?? { ...base, job });
        return notice;
      };
    });
  }

  /**
   * Asks a queued or running job to cancel (`cancelRequested`, seq + 1) and tells its producer
   * through `cancel` listeners. Idempotent: a repeated cancel changes nothing and answers the
   * current state. Throws ApiError 409 `already_finished` when the job has ended.
   */
  async cancel(id: string, request: { by?: string; reason?: string } = {}): Promise<CancelNotice> {
    this.assertOpen();
    return this.writer.change(id, async () => {
      const base = await this.head(id);
      if (!base) throw notFound(`job ${id} not found`);
      const now = this.now();
      const outcome = applyCancel(base.job, request, now);
      if (!outcome.ok) throw outcome.error;
      const { job, changed } = outcome.value;
      const reason = job.cancelRequested?.reason;
      if (!changed) {
        const pending = this.writer.lastSave(id);
        return async () => {
          await pending;
          const view = this.cache.peek(id)?.view ?? viewOf(job);
          return { jobId: id, seq: view.job.seq, view, ...(reason !== undefined && { reason }) };
        };
      }
      this.withEstimate(job, now);
      const durable = this.writer.write(base, job, []);
      return async () => {
        const view = await durable;
        const notice: CancelNotice = { jobId: id, seq: job.seq, view, ...(reason !== undefined && { reason }) };
        this.emit('cancel', notice, this.cache.peek(id)?.record ?? { ...base, job });
        return notice;
      };
    });
  }

  /**
   * A change the server decides from the job's silence (stall-watch.ts): `decide` gets the latest
   * state and returns the next one, or `undefined` to change nothing. Goes the usual way (ordered,
   * durable, `update`). Resolves whether something changed.
   */
  async silence(id: string, decide: (job: Job, now: number) => Job | undefined): Promise<boolean> {
    if (this.closed) return false;
    return this.writer.change(id, async () => {
      const base = await this.head(id);
      const now = this.now();
      const job = base ? decide(base.job, now) : undefined;
      if (!base || !job) return async () => false;
      this.withEstimate(job, now);
      const durable = this.writer.write(base, job, []);
      return async () => {
        await durable;
        this.observe(base.job, job, now);
        return true;
      };
    });
  }

  /** Re-estimates running jobs that were silent for a tick; publishes those whose ETA changed meaningfully (seq + 1). A stalled job is left alone (its ETA is unknown until its producer speaks). */
  async tick(): Promise<void> {
    if (this.closed) return;
    await this.estimates.tick(this.now(), this.cache, this.writer, this.fresh, this.options.tickMs ?? 1000);
  }

  /** Deletes finished jobs older than the retention period. */
  async prune(): Promise<string[]> {
    if (this.closed) return [];
    const before = this.now() - (this.options.retentionMs ?? 86_400_000);
    try {
      const ids = await this.store.pruneFinished(before);
      if (ids.length === 0) return ids;
      for (const id of ids) this.state.forget(id);
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

  /** The state the next change applies to: the latest applied (maybe not yet committed) one. */
  private async head(id: string): Promise<JobRecord | undefined> {
    return this.writer.head(id) ?? (await this.state.entry(id))?.record;
  }

  private withEstimate(job: Job, now: number): void {
    this.estimates.stamp(job, now);
  }

  private observe(prev: Job | undefined, next: Job, now: number): void {
    this.estimates.observe(prev, next, now);
  }
}
