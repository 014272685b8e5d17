/**
 * The small uWebSockets.js HTTP layer every route uses (the API, the demo, the hub's upgrade
 * refusals). uWS specifics handled here once:
 * - `HttpRequest` is only valid until the handler returns: everything needed is copied first;
 * - a response may be aborted by the client at any time: `onAborted` is always registered
 *   and nothing is written after it fired;
 * - writes after an `await` are wrapped in `cork` (one syscall, and required by uWS);
 * - request bodies stream in through `onData`: the size limit is enforced while reading.
 *
 * Every error is `{"error":{"code","message"}}` with the matching status.
 */
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import type { Principal, Verifier } from './auth.js';
import type { ServerConfig } from '../app/config.js';
import { ApiError, badRequest, unauthorized } from '../../protocol/index.js';
import { redactUrl, type Logger } from '../app/log.js';
import type { Metrics } from '../app/metrics.js';

const STATUS_TEXT: Record<number, string> = {
  200: '200 OK',
  201: '201 Created',
  202: '202 Accepted',
  204: '204 No Content',
  304: '304 Not Modified',
  400: '400 Bad Request',
  401: '401 Unauthorized',
  403: '403 Forbidden',
  404: '404 Not Found',
  405: '405 Method Not Allowed',
  409: '409 Conflict',
  413: '413 Payload Too Large',
  415: '415 Unsupported Media Type',
  429: '429 Too Many Requests',
  500: '500 Internal Server Error',
  501: '501 Not Implemented',
  503: '503 Service Unavailable',
};

export const statusLine = (status: number) => STATUS_TEXT[status] ?? `${status} Status`;

/** What a handler needs from the request, copied out of uWS's stack-allocated HttpRequest. */
export interface RequestInfo {
  method: string;
  url: string;
  query: string;
  params: string[];
  authorization: string;
  origin: string;
  ifNoneMatch: string;
  contentLength: string;
  /** The client's address (X-Forwarded-For's first under PT_TRUST_PROXY), read when asked: see readRequest. */
  remote(): string;
}

export interface Reply {
  status: number;
  /** A string or Buffer is sent as is; anything else as JSON. */
  body?: unknown;
  contentType?: string;
  headers?: Record<string, string>;
}

export interface HttpContext {
  config: ServerConfig;
  log: Logger;
  metrics: Metrics;
  verifier: Verifier;
  /** Checks a job's polling `source` (server/polling): a message for a 400, or null. */
  validateSource?: (source: unknown, steps: readonly { id: string }[]) => string | null;
}

export function remoteAddress(res: HttpResponse, req: HttpRequest, trustProxy: boolean): string {
  return addressOf(res, trustProxy ? req.getHeader('x-forwarded-for') : '');
}

function addressOf(res: HttpResponse, forwardedFor: string): string {
  if (forwardedFor) return forwardedFor.split(',')[0]!.trim();
  try {
    return Buffer.from(res.getRemoteAddressAsText()).toString();
  } catch {
    return 'unknown'; // the ws-based fallback engine does not implement it
  }
}

// The client's address is read only when asked (an auth failure's log line): uWS hands it over
// as an ArrayBuffer, ~1 µs per request to decode. It stays readable until the response is
// ended; after an abort, addressOf says 'unknown'.
function readRequest(res: HttpResponse, req: HttpRequest, paramCount: number, trustProxy: boolean): RequestInfo {
  const forwardedFor = trustProxy ? req.getHeader('x-forwarded-for') : '';
  const params: string[] = [];
  for (let i = 0; i < paramCount; i++) params.push(decodeParam(req.getParameter(i)));
  return {
    method: req.getMethod(),
    url: pathOf(req),
    query: rawQuery(req),
    params,
    authorization: req.getHeader('authorization'),
    origin: req.getHeader('origin'),
    ifNoneMatch: req.getHeader('if-none-match'),
    contentLength: req.getHeader('content-length'),
    remote: () => addressOf(res, forwardedFor),
  };
}

/**
 * The raw query string. The ws-based fallback engine's getQuery() throws on relative URLs and
 * its getUrl() keeps the query, so both are normalized here.
 */
export function rawQuery(req: HttpRequest): string {
  try {
    return req.getQuery() ?? '';
  } catch {
    const url = req.getUrl();
    const at = url.indexOf('?');
    return at >= 0 ? url.slice(at + 1) : '';
  }
}

function pathOf(req: HttpRequest): string {
  const url = req.getUrl();
  const at = url.indexOf('?');
  return at >= 0 ? url.slice(0, at) : url;
}

export function decodeParam(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({});

/** CORS headers for an allowed origin (bearer tokens, no cookies: no credentials mode). */
export function corsHeaders(config: ServerConfig, origin: string): Readonly<Record<string, string>> {
  if (!origin) return NO_HEADERS;
  if (config.allowedOrigins.length === 0) return { 'Access-Control-Allow-Origin': '*', 'Access-Control-Expose-Headers': 'ETag' };
  if (!config.allowedOrigins.includes(origin)) return { Vary: 'Origin' };
  return { 'Access-Control-Allow-Origin': origin, 'Access-Control-Expose-Headers': 'ETag', Vary: 'Origin' };
}

export function writeReply(res: HttpResponse, reply: Reply, extraHeaders: Readonly<Record<string, string>> = NO_HEADERS): void {
  res.writeStatus(statusLine(reply.status));
  // The reply's own headers win over the extra (CORS) ones of the same name.
  for (const k in extraHeaders) if (reply.headers?.[k] === undefined) res.writeHeader(k, extraHeaders[k]!);
  for (const k in reply.headers) res.writeHeader(k, reply.headers[k]!);
  if (reply.status === 304 || reply.status === 204) {
    res.endWithoutBody();
    return;
  }
  if (reply.body === undefined) {
    res.end();
    return;
  }
  const isRaw = typeof reply.body === 'string' || Buffer.isBuffer(reply.body);
  res.writeHeader('Content-Type', reply.contentType ?? (isRaw ? 'text/plain; charset=utf-8' : 'application/json'));
  res.end(isRaw ? (reply.body as string | Buffer) : JSON.stringify(reply.body));
}

export const errorReply = (err: ApiError, headers?: Record<string, string>): Reply => ({
  status: err.status,
  body: err.toBody(),
  ...(headers && { headers }),
});

/** Reads the body up to `limit` bytes; rejects with 413 beyond it (an aborted request never settles). */
function readBody(res: HttpResponse, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    res.onData((chunk, isLast) => {
      if (done) return;
      size += chunk.byteLength;
      if (size > limit) {
        done = true;
        reject(new ApiError(413, 'payload_too_large', `request body larger than ${limit} bytes`));
        return;
      }
      // uWS reuses the chunk's memory after this callback: copy it (once: a body in one chunk,
      // the usual case, is not concatenated again).
      const copy = Buffer.from(new Uint8Array(chunk));
      if (isLast) {
        done = true;
        resolve(chunks.length === 0 ? copy : Buffer.concat([...chunks, copy], size));
      } else chunks.push(copy);
    });
  });
}

export function parseJson(body: Buffer): unknown {
  if (body.length === 0) throw badRequest('request body must be JSON');
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch {
    throw badRequest('request body is not valid JSON');
  }
}

export interface RouteOptions {
  params?: number;
  body?: boolean;
}

export type RouteHandler = (info: RequestInfo, body: Buffer | undefined) => Promise<Reply> | Reply;

/** Wraps a handler with the uWS rules above, error mapping, CORS and metrics. */
export function route(ctx: HttpContext, options: RouteOptions, handler: RouteHandler) {
  const { config, log, metrics } = ctx;
  return (res: HttpResponse, req: HttpRequest): void => {
    const info = readRequest(res, req, options.params ?? 0, config.trustProxy);
    const state = { aborted: false };
    res.onAborted(() => {
      state.aborted = true;
    });
    metrics.httpRequests++;
    const startedAt = performance.now();
    const cors = corsHeaders(config, info.origin);
    const finish = (reply: Reply) => {
      // One line per request at debug: method, path (never the query: it may hold a token), status, time.
      if (log.isLevelEnabled('debug')) {
        const ms = Math.round((performance.now() - startedAt) * 1000) / 1000;
        log.debug({ method: info.method.toUpperCase(), path: info.url, status: state.aborted ? 0 : reply.status, ms, ...(state.aborted && { aborted: true }) }, 'http request');
      }
      if (state.aborted) return;
      if (reply.status >= 400) metrics.httpErrors++;
      res.cork(() => {
        const close = reply.status === 413;
        if (close) {
          // Stop reading an oversized upload: answer and close the connection.
          res.writeStatus(statusLine(413));
          for (const [k, v] of Object.entries({ ...cors, 'Content-Type': 'application/json' })) res.writeHeader(k, v);
          res.end(JSON.stringify(reply.body), true);
          return;
        }
        writeReply(res, reply, cors);
      });
    };
    const fail = (err: unknown) => {
      if (err instanceof ApiError) {
        finish(errorReply(err, err.status === 401 ? { 'WWW-Authenticate': 'Bearer' } : undefined));
      } else {
        log.error({ err, method: info.method, url: redactUrl(info.url) }, 'request failed');
        finish(errorReply(new ApiError(500, 'internal', 'internal error')));
      }
    };
    const run = async () => {
      let body: Buffer | undefined;
      if (options.body) {
        const declared = Number(info.contentLength);
        if (info.contentLength && Number.isFinite(declared) && declared > config.limits.maxBodyBytes) {
          throw new ApiError(413, 'payload_too_large', `request body larger than ${config.limits.maxBodyBytes} bytes`);
        }
        body = await readBody(res, config.limits.maxBodyBytes);
      }
      return handler(info, body);
    };
    run().then(finish, fail);
  };
}

/** `Authorization: Bearer <jwt>` → Principal, or 401. */
export async function authenticate(ctx: HttpContext, info: RequestInfo): Promise<Principal> {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(info.authorization);
  if (!m) {
    ctx.metrics.authFailures++;
    throw unauthorized('missing Authorization: Bearer <token>');
  }
  try {
    return await ctx.verifier.verify(m[1]!);
  } catch (err) {
    ctx.metrics.authFailures++;
    ctx.log.warn({ remote: info.remote(), url: redactUrl(info.url), reason: (err as Error).message }, 'auth failure');
    throw err;
  }
}
