/**
 * The SDK's one way to make an HTTP request: JSON in and out, a fresh bearer token and a timeout
 * per attempt, and retries of transient failures. Backoff, `Retry-After` and sleep are
 * protocol/timing.ts's (one copy for every client of the protocol); the numbers are
 * retry-policy.ts's. Retrying is only correct for requests that are safe to repeat: the Producer
 * makes its writes so with client-generated job ids and eventIds.
 */
import { backoffDelay, parseRetryAfter, sleep, type ErrorBody } from '../protocol/index.js';
import { ProducerError } from './errors.js';
import { MAX_RETRY_AFTER_MS, type RetryPolicy } from './retry-policy.js';

/** What every HTTP call needs; built once by the Producer. */
export interface HttpContext {
  /** Base URL without a trailing slash, e.g. `https://progress.example.com`. */
  baseUrl: string;
  /** Returns the bearer token for the next request. */
  token: () => Promise<string>;
  /** Whether `token()` can return a fresh token (then a 401 is retried once). */
  refreshableToken: boolean;
  retry: RetryPolicy;
  timeoutMs: number;
  fetch: typeof fetch;
  /** Aborted when the producer closes. */
  signal: AbortSignal;
  /** Called before each retry sleep (logging, metrics). */
  onRetryAttempt?: (info: RetryAttempt) => void;
}

export interface RetryAttempt {
  method: string;
  path: string;
  /** 1 for the first retry. */
  attempt: number;
  delayMs: number;
  error: ProducerError;
}

export interface HttpResult<T> {
  status: number;
  body: T;
  /** How many attempts it took (1 = no retry). */
  attempts: number;
}

const STATUS_CODES: Record<number, string> = {
  400: 'bad_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  409: 'conflict',
  413: 'payload_too_large',
  429: 'rate_limited',
  500: 'internal',
};

const RETRYABLE_STATUS = new Set([408, 425, 429, 500, 502, 503, 504]);

/**
 * One JSON request with retries. Transient failures (network errors, timeouts, 408/425/429/5xx)
 * are retried with exponential backoff, honouring `Retry-After`. Only call this for requests that
 * are safe to repeat: the Producer makes them so with client-generated ids and eventIds. `jobId`,
 * for a request about one job, is set on every ProducerError it throws.
 */
export async function requestJson<T>(
  ctx: HttpContext,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
  jobId?: string,
): Promise<HttpResult<T>> {
  const tag: ErrorTag = jobId === undefined ? {} : { jobId };
  const started = Date.now();
  let refreshedFor401 = false;
  for (let attempt = 0; ; attempt++) {
    let error: ProducerError;
    let retryAfterMs: number | undefined;
    try {
      const res = await send(ctx, method, path, body, tag);
      if (res.ok) return { status: res.status, body: (await readJson(res, tag)) as T, attempts: attempt + 1 };
      error = await toError(res, tag);
      retryAfterMs = parseRetryAfter(res.headers.get('retry-after'), Date.now(), MAX_RETRY_AFTER_MS);
      if (res.status === 401 && ctx.refreshableToken && !refreshedFor401) {
        // The token may have expired in flight: one immediate retry with a fresh one.
        refreshedFor401 = true;
        attempt--;
        continue;
      }
    } catch (err) {
      if (err instanceof ProducerError) error = err;
      else throw err;
    }
    // The budget: `retries` retries or `maxRetryTime` ms since the first attempt, whichever ends first.
    const left = ctx.retry.maxRetryTime - (Date.now() - started);
    if (!error.retryable || attempt >= ctx.retry.retries || !(left > 0)) throw error;
    const wanted =
      retryAfterMs ?? backoffDelay(Math.min(attempt, 30), { baseMs: ctx.retry.minDelayMs, maxMs: ctx.retry.maxDelayMs });
    const delayMs = Math.max(0, Math.min(wanted, left)); // the last retry is made when the budget ends
    ctx.onRetryAttempt?.({ method, path, attempt: attempt + 1, delayMs, error });
    try {
      await sleep(delayMs, ctx.signal);
    } catch {
      throw new ProducerError('aborted', `${method} ${path} aborted: the producer was closed`, { cause: error, ...tag });
    }
  }
}

/** What every error of one request carries besides its own fields (the job it is about). */
type ErrorTag = { jobId?: string };

async function send(ctx: HttpContext, method: string, path: string, body: unknown, tag: ErrorTag): Promise<Response> {
  if (ctx.signal.aborted) throw new ProducerError('aborted', `${method} ${path} aborted: the producer was closed`, tag);
  const timeout = AbortSignal.timeout(ctx.timeoutMs);
  const headers: Record<string, string> = {
    accept: 'application/json',
    authorization: `Bearer ${await ctx.token()}`,
  };
  if (body !== undefined) headers['content-type'] = 'application/json';
  try {
    return await ctx.fetch(ctx.baseUrl + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.any([timeout, ctx.signal]),
    });
  } catch (err) {
    if (ctx.signal.aborted) {
      throw new ProducerError('aborted', `${method} ${path} aborted: the producer was closed`, { cause: err, ...tag });
    }
    if (timeout.aborted) {
      throw new ProducerError('timeout', `${method} ${path}: no response within ${ctx.timeoutMs} ms`, {
        retryable: true,
        cause: err,
        ...tag,
      });
    }
    const reason = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new ProducerError(
      'network_error',
      `${method} ${path}: ${reason?.code ?? reason?.message ?? (err as Error).message}`,
      { retryable: true, cause: err, ...tag },
    );
  }
}

async function readJson(res: Response, tag: ErrorTag): Promise<unknown> {
  const text = await res.text();
  if (text === '') return undefined;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ProducerError('bad_response', `Expected JSON from the server (HTTP ${res.status})`, {
      status: res.status,
      cause: err,
      ...tag,
    });
  }
}

/** Turns a non-2xx response into a ProducerError carrying the server's `{error:{code,message}}`. */
async function toError(res: Response, tag: ErrorTag): Promise<ProducerError> {
  const retryable = RETRYABLE_STATUS.has(res.status);
  let parsed: unknown;
  try {
    parsed = JSON.parse(await res.text());
  } catch {
    parsed = undefined;
  }
  const e = (parsed as Partial<ErrorBody> | undefined)?.error;
  if (e && typeof e.code === 'string') {
    return new ProducerError(e.code, String(e.message ?? e.code), { status: res.status, retryable, ...tag });
  }
  // No protocol body (a proxy answered, say): name the code after the status where we can.
  const code = STATUS_CODES[res.status] ?? 'bad_response';
  return new ProducerError(code, `HTTP ${res.status} ${res.statusText}`.trim(), { status: res.status, retryable, ...tag });
}
