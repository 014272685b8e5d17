/**
 * The jobs a node keeps in memory: every queued and running job (the ETA tick and polling walk
 * them), plus the most recently used finished ones up to a bound, so polls and snapshots of a
 * job that just ended never touch the store. Only committed states enter it.
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
  private readonly entries = new Map<string, CacheEntry>();

  /** @param finishedLimit finished jobs kept (least recently used go first); active ones always stay. */
  constructor(private readonly finishedLimit = 10_000) {}

  /** The entry without touching its LRU position. */
  peek(id: string): CacheEntry | undefined {
    return this.entries.get(id);
  }

  /** The entry, moved to the most recently used end when finished. */
  get(id: string): CacheEntry | undefined {
    const entry = this.entries.get(id);
    if (entry && !isActive(entry.record.job.status)) {
      this.entries.delete(id);
      this.entries.set(id, entry);
    }
    return entry;
  }

  set(record: JobRecord, view: JobView): CacheEntry {
    const entry = { record, view };
    this.entries.delete(record.job.id);
    this.entries.set(record.job.id, entry);
    if (this.entries.size > this.finishedLimit) this.evictFinished();
    return entry;
  }

  delete(id: string): void {
    this.entries.delete(id);
  }

  /** Every cached entry, oldest first. */
  values(): IterableIterator<CacheEntry> {
    return this.entries.values();
  }

  /** Queued and running jobs. */
  activeRecords(): JobRecord[] {
    return [...this.entries.values()].filter((e) => isActive(e.record.job.status)).map((e) => e.record);
  }

  private evictFinished(): void {
    let finished = 0;
    for (const e of this.entries.values()) if (!isActive(e.record.job.status)) finished++;
    for (const [id, e] of this.entries) {
      if (finished <= this.finishedLimit) break;
      if (!isActive(e.record.job.status)) {
        this.entries.delete(id);
        finished--;
      }
    }
  }
}
