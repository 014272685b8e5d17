/**
 * The job model every party shares: what a job and its steps look like on the wire, in the
 * snapshot and update messages and in `GET /v1/jobs/{id}`. A public contract (docs/protocol.md):
 * extend it, never rename it. Types only, browser-safe.
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
  createdAt: number;
  updatedAt: number;
}
