/**
 * The job state machine, pure: no I/O, no clock, no randomness. Every function takes the current
 * job and returns a new one (inputs are never mutated) or an ApiError saying precisely why the
 * change is refused. Every accepted change adds exactly 1 to `seq`.
 *
 * Rules (docs/protocol.md, `POST /v1/jobs/{id}/events`):
 * - `queued` (before the first step starts: the job is `queued`) records `job.queue` — where the
 *   job waits, `position` jobs ahead when told — and is refused with 409 `invalid_transition` once
 *   a step has started; the first `step_start` makes a queued job `running` and removes `queue`;
 * - `progress` needs a running step and a value in 0..1;
 * - `step_end` completes a running (or still pending) step;
 * - `step_failed` fails the step and the job; the step's error becomes the job's error;
 * - `job_end` sets the final status; after it only a retry (of a failed job) changes anything;
 * - a retry resets the failed step and the later unfinished steps to pending and queues the job;
 * - a cancel marks a queued or running job `cancelRequested` (once); the producer ends it as
 *   `canceled` (or the server does, after the grace period: `cancelTimeout`);
 * - every accepted event (and a retry) moves `lastEventAt` and clears `stalled`; a queued or
 *   running job silent for its stall period is marked `stalled` (`applyStall`) and, later, ended
 *   as failed with `producer_lost` (`producerLostEvent`) — stall-watch.ts keeps the time.
 */
import {
  ApiError,
  isTerminal,
  type CreateJobRequest,
  type Job,
  type JobError,
  type JobEvent,
  type JobStatus,
  type Step,
} from '../../protocol/index.js';

export type Outcome<T> = { ok: true; value: T } | { ok: false; error: ApiError };

const ok = <T>(value: T): Outcome<T> => ({ ok: true, value });
const fail = <T>(status: number, code: ApiError['code'], message: string): Outcome<T> => ({
  ok: false,
  error: new ApiError(status, code, message),
});

/** A new queued job. `req.id` must be set by the caller (the service generates missing ids). */
export function createJob(req: CreateJobRequest & { id: string }, now: number): Job {
  const steps: Step[] = req.steps.map((s) => ({
    id: s.id,
    label: s.label ?? s.id,
    status: 'pending',
    progress: 0,
    ...(s.complexity !== undefined && { complexity: s.complexity }),
  }));
  const job: Job = {
    id: req.id,
    kind: req.kind,
    status: 'queued',
    progress: 0,
    seq: 1,
    steps,
    eta: null,
    ...(req.complexity !== undefined && { complexity: req.complexity }),
    ...(req.meta !== undefined && { meta: req.meta }),
    ...(req.tags !== undefined && req.tags.length > 0 && { tags: req.tags }),
    ...(req.stallAfterMs !== undefined && { stallAfterMs: req.stallAfterMs }),
    lastEventAt: now,
    createdAt: now,
    updatedAt: now,
  };
  return job;
}

/** Overall progress with steps weighed by complexity (default 1). Used until an ETA engine knows better. */
export function weightedProgress(job: Job): number {
  if (job.status === 'completed') return 1;
  let total = 0;
  let done = 0;
  for (const step of job.steps) {
    const weight = step.complexity ?? 1;
    total += weight;
    done += weight * (step.status === 'completed' ? 1 : step.status === 'pending' ? 0 : step.progress);
  }
  return total > 0 ? Math.min(1, Math.max(0, done / total)) : 0;
}

function findStep(job: Job, event: JobEvent): Outcome<number> {
  if (event.step === undefined) {
    // Convenience for producers with one step at a time: `progress` without `step` targets the running one.
    const running = job.steps.flatMap((s, i) => (s.status === 'running' ? [i] : []));
    if (event.type === 'progress' && running.length === 1) return ok(running[0]!);
    return fail(400, 'bad_request', `${event.type} needs "step"`);
  }
  const index = job.steps.findIndex((s) => s.id === event.step);
  if (index < 0) return fail(400, 'unknown_step', `job ${job.id} has no step "${event.step}"`);
  return ok(index);
}

/** The next job after `event`, or why the event is refused. `now` is epoch ms. */
export function applyEvent(job: Job, event: JobEvent, now: number): Outcome<Job> {
  if (job.status === 'completed' || job.status === 'canceled') {
    return fail(409, 'job_finished', `job ${job.id} is ${job.status}; it accepts no more events`);
  }
  if (job.status === 'failed') {
    // A failed job waits for a retry; the producer may still close it for good.
    const closing = event.type === 'job_end' && (event.status === 'failed' || event.status === 'canceled');
    if (!closing) {
      return fail(409, 'job_finished', `job ${job.id} has failed; retry it before sending ${event.type}`);
    }
  }

  const steps = job.steps.slice();
  let status: JobStatus = job.status;
  let error: JobError | undefined = job.error;
  let result = job.result;

  const setStep = (i: number, patch: Partial<Step>) => {
    const next: Step = { ...steps[i]!, ...patch };
    for (const key in patch) if (patch[key as keyof Step] === undefined) delete next[key as keyof Step];
    steps[i] = next;
  };
  const withMessage = (patch: Partial<Step>): Partial<Step> =>
    event.message !== undefined ? { ...patch, message: event.message } : patch;

  let queue = job.queue;
  switch (event.type) {
    case 'queued': {
      // Waiting is a state before the work: once a step has run, the job is no longer in a queue.
      if (status !== 'queued') {
        return fail(409, 'invalid_transition', `job ${job.id} is ${status}; "queued" is only accepted before its first step starts`);
      }
      queue = { since: queue?.since ?? now, updatedAt: now, ...(event.position !== undefined && { position: event.position }) };
      break;
    }
    case 'step_start': {
      const found = findStep(job, event);
      if (!found.ok) return found;
      const step = steps[found.value]!;
      if (step.status === 'running') return fail(409, 'invalid_transition', `step "${step.id}" is already running`);
      if (step.status !== 'pending') return fail(409, 'step_already_finished', `step "${step.id}" is ${step.status}`);
      setStep(found.value, withMessage({ status: 'running', progress: event.progress ?? 0, startedAt: now, endedAt: undefined, error: undefined }));
      if (status === 'queued') status = 'running';
      break;
    }
    case 'progress': {
      if (event.progress === undefined) {
        return fail(400, 'progress_out_of_range', 'progress event needs "progress" in 0..1');
      }
      const found = findStep(job, event);
      if (!found.ok) return found;
      const step = steps[found.value]!;
      if (step.status !== 'running') {
        return fail(409, 'step_not_running', `step "${step.id}" is ${step.status}; send step_start first`);
      }
      setStep(found.value, withMessage({ progress: event.progress }));
      break;
    }
    case 'step_end': {
      const found = findStep(job, event);
      if (!found.ok) return found;
      const step = steps[found.value]!;
      if (step.status === 'completed' || step.status === 'failed') {
        return fail(409, 'step_already_finished', `step "${step.id}" is already ${step.status}`);
      }
      setStep(found.value, withMessage({ status: 'completed', progress: 1, startedAt: step.startedAt ?? now, endedAt: now }));
      if (status === 'queued') status = 'running';
      break;
    }
    case 'step_failed': {
      const found = findStep(job, event);
      if (!found.ok) return found;
      const step = steps[found.value]!;
      if (step.status === 'completed' || step.status === 'failed') {
        return fail(409, 'step_already_finished', `step "${step.id}" is already ${step.status}`);
      }
      const stepError: JobError = {
        code: event.error?.code ?? 'step_failed',
        message: event.error?.message ?? event.message ?? `step "${step.id}" failed`,
        retryable: event.error?.retryable ?? true,
      };
      setStep(found.value, withMessage({ status: 'failed', startedAt: step.startedAt ?? now, endedAt: now, error: stepError }));
      status = 'failed';
      error = { ...stepError, step: step.id };
      break;
    }
    case 'job_end': {
      const final = event.status ?? 'completed';
      status = final;
      if (final === 'completed') {
        for (const [i, s] of steps.entries()) {
          if (s.status !== 'completed') setStep(i, { status: 'completed', progress: 1, startedAt: s.startedAt ?? now, endedAt: now, error: undefined });
        }
        error = undefined;
        if (event.result !== undefined) result = event.result;
      } else if (final === 'failed') {
        error = event.error
          ? { code: event.error.code, message: event.error.message, retryable: event.error.retryable ?? true }
          : (error ?? { code: 'job_failed', message: event.message ?? 'the job failed', retryable: true });
        for (const [i, s] of steps.entries()) {
          if (s.status === 'running') setStep(i, { status: 'failed', endedAt: now, error: { code: error.code, message: error.message } });
        }
      } else {
        // canceled: running steps stop where they are.
        for (const [i, s] of steps.entries()) if (s.status === 'running') setStep(i, { endedAt: now });
        if (event.error) error = { code: event.error.code, message: event.error.message, retryable: false };
      }
      break;
    }
  }

  const next: Job = { ...job, steps, status, seq: job.seq + 1, updatedAt: now, lastEventAt: now };
  delete next.stalled; // the producer spoke
  if (queue && status === 'queued') next.queue = queue;
  else delete next.queue;
  if (error) next.error = error;
  else delete next.error;
  if (result !== undefined) next.result = result;
  next.progress = weightedProgress(next);
  if (isTerminal(status)) next.eta = null;
  return ok(next);
}

/**
 * How many events from `from` form a run of `progress` reports for one named step without
 * eventIds (1 when the event there starts none). A producer that reports faster than it sends, or
 * posts a log of reports, sends such runs; nothing else happens to the job between them.
 */
export function progressRunLength(events: readonly JobEvent[], from: number): number {
  const first = events[from]!;
  if (first.type !== 'progress' || first.step === undefined || first.progress === undefined || first.eventId !== undefined) return 1;
  let to = from + 1;
  for (; to < events.length; to++) {
    const e = events[to]!;
    if (e.type !== 'progress' || e.step !== first.step || e.progress === undefined || e.eventId !== undefined) break;
  }
  return to - from;
}

/**
 * The run of `count` progress reports at `from` (see progressRunLength) applied in one step: the
 * job the reports applied one by one would leave — the last one's progress, the last message
 * given, seq + 1 per report — at one copy of the job instead of one per report. Refused exactly
 * when the first report would be (the step is not running), with its error.
 */
export function applyProgressRun(job: Job, events: readonly JobEvent[], from: number, count: number, now: number): Outcome<Job> {
  let message: string | undefined;
  for (let i = from; i < from + count; i++) if (events[i]!.message !== undefined) message = events[i]!.message;
  const last = events[from + count - 1]!;
  const outcome = applyEvent(job, { type: 'progress', step: last.step!, progress: last.progress!, ...(message !== undefined && { message }) }, now);
  if (outcome.ok) outcome.value.seq = job.seq + count;
  return outcome;
}

/**
 * Retry a failed job from `stepId` (default: its first failed step). The step and the later
 * unfinished steps go back to pending; completed steps stay; the job is queued again.
 */
export function applyRetry(job: Job, stepId: string | undefined, now: number): Outcome<{ job: Job; step: string }> {
  let from: number;
  if (stepId !== undefined) {
    from = job.steps.findIndex((s) => s.id === stepId);
    if (from < 0) return fail(400, 'unknown_step', `job ${job.id} has no step "${stepId}"`);
  } else {
    from = job.steps.findIndex((s) => s.status === 'failed');
    if (from < 0 && job.status === 'failed') from = job.steps.findIndex((s) => s.status !== 'completed');
  }
  const target = job.steps[from];
  if (job.status !== 'failed' || !target || target.status === 'completed') {
    return fail(409, 'nothing_to_retry', `job ${job.id} is ${job.status}${target ? ` and step "${target.id}" is ${target.status}` : ''}; only a failed job can be retried`);
  }
  if (stepId !== undefined && target.status !== 'failed' && job.steps.some((s, i) => i < from && s.status === 'failed')) {
    return fail(409, 'nothing_to_retry', `an earlier step than "${stepId}" failed; retry that one`);
  }
  const steps = job.steps.map((s, i): Step => {
    if (i < from || s.status === 'completed') return s;
    const reset: Step = { id: s.id, label: s.label, status: 'pending', progress: 0 };
    if (s.complexity !== undefined) reset.complexity = s.complexity;
    return reset;
  });
  const next: Job = {
    ...job,
    steps,
    status: 'queued',
    seq: job.seq + 1,
    eta: null,
    attempts: (job.attempts ?? 0) + 1,
    updatedAt: now,
    lastEventAt: now, // the silence of a retried job counts from the retry
  };
  delete next.error;
  delete next.stalled;
  delete next.queue; // a new wait begins with the next `queued` event
  delete next.cancelRequested; // a retried job runs again: an earlier cancel is history
  next.progress = weightedProgress(next);
  return ok({ job: next, step: target.id });
}

/**
 * A user's cancel: marks the job `cancelRequested` so its producer stops. Refused with 409
 * `already_finished` once the job has ended. Idempotent: a job already asked to cancel is
 * returned unchanged (`changed: false`, same seq).
 */
export function applyCancel(job: Job, request: { by?: string; reason?: string }, now: number): Outcome<{ job: Job; changed: boolean }> {
  if (isTerminal(job.status)) return fail(409, 'already_finished', `job ${job.id} is ${job.status}; there is nothing to cancel`);
  if (job.cancelRequested) return ok({ job, changed: false });
  const cancelRequested = { at: now, ...(request.by !== undefined && { by: request.by }), ...(request.reason !== undefined && { reason: request.reason }) };
  return ok({ job: { ...job, cancelRequested, seq: job.seq + 1, updatedAt: now }, changed: true });
}

/** The event that ends a canceled job whose producer did not within the grace period. */
export const cancelTimeoutEvent = (graceMs: number): JobEvent => ({
  type: 'job_end',
  status: 'canceled',
  error: { code: 'cancel_timeout', message: `the job's producer did not stop within ${Math.round(graceMs / 1000)} s of the cancel; the server ended it` },
});

/** When a job's producer was last heard of (older jobs without `lastEventAt`: their last change). */
export const lastActivity = (job: Job): number => job.lastEventAt ?? job.updatedAt;

/** The job marked `stalled` since its last producer activity (seq + 1, its ETA unknown); `undefined` when ended or already stalled. */
export function applyStall(job: Job, now: number): Job | undefined {
  if (isTerminal(job.status) || job.stalled) return undefined;
  return { ...job, stalled: { since: lastActivity(job) }, eta: null, seq: job.seq + 1, updatedAt: now };
}

/** The job ended as failed with `producer_lost` (`lastEventAt` stays: the server is not its producer). */
export function applyProducerLost(job: Job, silentMs: number, now: number): Job | undefined {
  if (isTerminal(job.status)) return undefined;
  const outcome = applyEvent(job, producerLostEvent(silentMs), now);
  if (!outcome.ok) return undefined;
  const next = outcome.value;
  if (job.lastEventAt !== undefined) next.lastEventAt = job.lastEventAt;
  else delete next.lastEventAt;
  return next;
}

/** The event that ends a job whose producer was silent for `silentMs` (retryable: a retry runs it again). */
export const producerLostEvent = (silentMs: number): JobEvent => ({
  type: 'job_end',
  status: 'failed',
  error: {
    code: 'producer_lost',
    message: `no update from the job's producer for ${formatSilence(silentMs)}; the server ended it (retry to run it again)`,
    retryable: true,
  },
});

const formatSilence = (ms: number): string =>
  ms >= 3_600_000 && ms % 3_600_000 === 0 ? `${ms / 3_600_000} h` : ms >= 60_000 && ms % 60_000 === 0 ? `${ms / 60_000} min` : `${Math.round(ms / 1000)} s`;
