/**
 * Cancel is cooperative: the producer hears it and ends the job as `canceled`. A producer that
 * never answers (crashed, old code, not listening) must not leave a page waiting forever, so a
 * job still not ended `graceMs` after its cancel was requested is ended by the server, as
 * `canceled` with `error.code: "cancel_timeout"`.
 *
 * Deadlines come from the jobs' state (`cancelRequested.at`), not from memory alone: after a
 * restart, the active jobs loaded at start get theirs again (at once when already past). In a
 * cluster several nodes may hold the same deadline; the state machine refuses every end but the
 * first, so that is harmless.
 */
import { isTerminal, type Job } from '../../protocol/index.js';
import type { Logger } from '../app/log.js';
import { cancelTimeoutEvent } from './job-machine.js';
import type { JobService } from './job-service.js';

export class CancelDeadlines {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly unbind: () => void;

  constructor(
    private readonly service: JobService,
    private readonly graceMs: number,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.unbind = service.on('update', (view) => this.track(view.job));
    for (const record of service.activeRecords()) this.track(record.job);
  }

  close(): void {
    this.unbind();
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }

  private track(job: Job): void {
    const pending = this.timers.get(job.id);
    if (isTerminal(job.status) || !job.cancelRequested) {
      if (pending) {
        clearTimeout(pending);
        this.timers.delete(job.id);
      }
      return;
    }
    if (pending) return;
    const due = Math.max(0, job.cancelRequested.at + this.graceMs - this.now());
    const timer = setTimeout(() => void this.expire(job.id), due);
    timer.unref();
    this.timers.set(job.id, timer);
  }

  private async expire(id: string): Promise<void> {
    this.timers.delete(id);
    try {
      await this.service.applyEvents(id, [cancelTimeoutEvent(this.graceMs)]);
      this.log.warn({ jobId: id, graceMs: this.graceMs }, 'canceled job ended by the server: its producer did not stop in time');
    } catch (err) {
      // Ended meanwhile (by its producer or another node): nothing to do.
      this.log.debug({ jobId: id, err: (err as Error).message }, 'cancel deadline: job already ended');
    }
  }
}
