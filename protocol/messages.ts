/**
 * The WebSocket protocol (`/v1/ws`, JSON text frames): what clients send, what the server sends,
 * and the close codes it uses. Client messages are validated by `parseClientMessage`
 * (validate.ts).
 */
import type { ErrorCode } from './errors.js';
import type { Job, JobSummary } from './job.js';

export type ClientMessage =
  | { type: 'subscribe'; jobId: string; since?: number }
  | { type: 'unsubscribe'; jobId: string }
  /** Follow a tag's feed (a grant `tag:<tag>` or `*`): `feed` with the latest jobs, then `feed_update`s. */
  | FeedSubscribe
  | FeedUnsubscribe
  | { type: 'retry'; jobId: string; step?: string }
  | { type: 'cancel'; jobId: string; reason?: string }
  /**
   * Credentials on the open socket: the first message of a socket opened without
   * `?access_token=` (within LIMITS.authTimeoutSeconds), or a fresh token replacing the current
   * one before it expires (token refresh in place; subscriptions are re-checked against it).
   */
  | { type: 'auth'; token: string }
  | { type: 'ping' };

export type ServerMessage =
  | { type: 'snapshot'; job: Job }
  | { type: 'update'; job: Job }
  | ControlMessage
  | FeedMessage
  | FeedUpdateMessage
  /** `jobId` or `tag`: the subscription the refusal concerns, when it concerns one. */
  | { type: 'error'; code: ErrorCode | string; message: string; jobId?: string; tag?: string }
  /** The `auth` token was accepted; `exp` is its expiry (epoch seconds). */
  | { type: 'auth_ok'; exp: number }
  | { type: 'pong' };

/** What producers hear (WebSocket and SSE, write scope): resume from `step`, or stop (cancel). */
export type ControlMessage =
  | { type: 'control'; action: 'retry'; jobId: string; step: string }
  | { type: 'control'; action: 'cancel'; jobId: string; reason?: string };

export interface FeedSubscribe {
  type: 'subscribe';
  tag: string;
}

export interface FeedUnsubscribe {
  type: 'unsubscribe';
  tag: string;
}

/** Answer to every feed subscribe: the tag's latest jobs (LISTING.feedJobs), newest first. */
export interface FeedMessage {
  type: 'feed';
  tag: string;
  jobs: JobSummary[];
}

/**
 * A job carrying the tag was created or changed status (at once), or made progress (at most once
 * per LISTING.feedProgressIntervalMs per job, the latest state last). Keep, per job, the summary
 * with the highest `seq`: an update may arrive before the `feed` answer, and may be resent.
 */
export interface FeedUpdateMessage {
  type: 'feed_update';
  tag: string;
  job: JobSummary;
}

/** WebSocket close codes the server uses. */
export const CloseCode = {
  /** Server shutting down: reconnect to another node or later. */
  GoingAway: 1001,
  /** A frame that is not UTF-8 JSON text. */
  UnsupportedData: 1003,
  /** Frame larger than LIMITS.maxMessageBytes. */
  MessageTooBig: 1009,
  /**
   * No valid credentials: the token expired on a live connection (and no `auth` refreshed it),
   * or a socket opened without a token sent no `auth` in time. Reconnect with a fresh one.
   */
  TokenExpired: 4001,
  /** Message flood beyond the rate limit. */
  RateLimited: 4008,
} as const;
