/**
 * The HTTP API routes: producers create jobs and post events, browsers poll jobs, list them and
 * retry, operators read /healthz and /metrics. Bodies and queries are checked by the protocol's
 * validators (protocol/validate.ts); the uWS request handling is uws-http.ts's.
 *
 * `GET /v1/jobs` lists what the token may read (auth.ts `listingScope`): a tag it is granted, the
 * union of its tags, or everything for `*`; id and prefix grants are checked job by job within the
 * listing's scan budget (core/job-list.ts). Summaries, newest first, with an opaque keyset cursor.
 */
import type { TemplatedApp } from 'uWebSockets.js';
import {
  ApiError,
  badRequest,
  forbidden,
  JOB_ID_PATTERN,
  notFound,
  parseCancelRequest,
  parseCreateJobRequest,
  parseEventsBody,
  parseListJobsQuery,
  parseRetryRequest,
  summaryOf,
} from '../../protocol/index.js';
import { decodeCursor, encodeCursor, type ListCursor } from '../core/job-list.js';
import type { JobService } from '../core/job-service.js';
import { allowed, canCancel, canRead, canRetry, canWrite, coversJob, creationPrefix, listingScope } from './auth.js';
import { authenticate, parseJson, route, statusLine, type HttpContext, type RequestInfo } from './uws-http.js';

function jobIdParam(info: RequestInfo): string {
  const id = info.params[0]!;
  if (!JOB_ID_PATTERN.test(id)) throw notFound(`job ${id} not found`);
  return id;
}

/** Registers the /v1 API, /healthz and /metrics. */
export function registerApi(app: TemplatedApp, ctx: HttpContext, service: JobService, engineNative: boolean): void {
  const { metrics } = ctx;
  /** For tokens with `tag:` grants: the job, whose tags decide. */
  const load = async (id: string) => (await service.get(id))?.job;

  app.post(
    '/v1/jobs',
    route(ctx, { body: true }, async (info, body) => {
      const principal = await authenticate(ctx, info);
      if (!principal.scopes.has('progress:write')) throw forbidden('creating jobs needs the progress:write scope');
      const req = parseCreateJobRequest(parseJson(body!));
      if (req.webhook !== undefined && ctx.config.webhookSecret === undefined && !ctx.config.webhookUnsigned) {
        // Secure by default: a webhook the receiver cannot verify is not sent at all.
        throw new ApiError(
          400,
          'webhook_secret_required',
          'this server has no webhook signing secret: set PT_WEBHOOK_SECRET=whsec_<base64 of 24-64 random bytes> on the server (PT_WEBHOOK_UNSIGNED=1 sends unsigned webhooks, for local experiments only), or create the job without "webhook"',
        );
      }
      if (req.source) {
        // Polling adapters: reject a bad source before the job exists (never echoes header values).
        const problem = ctx.validateSource ? ctx.validateSource(req.source, req.steps) : 'polling sources are not enabled on this server';
        if (problem) throw badRequest(problem);
      }
      // A `tag:` grant covers a new job that carries the tag.
      const taggedByGrant = req.tags !== undefined && coversJob(principal, { id: '', tags: req.tags });
      let idPrefix: string | undefined;
      if (req.id !== undefined) {
        if (!coversJob(principal, req.id) && !taggedByGrant) throw forbidden(`the token's jobs claim does not cover job ${req.id}`);
      } else {
        idPrefix = creationPrefix(principal) ?? (taggedByGrant ? '' : undefined);
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
      if (!(await allowed(principal, canWrite, id, load))) throw forbidden(`posting events to job ${id} needs progress:write and a jobs grant`);
      const result = await service.applyEvents(id, parseEventsBody(parseJson(body!)));
      metrics.eventsAccepted += result.applied;
      return { status: 202, body: { seq: result.seq } };
    }),
  );

  app.get(
    '/v1/jobs',
    route(ctx, {}, async (info) => {
      const principal = await authenticate(ctx, info);
      const query = parseListJobsQuery(new URLSearchParams(info.query));
      const scope = listingScope(principal, query.tag);
      if (!scope) {
        throw forbidden(
          query.tag !== undefined
            ? `listing tag ${query.tag} needs progress:read and a jobs grant tag:${query.tag} or *`
            : 'listing jobs needs progress:read (or progress:write) and a jobs grant',
        );
      }
      let before: ListCursor | undefined;
      if (query.cursor !== undefined) {
        before = decodeCursor(query.cursor);
        if (!before) throw badRequest('cursor must be the nextCursor of a previous page');
      }
      const { jobs, next } = await service.list({
        limit: query.limit,
        ...(scope.tags && { tags: scope.tags }),
        ...(scope.where && { where: scope.where }),
        ...(query.status && { statuses: query.status }),
        ...(query.kind !== undefined && { kind: query.kind }),
        ...(before && { before }),
      });
      const body = `{"jobs":[${jobs.map((job) => JSON.stringify(summaryOf(job))).join(',')}],"nextCursor":${next ? JSON.stringify(encodeCursor(next)) : 'null'}}`;
      return { status: 200, body, contentType: 'application/json', headers: { 'Cache-Control': 'no-store' } };
    }),
  );

  app.get(
    '/v1/jobs/:id',
    route(ctx, { params: 1 }, async (info) => {
      const principal = await authenticate(ctx, info);
      const id = jobIdParam(info);
      if (!(await allowed(principal, canRead, id, load))) throw forbidden(`reading job ${id} needs progress:read and a jobs grant`);
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
      if (!(await allowed(principal, canRetry, id, load))) throw forbidden(`retrying job ${id} needs progress:retry and a jobs grant`);
      const { step } = parseRetryRequest(body && body.length > 0 ? parseJson(body) : undefined);
      const notice = await service.retry(id, step);
      return { status: 202, body: { seq: notice.seq, step: notice.step } };
    }),
  );

  app.post(
    '/v1/jobs/:id/cancel',
    route(ctx, { params: 1, body: true }, async (info, body) => {
      const principal = await authenticate(ctx, info);
      const id = jobIdParam(info);
      if (!(await allowed(principal, canCancel, id, load))) throw forbidden(`canceling job ${id} needs progress:cancel and a jobs grant`);
      const { reason } = parseCancelRequest(body && body.length > 0 ? parseJson(body) : undefined);
      const notice = await service.cancel(id, { ...(principal.subject !== undefined && { by: principal.subject }), ...(reason !== undefined && { reason }) });
      return { status: 202, body: { seq: notice.seq } };
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
