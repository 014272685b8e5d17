import type { EventsAccepted, JobEvent } from '../protocol.js';

interface Pending {
  event: JobEvent;
  settle: Array<{ resolve: (r: EventsAccepted) => void; reject: (e: unknown) => void }>;
}

/**
 * Sends one job's events strictly in order, one request at a time. Events queued while a
 * request is in flight go out together in the next one (an array body), and a `progress`
 * event replaces a still-unsent `progress` for the same step: a burst of progress calls costs
 * one request, and the server never sees them out of order.
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
      this.flushing ??= this.flush();
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
          const accepted = await this.send(batch.map((p) => p.event));
          for (const p of batch) for (const s of p.settle) s.resolve(accepted);
        } catch (err) {
          for (const p of batch) for (const s of p.settle) s.reject(err);
        }
      }
    } finally {
      this.flushing = undefined;
    }
  }
}
