/**
 * The smallest in-memory job model that produces the same JSON as our server (same fields, same
 * order), used by the comparison servers (raw uWebSockets.js, Socket.IO) so that every target
 * sends messages of the same size. No validation, no store, no ETA engine: that is the point of
 * a ceiling. `docs/benchmarks.md` lists what is and is not equal.
 */
import type { CreateJobRequest, Job, JobEvent } from '../../protocol/index.js';

export function createJob(request: CreateJobRequest, id: string): Job {
  const now = Date.now();
  return {
    id,
    kind: request.kind,
    status: 'queued',
    progress: 0,
    seq: 1,
    steps: request.steps.map((step) => ({
      id: step.id,
      label: step.label ?? step.id,
      status: 'pending',
      progress: 0,
      ...(step.complexity !== undefined && { complexity: step.complexity }),
    })),
    eta: null,
    createdAt: now,
    updatedAt: now,
  };
}

/** Applies one producer event; returns false when the step is unknown (the caller answers 400). */
export function applyEvent(job: Job, event: JobEvent): boolean {
  const step = job.steps.find((candidate) => candidate.id === event.step);
  if (event.type !== 'job_end' && !step) return false;
  const now = Date.now();
  switch (event.type) {
    case 'step_start':
      step!.status = 'running';
      step!.startedAt = now;
      if (job.status === 'queued') job.status = 'running';
      break;
    case 'progress':
      step!.progress = event.progress ?? step!.progress;
      break;
    case 'step_end':
      step!.status = 'completed';
      step!.progress = 1;
      step!.endedAt = now;
      break;
    case 'step_failed':
      step!.status = 'failed';
      job.status = 'failed';
      break;
    case 'job_end':
      job.status = event.status ?? 'completed';
      break;
  }
  if (step && event.message !== undefined) step.message = event.message;
  let weighted = 0;
  let weights = 0;
  for (const s of job.steps) {
    weighted += s.progress * (s.complexity ?? 1);
    weights += s.complexity ?? 1;
  }
  // Rounded like our server does, so the JSON has the same length.
  job.progress = weights > 0 ? Math.round((weighted / weights) * 1e6) / 1e6 : 0;
  // Our server sends an ETA with every running job: the same fields, numbers of the same length.
  const remainingMs = Math.round((1 - job.progress) * 2000);
  job.eta = job.status === 'running' ? { remainingMs, low: Math.round(remainingMs * 0.18), high: Math.round(remainingMs * 3.3) } : null;
  job.seq += 1;
  job.updatedAt = now;
  return true;
}
