/**
 * Stalled jobs: a queued or running job whose producer has sent no accepted event for its stall
 * period (`stallAfterMs` given at creation, else PT_STALL_AFTER) is marked `stalled: {since}`
 * (seq + 1, ETA unknown; the next event clears it). After PT_STALL_FAIL_AFTER of silence (never
 * sooner than the stall; 0 = never) the server ends it as failed with `producer_lost`
 * (retryable: a retry queues it again and its silence counts from the retry).
 *
 * Silence is measured from the job's `lastEventAt` (accepted producer events, creation, retry;
 * ETA re-estimates do not move it). Polled jobs are the same: the events derived from a poll are
 * their producer events, and a poll that brings no change is silence.
 *
 * Like cancel-deadlines.ts, deadlines come from the jobs' state, not from memory alone: at start,
 * every active job loaded gets its deadline again. A job loaded at start counts its silence from
 * no earlier than the start, so a server that was down (when producers could not reach it) does
 * not stall or fail every job at once when it comes back. In a cluster several nodes may hold the
 * same deadline; the decision is taken again on the latest state, so that is harmless.
 */
import { isTerminal, type Job } from '../../protocol/index.js';
import type { Logger } from '../app/log.js';
import { applyProducerLost, applyStall, lastActivity } from './job-machine.js';
import type { JobService } from './job-service.js';

export interface StallRule {
  /** Default silence before a job is stalled (ms). */
  stallAfterMs: number;
  /** Silence before a job is ended as failed `producer_lost` (ms); 0 = never. */
  failAfterMs: number;
}

export class StallWatch {
  private readonly timers = new Map<string, { due: number; timer: NodeJS.Timeout }>();
  private readonly unbind: (() => void)[];
  private readonly startedAt: number;

  constructor(
    private readonly service: JobService,
    private readonly rule: StallRule,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.startedAt = now();
    this.unbind = [service.on('update', (view) => this.track(view.job)), service.on('created', (view) => this.track(view.job))];
    for (const record of service.activeRecords()) this.track(record.job);
  }

  close(): void {
    for (const unbind of this.unbind) unbind();
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }

  /** The job's stall and fail times (epoch ms); `undefined`: it never fails. */
  private deadlines(job: Job): { stall: number; fail: number | undefined } {
    const from = Math.max(lastActivity(job), this.startedAt);
    const stallAfter = job.stallAfterMs ?? this.rule.stallAfterMs;
    const stall = from + stallAfter;
    const fail = this.rule.failAfterMs > 0 ? from + Math.max(this.rule.failAfterMs, stallAfter) : undefined;
    return { stall, fail };
  }

  private nextDue(job: Job): number | undefined {
    if (isTerminal(job.status)) return undefined;
    const { stall, fail } = this.deadlines(job);
    return job.stalled ? fail : stall;
  }

  private track(job: Job): void {
    const due = this.nextDue(job);
    const pending = this.timers.get(job.id);
    if (pending && pending.due === due) return;
    if (pending) {
      clearTimeout(pending.timer);
      this.timers.delete(job.id);
    }
    if (due === undefined) return;
    const timer = setTimeout(() => void this.expire(job.id), Math.max(0, due - this.now()));
    timer.unref();
    this.timers.set(job.id, { due, timer });
  }

  /** Decided again on the latest state: an event may have come since the timer was set. */
  private decide = (job: Job, now: number): Job | undefined => {
    if (isTerminal(job.status)) return undefined;
    const { stall, fail } = this.deadlines(job);
    if (fail !== undefined && now >= fail) return applyProducerLost(job, now - lastActivity(job), now);
    if (!job.stalled && now >= stall) return applyStall(job, now);
    return undefined;
  };

  private async expire(id: string): Promise<void> {
    this.timers.delete(id);
    try {
      const changed = await this.service.silence(id, this.decide);
      const job = (await this.service.get(id))?.job;
      if (!job) return;
      if (changed) {
        if (job.stalled) this.log.info({ jobId: id, since: job.stalled.since }, 'job stalled: no producer event');
        else if (job.error?.code === 'producer_lost') this.log.warn({ jobId: id }, 'job ended by the server: its producer went silent');
      }
      // Not due after all (an event came meanwhile), or its `update` was missed: look again.
      if (!this.timers.has(id)) this.track(job);
    } catch (err) {
      this.log.debug({ jobId: id, err: (err as Error).message }, 'stall watch: job changed meanwhile');
    }
  }
}
