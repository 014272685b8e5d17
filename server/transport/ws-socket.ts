/**
 * What every part of the WebSocket hub shares: the per-socket state (`SocketData`), the hub's
 * context, the uWS topic names, and sending one message or error to one socket. Kept apart so
 * admission (ws-admission.ts), subscriptions (ws-subscriptions.ts), backpressure resync
 * (ws-resync.ts) and message dispatch (ws-hub.ts) agree on one vocabulary without importing each
 * other. No state of its own.
 */
import type { WebSocket } from 'uWebSockets.js';
import type { Principal, Verifier } from './auth.js';
import type { ServerConfig } from '../app/config.js';
import { ApiError, type ErrorCode, type ServerMessage } from '../../protocol/index.js';
import type { JobService } from '../core/job-service.js';
import type { Logger } from '../app/log.js';
import type { Metrics } from '../app/metrics.js';
import type { AddressLimit } from './address-limit.js';
import type { ExpirySlot } from './expiry-sweep.js';
import type { Skipping } from './skip-counter.js';

/** Per-socket state, kept small: idle memory per connection is a benchmarked figure. */
export interface SocketData extends Skipping, ExpirySlot {
  id: number;
  /** Shared by every socket with the same token (the verifier caches it); frozen. Undefined until a first-message `auth`. */
  principal: Principal | undefined;
  remote: string;
  origin: string;
  /**
   * Followed jobs → the seq this socket is known to have been sent (snapshot or resync; 0 until
   * then). Its keys are the subscriptions.
   */
  subs: Map<string, number>;
  /** Jobs whose direct send was dropped under backpressure: resend on drain. Created on the first drop. */
  pendingResync?: Set<string>;
  /** Followed tag feeds → the feed's counter for the tag when this socket was last in sync (-1: send a whole feed). Created on the first. */
  feeds?: Map<string, number>;
  tokens: number;
  lastRefill: number;
  flood: number;
  closed: boolean;
}

export type HubSocket = WebSocket<SocketData>;

export interface HubContext {
  config: ServerConfig;
  log: Logger;
  metrics: Metrics;
  verifier: Verifier;
  service: JobService;
  /** Connections per client address, shared with the SSE streams. */
  addresses: AddressLimit;
  /**
   * Cluster mode (docs/cluster.md): told when local sockets start and stop following a job, so the
   * node hears that job's changes from other nodes only while someone here watches it. `acquire`
   * resolves once the node hears them; the snapshot is read after that, so nothing falls between.
   */
  interest?: { acquire(jobId: string): Promise<void>; release(jobId: string): void };
}

export const jobTopic = (id: string) => `job:${id}`;
export const controlTopic = (id: string) => `ctl:${id}`;
export const feedTopic = (tag: string) => `feed:${tag}`;

/** Sends one message to one socket: uWS's result (2 = dropped under backpressure; also for a closed socket). */
export function send(ctx: HubContext, ws: HubSocket, msg: ServerMessage | string): number {
  const d = ws.getUserData();
  if (d.closed) return 2;
  ctx.metrics.messagesOut++;
  return ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg), false, false);
}

/** An `error` message, about a job or a tag feed when given. */
export function sendError(ctx: HubContext, ws: HubSocket, code: ErrorCode, message: string, jobId?: string, tag?: string): void {
  send(ctx, ws, { type: 'error', code, message, ...(jobId !== undefined && { jobId }), ...(tag !== undefined && { tag }) });
}

/** A request about a job failed: its ApiError to the client; anything else logged and sent as `internal`. */
export function failJob(ctx: HubContext, ws: HubSocket, err: unknown, jobId: string): void {
  if (ws.getUserData().closed) return;
  if (!(err instanceof ApiError)) ctx.log.error({ err, jobId }, 'websocket request failed');
  const e = err instanceof ApiError ? err : new ApiError(500, 'internal', 'internal error');
  ws.cork(() => sendError(ctx, ws, e.code, e.message, jobId));
}

/** A request about a tag feed failed, like failJob. */
export function failFeed(ctx: HubContext, ws: HubSocket, err: unknown, tag: string): void {
  if (ws.getUserData().closed) return;
  if (!(err instanceof ApiError)) ctx.log.error({ err, tag }, 'websocket feed request failed');
  const e = err instanceof ApiError ? err : new ApiError(500, 'internal', 'internal error');
  ws.cork(() => sendError(ctx, ws, e.code, e.message, undefined, tag));
}
