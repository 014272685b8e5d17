/**
 * Bodies of the producer HTTP API (`POST /v1/jobs`, `POST /v1/jobs/{id}/events`, retry), of the
 * listing (`GET /v1/jobs`) and of the retry webhook. Validated at runtime by validate.ts; documented in docs/protocol.md.
 */
import type { ErrorCode } from './errors.js';
import type { JobStatus, JobSummary } from './job.js';
import type { JobSource } from './source.js';

export interface StepSpec {
  id: string;
  label?: string;
  complexity?: number;
}

/** Body of `POST /v1/jobs`. */
export interface CreateJobRequest {
  id?: string;
  kind: string;
  steps: StepSpec[];
  complexity?: number;
  meta?: Record<string, unknown>;
  /** URL the server POSTs `{type:"retry"|"cancel",jobId,…}` to when someone retries or cancels the job (signed). */
  webhook?: string;
  /** At most FIELD_LIMITS.maxTags tags of TAG_PATTERN (`user:alice`). */
  tags?: string[];
  /** Follow an external job-status service instead of being pushed to (polling adapters). */
  source?: JobSource;
  /** Producer silence (ms) after which the job counts as stalled; default the server's PT_STALL_AFTER. FIELD_LIMITS.minStallAfterMs..maxStallAfterMs bound it (1 s .. 7 d). */
  stallAfterMs?: number;
}

export const EVENT_TYPES = ['queued', 'step_start', 'progress', 'step_end', 'step_failed', 'job_end'] as const;
export type JobEventType = (typeof EVENT_TYPES)[number];

/** One producer event: body (or array element) of `POST /v1/jobs/{id}/events`. */
export interface JobEvent {
  type: JobEventType;
  step?: string;
  /** 0..1, for `progress` (and optionally `step_start`). */
  progress?: number;
  message?: string;
  error?: { code: string; message: string; retryable?: boolean };
  /** For `job_end`. */
  status?: 'completed' | 'failed' | 'canceled';
  /**
   * For `queued` (only before the job's first step starts): how many jobs are ahead of it in its
   * queue (0 = next), when the producer can tell. An integer 0..FIELD_LIMITS.maxQueuePosition.
   */
  position?: number;
  result?: unknown;
  /** Idempotency key: a repeated eventId changes nothing and answers the seq of its first acceptance. */
  eventId?: string;
}

/** 202 answer to `POST /v1/jobs/{id}/events`. */
export interface EventsAccepted {
  seq: number;
}

/** Body of `POST /v1/jobs/{id}/retry`. */
export interface RetryRequest {
  step?: string;
}

/** Body of `POST /v1/jobs/{id}/cancel` (scope `progress:cancel`). */
export interface CancelJobRequest {
  reason?: string;
}

/** Every HTTP error body. */
export interface ErrorBody {
  error: { code: ErrorCode | string; message: string };
}

/** POSTed to a job's webhook on retry. */
export interface RetryWebhook {
  type: 'retry';
  jobId: string;
  step: string;
  seq: number;
}

/** POSTed to a job's webhook on cancel: stop, then send `job_end` with `status: "canceled"`. */
export interface CancelWebhook {
  type: 'cancel';
  jobId: string;
  seq: number;
  reason?: string;
}

export type JobWebhook = RetryWebhook | CancelWebhook;

/** The query of `GET /v1/jobs` (parsed by `parseListJobsQuery`). */
export interface ListJobsQuery {
  /** Only jobs carrying this tag (TAG_PATTERN). */
  tag?: string;
  /** Only jobs in one of these states (`status=running,queued`). */
  status?: JobStatus[];
  /** Only jobs of exactly this kind. */
  kind?: string;
  /** 1..LISTING.maxLimit, default LISTING.defaultLimit. */
  limit: number;
  /** `nextCursor` of the previous page: continue after it (opaque). */
  cursor?: string;
}

/** 200 answer to `GET /v1/jobs`: newest first; `nextCursor` is null on the last page. */
export interface JobList {
  jobs: JobSummary[];
  /** Pass as `cursor` for the next page; a page may hold fewer than `limit` jobs while this is not null. */
  nextCursor: string | null;
}
