/**
 * How long to wait before polling a job again. Pure functions of the job and the time.
 *
 * Adaptive interval: poll at a quarter of the time the current step is still expected to take,
 * within [min, max]. Far from the step's expected end the interval is long; as the end nears the
 * interval shrinks to `min`, so a step change (and the job's completion) is seen within about
 * `min` of happening while a long step costs a handful of polls instead of one per second.
 *
 * Expected remaining time of the current step, best source first:
 * 1. the step's own progress rate (progress p observed after running t: about t(1-p)/p left);
 * 2. the job's ETA, shared among the unfinished steps by complexity;
 * 3. nothing known: a step that has run for t is assumed to run about t more (interval t/4).
 * Past the expected end, the interval restarts at `min` and grows with the overdue time.
 */
import { clamp, type Job } from '../../protocol/index.js';

export interface CadenceLimits {
  minIntervalMs: number;
  maxIntervalMs: number;
}

/** Share of the expected remaining time to wait before the next poll. */
export const REMAINING_FRACTION = 0.25;
/** Below this step progress, the rate is too noisy to extrapolate. */
const MIN_PROGRESS_FOR_RATE = 0.03;

/** Expected milliseconds until the running step ends (negative when overdue), or undefined if no step runs. */
export function expectedStepRemainingMs(job: Job, now: number, progressSeenAt?: number): number | undefined {
  const i = job.steps.findIndex((s) => s.status === 'running');
  if (i < 0) return undefined;
  const step = job.steps[i]!;
  const startedAt = step.startedAt ?? job.createdAt;
  // When the latest progress was seen: told by the caller (ETA ticks move updatedAt without new
  // progress), else the job's last change; never before the step started.
  const seenAt = Math.max(startedAt, Math.min(now, progressSeenAt ?? job.updatedAt));
  const p = step.progress;
  if (p >= MIN_PROGRESS_FOR_RATE && p < 1 && seenAt > startedAt) {
    const total = (seenAt - startedAt) / p;
    return startedAt + total - now;
  }
  if (job.eta && job.eta.remainingMs > 0) {
    const weight = (s: Job['steps'][number]): number => (s.complexity && s.complexity > 0 ? s.complexity : 1);
    let unfinished = 0;
    for (const s of job.steps) {
      if (s.status === 'running' || s.status === 'pending') unfinished += weight(s) * (1 - (s.status === 'running' ? s.progress : 0));
    }
    if (unfinished > 0) {
      const share = (weight(step) * (1 - p)) / unfinished;
      return job.eta.remainingMs * share - (now - job.updatedAt);
    }
  }
  return now - startedAt; // nothing known: as long again as it has already run
}

/** Milliseconds until the next poll of a job that answered normally. */
export function nextPollDelay(job: Job, now: number, limits: CadenceLimits, progressSeenAt?: number): number {
  const { minIntervalMs: min, maxIntervalMs: max } = limits;
  const remaining = expectedStepRemainingMs(job, now, progressSeenAt);
  if (remaining === undefined) {
    // Queued (or between steps): the longer it has waited, the longer it will probably wait.
    const waited = now - Math.max(job.createdAt, Math.min(now, job.updatedAt));
    return Math.round(clamp(waited * REMAINING_FRACTION, min, max));
  }
  if (remaining > 0) return Math.round(clamp(remaining * REMAINING_FRACTION, min, max));
  return Math.round(clamp(-remaining * REMAINING_FRACTION, min, max));
}
