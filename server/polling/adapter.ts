/**
 * The small interface every job source implements (HTTP first; a queue or a database later),
 * so adding a source never touches the scheduler or the poll manager.
 *
 * An adapter validates a `source` at job creation and `start`s following one job; the returned
 * handle answers `poll(job)` with the producer events that bring the job up to date (or a
 * failure), `retry`s the job upstream, and `stop`s.
 */
import type { Job, JobEvent, JobSource, JobStatus, StepSpec } from '../../protocol/index.js';

export type PollFailureCode = 'upstream_unreachable' | 'upstream_bad_response';

export interface PollFailure {
  /** `upstream_unreachable`: network error, timeout, 5xx, 429 (transient). `upstream_bad_response`: the answer is unusable. */
  code: PollFailureCode;
  /** Human-readable; never contains header values. */
  message: string;
  /** For bad responses: the path in the upstream document that failed (`""` = the whole document). */
  path?: string;
  /** The upstream asked us to wait this long (429/503 `Retry-After`). */
  retryAfterMs?: number;
}

export type PollOutcome =
  | {
      ok: true;
      /** Events to apply, in order; empty when nothing changed (304, same body, same state). */
      events: JobEvent[];
      /** The upstream's own status, when it says one (lets the manager ignore a stale "failed" right after a retry). */
      upstreamStatus?: JobStatus;
    }
  | { ok: false; failure: PollFailure };

export interface PolledSource {
  /** Polls sharing a key share the per-host concurrency limit (for HTTP: the URL's host). */
  readonly hostKey: string;
  /** Interval bounds this source asked for (the manager clamps them to server limits). */
  readonly minIntervalMs?: number;
  readonly maxIntervalMs?: number;
  poll(job: Job): Promise<PollOutcome>;
  /** Asks the upstream to retry the job (HTTP: POST `retryUrl`). Resolves when it accepted. */
  retry(job: Job, step: string | undefined): Promise<{ ok: true } | { ok: false; failure: PollFailure }>;
  /** Aborts any request in flight; the handle is not used again. */
  stop(): void;
}

/** Where an adapter that is pushed to (rather than polling) applies what it hears: the job service. */
export interface JobSink {
  get(id: string): Promise<Job | undefined>;
  applyEvents(id: string, events: JobEvent[]): Promise<unknown>;
}

export interface SourceAdapter<S extends JobSource = JobSource> {
  readonly type: string;
  /** Pushed adapters (BullMQ's QueueEvents) get the job service here when polling is attached. */
  attach?(sink: JobSink): void;
  /** Releases connections (the poll manager closes its adapters). */
  close?(): Promise<void>;
  /** Checks a source at job creation. Returns a message for a 400, or null when valid. */
  validate(source: unknown, steps: readonly StepSpec[]): string | null;
  start(jobId: string, source: S): PolledSource;
}
