/**
 * Every limit of the protocol in one place: the server enforces them, clients and SDKs can check
 * before sending, docs/protocol.md lists them. Servers may configure the transport limits
 * (frame, body, subscriptions, rate) lower or higher; the field limits are fixed.
 */

/** Transport limits (defaults of a server's configuration). */
export const LIMITS = {
  /** Largest accepted WebSocket frame (bytes). */
  maxMessageBytes: 16 * 1024,
  /** Largest accepted HTTP body (bytes). */
  maxBodyBytes: 256 * 1024,
  /** Largest accepted token (bytes). */
  maxTokenBytes: 8 * 1024,
  /** Subscriptions per socket. */
  maxSubscriptionsPerSocket: 100,
  /** Client messages per second per socket (burst allowed up to 2×). */
  messagesPerSecond: 50,
  /** Idle seconds before a silent socket is closed (uWS sends pings before). */
  idleTimeoutSeconds: 60,
  /** Steps per job. */
  maxSteps: 100,
  /** Events per POST. */
  maxEventsPerRequest: 1000,
  /** A socket opened without `?access_token=` must send `auth` within this many seconds (else 4001). */
  authTimeoutSeconds: 5,
  /** Seconds between SSE comment heartbeats (`: ping`), so proxies keep the stream open. */
  sseHeartbeatSeconds: 15,
} as const;

/** Field limits of jobs and events (characters for strings, UTF-8 bytes of JSON for objects). */
export const FIELD_LIMITS = {
  /** Job ids travel in URLs and topic names: see JOB_ID_PATTERN. */
  jobIdChars: 128,
  stepIdChars: 64,
  kindChars: 64,
  stepLabelChars: 200,
  /** A step's or an event's `message`. */
  messageChars: 1000,
  eventIdChars: 128,
  errorCodeChars: 64,
  errorMessageChars: 2000,
  webhookUrlChars: 2048,
  metaBytes: 8 * 1024,
  resultBytes: 64 * 1024,
  sourceBytes: 16 * 1024,
  /** Tags per job, and characters per tag (TAG_PATTERN). */
  maxTags: 16,
  tagChars: 128,
  /** A cancel's `reason`. */
  reasonChars: 500,
  /** `complexity` of a job or step: a number > 0 and at most this. */
  maxComplexity: 1e6,
  /** A job's `stallAfterMs`: an integer number of ms within these bounds (1 s .. 7 d). */
  minStallAfterMs: 1000,
  maxStallAfterMs: 7 * 86_400_000,
  /** A `queued` event's `position` (jobs ahead): an integer from 0 to this. */
  maxQueuePosition: 1e9,
} as const;

/** A conservative alphabet: ids need no escaping in URLs, topic names or Redis keys. */
export const JOB_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
export const STEP_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
export const TAG_PATTERN = /^[A-Za-z0-9:._-]{1,128}$/;

/** Listing (`GET /v1/jobs`) and tag feeds (`subscribe` with `tag`, `GET /v1/feed`). */
export const LISTING = {
  /** Jobs per page when `limit` is not given. */
  defaultLimit: 20,
  /** Largest accepted `limit`. */
  maxLimit: 100,
  /** Jobs in a feed's first message (`feed`): the tag's latest. */
  feedJobs: 50,
  /** A job's progress (and other changes that keep its status) reaches a feed at most this often (ms); the latest state always follows. */
  feedProgressIntervalMs: 2000,
  /** Longest accepted `cursor` (characters). */
  cursorChars: 256,
} as const;
