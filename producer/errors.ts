import type { ErrorCode } from '../protocol/index.js';

/** Codes the SDK itself uses when the server gave no usable answer. */
export type ClientErrorCode =
  /** The request never got an HTTP response (connection refused, reset, DNS…). */
  | 'network_error'
  /** No response within `timeoutMs`. */
  | 'timeout'
  /** The producer was closed or the caller's `AbortSignal` fired. */
  | 'aborted'
  /** The server answered something that is not the protocol's JSON. */
  | 'bad_response'
  /** An `onRetry` or `onCancel` handler threw or rejected (reported through `onError`). */
  | 'handler_error'
  /**
   * The retry budget (`retry.maxRetryTime`) ran out while a job's events could not be delivered:
   * the calls still queued for that job reject with it (the last transient failure is its `cause`),
   * later calls on the job reject with it at once, and the SDK keeps trying to end the job as
   * `failed` with error code `producer_gave_up` (a `job_end`) so it does not stay `running` once
   * the server answers again.
   */
  | 'producer_gave_up'
  /**
   * Someone canceled the job: the reason of an aborted `job.signal` (the SDK never rejects a call
   * with it; your own code throws it, e.g. `job.signal.throwIfAborted()`).
   */
  | 'canceled';

/**
 * Every failure the SDK reports. `code` is the server's error code (`duplicate_job`,
 * `unknown_step`, `forbidden`, …) or a {@link ClientErrorCode}; `status` is the HTTP status,
 * 0 when there was no HTTP response; `jobId` is the job it concerns, when it concerns one.
 */
export class ProducerError extends Error {
  override readonly name = 'ProducerError';
  readonly code: ErrorCode | ClientErrorCode | (string & {});
  readonly status: number;
  /** Whether the SDK considers the failure transient (it has already retried those it could). */
  readonly retryable: boolean;
  /**
   * The job the failure concerns, when the SDK knows it: a call on a job (its HTTP requests), a
   * job the WebSocket stopped following (`forbidden`), a server `error` naming a job, a handler
   * that threw, a cancel (`canceled`). Undefined otherwise.
   */
  readonly jobId?: string;

  constructor(
    code: ProducerError['code'],
    message: string,
    options: { status?: number; retryable?: boolean; cause?: unknown; jobId?: string } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = options.status ?? 0;
    this.retryable = options.retryable ?? false;
    if (options.jobId !== undefined) this.jobId = options.jobId;
  }
}

/** Type guard that also narrows on a code: `isProducerError(err, 'duplicate_job')`. */
export function isProducerError(err: unknown, code?: ProducerError['code']): err is ProducerError {
  return err instanceof ProducerError && (code === undefined || err.code === code);
}
