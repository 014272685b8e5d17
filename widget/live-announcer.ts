import type { ReactiveController, ReactiveControllerHost } from 'lit';
import type { Messages } from './i18n/messages.js';
import type { ConnectionState } from './connection-state.js';

/**
 * Feeds one polite live region. Screen readers drop or garble messages that replace each other
 * too fast, so announcements are throttled: at most one per `gapMs`, and within the gap only
 * the latest message survives (a step change followed by completion announces completion).
 */
export class LiveAnnouncer implements ReactiveController {
  /** What the live region shows now. */
  text = '';
  private lastAt = 0;
  private pending = '';
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly host: ReactiveControllerHost,
    private readonly gapMs = 1500,
  ) {
    host.addController(this);
  }

  announce(message: string): void {
    this.pending = message;
    if (this.timer) return;
    const wait = this.lastAt + this.gapMs - Date.now();
    if (wait <= 0) this.flush();
    else this.timer = setTimeout(() => this.flush(), wait);
  }

  hostDisconnected(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private flush(): void {
    this.timer = undefined;
    this.lastAt = Date.now();
    this.text = this.pending;
    this.host.requestUpdate();
  }
}

/**
 * What the live region says when the connection changes (`prev` → `state`), if anything: a lost
 * live connection, its return, the server unreachable, the fall back to polling. Never a failure
 * of the job: that is the server's to say.
 */
export function connectionAnnouncement(prev: ConnectionState, state: ConnectionState, wasLive: boolean, m: Messages): string | undefined {
  if (state === 'live') return wasLive && prev !== 'live' && prev !== 'connecting' ? m.announceConnectionRestored : undefined;
  if (state === 'reconnecting' && prev === 'live') return m.announceConnectionLost;
  if (state === 'offline') return m.announceOffline;
  if (state === 'polling' && (prev === 'offline' || prev === 'live' || prev === 'reconnecting') && wasLive) return m.connection.polling;
  return undefined;
}
