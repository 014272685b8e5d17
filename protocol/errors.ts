/**
 * Error codes and the one error type for every refusal: an HTTP status, a stable machine code,
 * and a message a developer can act on. HTTP answers it as `{"error":{"code","message"}}`; the
 * WebSocket hub as `{"type":"error",...}`. Validation (validate.ts) throws it, so the server, the
 * SDKs and a browser can all check a body the same way.
 */

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
  'already_finished',
  // the server ended a canceled job its producer did not end within PT_CANCEL_GRACE
  'cancel_timeout',
  // the server ended a job whose producer was silent for PT_STALL_FAIL_AFTER (retryable)
  'producer_lost',
  'duplicate_job',
  // webhooks: a job with a `webhook` on a server without PT_WEBHOOK_SECRET
  'webhook_secret_required',
  // polling adapters
  'upstream_unreachable',
  'upstream_bad_response',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** A refusal: an HTTP status, a stable code and a message saying what to change. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  toBody(): { error: { code: ErrorCode; message: string } } {
    return { error: { code: this.code, message: this.message } };
  }
}

export const badRequest = (message: string) => new ApiError(400, 'bad_request', message);
export const notFound = (message: string) => new ApiError(404, 'not_found', message);
export const forbidden = (message: string) => new ApiError(403, 'forbidden', message);
export const unauthorized = (message: string) => new ApiError(401, 'unauthorized', message);
