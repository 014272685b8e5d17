/**
 * One job as its producer sees it: typed methods for the protocol's events, sent in call order
 * through an EventQueue, and the job's retries. A handle does not know the Producer: it needs
 * only the three things JobTransport declares, which the Producer implements, so the dependency
 * points one way (client.ts imports this file, never the reverse).
 */
import { randomUUID } from 'node:crypto';
import {
  ApiError,
  parseJobEvent,
  type EventsAccepted,
  type Job,
  type JobEvent,
  type JobStatus,
} from '../protocol/index.js';
import type { RetryControl, RetryHandler, Unsubscribe } from './control-socket.js';
import { ProducerError } from './errors.js';
import { EventQueue } from './event-queue.js';

/** What a {@link JobHandle} needs from its producer (implemented by `Producer`). */
export interface JobTransport {
  /** Sends a job's events in one request (`POST /v1/jobs/{id}/events`). */
  post(jobId: string, events: JobEvent[]): Promise<EventsAccepted>;
  /** Calls `handler` on every retry of the job until unsubscribed. */
  watch(jobId: string, handler: RetryHandler): Unsubscribe;
  /** The handle reported a status (failed, or a final one) that the sockets may not have seen. */
  noteStatus(jobId: string, status: JobStatus): void;
}

/** Why a step or job failed. `retryable` (default true) tells users whether Retry can help. */
export interface Failure {
  code: string;
  message: string;
  retryable?: boolean;
}

/**
 * One job, as its producer sees it. Methods return once the server has accepted the event
 * (durably: a 202), resolving to its `seq`. Calls may be fired without awaiting: they are sent
 * in call order, batched while a request is in flight. Methods that take an optional `step`
 * default to the step most recently started through this handle.
 */
export class JobHandle {
  /** The job as the server returned it at creation (undefined for handles from `producer.job(id)`). */
  snapshot: Job | undefined;
  /** The step most recently started through this handle. */
  currentStep: string | undefined;
  /** What this handle last reported (queued until the first step starts). */
  status: JobStatus = 'queued';
  /** `seq` of the latest accepted event. */
  lastSeq = 0;

  private readonly queue: EventQueue;

  /** @internal Use `producer.createJob()` or `producer.job(id)`. */
  constructor(
    readonly id: string,
    private readonly transport: JobTransport,
    maxBatch: number,
  ) {
    this.queue = new EventQueue((events) => transport.post(id, events), maxBatch);
  }

  /** Starts (or, after a retry, restarts) a step; the first start makes the job `running`. */
  async startStep(step: string, options: { message?: string; progress?: number } = {}): Promise<EventsAccepted> {
    this.currentStep = step;
    this.status = 'running';
    return this.send({ type: 'step_start', step, ...options });
  }

  /**
   * Reports progress within a step, 0..1. Cheap to call often: unsent progress for the same
   * step is replaced by the newest value.
   */
  async progress(progress: number, options: { step?: string; message?: string } = {}): Promise<EventsAccepted> {
    checkProgress(progress);
    return this.send({ type: 'progress', step: this.stepOf(options.step), progress, message: options.message });
  }

  /** Completes a step. */
  async endStep(step?: string, options: { message?: string } = {}): Promise<EventsAccepted> {
    return this.send({ type: 'step_end', step: this.stepOf(step), message: options.message });
  }

  /**
   * Fails a step: the step and the job become `failed`, showing `error.message` to users, until
   * someone retries (see {@link JobHandle.onRetry}). An `Error` is reported with code `step_failed`.
   */
  async failStep(error: Failure | Error, options: { step?: string } = {}): Promise<EventsAccepted> {
    const failure: Failure =
      error instanceof Error
        ? { code: (error as { code?: unknown }).code?.toString() ?? 'step_failed', message: error.message }
        : error;
    const accepted = await this.send({
      type: 'step_failed',
      step: this.stepOf(options.step),
      error: { retryable: true, ...failure },
    });
    this.setStatus('failed');
    return accepted;
  }

  /** Ends the job as `completed`, optionally with a result payload users can read. */
  async complete(options: { result?: unknown; message?: string } = {}): Promise<EventsAccepted> {
    return this.finish('completed', options);
  }

  /** Ends the job as `failed` for good (a failed *step* is {@link JobHandle.failStep}). */
  async fail(error: Failure, options: { message?: string } = {}): Promise<EventsAccepted> {
    return this.finish('failed', { ...options, error });
  }

  /** Ends the job as `canceled`. */
  async cancel(options: { message?: string } = {}): Promise<EventsAccepted> {
    return this.finish('canceled', options);
  }

  /** Sends `job_end` with a final status. */
  async finish(
    status: 'completed' | 'failed' | 'canceled',
    options: { result?: unknown; message?: string; error?: Failure } = {},
  ): Promise<EventsAccepted> {
    const accepted = await this.send({ type: 'job_end', status, ...options });
    this.setStatus(status);
    return accepted;
  }

  /** Sends raw protocol events through this job's ordered queue (an `eventId` is added to each). */
  send(event: JobEvent): Promise<EventsAccepted> {
    const withId: JobEvent = { ...event, eventId: event.eventId ?? randomUUID() };
    // Drop undefined fields so the JSON stays minimal.
    for (const key of Object.keys(withId) as Array<keyof JobEvent>) if (withId[key] === undefined) delete withId[key];
    return this.queue.push(withId).then((accepted) => {
      this.lastSeq = Math.max(this.lastSeq, accepted.seq);
      return accepted;
    });
  }

  /** Calls `handler` whenever someone retries this job. See `Producer.onRetry`. */
  onRetry(handler: RetryHandler): Unsubscribe {
    return this.transport.watch(this.id, (control) => {
      this.status = 'queued';
      this.currentStep = undefined;
      return handler(control);
    });
  }

  /**
   * Resolves with the next retry of this job. Listen *before* failing the step when you can
   * (the SDK also catches a retry that lands between the failure and this call).
   */
  nextRetry(options: { signal?: AbortSignal } = {}): Promise<RetryControl> {
    return new Promise((resolve, reject) => {
      const { signal } = options;
      if (signal?.aborted) return reject(signal.reason);
      const onAbort = () => {
        stop();
        reject(signal!.reason);
      };
      const stop = this.onRetry((control) => {
        stop();
        signal?.removeEventListener('abort', onAbort);
        resolve(control);
      });
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Resolves once every event sent so far has been answered. */
  flush(): Promise<void> {
    return this.queue.drain();
  }

  private stepOf(step: string | undefined): string {
    const id = step ?? this.currentStep;
    if (id === undefined) throw new ProducerError('step_not_running', `Job ${this.id}: no step given and none started`);
    return id;
  }

  private setStatus(status: JobStatus): void {
    this.status = status;
    this.transport.noteStatus(this.id, status);
  }
}

/**
 * Refuses a progress value outside 0..1 at the call, before it is queued, with the protocol's own
 * rule (validate.ts, the server's check) so the SDK and the server cannot disagree. Status 0: no
 * request was made.
 */
function checkProgress(progress: number): void {
  try {
    parseJobEvent({ type: 'progress', progress });
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    throw new ProducerError(err.code, `progress must be within 0..1, got ${progress}`);
  }
}
