/**
 * The public vocabulary of a live channel (ProgressClient, FeedClient): its options (where the
 * server is, credentials, transport tuning), the errors and the raw failure it reports, and the
 * events every channel emits. Types only — nothing here runs — so the elements, the headless
 * clients and the transports can all name them without depending on the chain itself
 * (live-channel.ts).
 */
import type { ConnectionState, ConnectionTransport } from './connection-state.js';
import type { EndpointList } from './endpoints.js';

export type TokenProvider = () => string | undefined | Promise<string | undefined>;

/**
 * A refusal or failure: `{code, message}` (ProgressClient adds the job's fields). `kind`
 * `connection`: no server answered (network error, a gateway's 502/503/504, a token provider
 * that failed) — transient, never the job's failure; `request`: the server answered no.
 */
export interface ChannelError {
  code: string;
  message: string;
  kind?: 'request' | 'connection';
  /** The HTTP status, when an answer came. */
  status?: number;
}

/** The latest reason no server answered, raw (for `progress-error`'s detail, never the UI). */
export interface ChannelFailure {
  code: string;
  message: string;
  status?: number;
  transport: 'websocket' | 'sse' | 'polling' | 'token';
}

/** The events every channel emits. */
export interface ChannelEvents {
  error: (error: ChannelError) => void;
  /** The state or the transport changed (a move between WebSocket and SSE keeps `live`). */
  connection: (state: ConnectionState, transport: ConnectionTransport) => void;
}

export interface ChannelOptions {
  /**
   * WebSocket URL of `/v1/ws` (ws:, wss:, or http(s): which is mapped to ws(s):). Several
   * (an array, or a space/comma-separated string) for failover: tried in turn, round-robin.
   */
  src: EndpointList;
  /**
   * HTTP base URL of the API, for SSE, polling and HTTP requests (default: derived from the `src`
   * URL in use, e.g. `https://host`). Several are tried in turn when one cannot be reached.
   */
  api?: EndpointList;
  token?: string;
  /**
   * Called before every connection attempt, every poll and every token refresh; return a fresh
   * token.
   */
  tokenProvider?: TokenProvider;
  /** Failed socket attempts in a row before the fallback (SSE, then polling) starts (default 3). */
  socketAttemptsBeforePolling?: number;
  /** Failed SSE attempts in a row before polling starts (default 2). */
  sseAttemptsBeforePolling?: number;
  /** Reconnect backoff (ms) of the socket and the stream: first delay, cap, socket growth per attempt. Jitter is added. */
  minReconnectDelayMs?: number;
  maxReconnectDelayMs?: number;
  reconnectGrowFactor?: number;
  /** Give up on a socket or stream attempt after this long (default 4000 ms). */
  connectTimeoutMs?: number;
  /** Polling interval bounds (ms); a job's interval adapts to its ETA inside them. */
  minPollIntervalMs?: number;
  maxPollIntervalMs?: number;
  /** Client ping interval; a socket silent for another interval is replaced (default 20000 ms). */
  heartbeatMs?: number;
  /** On wake-up (page visible, `online`), retry after a random 0..this ms (default 1000). */
  wakeJitterMs?: number;
  /**
   * Put the token in the socket URL (`?access_token=`) instead of the first message, for servers
   * without first-message auth. Default false: tokens stay out of URLs and logs.
   */
  tokenInUrl?: boolean;
  /** WebSocket implementation (default: globalThis.WebSocket; null or missing: no socket). */
  WebSocket?: typeof WebSocket | null;
  /** EventSource implementation (default: globalThis.EventSource; null or missing: no SSE). */
  EventSource?: typeof EventSource | null;
}
