import type { EventsAccepted, JobEvent } from '../protocol/index.js';
import { ProducerError } from './errors.js';

/** A refusal of the events themselves (400 bad event, 409 wrong state, 413 too big), not of the job or token. */
function isEventRefusal(err: unknown): boolean {
  return err instanceof ProducerError && (err.status === 400 || err.status === 409 || err.status === 413);
}

function settle(batch: Pending[], accepted: EventsAccepted | undefined, err?: unknown): void {
  for (const p of batch) for (const s of p.settle) accepted ? s.resolve(accepted) : s.reject(err);
}

interface Pending {
  event: JobEvent;
  settle: Array<{ resolve: (r: EventsAccepted) => void; reject: (e: unknown) => void }>;
}

/**
 * Sends one job's events strictly in order, one request at a time. Events queued within one turn
 * of the event loop, or while a request is in flight, go out together in the next request (an
 * array body, applied by the server as one atomic batch and one commit), and a `progress`
 * event replaces a still-unsent `progress` for the same step: a burst of calls costs one
 * request, and the server never sees them out of order. A batch the server refuses is re-sent
 * event by event, so one bad call fails alone.
 */
export class EventQueue {
  private readonly queue: Pending[] = [];
  private flushing: Promise<void> | undefined;

  constructor(
    private readonly send: (events: JobEvent[]) => Promise<EventsAccepted>,
    private readonly maxBatch: number,
  ) {}

  push(event: JobEvent): Promise<EventsAccepted> {
    return new Promise((resolve, reject) => {
      const last = this.queue.at(-1);
      if (event.type === 'progress' && last?.event.type === 'progress' && last.event.step === event.step) {
        last.event = event; // never sent, so replacing it (and its eventId) is safe
        last.settle.push({ resolve, reject });
      } else {
        this.queue.push({ event, settle: [{ resolve, reject }] });
      }
      // The first event of a turn waits for the turn's end, so the rest of the turn joins it.
      this.flushing ??= new Promise<void>((turnEnd) => setImmediate(turnEnd)).then(() => this.flush());
    });
  }

  /** Resolves once everything queued so far has been answered (accepted or rejected). */
  async drain(): Promise<void> {
    while (this.flushing) await this.flushing;
  }

  private async flush(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, this.maxBatch);
        try {
          settle(batch, await this.send(batch.map((p) => p.event)));
        } catch (err) {
          if (batch.length > 1 && isEventRefusal(err)) {
            // The server applies a batch atomically, so nothing of it was applied: send the events
            // one by one, and only the bad call fails instead of every call in its batch.
            for (const p of batch) {
              try {
                settle([p], await this.send([p.event]));
              } catch (e) {
                settle([p], undefined, e);
              }
            }
          } else {
            settle(batch, undefined, err);
          }
        }
      }
    } finally {
      this.flushing = undefined;
    }
  }
}
