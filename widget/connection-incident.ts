/**
 * Honest errors for `<progress-tracker>`: what a problem is called, to whom, and how often.
 * - `job`: the job failed or was canceled (the server says so) — shown, announced, evented.
 * - `request`: the server refused something (auth, not found, a retry, a cancel) — a short
 *   translated sentence; the server's own text only in the event's detail.
 * - `connection`: no server answered (network error, a gateway's 502/503/504, a failed token
 *   provider) — never called a job failure; the connection indicator and the "estimate" label
 *   say it, and `progress-error` fires once per incident (until a successful reconnect), with
 *   the raw cause in its detail, not once per attempt.
 */
import type { ChannelFailure } from './channel-types.js';
import type { ConnectionState } from './connection-state.js';
import type { Messages } from './i18n/messages.js';
import type { ProgressErrorInfo } from './progress-client.js';

/** The sentence a user reads for a refusal or a transport failure (never the raw text). */
export function reasonText(info: ProgressErrorInfo, m: Messages): string {
  if (info.kind === 'connection') return m.requestUnreachable;
  if (info.code === 'unauthorized' || info.code === 'forbidden' || info.status === 401 || info.status === 403) return m.notAllowed;
  if (info.code === 'not_found' || info.status === 404) return m.notFound;
  return m.requestRefused;
}

/** The states in which a server answers: a new problem after one of them is a new incident. */
const ANSWERING: ReadonlySet<ConnectionState> = new Set(['live', 'polling']);

export class Incidents {
  /** Problems already reported since the last successful (re)connect. */
  private readonly reported = new Set<string>();

  /**
   * Whether a problem noticed in the background (not the answer to a user's request) is the
   * first of its kind in this incident, i.e. should be evented.
   */
  first(info: ProgressErrorInfo): boolean {
    const key = info.kind === 'connection' ? 'connection' : `${info.kind}:${info.code}`;
    if (this.reported.has(key)) return false;
    this.reported.add(key);
    return true;
  }

  /**
   * The connection state changed: answering again closes the incident. Returns the
   * `progress-error` to fire when the state says no server answers (offline) and this
   * incident has not been reported yet; `cause` is the channel's last raw failure.
   */
  connection(state: ConnectionState, cause: ChannelFailure | undefined): ProgressErrorInfo | undefined {
    if (ANSWERING.has(state)) {
      this.reported.clear();
      return undefined;
    }
    if (state !== 'offline') return undefined;
    const info: ProgressErrorInfo = { kind: 'connection', code: 'unreachable', message: 'No server answered', ...cause };
    return this.first(info) ? info : undefined;
  }
}
