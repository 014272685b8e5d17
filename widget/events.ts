/**
 * The element's DOM events: lowercase, `progress-` prefixed, bubbling and composed so a page
 * (or `<notification-badge>`) can listen at the document. Typed in HTMLElementEventMap.
 *
 * `progress-connection` keeps its string `detail` (the state: listeners comparing
 * `e.detail === 'live'` keep working) and says the transport in a `transport` field of the
 * event itself — a string detail cannot carry a second value, and turning it into an object
 * would break every existing listener.
 */
import type { Job } from '../protocol/index.js';
import type { ConnectionState, ConnectionTransport, ProgressErrorInfo } from './progress-client.js';

export interface ProgressRetryDetail {
  jobId: string;
  /** The step the retry resumes from (the failed step). */
  step: string | undefined;
  job: Job | undefined;
}

export interface ProgressCancelDetail {
  jobId: string;
  job: Job | undefined;
}

export interface ProgressEventDetails {
  'progress-update': Job;
  'progress-complete': Job;
  'progress-error': ProgressErrorInfo;
  /** Cancelable: call preventDefault() to handle the retry yourself. */
  'progress-retry': ProgressRetryDetail;
  /** Cancelable: call preventDefault() to confirm in your own dialog (then call `el.cancel()`). */
  'progress-cancel': ProgressCancelDetail;
  'progress-connection': ConnectionState;
}

export type ProgressEventName = keyof ProgressEventDetails;

/** `progress-connection`: `detail` is the state, `transport` which transport delivers the job. */
export interface ProgressConnectionEvent extends CustomEvent<ConnectionState> {
  readonly transport: ConnectionTransport;
}

export function emit<K extends ProgressEventName>(
  target: EventTarget,
  name: K,
  detail: ProgressEventDetails[K],
  cancelable = false,
): boolean {
  return target.dispatchEvent(new CustomEvent(name, { detail, bubbles: true, composed: true, cancelable }));
}

export function emitConnection(target: EventTarget, state: ConnectionState, transport: ConnectionTransport): void {
  const event = new CustomEvent('progress-connection', { detail: state, bubbles: true, composed: true });
  target.dispatchEvent(Object.defineProperty(event, 'transport', { value: transport, enumerable: true }) as ProgressConnectionEvent);
}

declare global {
  interface HTMLElementEventMap {
    'progress-update': CustomEvent<Job>;
    'progress-complete': CustomEvent<Job>;
    'progress-error': CustomEvent<ProgressErrorInfo>;
    'progress-retry': CustomEvent<ProgressRetryDetail>;
    'progress-cancel': CustomEvent<ProgressCancelDetail>;
    'progress-connection': ProgressConnectionEvent;
  }
}
