/**
 * One job as its producer sees it: typed methods for the protocol's events, sent in call order
 * through an EventQueue, and the job's retries and cancel (`onCancel`, `signal`). A handle does
 * not know the Producer: it needs only what JobTransport declares, which the Producer implements,
 * so the dependency points one way (client.ts imports this file, never the reverse).
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
import type {
  CancelControl,
  CancelHandler,
  ControlListener,
  RetryControl,
  RetryHandler,
  Unsubscribe,
} from './control.js';
import { ProducerError } from './errors.js';
import { EventQueue } from './event-queue.js';

/** What a {@link JobHandle} needs from its producer (implemented by `Producer`). */
export interface JobTransport {
  /** Sends a job's events in one request (`POST /v1/jobs/{id}/events`). */
  post(jobId: string, events: JobEvent[]): Promise<EventsAccepted>;
  /** Calls `handler` on every retry of the job (or the listener's hooks) until unsubscribed. */
  watch(jobId: string, handler: RetryHandler | ControlListener): Unsubscribe;
  /** The handle reported a status (failed, or a final one) that the sockets may not have seen. */
  noteStatus(jobId: string, status: JobStatus): void;
  /**
   * The producer's `onError`: failures no call can reject with (a handler that threw), and every
   * failed call of a handle (also rejected to whoever awaits it).
   */
  reportError(err: ProducerError): void;
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
  /** Aborted on cancel; replaced by a fresh one when a retry starts a new run. */
  private controller = new AbortController();
  private cancelHeard: CancelControl | undefined;
  private readonly cancelHandlers = new Set<CancelHandler>();
  /** The control subscription behind `signal`, `cancelRequested` and `onCancel`, once one of them is used. */
  private cancelWatch: Unsubscribe | undefined;
  /** The job completed or was canceled: nothing more to listen for. */
  private listenDone = false;

  /** @internal Use `producer.createJob()` or `producer.job(id)`. */
  constructor(
    readonly id: string,
    private readonly transport: JobTransport,
    maxBatch: number,
    maxQueued = 1000,
  ) {
    this.queue = new EventQueue({
      send: (events) => transport.post(id, events),
      maxBatch,
      maxQueued,
      jobId: id,
      onGiveUp: (err) => {
        this.report(err);
        // Mark the job failed once the server answers again, so it does not stay `running`.
        const event: JobEvent = {
          type: 'job_end',
          status: 'failed',
          eventId: randomUUID(),
          error: { code: 'producer_gave_up', message: 'The producer could not reach the server within its retry budget', retryable: false },
        };
        return {
          event,
          settle: {
            resolve: (accepted) => {
              this.lastSeq = Math.max(this.lastSeq, accepted.seq);
              this.setStatus('failed');
            },
            reject: (e) => this.report(e),
          },
        };
      },
    });
  }

  /**
   * The job waits in a queue before its first step: `position` is how many jobs are ahead of it
   * (0 = next; omit when unknown). Call again as it moves up; the server's ETA then includes the
   * expected wait (`eta.waitMs`). Refused (409 invalid_transition) once a step has started.
   */
  queued(position?: number): Promise<EventsAccepted> {
    return this.guard(() => {
      const event: JobEvent = position === undefined ? { type: 'queued' } : { type: 'queued', position };
      try {
        parseJobEvent(event);
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
        throw new ProducerError(err.code, err.message.replace(/^event\./, ''), { jobId: this.id });
      }
      return this.send(event);
    });
  }

  /** Starts (or, after a retry, restarts) a step; the first start makes the job `running`. */
  startStep(step: string, options: { message?: string; progress?: number } = {}): Promise<EventsAccepted> {
    return this.guard(() => {
      this.currentStep = step;
      this.status = 'running';
      return this.send({ type: 'step_start', step, ...options });
    });
  }

  /**
   * Reports progress within a step, 0..1. Cheap to call often: unsent progress for the same
   * step is replaced by the newest value.
   */
  progress(progress: number, options: { step?: string; message?: string } = {}): Promise<EventsAccepted> {
    return this.guard(() => {
      checkProgress(progress, this.id);
      return this.send({ type: 'progress', step: this.stepOf(options.step), progress, message: options.message });
    });
  }

  /** Completes a step. */
  endStep(step?: string, options: { message?: string } = {}): Promise<EventsAccepted> {
    return this.guard(() => this.send({ type: 'step_end', step: this.stepOf(step), message: options.message }));
  }

  /**
   * Fails a step: the step and the job become `failed`, showing `error.message` to users, until
   * someone retries (see {@link JobHandle.onRetry}). An `Error` is reported with code `step_failed`.
   */
  failStep(error: Failure | Error, options: { step?: string } = {}): Promise<EventsAccepted> {
    return this.guard(() => this.sendFailStep(error, options));
  }

  private async sendFailStep(error: Failure | Error, options: { step?: string }): Promise<EventsAccepted> {
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
  complete(options: { result?: unknown; message?: string } = {}): Promise<EventsAccepted> {
    return this.finish('completed', options);
  }

  /** Ends the job as `failed` for good (a failed *step* is {@link JobHandle.failStep}). */
  fail(error: Failure, options: { message?: string } = {}): Promise<EventsAccepted> {
    return this.finish('failed', { ...options, error });
  }

  /**
   * Ends the job as `canceled` (`job_end`): what the producer does once it stopped after a cancel
   * (see {@link JobHandle.signal}), or to abandon a job itself. Asking *another* producer's job
   * to cancel is `producer.cancelJob(id)`.
   */
  cancel(options: { message?: string } = {}): Promise<EventsAccepted> {
    return this.finish('canceled', options);
  }

  /** Sends `job_end` with a final status. */
  finish(
    status: 'completed' | 'failed' | 'canceled',
    options: { result?: unknown; message?: string; error?: Failure } = {},
  ): Promise<EventsAccepted> {
    return this.guard(async () => {
      const accepted = await this.send({ type: 'job_end', status, ...options });
      this.setStatus(status);
      return accepted;
    });
  }

  /**
   * Sends raw protocol events through this job's ordered queue (an `eventId` is added to each).
   * Like every method here, it may be called without awaiting: a failure then reaches the
   * producer's `onError` instead of becoming an unhandled rejection.
   */
  send(event: JobEvent): Promise<EventsAccepted> {
    return this.guard(() => {
      const withId: JobEvent = { ...event, eventId: event.eventId ?? randomUUID() };
      // Drop undefined fields so the JSON stays minimal.
      for (const key of Object.keys(withId) as Array<keyof JobEvent>) if (withId[key] === undefined) delete withId[key];
      return this.queue.push(withId).then((accepted) => {
        this.lastSeq = Math.max(this.lastSeq, accepted.seq);
        return accepted;
      });
    });
  }

  /**
   * Runs a call and returns its promise with a handler already attached, so a call nobody awaits
   * never rejects unhandled: its failure goes to the producer's `onError` (once per failure, however
   * many calls share it), and an awaiting caller still sees the rejection.
   */
  private guard<T>(call: () => Promise<T>): Promise<T> {
    let promise: Promise<T>;
    try {
      promise = call();
    } catch (err) {
      promise = Promise.reject(err);
    }
    promise.catch((err: unknown) => this.report(err));
    return promise;
  }

  private report(err: unknown): void {
    if (typeof err === 'object' && err !== null) {
      if (REPORTED.has(err)) return;
      REPORTED.add(err);
    }
    const error =
      err instanceof ProducerError
        ? err
        : new ProducerError('internal', `Job ${this.id}: ${String(err)}`, { cause: err, jobId: this.id });
    try {
      this.transport.reportError(error);
    } catch {
      // an onError that throws must not turn into an unhandled rejection either
    }
  }

  /** Calls `handler` whenever someone retries this job. See `Producer.onRetry`. */
  onRetry(handler: RetryHandler): Unsubscribe {
    return this.transport.watch(this.id, (control) => {
      this.status = 'queued';
      this.currentStep = undefined;
      this.noteRetry();
      return handler(control);
    });
  }

  /**
   * Aborted when someone cancels the job (`POST /v1/jobs/{id}/cancel`, a user's Cancel button).
   * Its `reason` is a {@link ProducerError} with code `canceled` and this job's `jobId` (the user's
   * reason, if any, is in its message and in {@link JobHandle.cancelRequested}). Pass it to
   * whatever does the work (`fetch(url, { signal: job.signal })`, your own sleep) or check it
   * in loops (`job.signal.throwIfAborted()`), then end the job with {@link JobHandle.cancel}.
   *
   * Reading it starts listening for the cancel (on the producer's control WebSocket, opened if
   * needed): a cancel made before that, or while the socket was down, is read from the job's
   * state when the socket subscribes, so it still aborts the signal, once. A retry of the job
   * starts a new run with a new signal: read `job.signal` when you start (or resume) the work.
   * Nothing is blocked after a cancel: the server still accepts progress until the job ends.
   */
  get signal(): AbortSignal {
    this.listenForCancel(false);
    return this.controller.signal;
  }

  /**
   * The cancel heard for this job's current run, or undefined while nobody canceled it. Reading
   * it starts listening, like {@link JobHandle.signal}.
   */
  get cancelRequested(): CancelControl | undefined {
    this.listenForCancel(false);
    return this.cancelHeard;
  }

  /**
   * Calls `handler` once when someone cancels the job — at once (on the next microtask) when the
   * SDK has already heard the cancel — with `{jobId, reason?, recovered, job?}`. Stop the work,
   * then call {@link JobHandle.cancel}. Returns an unsubscribe function. What the handler throws
   * is reported through the producer's `onError` (`handler_error`). See also `job.signal`.
   */
  onCancel(handler: CancelHandler): Unsubscribe {
    this.listenForCancel(true);
    this.cancelHandlers.add(handler);
    const heard = this.cancelHeard;
    if (heard) {
      queueMicrotask(() => {
        if (this.cancelHandlers.has(handler) && this.cancelHeard === heard) this.callCancelHandler(handler, heard);
      });
    }
    return () => {
      this.cancelHandlers.delete(handler);
    };
  }

  /** @internal A retry of this job was heard: a new run starts, with a new `signal`. */
  noteRetry(): void {
    if (!this.cancelHeard) return;
    this.cancelHeard = undefined;
    this.controller = new AbortController();
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
    if (id === undefined) {
      throw new ProducerError('step_not_running', `Job ${this.id}: no step given and none started`, { jobId: this.id });
    }
    return id;
  }

  private setStatus(status: JobStatus): void {
    this.status = status;
    this.transport.noteStatus(this.id, status);
    if (status === 'completed' || status === 'canceled') this.stopListening();
  }

  /**
   * Subscribes (once) to the job's controls for `signal`, `cancelRequested` and `onCancel`, until
   * the job completes or is canceled. A closed producer cannot listen: `onCancel` (`strict`)
   * then throws `aborted` like `onRetry`; the getters just answer what is known.
   */
  private listenForCancel(strict: boolean): void {
    if (this.cancelWatch || this.listenDone || this.status === 'completed' || this.status === 'canceled') return;
    try {
      this.cancelWatch = this.transport.watch(this.id, {
        cancel: (control) => this.heardCancel(control),
        retry: () => this.noteRetry(),
        state: (job) => {
          // Ended elsewhere (the server's cancel_timeout, another process): nothing more to hear.
          if (job.status === 'completed' || job.status === 'canceled') queueMicrotask(() => this.stopListening());
        },
      });
    } catch (err) {
      if (strict) throw err;
    }
  }

  private stopListening(): void {
    this.listenDone = true;
    const stop = this.cancelWatch;
    this.cancelWatch = undefined;
    stop?.();
  }

  private heardCancel(control: CancelControl): void {
    if (this.cancelHeard) return; // once per run, whatever the socket hears
    this.cancelHeard = control;
    const reason = control.reason === undefined ? '' : `: ${control.reason}`;
    this.controller.abort(new ProducerError('canceled', `Job ${this.id} was canceled${reason}`, { jobId: this.id }));
    for (const handler of [...this.cancelHandlers]) this.callCancelHandler(handler, control);
  }

  private callCancelHandler(handler: CancelHandler, control: CancelControl): void {
    const report = (err: unknown) =>
      this.transport.reportError(
        new ProducerError('handler_error', `onCancel handler for job ${this.id} threw: ${String(err)}`, {
          cause: err,
          jobId: this.id,
        }),
      );
    try {
      Promise.resolve(handler(control)).catch(report);
    } catch (err) {
      report(err);
    }
  }
}

/** Failures already passed to `onError` (a batch's failure is shared by all of its calls). */
const REPORTED = new WeakSet<object>();

/**
 * Refuses a progress value outside 0..1 at the call, before it is queued, with the protocol's own
 * rule (validate.ts, the server's check) so the SDK and the server cannot disagree. Status 0: no
 * request was made.
 */
function checkProgress(progress: number, jobId: string): void {
  try {
    parseJobEvent({ type: 'progress', progress });
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    throw new ProducerError(err.code, `progress must be within 0..1, got ${progress}`, { jobId });
  }
}
