/**
 * The per-job ordered writer: every change of a job runs through `change`, which applies it to the
 * job's head (its latest applied state), enqueues the save and resolves once the store committed
 * it. Nothing is visible before the commit: `onCommitted` (which caches and publishes) runs only
 * then, in seq order.
 *
 * - Changes to one job are applied one at a time, in arrival order; different jobs proceed
 *   independently.
 * - Pipelined (a single node, `Freshness.pipelined`): the next change is applied as soon as the
 *   previous save is enqueued, so a busy job gets many changes into one group commit
 *   (server/store/sqlite.ts) instead of one per loop turn. Commits are FIFO, so requests are
 *   answered and published in seq order. When a save fails, the store refuses every later save of
 *   the job (each expects its predecessor's seq), so they fail too, and the head falls back to the
 *   last committed state.
 * - Not pipelined (a cluster): each change waits for the previous commit; a save that lost a race
 *   to another node (SeqConflictError) is re-applied on the fresh state, a bounded number of times.
 */
import { ApiError } from '../../protocol/index.js';
import type { Logger } from '../app/log.js';
import { eventTimings } from '../app/metrics.js';
import { SeqConflictError, type EventIdEntry, type JobRecord, type Store } from '../store/store.js';
import type { Freshness } from './freshness.js';
import { viewOf, type JobView } from './job-view.js';

/** A save that lost a race is re-applied this many times on the fresh state before giving up (503). */
const MAX_CONFLICT_RETRIES = 10;

/** A job's latest applied state while some of its saves still wait for their commit. */
interface Head {
  record: JobRecord;
  inFlight: number;
  /** The latest save's outcome: FIFO commits make it the outcome of all of them. */
  last: Promise<unknown>;
  /** eventIds of uncommitted changes (the store does not know them yet) → their seq. */
  events: Map<string, number>;
}

/** Applies one change: runs serialized per job, enqueues its save, returns `finish` (awaits the commit). */
export type ApplyChange<T> = () => Promise<() => Promise<T>>;

export interface JobWriterOptions {
  store: Store;
  freshness: Freshness;
  log: Logger;
  /** A save of `record` committed (`prev` was its base): cache and publish it. */
  onCommitted(record: JobRecord, view: JobView, prev: JobRecord): void;
  /** After a lost race: bring the cached state of `id` up to the store's. */
  reload(id: string): Promise<void>;
}

export class JobWriter {
  private readonly chains = new Map<string, Promise<unknown>>();
  private readonly heads = new Map<string, Head>();
  /** Saves enqueued and not yet settled, and what settled() waits on while there are some. */
  private writesInFlight = 0;
  private idle: { done: Promise<void>; resolve: () => void } | undefined;

  constructor(private readonly o: JobWriterOptions) {}

  /** The latest applied (maybe not yet committed) state of `id`, when a save is in flight. */
  head(id: string): JobRecord | undefined {
    return this.heads.get(id)?.record;
  }

  /** The seq an uncommitted change's eventId produced. */
  pendingEvent(id: string, eventId: string): number | undefined {
    return this.heads.get(id)?.events.get(eventId);
  }

  /** Settles when every save of `id` enqueued so far has (a change that only repeats eventIds waits on it). */
  lastSave(id: string): Promise<unknown> | undefined {
    return this.heads.get(id)?.last;
  }

  /** Runs one change of job `id` (see the header). */
  change<T>(id: string, apply: ApplyChange<T>, reapplyOnConflict = true): Promise<T> {
    if (this.o.freshness.pipelined) return this.serialize(id, apply).then((finish) => finish());
    const run = async () => (await apply())();
    return this.serialize(id, reapplyOnConflict ? () => this.onFreshState(id, run) : run);
  }

  /** Runs `fn` after every earlier change to the same job has finished. */
  serialize<T>(id: string, fn: () => Promise<T>): Promise<T> {
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
   * Makes `job` the head and enqueues its save now; resolves with its view once committed (and
   * `onCommitted` ran). `acceptedAt` (performance.now()) marks a change made by producer events:
   * its commit latency and its acceptance-to-publish time are recorded (metrics.ts eventTimings).
   */
  write(base: JobRecord, job: JobRecord['job'], eventIds: readonly EventIdEntry[], acceptedAt?: number): Promise<JobView> {
    const id = job.id;
    const next: JobRecord = { ...base, job };
    let head = this.heads.get(id);
    if (!head) this.heads.set(id, (head = { record: next, inFlight: 0, last: Promise.resolve(), events: new Map() }));
    const mine = head;
    mine.record = next;
    mine.inFlight++;
    this.writesInFlight++;
    const settle = () => {
      mine.inFlight--;
      for (const e of eventIds) mine.events.delete(e.eventId);
      if (--this.writesInFlight === 0 && this.idle) {
        this.idle.resolve();
        this.idle = undefined;
      }
    };
    // Serialized once: the store keeps the same JSON that is published.
    const view = viewOf(job);
    const savedAt = performance.now();
    // The store's promise is chained directly (this runs for every event: no extra async layers).
    const durable = this.o.store.save(next, eventIds, base.job.seq, view.json).then(
      () => {
        if (acceptedAt !== undefined) eventTimings.commit.observe((performance.now() - savedAt) / 1000);
        settle();
        if (mine.inFlight === 0 && this.heads.get(id) === mine) this.heads.delete(id);
        this.o.onCommitted(next, view, base); // the hub publishes the update in here
        if (acceptedAt !== undefined) eventTimings.send.observe((performance.now() - acceptedAt) / 1000);
        return view;
      },
      (err: unknown) => {
        settle();
        if (this.heads.get(id) === mine) this.heads.delete(id);
        if (err instanceof SeqConflictError && this.o.freshness.pipelined) {
          throw new ApiError(503, 'internal', 'an earlier change of this job could not be stored; nothing was applied, retry later');
        }
        throw this.storeFailure(err);
      },
    );
    for (const e of eventIds) mine.events.set(e.eventId, e.seq);
    mine.last = durable;
    return durable;
  }

  /** Runs a store write; any failure but a lost race becomes a 503 that says nothing was applied. */
  async persist<T>(write: () => Promise<T>): Promise<T> {
    try {
      return await write();
    } catch (err) {
      throw this.storeFailure(err);
    }
  }

  /** A lost race stays itself (handled by onFreshState); any other failure is logged and becomes a 503. */
  private storeFailure(err: unknown): unknown {
    if (err instanceof SeqConflictError) return err;
    this.o.log.error({ err }, 'store write failed');
    return new ApiError(503, 'internal', 'the change could not be stored; nothing was applied, retry later');
  }

  /** Settles when every change and save started so far has. */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.chains.values()]);
    if (this.writesInFlight === 0) return;
    if (!this.idle) {
      let resolve!: () => void;
      const done = new Promise<void>((r) => (resolve = r));
      this.idle = { done, resolve };
    }
    await this.idle.done;
  }

  /**
   * Runs a change; when its save lost a race to another node, reloads the job and runs it again
   * on the fresh state. Events are re-checked against that state, so a change that no longer
   * applies gets its ordinary 400/409, and a repeated eventId its first seq.
   */
  private async onFreshState<T>(id: string, change: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await change();
      } catch (err) {
        if (!(err instanceof SeqConflictError)) throw err;
        this.o.freshness.conflicted(id);
        await this.o.reload(id);
        if (attempt >= MAX_CONFLICT_RETRIES) {
          this.o.log.error({ jobId: id }, 'job kept changing on other nodes; change not applied');
          throw new ApiError(503, 'internal', 'the job is changing concurrently on other nodes; nothing was applied, retry later');
        }
      }
    }
  }
}
