/**
 * The jobs a node keeps in memory: every queued and running job (the ETA tick and polling walk
 * them), plus the most recently used finished ones up to a bound, so polls and snapshots of a
 * job that just ended never touch the store. Only committed states enter it.
 *
 * Two maps: active jobs (no order, never evicted) and finished ones in least-recently-used order.
 * A change of a running job (thousands a second) is one Map.set in place; with one map in LRU
 * order, every change deleted and re-inserted its entry, and once more jobs than the bound were
 * cached, every change scanned all of them to count the finished ones.
 */
import type { JobStatus } from '../../protocol/index.js';
import type { JobRecord } from '../store/store.js';
import type { JobView } from './job-view.js';

export interface CacheEntry {
  record: JobRecord;
  view: JobView;
}

export const isActive = (status: JobStatus): boolean => status === 'queued' || status === 'running';

export class JobCache {
  private readonly active = new Map<string, CacheEntry>();
  /** Oldest (least recently used) first. */
  private readonly finished = new Map<string, CacheEntry>();

  /** @param finishedLimit finished jobs kept (least recently used go first); active ones always stay. */
  constructor(private readonly finishedLimit = 10_000) {}

  /** The entry without touching its LRU position. */
  peek(id: string): CacheEntry | undefined {
    return this.active.get(id) ?? this.finished.get(id);
  }

  /** The entry, moved to the most recently used end when finished. */
  get(id: string): CacheEntry | undefined {
    const entry = this.active.get(id);
    if (entry) return entry;
    const done = this.finished.get(id);
    if (done) {
      this.finished.delete(id);
      this.finished.set(id, done);
    }
    return done;
  }

  set(record: JobRecord, view: JobView): CacheEntry {
    const id = record.job.id;
    const entry = { record, view };
    if (isActive(record.job.status)) {
      this.finished.delete(id); // a retried job is active again
      this.active.set(id, entry);
      return entry;
    }
    this.active.delete(id);
    this.finished.delete(id);
    this.finished.set(id, entry);
    if (this.finished.size > this.finishedLimit) this.finished.delete(this.finished.keys().next().value!);
    return entry;
  }

  delete(id: string): void {
    this.active.delete(id);
    this.finished.delete(id);
  }

  /** Queued and running jobs' entries. */
  activeEntries(): IterableIterator<CacheEntry> {
    return this.active.values();
  }

  /** Queued and running jobs. */
  activeRecords(): JobRecord[] {
    return [...this.active.values()].map((e) => e.record);
  }
}
