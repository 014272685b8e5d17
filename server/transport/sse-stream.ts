/**
 * What every Server-Sent Events endpoint does the same way — job streams (sse.ts) and tag feeds
 * (sse-feed.ts): admission before anything is read (shutting down, the Origin allow-list, the
 * per-address limit shared with the WebSocket hub, the token from `Authorization: Bearer` or
 * `?access_token=`), a refusal as the usual JSON error, and the 200 with headers that keep a
 * reverse proxy from buffering or compressing the stream.
 */
import type { HttpResponse } from 'uWebSockets.js';
import { ApiError, unauthorized } from '../../protocol/index.js';
import type { Principal } from './auth.js';
import type { SseContext } from './sse.js';
import { errorReply, statusLine, writeReply } from './uws-http.js';

/** How long a browser's EventSource waits before reconnecting on its own (ms). */
export const CLIENT_RETRY_MS = 3000;

export interface StreamRequest {
  origin: string;
  token: string | undefined;
  remote: string;
}

/** The checks that do not depend on what is streamed; the token's principal, or an ApiError thrown. */
export async function admitStream(ctx: SseContext, req: StreamRequest, shuttingDown: boolean, authFailureLog: string): Promise<Principal> {
  const { config, metrics, log, verifier, addresses } = ctx;
  if (shuttingDown) throw new ApiError(503, 'internal', 'server shutting down');
  if (req.origin && config.allowedOrigins.length > 0 && !config.allowedOrigins.includes(req.origin)) {
    metrics.originRejections++;
    throw new ApiError(403, 'forbidden', `origin ${req.origin} is not allowed`);
  }
  if (addresses.full(req.remote)) {
    metrics.rateLimited++;
    metrics.connectionLimited++;
    throw new ApiError(429, 'rate_limited', `too many connections from this address (max ${config.limits.maxConnectionsPerIp})`);
  }
  if (!req.token) throw unauthorized('missing Authorization: Bearer <token> or ?access_token=');
  try {
    return await ctx.verifier.verify(req.token);
  } catch (err) {
    metrics.authFailures++;
    log.warn({ remote: req.remote, reason: (err as Error).message }, authFailureLog);
    throw err;
  }
}

/** Answers a stream request that was refused (the caller checks it was not aborted). */
export function refuseStream(ctx: SseContext, res: HttpResponse, cors: Record<string, string>, err: ApiError): void {
  ctx.metrics.httpErrors++;
  res.cork(() => writeReply(res, errorReply(err, err.status === 401 ? { 'WWW-Authenticate': 'Bearer' } : undefined), cors));
}

/** The 200 and its headers, then `retry:` and `first`; whether everything went out at once. */
export function startEventStream(res: HttpResponse, cors: Record<string, string>, first: string): boolean {
  let whole = true;
  res.cork(() => {
    res.writeStatus(statusLine(200));
    const headers = {
      ...cors,
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache, no-transform',
      'X-Accel-Buffering': 'no',
    };
    for (const [k, v] of Object.entries(headers)) res.writeHeader(k, v);
    whole = res.write(`retry: ${CLIENT_RETRY_MS}\n\n${first}`);
  });
  return whole;
}
