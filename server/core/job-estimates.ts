/**
 * The ETA path of the job service (job-service.ts): every new state is stamped with its progress
 * and ETA before it is written (a completed job is 1 and no ETA; a finished or stalled one has no
 * ETA), the estimator learns from each committed change, and running jobs are re-estimated on a
 * tick, publishing only an ETA that changed meaningfully (seq + 1). An estimator that throws is
 * logged and falls back to complexity-weighted progress: estimation never fails a change.
 *
 * Separate from the service's commands because it is the one seam to the ETA engine (eta/,
 * estimator.ts): the commands decide what a job becomes; this decides what its progress and ETA
 * read.
 */
import { clamp01, isTerminal, type Eta, type Job } from '../../protocol/index.js';
import type { Logger } from '../app/log.js';
import { SeqConflictError } from '../store/store.js';
import type { Estimate, Estimator } from './estimator.js';
import { changedMeaningfully } from './eta-update-policy.js';
import type { Freshness } from './freshness.js';
import type { JobCache } from './job-cache.js';
import { weightedProgress } from './job-machine.js';
import type { JobWriter } from './job-writer.js';

/** The estimator used without the ETA engine: complexity-weighted progress, no ETA. */
export const complexityEstimator: Estimator = {
  estimate: (job: Job): Estimate => ({ progress: weightedProgress(job), eta: null }),
  observe: () => undefined,
  changedMeaningfully: (shown: Eta | null, next: Eta | null) => changedMeaningfully(shown, next),
};

export class JobEstimates {
  constructor(
    readonly estimator: Estimator,
    private readonly log: Logger,
  ) {}

  /** Sets `job.progress` and `job.eta` for a state about to be written. */
  stamp(job: Job, now: number): void {
    if (job.status === 'completed') {
      job.progress = 1;
      job.eta = null;
      return;
    }
    try {
      const estimate = this.estimator.estimate(job, now);
      job.progress = clamp01(estimate.progress);
      job.eta = isTerminal(job.status) || job.stalled ? null : estimate.eta;
    } catch (err) {
      this.log.error({ err, jobId: job.id }, 'estimator failed; using complexity-weighted progress');
      job.progress = weightedProgress(job);
      job.eta = null;
    }
  }

  /** The estimator learns from a committed change (`prev` undefined: a new job). */
  observe(prev: Job | undefined, next: Job, now: number): void {
    try {
      this.estimator.observe(prev, next, now);
    } catch (err) {
      this.log.error({ err, jobId: next.id }, 'estimator.observe failed');
    }
  }

  /**
   * Re-estimates running jobs; writes those whose ETA changed meaningfully (seq + 1). A stalled job
   * is left alone (its ETA is unknown until its producer speaks), and so is a job whose producer
   * spoke within the last `activeWithinMs`: that event was estimated when it was applied, and
   * clients count down from its stamp. The tick is for silent jobs; without this check a server
   * with 5,000 jobs reporting twice a second estimated each of them once more every second.
   */
  async tick(now: number, cache: JobCache, writer: JobWriter, fresh: Freshness, activeWithinMs = 0): Promise<void> {
    const work: Promise<unknown>[] = [];
    for (const { record } of cache.activeEntries()) {
      const id = record.job.id;
      if (record.job.status !== 'running' || record.job.stalled || !fresh.ticksHere(id)) continue;
      if (now - (record.job.lastEventAt ?? 0) < activeWithinMs) continue;
      let estimate: Estimate;
      try {
        estimate = this.estimator.estimate(record.job, now);
      } catch (err) {
        this.log.error({ err, jobId: id }, 'estimator failed');
        continue;
      }
      if (!this.estimator.changedMeaningfully(record.job.eta, estimate.eta)) continue;
      const reestimate = async () => {
        const current = writer.head(id) ?? cache.peek(id)?.record;
        // A change since (events, another node) was estimated when applied; the next tick looks again.
        if (!current || current.job.seq !== record.job.seq) return async () => undefined;
        const prev = current.job;
        const job: Job = { ...prev, seq: prev.seq + 1, updatedAt: now, progress: clamp01(estimate.progress), eta: estimate.eta };
        const durable = writer.write(current, job, []);
        return async () => void (await durable);
      };
      work.push(
        writer.change(id, reestimate, false).catch((err) => {
          // A lost race in a cluster: the other node's newer state wins, the next tick re-estimates.
          if (err instanceof SeqConflictError) cache.delete(id);
          else this.log.error({ err, jobId: id }, 'ETA update failed');
        }),
      );
    }
    await Promise.all(work);
  }
}
