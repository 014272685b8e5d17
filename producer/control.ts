/**
 * What a producer hears about its jobs from the server's `control` messages: the Retry and Cancel
 * a user asked for, as the SDK hands them to `onRetry` and `onCancel`. Types only, shared by the
 * control socket that receives them and the job handles and client that expose them.
 */
import type { Job } from '../protocol/index.js';

/** A retry request for a job, delivered to `onRetry` handlers. */
export interface RetryControl {
  jobId: string;
  /** The step to resume from: the failed step; it and every later step are pending again. */
  step: string;
  /**
   * True when the `control` message itself was missed (the socket was down when the user
   * retried) and the SDK inferred the retry from the job's snapshot on re-subscribe.
   */
  recovered: boolean;
  /** The latest job state the socket has seen, when it has seen one. */
  job?: Job;
}

export type RetryHandler = (control: RetryControl) => void | Promise<void>;

/** A user's cancel of a job, delivered to `onCancel` handlers: stop, then end the job as `canceled`. */
export interface CancelControl {
  jobId: string;
  /** The reason the user gave, if any. */
  reason?: string;
  /**
   * True when the `control` message itself was not heard (the socket was down, or the job was
   * canceled before the SDK listened) and the SDK read the cancel from the job's snapshot
   * (`cancelRequested`).
   */
  recovered: boolean;
  /** The latest job state the socket has seen, when it has seen one. */
  job?: Job;
}

export type CancelHandler = (control: CancelControl) => void | Promise<void>;

/**
 * @internal What one subscriber of a job's controls wants to hear (a bare function is a retry
 * handler): retries, cancels, and every job state the socket receives.
 */
export interface ControlListener {
  retry?: RetryHandler;
  cancel?: CancelHandler;
  state?: (job: Job) => void;
}

/** Removes a listener. */
export type Unsubscribe = () => void;

/** The socket's state, for `onConnection`. */
export type ConnectionState = 'connecting' | 'open' | 'closed';
