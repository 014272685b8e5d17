/**
 * The wire protocol of progress-tracker: one module, shared by the server, the widget,
 * the producer SDK and the tests. Everything here is a public contract (see docs/protocol.md):
 * extend it, never rename it.
 *
 * This file holds types and a few constants only, with no Node or DOM imports, so the
 * browser bundle can include it.
 */

// ---------------------------------------------------------------------------------------------
// Job model
// ---------------------------------------------------------------------------------------------

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
  createdAt: number;
  updatedAt: number;
}

// ---------------------------------------------------------------------------------------------
// Producer HTTP API
// ---------------------------------------------------------------------------------------------

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
  /** URL the server POSTs `{type:"retry",jobId,step}` to when someone retries the job. */
  webhook?: string;
  /** Follow an external job-status service instead of being pushed to (polling adapters). */
  source?: JobSource;
}

export const EVENT_TYPES = ['step_start', 'progress', 'step_end', 'step_failed', 'job_end'] as const;
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

// ---------------------------------------------------------------------------------------------
// Polling adapters (external job-status services)
// ---------------------------------------------------------------------------------------------

/** Where a field lives in the upstream's JSON: a dot path (`stages.0.name`) or a rich mapping. */
export type FieldMap =
  | string
  | {
      path: string;
      /** Upstream string → our value. */
      values?: Record<string, string>;
      /** Multiply a number (0.01 for percent). */
      scale?: number;
      /** Second path to divide by (`{"path":"progress.current","of":"progress.total"}`). */
      of?: string;
      /** The value is the step's position (0-based) rather than its id. */
      index?: boolean;
    };

export interface StepsMap {
  path: string;
  /** The element's step id (relative to the element). Omitted: elements match the job's steps by position. */
  id?: FieldMap;
  status?: FieldMap;
  progress?: FieldMap;
}

export interface SourceMap {
  status?: FieldMap;
  step?: FieldMap;
  stepProgress?: FieldMap;
  progress?: FieldMap;
  error?: FieldMap;
  result?: FieldMap;
  steps?: StepsMap;
}

export interface HttpJobSource {
  type: 'http';
  url: string;
  method?: 'GET' | 'POST';
  /** JSON body for `method: "POST"` status endpoints (default `{}`). */
  body?: unknown;
  /** Sent upstream; never returned by the API nor logged. */
  headers?: Record<string, string>;
  map: SourceMap;
  retryUrl?: string;
  minIntervalMs?: number;
  maxIntervalMs?: number;
}

export type JobSource = HttpJobSource | { type: string; [key: string]: unknown };

// ---------------------------------------------------------------------------------------------
// WebSocket /v1/ws (JSON text frames)
// ---------------------------------------------------------------------------------------------

export type ClientMessage =
  | { type: 'subscribe'; jobId: string; since?: number }
  | { type: 'unsubscribe'; jobId: string }
  | { type: 'retry'; jobId: string; step?: string }
  | { type: 'ping' };

export type ServerMessage =
  | { type: 'snapshot'; job: Job }
  | { type: 'update'; job: Job }
  | { type: 'control'; action: 'retry'; jobId: string; step: string }
  | { type: 'error'; code: ErrorCode | string; message: string; jobId?: string }
  | { type: 'pong' };

export const ERROR_CODES = [
  'bad_request',
  'unauthorized',
  'forbidden',
  'not_found',
  'conflict',
  'rate_limited',
  'too_many_subscriptions',
  'payload_too_large',
  'internal',
  // job state machine
  'unknown_step',
  'progress_out_of_range',
  'job_finished',
  'step_not_running',
  'step_already_finished',
  'invalid_transition',
  'nothing_to_retry',
  'duplicate_job',
  // polling adapters
  'upstream_unreachable',
  'upstream_bad_response',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** WebSocket close codes the server uses. */
export const CloseCode = {
  /** Server shutting down: reconnect to another node or later. */
  GoingAway: 1001,
  /** A frame that is not UTF-8 JSON text. */
  UnsupportedData: 1003,
  /** Frame larger than LIMITS.maxMessageBytes. */
  MessageTooBig: 1009,
  /** Token expired on a live connection: reconnect with a fresh one. */
  TokenExpired: 4001,
  /** Message flood beyond the rate limit. */
  RateLimited: 4008,
} as const;

/** Server limits, documented in docs/protocol.md. Servers may be configured lower or higher. */
export const LIMITS = {
  /** Largest accepted WebSocket frame (bytes). */
  maxMessageBytes: 16 * 1024,
  /** Largest accepted HTTP body (bytes). */
  maxBodyBytes: 256 * 1024,
  /** Largest accepted token (bytes). */
  maxTokenBytes: 8 * 1024,
  /** Subscriptions per socket. */
  maxSubscriptionsPerSocket: 100,
  /** Client messages per second per socket (burst allowed up to 2×). */
  messagesPerSecond: 50,
  /** Idle seconds before a silent socket is closed (uWS sends pings before). */
  idleTimeoutSeconds: 60,
  /** Steps per job. */
  maxSteps: 100,
  /** Events per POST. */
  maxEventsPerRequest: 1000,
} as const;

/** JWT scopes (space-separated `scope` claim). */
export type Scope = 'progress:read' | 'progress:write' | 'progress:retry';

/** JWT claims this server reads. */
export interface ProgressClaims {
  sub?: string;
  scope?: string;
  /** Job ids; `prefix*` matches by prefix, `*` matches every job. */
  jobs?: string[];
  exp: number;
  nbf?: number;
  iss?: string;
  aud?: string | string[];
}
