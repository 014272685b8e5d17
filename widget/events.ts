/**
 * The element's DOM events: lowercase, `progress-` prefixed, bubbling and composed so a page
 * (or `<notification-badge>`) can listen at the document. Typed in HTMLElementEventMap.
 */
import type { Job } from '../protocol/index.js';
import type { ConnectionState, ProgressErrorInfo } from './progress-client.js';

export interface ProgressRetryDetail {
  jobId: string;
  /** The step the retry resumes from (the failed step). */
  step: string | undefined;
  job: Job | undefined;
}

export interface ProgressEventDetails {
  'progress-update': Job;
  'progress-complete': Job;
  'progress-error': ProgressErrorInfo;
  /** Cancelable: call preventDefault() to handle the retry yourself. */
  'progress-retry': ProgressRetryDetail;
  'progress-connection': ConnectionState;
}

export type ProgressEventName = keyof ProgressEventDetails;

export function emit<K extends ProgressEventName>(
  target: EventTarget,
  name: K,
  detail: ProgressEventDetails[K],
  cancelable = false,
): boolean {
  return target.dispatchEvent(new CustomEvent(name, { detail, bubbles: true, composed: true, cancelable }));
}

declare global {
  interface HTMLElementEventMap {
    'progress-update': CustomEvent<Job>;
    'progress-complete': CustomEvent<Job>;
    'progress-error': CustomEvent<ProgressErrorInfo>;
    'progress-retry': CustomEvent<ProgressRetryDetail>;
    'progress-connection': CustomEvent<ConnectionState>;
  }
}
