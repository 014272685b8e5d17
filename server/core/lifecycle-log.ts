/**
 * One log line per job lifecycle change, at `info`: created, started, completed, failed, canceled,
 * retry requested, cancel requested, stalled (and resumed after a stall). Each carries the job's id,
 * kind, seq and durations (ms since creation; run time since the first step started, once ended).
 * At `debug`, every other committed change (accepted events, ETA re-estimates) gets one line too.
 *
 * Only ids, kinds, statuses, counts and times are logged: never tokens, event bodies, error
 * messages, metadata or results (they are the producer's data).
 */
import type { Job } from '../../protocol/index.js';
import type { Logger } from '../app/log.js';
import type { JobService } from './job-service.js';

/** `stalled` is set by the stall rule when present in this version's Job. */
type MaybeStalled = Job & { stalled?: { since?: number } | undefined };

export function attachLifecycleLog(jobs: JobService, log: Logger): () => void {
  const base = (job: Job) => ({ jobId: job.id, kind: job.kind, seq: job.seq, status: job.status, ageMs: Math.max(0, job.updatedAt - job.createdAt) });
  const offs = [
    jobs.on('created', (view) => {
      const job = view.job;
      log.info({ ...base(job), event: 'created', steps: job.steps.length }, 'job created');
    }),
    jobs.on('update', (view, prev) => {
      const job = view.job as MaybeStalled;
      let logged = false;
      // Out of `failed` only through a retry, which has its own line.
      if (job.status !== prev.status && prev.status !== 'failed') {
        const runMs = runTime(job);
        const fields = {
          ...base(job),
          event: job.status === 'running' ? 'started' : job.status,
          prevStatus: prev.status,
          ...(runMs !== undefined && { runMs }),
          ...(job.status === 'failed' && job.error?.step !== undefined && { step: job.error.step }),
          ...(job.status === 'failed' && job.error?.code !== undefined && { errorCode: job.error.code }),
        };
        log.info(fields, job.status === 'running' ? 'job started' : `job ${job.status}`);
        logged = true;
      }
      const wasStalled = (prev as MaybeStalled).stalled !== undefined;
      const stalled = job.stalled !== undefined;
      if (stalled && !wasStalled) {
        const since = job.stalled?.since;
        log.info({ ...base(job), event: 'stalled', ...(typeof since === 'number' && { silentMs: Math.max(0, job.updatedAt - since) }) }, 'job stalled');
        logged = true;
      } else if (!stalled && wasStalled && !logged) {
        log.info({ ...base(job), event: 'resumed' }, 'job resumed after a stall');
        logged = true;
      }
      if (!logged && log.isLevelEnabled('debug')) {
        log.debug({ ...base(job), event: 'changed', progress: Math.round(job.progress * 1000) / 1000 }, 'job changed');
      }
    }),
    jobs.on('retry', (notice) => {
      log.info({ ...base(notice.view.job), event: 'retry requested', step: notice.step, attempts: notice.view.job.attempts ?? 0 }, 'job retry requested');
    }),
    jobs.on('cancel', (notice) => {
      log.info({ ...base(notice.view.job), event: 'cancel requested' }, 'job cancel requested');
    }),
  ];
  return () => offs.forEach((off) => off());
}

/** From the first step's start to the end of the job, once it ended. */
function runTime(job: Job): number | undefined {
  if (job.status !== 'completed' && job.status !== 'failed' && job.status !== 'canceled') return undefined;
  let start = Infinity;
  for (const s of job.steps) if (s.startedAt !== undefined && s.startedAt < start) start = s.startedAt;
  return Number.isFinite(start) ? Math.max(0, job.updatedAt - start) : undefined;
}
