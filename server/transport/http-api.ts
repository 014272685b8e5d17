/**
 * The HTTP API on uWebSockets.js: producers create jobs and post events, browsers poll jobs.
 *
 * uWS specifics handled here once, for every route:
 * - `HttpRequest` is only valid until the handler returns: everything needed is copied first;
 * - a response may be aborted by the client at any time: `onAborted` is always registered
 *   and nothing is written after it fired;
 * - writes after an `await` are wrapped in `cork` (one syscall, and required by uWS);
 * - request bodies stream in through `onData`: the size limit is enforced while reading.
 *
 * Every error is `{"error":{"code","message"}}` with the matching status.
 */
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { canRead, canRetry, canWrite, coversJob, creationPrefix, type Principal, type Verifier } from './auth.js';
import type { ServerConfig } from '../app/config.js';
import { ApiError, badRequest, forbidden, JOB_ID_PATTERN, LIMITS, notFound, parseCreateJobRequest, parseJobEvent, unauthorized, type JobEvent } from '../../protocol/index.js';
import type { JobService } from '../core/job-service.js';
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
  remote: string;
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
  if (trustProxy) {
    const forwarded = req.getHeader('x-forwarded-for');
    if (forwarded) return forwarded.split(',')[0]!.trim();
  }
  try {
    return Buffer.from(res.getRemoteAddressAsText()).toString();
  } catch {
    return 'unknown'; // the ws-based fallback engine does not implement it
  }
}

function readRequest(res: HttpResponse, req: HttpRequest, paramCount: number, trustProxy: boolean): RequestInfo {
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
    remote: remoteAddress(res, req, trustProxy),
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

function decodeParam(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

/** CORS headers for an allowed origin (bearer tokens, no cookies: no credentials mode). */
export function corsHeaders(config: ServerConfig, origin: string): Record<string, string> {
  if (!origin) return {};
  if (config.allowedOrigins.length === 0) return { 'Access-Control-Allow-Origin': '*', 'Access-Control-Expose-Headers': 'ETag' };
  if (!config.allowedOrigins.includes(origin)) return { Vary: 'Origin' };
  return { 'Access-Control-Allow-Origin': origin, 'Access-Control-Expose-Headers': 'ETag', Vary: 'Origin' };
}

export function writeReply(res: HttpResponse, reply: Reply, extraHeaders: Record<string, string> = {}): void {
  res.writeStatus(statusLine(reply.status));
  const headers = { ...extraHeaders, ...reply.headers };
  for (const [k, v] of Object.entries(headers)) res.writeHeader(k, v);
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

/** Reads the body up to `limit` bytes; rejects with 413 beyond it, and never if aborted. */
function readBody(res: HttpResponse, limit: number, state: { aborted: boolean }): Promise<Buffer> {
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
      // uWS reuses the chunk's memory after this callback: copy it.
      chunks.push(Buffer.from(new Uint8Array(chunk)));
      if (isLast) {
        done = true;
        resolve(Buffer.concat(chunks, size));
      }
    });
    void state;
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
    const cors = corsHeaders(config, info.origin);
    const finish = (reply: Reply) => {
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
        body = await readBody(res, config.limits.maxBodyBytes, state);
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
    ctx.log.warn({ remote: info.remote, url: redactUrl(info.url), reason: (err as Error).message }, 'auth failure');
    throw err;
  }
}

function jobIdParam(info: RequestInfo): string {
  const id = info.params[0]!;
  if (!JOB_ID_PATTERN.test(id)) throw notFound(`job ${id} not found`);
  return id;
}

/** Registers the /v1 API, /healthz and /metrics. */
export function registerApi(app: TemplatedApp, ctx: HttpContext, service: JobService, engineNative: boolean): void {
  const { metrics } = ctx;

  app.post(
    '/v1/jobs',
    route(ctx, { body: true }, async (info, body) => {
      const principal = await authenticate(ctx, info);
      if (!principal.scopes.has('progress:write')) throw forbidden('creating jobs needs the progress:write scope');
      const req = parseCreateJobRequest(parseJson(body!));
      if (req.source) {
        // Polling adapters: reject a bad source before the job exists (never echoes header values).
        const problem = ctx.validateSource ? ctx.validateSource(req.source, req.steps) : 'polling sources are not enabled on this server';
        if (problem) throw badRequest(problem);
      }
      let idPrefix: string | undefined;
      if (req.id !== undefined) {
        if (!coversJob(principal, req.id)) throw forbidden(`the token's jobs claim does not cover job ${req.id}`);
      } else {
        idPrefix = creationPrefix(principal);
        if (idPrefix === undefined) {
          throw forbidden('give an "id" covered by the token\'s jobs claim (the claim names no single prefix to generate one under)');
        }
      }
      const view = await service.create(req, idPrefix !== undefined ? { idPrefix } : {});
      return { status: 201, body: view.json, contentType: 'application/json', headers: { ETag: view.etag, Location: `/v1/jobs/${view.job.id}` } };
    }),
  );

  app.post(
    '/v1/jobs/:id/events',
    route(ctx, { params: 1, body: true }, async (info, body) => {
      const principal = await authenticate(ctx, info);
      const id = jobIdParam(info);
      if (!canWrite(principal, id)) throw forbidden(`posting events to job ${id} needs progress:write and a jobs grant`);
      const parsed = parseJson(body!);
      let events: JobEvent[];
      if (Array.isArray(parsed)) {
        if (parsed.length > LIMITS.maxEventsPerRequest) throw badRequest(`at most ${LIMITS.maxEventsPerRequest} events per request`);
        events = parsed.map((e, i) => parseJobEvent(e, `events[${i}]`));
      } else {
        events = [parseJobEvent(parsed)];
      }
      const result = await service.applyEvents(id, events);
      metrics.eventsAccepted += result.applied;
      return { status: 202, body: { seq: result.seq } };
    }),
  );

  app.get(
    '/v1/jobs/:id',
    route(ctx, { params: 1 }, async (info) => {
      const principal = await authenticate(ctx, info);
      const id = jobIdParam(info);
      if (!canRead(principal, id)) throw forbidden(`reading job ${id} needs progress:read and a jobs grant`);
      const view = await service.get(id);
      if (!view) throw notFound(`job ${id} not found`);
      const headers = { ETag: view.etag, 'Cache-Control': 'no-cache' };
      const tags = info.ifNoneMatch.split(',').map((t) => t.trim().replace(/^W\//, ''));
      if (tags.includes(view.etag) || tags.includes('*')) return { status: 304, headers };
      return { status: 200, body: view.json, contentType: 'application/json', headers };
    }),
  );

  app.post(
    '/v1/jobs/:id/retry',
    route(ctx, { params: 1, body: true }, async (info, body) => {
      const principal = await authenticate(ctx, info);
      const id = jobIdParam(info);
      if (!canRetry(principal, id)) throw forbidden(`retrying job ${id} needs progress:retry and a jobs grant`);
      let step: string | undefined;
      if (body && body.length > 0) {
        const parsed = parseJson(body);
        if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw badRequest('body must be {"step"?}');
        const s = (parsed as { step?: unknown }).step;
        if (s !== undefined && typeof s !== 'string') throw badRequest('step must be a string');
        step = s;
      }
      const notice = await service.retry(id, step);
      return { status: 202, body: { seq: notice.seq, step: notice.step } };
    }),
  );

  app.get(
    '/healthz',
    route(ctx, {}, () => ({
      status: 200,
      body: { status: 'ok', engine: engineNative ? 'uws-native' : 'uws-fallback', uptimeSeconds: Math.round(process.uptime()) },
      headers: { 'Cache-Control': 'no-store' },
    })),
  );

  app.get(
    '/metrics',
    route(ctx, {}, async () => ({
      status: 200,
      body: metrics.render(await service.countByStatus(), { engineNative }),
      contentType: 'text/plain; version=0.0.4; charset=utf-8',
    })),
  );

  // CORS preflight for the browser's cross-origin polls and retries.
  app.options('/*', (res, req) => {
    const origin = req.getHeader('origin');
    const allowed = ctx.config.allowedOrigins.length === 0 || ctx.config.allowedOrigins.includes(origin);
    res.cork(() => {
      res.writeStatus(statusLine(204));
      if (origin && allowed) {
        res.writeHeader('Access-Control-Allow-Origin', ctx.config.allowedOrigins.length === 0 ? '*' : origin);
        res.writeHeader('Access-Control-Allow-Methods', 'GET, POST, OPTIONS');
        res.writeHeader('Access-Control-Allow-Headers', 'Authorization, Content-Type, If-None-Match');
        res.writeHeader('Access-Control-Max-Age', '600');
      }
      res.writeHeader('Vary', 'Origin');
      res.endWithoutBody();
    });
  });
}

/** The catch-all 404 (registered last). */
export function registerNotFound(app: TemplatedApp, ctx: HttpContext): void {
  app.any(
    '/*',
    route(ctx, {}, (info) => {
      throw notFound(`no route for ${info.method.toUpperCase()} ${info.url}`);
    }),
  );
}
