/**
 * Server-Sent Events: `GET {api}/v1/jobs/{id}/stream` through the browser's EventSource — the
 * middle of the fallback chain (WebSocket → SSE → HTTP polling). Plain HTTP that many proxies
 * pass when they refuse WebSocket upgrades, pushed like the socket (no polling delay), the same
 * JSON messages (a `snapshot` first, then `update`s).
 *
 * The token goes in `?access_token=` (EventSource cannot send headers). Reconnecting is ours, not
 * EventSource's: its own retry would reuse the URL, hence the old token, and the server ends a
 * stream when its token expires. So every error closes the EventSource and the next attempt asks
 * the token provider again:
 * - a stream that delivered and then ended (token expiry, proxy timeout, server restart) reopens
 *   at once, still counted as live while it does, so a routine token expiry does not flicker the
 *   connection state; only if the reopened stream delivers nothing in time is it down;
 * - an attempt that delivers nothing — an error, or no first message within the connect timeout
 *   (a proxy that blocks or buffers streams) — is a failure: `onFailure(count)`, then backoff
 *   with jitter (protocol's backoffDelay) until `wake()` or the next attempt.
 */
import { backoffDelay, type ServerMessage } from '../protocol/index.js';

export interface SseTransportOptions {
  /** The stream URL without the token, read before every attempt (it follows failover). */
  url: () => string;
  getToken: () => Promise<string | undefined>;
  onMessage: (msg: ServerMessage) => void;
  /** The stream delivers (its first message arrived). */
  onLive: () => void;
  /** It stopped delivering (a failed reopen after a live stream). */
  onDown: () => void;
  /** An attempt delivered nothing: `count` such attempts in a row. */
  onFailure: (count: number) => void;
  connectTimeoutMs: number;
  minDelayMs: number;
  maxDelayMs: number;
  EventSource: typeof EventSource;
}

/** A stream that ended sooner than this after opening counts as a failure (no instant reopen loop). */
const MIN_UPTIME_MS = 1000;

export class SseTransport {
  private source: EventSource | undefined;
  private running = false;
  private _live = false;
  private failures = 0;
  /** Waiting in backoff before the next attempt (what `wake()` cuts short). */
  private backoff: ReturnType<typeof setTimeout> | undefined;
  /** No first message by then: the attempt failed. */
  private deadline: ReturnType<typeof setTimeout> | undefined;
  /** Bumped by every attempt and by stop(): a late callback of an older one is ignored. */
  private attempt = 0;

  constructor(private readonly options: SseTransportOptions) {}

  /** Started (open, reopening or waiting to retry). */
  get active(): boolean {
    return this.running;
  }

  /** A stream is delivering (or reopening right after one that did). */
  get live(): boolean {
    return this._live;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.failures = 0;
    void this.connect();
  }

  stop(): void {
    this.running = false;
    this._live = false;
    this.attempt++;
    this.closeSource();
    clearTimeout(this.backoff);
    this.backoff = undefined;
  }

  /** Waiting in backoff: try now. */
  wake(): void {
    if (!this.running || this.backoff === undefined) return;
    clearTimeout(this.backoff);
    this.backoff = undefined;
    void this.connect();
  }

  private closeSource(): void {
    clearTimeout(this.deadline);
    this.source?.close();
    this.source = undefined;
  }

  private async connect(): Promise<void> {
    this.backoff = undefined;
    const attempt = ++this.attempt;
    const token = await this.options.getToken();
    if (!this.running || attempt !== this.attempt) return;
    const url = new URL(this.options.url(), typeof location !== 'undefined' ? location.href : undefined);
    if (token) url.searchParams.set('access_token', token);
    const source = new this.options.EventSource(url.href);
    this.source = source;
    const openedAt = Date.now();
    let delivered = false;
    this.deadline = setTimeout(() => this.failed(attempt), this.options.connectTimeoutMs);
    source.onmessage = (event: MessageEvent) => {
      if (attempt !== this.attempt) return;
      if (!delivered) {
        delivered = true;
        clearTimeout(this.deadline);
        this.failures = 0;
        if (!this._live) {
          this._live = true;
          this.options.onLive();
        }
      }
      let msg: ServerMessage;
      try {
        msg = JSON.parse(String(event.data)) as ServerMessage;
      } catch {
        return;
      }
      this.options.onMessage(msg);
    };
    source.onerror = () => {
      if (attempt !== this.attempt) return;
      if (!delivered || Date.now() - openedAt < MIN_UPTIME_MS) return this.failed(attempt);
      // A stream that worked has ended: reopen now with a fresh token (small jitter so the
      // clients of a restarted server do not all come back in the same millisecond).
      this.closeSource();
      this.backoff = setTimeout(() => void this.connect(), Math.random() * this.options.minDelayMs * 0.5);
    };
  }

  private failed(attempt: number): void {
    if (attempt !== this.attempt || !this.running) return;
    this.attempt++;
    this.closeSource();
    this.failures++;
    if (this._live) {
      this._live = false;
      this.options.onDown();
    }
    this.options.onFailure(this.failures);
    if (!this.running) return;
    const { minDelayMs: baseMs, maxDelayMs: maxMs } = this.options;
    this.backoff = setTimeout(() => void this.connect(), backoffDelay(this.failures - 1, { baseMs, maxMs }));
  }
}
