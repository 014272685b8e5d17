/**
 * The publish path of the job service (job-service.ts): what the server holds as each job's
 * latest state, and the `update` that tells listeners of every newer one. A change committed
 * here, a newer state another node committed (its bus message, or found in the store on a read)
 * and a reload after a lost race all end the same way: the cache takes the state unless it already
 * holds a newer one (never go back), the Freshness strategy (freshness.ts) hears of it, and local
 * subscribers get it once. Reads go through here too, so a stale cache entry (a cluster) is
 * checked against the store before it is served.
 *
 * Separate from the service's commands, which decide what a job becomes: this decides which state
 * is the latest and who hears of it. No writes to the store here.
 */
import { JOB_ID_PATTERN, type Job } from '../../protocol/index.js';
import type { JobRecord, Store } from '../store/store.js';
import type { Freshness } from './freshness.js';
import type { CacheEntry, JobCache } from './job-cache.js';
import { viewOf, type JobView } from './job-view.js';

export class PublishedState {
  constructor(
    private readonly store: Store,
    private readonly cache: JobCache,
    private readonly fresh: Freshness,
    /** Emits `update`: the hub, SSE, feeds, webhooks and the cluster bus listen. */
    private readonly publish: (view: JobView, prev: Job) => void,
  ) {}

  /** The latest state from memory, if the job is cached and current (always true for running jobs on one node). */
  peek(id: string): JobView | undefined {
    return this.fresh.isFresh(id) ? this.cache.peek(id)?.view : undefined;
  }

  /** This node committed a change (JobWriter's onCommitted). */
  committed(record: JobRecord, view: JobView, prev: JobRecord): void {
    // A newer state from another node may already be here: never go back.
    const cached = this.cache.peek(record.job.id);
    if (cached && cached.record.job.seq > record.job.seq) return;
    this.fresh.committed(record.job);
    this.cache.set(record, view);
    this.publish(view, prev.job);
  }

  /**
   * A state another node committed (cluster mode): cached and published to local subscribers when
   * newer than what this node has. Returns whether it was newer.
   */
  applyRemote(job: Job, record?: JobRecord): boolean {
    const cached = this.cache.peek(job.id);
    if (cached && cached.record.job.seq >= job.seq) return false;
    if (!cached) {
      // Local sockets following a job got its snapshot through get(), which cached it: an uncached
      // job has no local audience yet. Keep the full record when we have it; the snapshot follows.
      if (record) this.cache.set(record, viewOf(job));
      return true;
    }
    this.caughtUp(cached, { ...cached.record, job });
    return true;
  }

  /** The job's cached entry, checked against the store when the cache may be stale; loaded when not cached. */
  async entry(id: string): Promise<CacheEntry | undefined> {
    const cached = this.cache.get(id);
    if (cached && !this.fresh.isFresh(id)) {
      // Another node may have changed it: the store has the truth.
      const stored = await this.store.get(id);
      if (!stored) {
        this.cache.delete(id);
        return undefined;
      }
      const current = this.cache.peek(id) ?? cached;
      return stored.job.seq > current.record.job.seq ? this.caughtUp(current, stored) : current;
    }
    if (cached) return cached;
    if (!JOB_ID_PATTERN.test(id)) return undefined;
    const record = await this.store.get(id);
    if (!record) return undefined;
    // Another call may have loaded it while we waited.
    return this.cache.peek(id) ?? this.cache.set(record, viewOf(record.job));
  }

  /** After a lost race: the cache catches up with the store (or forgets a deleted job). */
  async reload(id: string): Promise<void> {
    const cached = this.cache.peek(id);
    const stored = await this.store.get(id).catch(() => undefined);
    if (!stored) this.cache.delete(id);
    else if (!cached) this.cache.set(stored, viewOf(stored.job));
    else if (stored.job.seq > cached.record.job.seq) this.caughtUp(cached, stored);
  }

  /** The job was deleted (pruned past retention). */
  forget(id: string): void {
    this.cache.delete(id);
    this.fresh.superseded(id);
  }

  /**
   * A newer state than the cached one, committed elsewhere (another node; its bus message may
   * still be on the way). Local subscribers get it now (the full state covers anything in
   * between); the bus message arriving later is dropped as not newer.
   */
  private caughtUp(cached: CacheEntry, stored: JobRecord): CacheEntry {
    const entry = this.cache.set(stored, viewOf(stored.job));
    this.fresh.superseded(stored.job.id);
    this.publish(entry.view, cached.record.job);
    return entry;
  }
}
