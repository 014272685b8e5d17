/**
 * The seam between the job service and the ETA engine (server/eta/). The job service calls
 * `estimate` after every accepted change and on a periodic tick for running jobs, and `observe`
 * with each accepted change so the engine can learn from finished steps. Implementations do no
 * I/O except through the HistoryStore they are given.
 */
import type { Eta, Job } from '../../protocol/index.js';

export interface Estimate {
  /** Overall progress 0..1 (weights steps by expected duration once there is history). */
  progress: number;
  /** null for queued-without-history, failed, canceled and completed jobs. */
  eta: Eta | null;
}

export interface Estimator {
  estimate(job: Job, now: number): Estimate;
  /** Learn from a change: `prev` is undefined for a new job. */
  observe(prev: Job | undefined, next: Job, now: number): void;
  /** Whether a re-estimate differs enough from what clients last saw to be worth an update. */
  changedMeaningfully(shown: Eta | null, next: Eta | null): boolean;
}

/** Persistence for learned history, implemented by every Store (bounded per key, survives restarts). */
export interface HistoryStore {
  appendHistory(key: string, sample: unknown, maxPerKey: number): Promise<void>;
  loadHistory(): Promise<Array<{ key: string; sample: unknown }>>;
}
