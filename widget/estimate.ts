/**
 * Between server updates the widget keeps moving: the ETA counts down, the bar advances, and
 * when the server cannot be reached the last ETA keeps driving a clearly labelled estimate.
 * Everything here is pure (time comes in as an argument) so it is easy to test with a fake clock.
 */
import type { Eta, Job } from '../protocol/index.js';

/** An estimate never claims the job is done: only the server says so. */
export const MAX_ESTIMATED_PROGRESS = 0.99;

export interface ProgressEstimate {
  /** 0..1 overall progress to show now. */
  progress: number;
  /** Milliseconds left as shown now, or null when unknown. */
  remainingMs: number | null;
}

/**
 * Where the job should be at `now`, given the last state received at `receivedAt` and the
 * finish time we show (`finishAt`, see FinishTimeSmoother). Linear from the last real
 * progress to 100% at the finish time, capped below 100%, never below the real value.
 */
export function estimateProgress(job: Job, receivedAt: number, finishAt: number | null, now: number): ProgressEstimate {
  if (job.status !== 'running' || finishAt === null) {
    return { progress: job.progress, remainingMs: finishAt === null ? null : Math.max(0, finishAt - now) };
  }
  const total = finishAt - receivedAt;
  const elapsed = Math.max(0, now - receivedAt);
  const fraction = total <= 0 ? 1 : Math.min(1, elapsed / total);
  const progress = job.progress + (1 - job.progress) * fraction;
  return {
    progress: Math.max(job.progress, Math.min(MAX_ESTIMATED_PROGRESS, progress)),
    remainingMs: Math.max(0, finishAt - now),
  };
}

/**
 * Keeps the shown finish time steady. Raw server ETAs wobble from update to update; showing
 * them directly makes "3 min left" jump to "4 min" and back. Rules:
 * - the first estimate is taken as is;
 * - while the finish time we show still lies inside the server's low/high range, keep it;
 * - otherwise move towards the new estimate by a fraction (faster when far off), so a trend
 *   is followed within a few updates but single outliers barely move it.
 */
export class FinishTimeSmoother {
  private shown: number | null = null;

  /** Smoothing factor for small corrections (0..1; 1 = no smoothing). */
  constructor(private readonly alpha = 0.35) {}

  get finishAt(): number | null {
    return this.shown;
  }

  reset(): void {
    this.shown = null;
  }

  /** Feed the ETA received at `now`; returns the finish time to show. */
  update(eta: Eta | null, now: number): number | null {
    if (!eta) {
      this.shown = null;
      return null;
    }
    const raw = now + Math.max(0, eta.remainingMs);
    if (this.shown === null) {
      this.shown = raw;
      return raw;
    }
    const shownRemaining = this.shown - now;
    if (eta.low !== undefined && eta.high !== undefined && shownRemaining >= eta.low && shownRemaining <= eta.high) {
      return this.shown;
    }
    const remaining = Math.max(1, eta.remainingMs);
    const relativeError = Math.abs(raw - this.shown) / remaining;
    // Far off (more than half the remaining time): trust the server more.
    const alpha = relativeError > 0.5 ? Math.max(this.alpha, 0.7) : this.alpha;
    this.shown = Math.max(now, this.shown + alpha * (raw - this.shown));
    return this.shown;
  }
}

/** Sum of step complexities done, for "Step 2 of 5". Returns the 1-based current step index. */
export function currentStepIndex(job: Pick<Job, 'steps'>): number {
  const running = job.steps.findIndex((s) => s.status === 'running' || s.status === 'failed');
  if (running >= 0) return running + 1;
  const firstPending = job.steps.findIndex((s) => s.status === 'pending');
  if (firstPending >= 0) return firstPending + 1;
  return job.steps.length;
}

/** Wall time of a finished job: first step start to last step end (or creation to last update). */
export function jobDuration(job: Job): number {
  const starts = job.steps.map((s) => s.startedAt).filter((t): t is number => typeof t === 'number');
  const ends = job.steps.map((s) => s.endedAt).filter((t): t is number => typeof t === 'number');
  if (starts.length && ends.length) return Math.max(...ends) - Math.min(...starts);
  return Math.max(0, job.updatedAt - job.createdAt);
}
