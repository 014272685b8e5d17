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
 *
 * One timer for all jobs: the deadlines sit in a heap (polling's TimerHeap) with one armed timer
 * for the earliest. A deadline only moves later while a job is active (each accepted event
 * pushes it), so an event only records the new deadline; the heap entry is moved when it comes up
 * (lazily). A timer per job, cleared and set again on every event, cost a Timeout object and two
 * timer-list operations per event (10,000 a second with 5,000 jobs reporting twice a second).
 */
import { isTerminal, type Job } from '../../protocol/index.js';
import type { Logger } from '../app/log.js';
import { applyProducerLost, applyStall, lastActivity } from './job-machine.js';
import type { JobService } from './job-service.js';
import { TimerHeap } from '../polling/timer-heap.js';

export interface StallRule {
  /** Default silence before a job is stalled (ms). */
  stallAfterMs: number;
  /** Silence before a job is ended as failed `producer_lost` (ms); 0 = never. */
  failAfterMs: number;
}

export class StallWatch {
  /** Each watched job's deadline (epoch ms): the truth; the heap may hold an earlier, stale one. */
  private readonly dues = new Map<string, number>();
  private readonly heap = new TimerHeap();
  private timer: NodeJS.Timeout | undefined;
  private armedFor = Infinity;
  private closed = false;
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
    this.closed = true;
    for (const unbind of this.unbind) unbind();
    clearTimeout(this.timer);
    this.timer = undefined;
    this.dues.clear();
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
    if (due === undefined) {
      this.dues.delete(job.id); // its heap entry is dropped when it comes up
      return;
    }
    this.dues.set(job.id, due);
    const queued = this.heap.dueOf(job.id);
    if (queued === undefined || due < queued) {
      this.heap.set(job.id, due);
      this.arm();
    }
  }

  /** The one timer, for the heap's earliest entry. */
  private arm(): void {
    if (this.closed) return; // an expiry still in flight at close re-tracks its job: no timer for it
    const next = this.heap.peek()?.due ?? Infinity;
    if (next >= this.armedFor) return;
    clearTimeout(this.timer);
    this.armedFor = next;
    this.timer = setTimeout(() => this.fire(), Math.max(0, next - this.now()));
    this.timer.unref();
  }

  private fire(): void {
    this.timer = undefined;
    this.armedFor = Infinity;
    const now = this.now();
    for (let entry = this.heap.popDue(now); entry; entry = this.heap.popDue(now)) {
      const due = this.dues.get(entry.id);
      if (due === undefined) continue; // finished, or no longer watched
      if (due > now) {
        this.heap.set(entry.id, due); // activity moved it later since it was queued
        continue;
      }
      this.dues.delete(entry.id);
      void this.expire(entry.id);
    }
    this.arm();
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
    try {
      const changed = await this.service.silence(id, this.decide);
      const job = (await this.service.get(id))?.job;
      if (!job) return;
      if (changed) {
        if (job.stalled) this.log.info({ jobId: id, since: job.stalled.since }, 'job stalled: no producer event');
        else if (job.error?.code === 'producer_lost') this.log.warn({ jobId: id }, 'job ended by the server: its producer went silent');
      }
      // Not due after all (an event came meanwhile), or its `update` was missed: look again.
      if (!this.dues.has(id)) this.track(job);
    } catch (err) {
      this.log.debug({ jobId: id, err: (err as Error).message }, 'stall watch: job changed meanwhile');
    }
  }
}
