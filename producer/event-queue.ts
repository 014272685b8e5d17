import type { EventsAccepted, JobEvent, JobEventType } from '../protocol/index.js';
import { ProducerError } from './errors.js';

/** Events that change a job's structure: never dropped, never coalesced, always sent in call order. */
export const STRUCTURAL_EVENTS: ReadonlySet<JobEventType> = new Set(['step_start', 'step_end', 'step_failed', 'job_end']);

/** A refusal of the events themselves (400 bad event, 409 wrong state, 413 too big), not of the job or token. */
function isEventRefusal(err: unknown): boolean {
  return err instanceof ProducerError && (err.status === 400 || err.status === 409 || err.status === 413);
}

/** A transient failure that outlived the retry budget (requestJson retries those until it ends). */
function isTransient(err: unknown): err is ProducerError {
  return err instanceof ProducerError && err.retryable;
}

interface Settler {
  resolve: (r: EventsAccepted) => void;
  reject: (e: unknown) => void;
}

function settle(batch: Pending[], accepted: EventsAccepted | undefined, err?: unknown): void {
  for (const p of batch) for (const s of p.settle) accepted ? s.resolve(accepted) : s.reject(err);
}

interface Pending {
  event: JobEvent;
  settle: Settler[];
}

export interface EventQueueOptions {
  /** Sends events in one request (retrying transient failures within the retry budget). */
  send: (events: JobEvent[]) => Promise<EventsAccepted>;
  /** Most events per request. */
  maxBatch: number;
  /** Most queued `progress` entries before the oldest is dropped (structural events are never dropped). */
  maxQueued: number;
  jobId: string;
  /**
   * The retry budget ran out on a request: every queued call has been rejected with `err`
   * (`producer_gave_up`). Returns the event to send next, the `job_end` that marks the job failed,
   * and is told how that went.
   */
  onGiveUp: (err: ProducerError) => { event: JobEvent; settle: Settler } | undefined;
}

/**
 * Sends one job's events strictly in order, one request at a time. Events queued within one turn
 * of the event loop, or while a request is in flight, go out together in the next request (an
 * array body, applied by the server as one atomic batch and one commit).
 *
 * The queue is bounded where it can be without losing meaning: a `progress` event replaces a
 * still-unsent `progress` for the same step queued after the last structural event (so a hot loop
 * of progress calls holds one entry per step, however long the server is away), and beyond
 * `maxQueued` progress entries the oldest is dropped (its callers settle with the newest one).
 * Structural events (`step_start`, `step_end`, `step_failed`, `job_end`) are never dropped or
 * reordered. A request that fails transiently is retried (same eventIds, so the server applies
 * it once) while later events wait behind it; a batch the server refuses is re-sent event by
 * event, so one bad call fails alone. If the retry budget runs out, the job's queued calls
 * reject with `producer_gave_up`, later ones too, and the queue then sends only the job's end.
 */
export class EventQueue {
  private readonly queue: Pending[] = [];
  private flushing: Promise<void> | undefined;
  /** Set once the retry budget ran out: every later call rejects with it. */
  private gaveUp: ProducerError | undefined;

  constructor(private readonly options: EventQueueOptions) {}

  /** How many events wait to be sent (not counting a request in flight). */
  get size(): number {
    return this.queue.length;
  }

  push(event: JobEvent): Promise<EventsAccepted> {
    if (this.gaveUp) return Promise.reject(this.gaveUp);
    return new Promise((resolve, reject) => {
      const settler: Settler = { resolve, reject };
      const entry: Pending = { event, settle: [settler] };
      if (event.type === 'progress') {
        // The latest per step: replace an unsent progress for the step since the last structural event.
        for (let i = this.queue.length - 1; i >= 0; i--) {
          const queued = this.queue[i]!;
          if (queued.event.type !== 'progress') break;
          if (queued.event.step === event.step) {
            queued.event = event; // never sent, so replacing it (and its eventId) is safe
            queued.settle.push(settler);
            this.schedule();
            return;
          }
        }
        let progressCount = 0;
        for (const queued of this.queue) if (queued.event.type === 'progress') progressCount++;
        if (progressCount >= this.options.maxQueued) {
          const i = this.queue.findIndex((q) => q.event.type === 'progress');
          const [dropped] = this.queue.splice(i, 1);
          entry.settle.unshift(...dropped!.settle);
        }
      }
      this.queue.push(entry);
      this.schedule();
    });
  }

  /** Resolves once everything queued so far has been answered (accepted or rejected). */
  async drain(): Promise<void> {
    while (this.flushing) await this.flushing;
  }

  private schedule(): void {
    // The first event of a turn waits for the turn's end, so the rest of the turn joins it.
    this.flushing ??= new Promise<void>((turnEnd) => setImmediate(turnEnd)).then(() => this.flush());
  }

  private async flush(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, this.options.maxBatch);
        try {
          settle(batch, await this.options.send(batch.map((p) => p.event)));
        } catch (err) {
          if (batch.length > 1 && isEventRefusal(err)) {
            // The server applies a batch atomically, so nothing of it was applied: send the events
            // one by one, and only the bad call fails instead of every call in its batch.
            for (const [i, p] of batch.entries()) {
              try {
                settle([p], await this.options.send([p.event]));
              } catch (e) {
                if (isTransient(e)) {
                  this.giveUp(batch.slice(i), e);
                  break;
                }
                settle([p], undefined, e);
              }
            }
          } else if (isTransient(err)) {
            this.giveUp(batch, err);
          } else {
            settle(batch, undefined, err);
          }
        }
      }
    } finally {
      this.flushing = undefined;
    }
  }

  /** The retry budget ran out: nothing queued can be delivered in order any more. */
  private giveUp(batch: Pending[], cause: ProducerError): void {
    const rest = this.queue.splice(0);
    if (this.gaveUp) {
      // The job's end itself could not be delivered either.
      settle([...batch, ...rest], undefined, cause);
      return;
    }
    const { jobId } = this.options;
    const err = new ProducerError(
      'producer_gave_up',
      `Job ${jobId}: events could not be delivered within the retry budget (${cause.message})`,
      { cause, jobId, status: cause.status },
    );
    this.gaveUp = err;
    settle([...batch, ...rest], undefined, err);
    const end = this.options.onGiveUp(err);
    if (end) this.queue.push({ event: end.event, settle: [end.settle] });
  }
}
