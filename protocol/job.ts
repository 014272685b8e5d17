/**
 * The job model every party shares: what a job and its steps look like on the wire, in the
 * snapshot and update messages and in `GET /v1/jobs/{id}`, and its summary in listings and tag
 * feeds. A public contract (docs/protocol.md): extend it, never rename it. Browser-safe.
 */

export const JOB_STATUSES = ['queued', 'running', 'completed', 'failed', 'canceled'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

export const STEP_STATUSES = ['pending', 'running', 'completed', 'failed'] as const;
export type StepStatus = (typeof STEP_STATUSES)[number];

/** Terminal job states: nothing changes a job after these, except a retry of a failed one. */
export const isTerminal = (status: JobStatus): boolean =>
  status === 'completed' || status === 'failed' || status === 'canceled';

export interface JobError {
  code: string;
  message: string;
  /** Whether retrying can help (default true for step failures). */
  retryable?: boolean;
  /** The step that failed, when the error belongs to a step. */
  step?: string;
}

/** Remaining time estimate. `low`/`high` bound an 80% interval when known. Milliseconds. */
export interface Eta {
  remainingMs: number;
  low?: number;
  high?: number;
  /**
   * For a job that waits in a queue (`job.queue` set): the part of `remainingMs` expected before its
   * first step starts (0 ≤ waitMs ≤ remainingMs). Counts down like `remainingMs`. Absent otherwise.
   */
  waitMs?: number;
}

/** A queued job's place in its producer's queue (`queued` event); removed when its first step starts. */
export interface QueueState {
  /** Jobs ahead of this one (0 = next), as last reported; absent when the producer cannot tell. */
  position?: number;
  /** Epoch ms of the first `queued` event since the job was created or retried: the wait began here. */
  since: number;
  /** Epoch ms of the latest `queued` event (when `position` was reported). */
  updatedAt: number;
}

export interface Step {
  id: string;
  label: string;
  status: StepStatus;
  /** 0..1 within the step. */
  progress: number;
  /** Relative size of the step (default 1): weighs overall progress and feeds the ETA engine. */
  complexity?: number;
  /** Epoch ms of the latest start (a retry restarts the clock). */
  startedAt?: number;
  endedAt?: number;
  /** Last human-readable message the producer reported for this step. */
  message?: string;
  error?: JobError;
}

/** A user's cancel of a running or queued job (`POST /v1/jobs/{id}/cancel`). */
export interface CancelRequest {
  /** Epoch ms. */
  at: number;
  /** The canceling token's `sub`, when it has one. */
  by?: string;
  reason?: string;
}

export interface Job {
  id: string;
  kind: string;
  status: JobStatus;
  /** 0..1 overall. */
  progress: number;
  /** Adds exactly 1 on every accepted change; clients never show a lower seq than one already shown. */
  seq: number;
  steps: Step[];
  eta: Eta | null;
  error?: JobError;
  complexity?: number;
  meta?: Record<string, unknown>;
  /** Result payload given with a completed job_end or by a polling adapter. */
  result?: unknown;
  /** Number of retries so far. */
  attempts?: number;
  /** Labels given at creation (`user:alice`, `org:acme`): token grants `tag:<tag>` and feeds select by them. */
  tags?: string[];
  /** Someone asked to cancel; the producer should stop and end the job as `canceled`. */
  cancelRequested?: CancelRequest;
  /**
   * Epoch ms of the last accepted producer event (or of the creation or latest retry): what the
   * stall rule measures silence from. ETA re-estimates do not move it.
   */
  lastEventAt?: number;
  /** Silence before the job counts as stalled (ms), when given at creation; else the server's `PT_STALL_AFTER`. */
  stallAfterMs?: number;
  /** No producer event for the stall period: set by the server (seq + 1), cleared by the next event. */
  stalled?: Stalled;
  /** Set by a `queued` event while the job is queued; removed when a step starts or the job ends or is retried. */
  queue?: QueueState;
  createdAt: number;
  updatedAt: number;
}

/** A running or queued job its producer has been silent about. */
export interface Stalled {
  /** Epoch ms of the last producer event (creation or retry when none since): the silence began here. */
  since: number;
}

/**
 * A job in a list (`GET /v1/jobs`) or a tag feed (`feed`, `feed_update`): what a list row shows,
 * without steps, result or meta (only `meta.title`, when it is a string). `tags` is always an
 * array. Compare `seq` like a full job's: a summary never replaces one with a higher `seq`.
 */
export interface JobSummary {
  id: string;
  kind: string;
  status: JobStatus;
  progress: number;
  eta: Eta | null;
  tags: string[];
  seq: number;
  createdAt: number;
  updatedAt: number;
  error?: JobError;
  cancelRequested?: CancelRequest;
  stalled?: Stalled;
  /** A queued job's place in line, as on the full job. */
  queue?: QueueState;
  /** Only `title`, and only when the job's `meta.title` is a string. */
  meta?: { title: string };
}

/** The summary of a job (the same fields, in the same order, whoever builds it). */
export function summaryOf(job: Job): JobSummary {
  const summary: JobSummary = {
    id: job.id,
    kind: job.kind,
    status: job.status,
    progress: job.progress,
    eta: job.eta,
    tags: job.tags ?? [],
    seq: job.seq,
    createdAt: job.createdAt,
    updatedAt: job.updatedAt,
  };
  if (job.error !== undefined) summary.error = job.error;
  if (job.cancelRequested !== undefined) summary.cancelRequested = job.cancelRequested;
  if (job.stalled !== undefined) summary.stalled = job.stalled;
  if (job.queue !== undefined) summary.queue = job.queue;
  const title = job.meta?.title;
  if (typeof title === 'string') summary.meta = { title };
  return summary;
}
