/**
 * Runtime validation of every inbound body and message, shared by the server (which refuses with
 * these errors), the SDKs and tests. Each parser takes untrusted JSON (already parsed) and returns
 * a typed value or throws ApiError 400 naming the first problem, with the field's path. Shape
 * only: whether a change is allowed in the job's current state is the server's state machine.
 * Browser-safe: no Node imports.
 */
import { ApiError, badRequest } from './errors.js';
import { EVENT_TYPES, type CancelJobRequest, type CreateJobRequest, type JobEvent, type ListJobsQuery, type RetryRequest } from './http-api.js';
import { JOB_STATUSES, type JobStatus } from './job.js';
import { FIELD_LIMITS, JOB_ID_PATTERN, LIMITS, LISTING, STEP_ID_PATTERN, TAG_PATTERN } from './limits.js';
import type { ClientMessage } from './messages.js';

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

const utf8 = new TextEncoder();
/** UTF-8 size of a value's JSON (TextEncoder, not Buffer: this module runs in browsers too). */
const jsonBytes = (v: unknown): number => utf8.encode(JSON.stringify(v) ?? '').length;

function optionalString(obj: Record<string, unknown>, key: string, max: number, where: string): string | undefined {
  const v = obj[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw badRequest(`${where}.${key} must be a string`);
  if (v.length > max) throw badRequest(`${where}.${key} is longer than ${max} characters`);
  return v;
}

function complexityOf(v: unknown, where: string): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || v > FIELD_LIMITS.maxComplexity) {
    throw badRequest(`${where} must be a number > 0 and <= 1e6`);
  }
  return v;
}

/** Checks a `POST /v1/jobs` body; throws ApiError 400 with the first problem found. */
export function parseCreateJobRequest(body: unknown): CreateJobRequest {
  if (!isObject(body)) throw badRequest('body must be a JSON object');
  const req: CreateJobRequest = { kind: '', steps: [] };
  if (body.id !== undefined) {
    if (typeof body.id !== 'string' || !JOB_ID_PATTERN.test(body.id)) {
      throw badRequest('id must match ' + JOB_ID_PATTERN.source);
    }
    req.id = body.id;
  }
  if (typeof body.kind !== 'string' || body.kind.length === 0 || body.kind.length > FIELD_LIMITS.kindChars) {
    throw badRequest(`kind must be a non-empty string of at most ${FIELD_LIMITS.kindChars} characters`);
  }
  req.kind = body.kind;
  if (!Array.isArray(body.steps) || body.steps.length === 0) {
    throw badRequest('steps must be a non-empty array');
  }
  if (body.steps.length > LIMITS.maxSteps) throw badRequest(`at most ${LIMITS.maxSteps} steps`);
  const seen = new Set<string>();
  for (const [i, raw] of body.steps.entries()) {
    const where = `steps[${i}]`;
    if (!isObject(raw)) throw badRequest(`${where} must be an object`);
    if (typeof raw.id !== 'string' || !STEP_ID_PATTERN.test(raw.id)) {
      throw badRequest(`${where}.id must match ${STEP_ID_PATTERN.source}`);
    }
    if (seen.has(raw.id)) throw badRequest(`${where}.id "${raw.id}" is repeated`);
    seen.add(raw.id);
    const label = optionalString(raw, 'label', FIELD_LIMITS.stepLabelChars, where);
    const complexity = complexityOf(raw.complexity, `${where}.complexity`);
    req.steps.push({ id: raw.id, ...(label !== undefined && { label }), ...(complexity !== undefined && { complexity }) });
  }
  const complexity = complexityOf(body.complexity, 'complexity');
  if (complexity !== undefined) req.complexity = complexity;
  if (body.meta !== undefined) {
    if (!isObject(body.meta)) throw badRequest('meta must be an object');
    if (jsonBytes(body.meta) > FIELD_LIMITS.metaBytes) throw badRequest(`meta is larger than ${FIELD_LIMITS.metaBytes} bytes`);
    req.meta = body.meta;
  }
  if (body.webhook !== undefined) {
    if (typeof body.webhook !== 'string' || body.webhook.length > FIELD_LIMITS.webhookUrlChars) throw badRequest('webhook must be a URL string');
    let url: URL;
    try {
      url = new URL(body.webhook);
    } catch {
      throw badRequest('webhook must be an absolute http(s) URL');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw badRequest('webhook must be an http(s) URL');
    req.webhook = body.webhook;
  }
  if (body.tags !== undefined) {
    if (!Array.isArray(body.tags)) throw badRequest('tags must be an array of strings');
    if (body.tags.length > FIELD_LIMITS.maxTags) throw badRequest(`at most ${FIELD_LIMITS.maxTags} tags`);
    for (const [i, tag] of body.tags.entries()) {
      if (typeof tag !== 'string' || !TAG_PATTERN.test(tag)) {
        throw badRequest(`tags[${i}] must be 1-${FIELD_LIMITS.tagChars} characters of A-Z a-z 0-9 : . _ -`);
      }
    }
    req.tags = [...new Set(body.tags as string[])];
  }
  if (body.source !== undefined) {
    if (!isObject(body.source) || typeof body.source.type !== 'string') {
      throw badRequest('source must be an object with a string "type"');
    }
    if (jsonBytes(body.source) > FIELD_LIMITS.sourceBytes) throw badRequest(`source is larger than ${FIELD_LIMITS.sourceBytes} bytes`);
    req.source = body.source as CreateJobRequest['source'];
  }
  if (body.stallAfterMs !== undefined) {
    const v = body.stallAfterMs;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < FIELD_LIMITS.minStallAfterMs || v > FIELD_LIMITS.maxStallAfterMs) {
      throw badRequest(`stallAfterMs must be an integer number of ms between ${FIELD_LIMITS.minStallAfterMs} (1 s) and ${FIELD_LIMITS.maxStallAfterMs} (7 d)`);
    }
    req.stallAfterMs = v;
  }
  return req;
}

/** Checks one event's shape; throws ApiError 400 (`bad_request` / `progress_out_of_range`). */
export function parseJobEvent(raw: unknown, where = 'event'): JobEvent {
  if (!isObject(raw)) throw badRequest(`${where} must be an object`);
  if (typeof raw.type !== 'string' || !(EVENT_TYPES as readonly string[]).includes(raw.type)) {
    throw badRequest(`${where}.type must be one of ${EVENT_TYPES.join(', ')}`);
  }
  const event: JobEvent = { type: raw.type as JobEvent['type'] };
  if (raw.step !== undefined) {
    if (typeof raw.step !== 'string' || raw.step.length === 0 || raw.step.length > FIELD_LIMITS.stepIdChars) {
      throw badRequest(`${where}.step must be a step id`);
    }
    event.step = raw.step;
  }
  if (raw.progress !== undefined) {
    if (typeof raw.progress !== 'number' || !Number.isFinite(raw.progress) || raw.progress < 0 || raw.progress > 1) {
      throw new ApiError(400, 'progress_out_of_range', `${where}.progress must be a number in 0..1`);
    }
    event.progress = raw.progress;
  }
  const message = optionalString(raw, 'message', FIELD_LIMITS.messageChars, where);
  if (message !== undefined) event.message = message;
  if (raw.error !== undefined) {
    const e = raw.error;
    if (!isObject(e) || typeof e.code !== 'string' || typeof e.message !== 'string') {
      throw badRequest(`${where}.error must be {"code","message","retryable"?}`);
    }
    if (e.code.length > FIELD_LIMITS.errorCodeChars || e.message.length > FIELD_LIMITS.errorMessageChars) throw badRequest(`${where}.error is too long`);
    if (e.retryable !== undefined && typeof e.retryable !== 'boolean') {
      throw badRequest(`${where}.error.retryable must be a boolean`);
    }
    event.error = { code: e.code, message: e.message, ...(e.retryable !== undefined && { retryable: e.retryable }) };
  }
  if (raw.status !== undefined) {
    if (raw.status !== 'completed' && raw.status !== 'failed' && raw.status !== 'canceled') {
      throw badRequest(`${where}.status must be completed, failed or canceled`);
    }
    event.status = raw.status;
  }
  if (raw.result !== undefined) {
    if (jsonBytes(raw.result) > FIELD_LIMITS.resultBytes) throw badRequest(`${where}.result is larger than ${FIELD_LIMITS.resultBytes} bytes`);
    event.result = raw.result;
  }
  if (raw.position !== undefined) {
    const v = raw.position;
    if (event.type !== 'queued') throw badRequest(`${where}.position is only for a "queued" event`);
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > FIELD_LIMITS.maxQueuePosition) {
      throw badRequest(`${where}.position must be an integer from 0 to ${FIELD_LIMITS.maxQueuePosition} (the number of jobs ahead)`);
    }
    event.position = v;
  }
  if (raw.eventId !== undefined) {
    if (typeof raw.eventId !== 'string' || raw.eventId.length === 0 || raw.eventId.length > FIELD_LIMITS.eventIdChars) {
      throw badRequest(`${where}.eventId must be a non-empty string of at most ${FIELD_LIMITS.eventIdChars} characters`);
    }
    event.eventId = raw.eventId;
  }
  return event;
}

/**
 * The body of `POST /v1/jobs/{id}/events`: one event or an array of at most
 * LIMITS.maxEventsPerRequest (an array's problems name their index: `events[3].type …`).
 */
export function parseEventsBody(body: unknown): JobEvent[] {
  if (!Array.isArray(body)) return [parseJobEvent(body)];
  if (body.length > LIMITS.maxEventsPerRequest) throw badRequest(`at most ${LIMITS.maxEventsPerRequest} events per request`);
  return body.map((e, i) => parseJobEvent(e, `events[${i}]`));
}

/** The body of `POST /v1/jobs/{id}/retry` (may be empty: `undefined`). */
export function parseRetryRequest(body: unknown): RetryRequest {
  if (body === undefined) return {};
  if (!isObject(body)) throw badRequest('body must be {"step"?}');
  if (body.step !== undefined && typeof body.step !== 'string') throw badRequest('step must be a string');
  return body.step !== undefined ? { step: body.step } : {};
}

/** The body of `POST /v1/jobs/{id}/cancel` (may be empty: `undefined`). */
export function parseCancelRequest(body: unknown): CancelJobRequest {
  if (body === undefined) return {};
  if (!isObject(body)) throw badRequest('body must be {"reason"?}');
  const reason = optionalString(body, 'reason', FIELD_LIMITS.reasonChars, 'body');
  return reason !== undefined ? { reason } : {};
}

/** A refused client message: the error to send back, and the job (or feed tag) it concerned when known. */
export class ClientMessageError extends ApiError {
  constructor(
    message: string,
    readonly jobId?: string,
    readonly tag?: string,
  ) {
    super(400, 'bad_request', message);
  }
}

const TAG_RULE = `1-${FIELD_LIMITS.tagChars} characters of A-Z a-z 0-9 : . _ -`;
const CURSOR_PATTERN = /^[A-Za-z0-9_-]+$/;

/** The one value of a query parameter; 400 naming it when repeated. */
function single(params: URLSearchParams, name: string): string | undefined {
  const values = params.getAll(name);
  if (values.length > 1) throw badRequest(`${name} is given more than once`);
  return values[0];
}

/**
 * The query of `GET /v1/jobs` (`?tag=&status=&kind=&limit=&cursor=`); throws ApiError 400 naming
 * the parameter. `status` is a comma list (or repeated); other parameters are ignored. The cursor
 * is opaque: only its alphabet and length are checked here, the server decodes it.
 */
export function parseListJobsQuery(params: URLSearchParams): ListJobsQuery {
  const query: ListJobsQuery = { limit: LISTING.defaultLimit };
  const tag = single(params, 'tag');
  if (tag !== undefined) {
    if (!TAG_PATTERN.test(tag)) throw badRequest(`tag must be ${TAG_RULE}`);
    query.tag = tag;
  }
  const statuses = params.getAll('status');
  if (statuses.length > 0) {
    const wanted = new Set<JobStatus>();
    for (const word of statuses.join(',').split(',')) {
      const status = word.trim();
      if (!(JOB_STATUSES as readonly string[]).includes(status)) {
        throw badRequest(`status must be a comma-separated list of ${JOB_STATUSES.join(', ')} (got "${status.slice(0, 32)}")`);
      }
      wanted.add(status as JobStatus);
    }
    query.status = [...wanted];
  }
  const kind = single(params, 'kind');
  if (kind !== undefined) {
    if (kind.length === 0 || kind.length > FIELD_LIMITS.kindChars) throw badRequest(`kind must be 1-${FIELD_LIMITS.kindChars} characters`);
    query.kind = kind;
  }
  const limit = single(params, 'limit');
  if (limit !== undefined) {
    const n = /^[0-9]{1,4}$/.test(limit) ? Number(limit) : NaN;
    if (!(n >= 1 && n <= LISTING.maxLimit)) throw badRequest(`limit must be an integer from 1 to ${LISTING.maxLimit}`);
    query.limit = n;
  }
  const cursor = single(params, 'cursor');
  if (cursor !== undefined && cursor !== '') {
    if (cursor.length > LISTING.cursorChars || !CURSOR_PATTERN.test(cursor)) throw badRequest('cursor must be the nextCursor of a previous page');
    query.cursor = cursor;
  }
  return query;
}

/** The query of `GET /v1/feed` (`?tag=`; `access_token` is the stream's, not checked here): the tag. */
export function parseFeedQuery(params: URLSearchParams): string {
  const tag = single(params, 'tag');
  if (tag === undefined) throw badRequest('tag is required (GET /v1/feed?tag=<tag>)');
  if (!TAG_PATTERN.test(tag)) throw badRequest(`tag must be ${TAG_RULE}`);
  return tag;
}

/** One WebSocket client message (already JSON-parsed); throws ClientMessageError. */
export function parseClientMessage(msg: unknown): ClientMessage {
  if (!isObject(msg)) throw new ClientMessageError('message must be a JSON object with a "type"');
  switch (msg.type) {
    case 'ping':
      return { type: 'ping' };
    case 'auth':
      if (typeof msg.token !== 'string' || msg.token.length === 0 || msg.token.length > LIMITS.maxTokenBytes) {
        throw new ClientMessageError(`auth needs a "token" (a JWT of at most ${LIMITS.maxTokenBytes} bytes)`);
      }
      return { type: 'auth', token: msg.token };
    case 'subscribe':
    case 'unsubscribe':
    case 'retry':
    case 'cancel': {
      const { type, jobId } = msg;
      if ((type === 'subscribe' || type === 'unsubscribe') && msg.tag !== undefined) {
        // A tag's feed instead of one job.
        const tag = msg.tag;
        if (typeof tag !== 'string' || !TAG_PATTERN.test(tag)) throw new ClientMessageError(`${type} "tag" must be ${TAG_RULE}`);
        if (jobId !== undefined) throw new ClientMessageError(`${type} takes either "jobId" or "tag", not both`, undefined, tag);
        return type === 'subscribe' ? { type, tag } : { type, tag };
      }
      if (typeof jobId !== 'string' || !JOB_ID_PATTERN.test(jobId)) throw new ClientMessageError(`${type} needs a valid "jobId"`);
      if (type === 'unsubscribe') return { type, jobId };
      if (type === 'cancel') {
        if (msg.reason === undefined) return { type, jobId };
        if (typeof msg.reason !== 'string' || msg.reason.length > FIELD_LIMITS.reasonChars) {
          throw new ClientMessageError(`"reason" must be a string of at most ${FIELD_LIMITS.reasonChars} characters`, jobId);
        }
        return { type, jobId, reason: msg.reason };
      }
      if (type === 'subscribe') {
        if (msg.since === undefined) return { type, jobId };
        if (typeof msg.since !== 'number' || !Number.isFinite(msg.since)) throw new ClientMessageError('"since" must be a number', jobId);
        return { type, jobId, since: msg.since };
      }
      if (msg.step === undefined) return { type, jobId };
      if (typeof msg.step !== 'string') throw new ClientMessageError('"step" must be a string', jobId);
      return { type, jobId, step: msg.step };
    }
    default:
      throw new ClientMessageError('unknown message type (expected subscribe, unsubscribe, retry, cancel, auth or ping)');
  }
}
