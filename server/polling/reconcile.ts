/**
 * Turns what an upstream says (`UpstreamView`) into the producer events that move our job from
 * its current state to that one. The events go through the job service like any producer's, so
 * polled jobs share the state machine, `seq` and ETA with pushed jobs. Pure.
 *
 * Rules (docs/polling.md):
 * - A current `step` completes the steps before it and starts it; `stepProgress` is its progress.
 * - A `steps` list sets each listed step; a step with progress 1 and no status is completed.
 * - With only an overall `progress`, the job is placed on its steps by complexity weights.
 * - `completed` completes every step and ends the job (with `result`); `failed` fails the current
 *   step with the upstream's `error` (or ends the job failed when no step ever ran); `canceled`
 *   ends the job.
 * - Nothing moves backwards: a completed step stays completed, a failed job waits for a retry.
 */
import { isTerminal, type Job, type JobEvent, type StepStatus } from '../../protocol/index.js';
import type { UpstreamView } from './field-map.js';

/** Job error code used when the upstream itself reports a failure. */
export const UPSTREAM_FAILED = 'upstream_failed';

/** Progress changes smaller than this are not worth an update. */
const PROGRESS_EPSILON = 0.001;

interface Target {
  status: StepStatus;
  progress: number;
}

/** Places an overall fraction on the steps, weighted by complexity: index of the running step and its fraction. */
export function placeOverallProgress(job: Pick<Job, 'steps'>, progress: number): { index: number; fraction: number } {
  const weights = job.steps.map((s) => (s.complexity && s.complexity > 0 ? s.complexity : 1));
  const total = weights.reduce((a, b) => a + b, 0);
  let acc = 0;
  for (let i = 0; i < weights.length; i++) {
    const w = weights[i]! / total;
    if (progress < acc + w - 1e-9 || i === weights.length - 1) {
      return { index: i, fraction: Math.min(1, Math.max(0, (progress - acc) / w)) };
    }
    acc += w;
  }
  return { index: weights.length - 1, fraction: 1 };
}

/** The events that bring `job` to what `view` says. Empty when nothing changed. */
export function eventsFor(job: Job, view: UpstreamView): JobEvent[] {
  if (isTerminal(job.status)) return [];
  const steps = job.steps;
  const target: Target[] = steps.map((s) => ({ status: s.status, progress: s.progress }));
  const indexOf = (id: string): number => steps.findIndex((s) => s.id === id);
  const completeBefore = (i: number): void => {
    for (let j = 0; j < i; j++) if (target[j]!.status !== 'failed') target[j] = { status: 'completed', progress: 1 };
  };

  if (view.steps) {
    for (const s of view.steps) {
      const i = indexOf(s.id);
      if (i < 0) continue;
      const t = target[i]!;
      const status = s.status ?? (s.progress === undefined ? undefined : s.progress >= 1 ? 'completed' : s.progress > 0 ? 'running' : undefined);
      if (status) t.status = status;
      if (s.progress !== undefined) t.progress = s.progress;
    }
  }
  if (view.step !== undefined) {
    const i = indexOf(view.step);
    completeBefore(i);
    const t = target[i]!;
    if (t.status === 'pending') t.status = 'running';
    if (view.stepProgress !== undefined) t.progress = view.stepProgress;
  } else if (view.progress !== undefined && !view.steps && steps.length > 0 && view.status !== 'queued') {
    const { index, fraction } = placeOverallProgress(job, view.progress);
    completeBefore(index);
    const t = target[index]!;
    if (t.status === 'pending' && (fraction > 0 || view.status === 'running')) t.status = 'running';
    t.progress = fraction;
  } else if (view.stepProgress !== undefined) {
    // A step progress with no step: it belongs to whichever step is running.
    const i = target.findIndex((t) => t.status === 'running');
    if (i >= 0) target[i]!.progress = view.stepProgress;
  }
  if (view.status === 'running' && steps.length > 0 && !target.some((t) => t.status !== 'pending')) {
    // The upstream started but says nothing about steps: the first step is running.
    target[0]!.status = 'running';
  }

  let jobEnd: JobEvent | undefined;
  if (view.status === 'completed') {
    for (const t of target) if (t.status !== 'failed') Object.assign(t, { status: 'completed', progress: 1 });
    jobEnd = { type: 'job_end', status: 'completed' };
    if (view.result !== undefined) jobEnd.result = view.result;
  } else if (view.status === 'failed') {
    const error = { code: UPSTREAM_FAILED, message: view.error ?? 'the upstream service reports the job failed', retryable: true };
    let i = view.step !== undefined ? indexOf(view.step) : -1;
    if (i < 0) i = target.findIndex((t) => t.status === 'running');
    if (i < 0 && !target.some((t) => t.status === 'failed')) {
      // Nothing was running: fail the first unfinished step if any ran before, else end the job.
      const started = target.some((t) => t.status === 'completed');
      const next = target.findIndex((t) => t.status === 'pending');
      if (started && next >= 0) i = next;
    }
    if (i >= 0) target[i]!.status = 'failed';
    else if (!target.some((t) => t.status === 'failed')) jobEnd = { type: 'job_end', status: 'failed', error };
    return [...stepEvents(job, target, error), ...(jobEnd ? [jobEnd] : [])];
  } else if (view.status === 'canceled') {
    jobEnd = { type: 'job_end', status: 'canceled' };
  }
  return [...stepEvents(job, target), ...(jobEnd ? [jobEnd] : [])];
}

function stepEvents(job: Job, target: Target[], error?: JobEvent['error']): JobEvent[] {
  const events: JobEvent[] = [];
  job.steps.forEach((s, i) => {
    const t = target[i]!;
    const step = s.id;
    const failed = (): JobEvent => ({ type: 'step_failed', step, error: error ?? { code: UPSTREAM_FAILED, message: 'the upstream service reports the step failed', retryable: true } });
    if (s.status === 'completed' || s.status === 'failed') return; // never backwards; a failed step waits for a retry
    if (s.status === 'pending') {
      if (t.status === 'pending') return;
      events.push(t.progress > 0 && t.status === 'running' ? { type: 'step_start', step, progress: t.progress } : { type: 'step_start', step });
      if (t.status === 'completed') events.push({ type: 'step_end', step });
      if (t.status === 'failed') events.push(failed());
      return;
    }
    // running
    if (t.status === 'completed') events.push({ type: 'step_end', step });
    else if (t.status === 'failed') events.push(failed());
    else if (t.status === 'running' && Math.abs(t.progress - s.progress) >= PROGRESS_EPSILON) {
      events.push({ type: 'progress', step, progress: t.progress });
    }
  });
  return events;
}
