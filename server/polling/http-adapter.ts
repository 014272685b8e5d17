/**
 * The HTTP source: polls a job-status URL and maps its JSON with the job's `map`.
 *
 * Each request has a timeout and a response size cap, sends `If-None-Match` with the last `ETag`
 * (a 304 costs no parsing), and reports `Retry-After` from 429/503 so the scheduler waits as asked.
 * Header values are secrets: they are sent upstream only, never put in messages, logs or the API.
 * URLs in messages are reduced to origin + path (query strings often carry keys too).
 */
import { parseRetryAfter, type HttpJobSource, type Job, type JobStatus, type StepSpec } from '../../protocol/index.js';
import type { PollFailure, PollOutcome, PolledSource, SourceAdapter } from './adapter.js';
import { UpstreamBadResponse, mapResponse, validateSourceMap, type UpstreamView } from './field-map.js';
import { eventsFor } from './reconcile.js';

export interface HttpAdapterOptions {
  /** Per-request timeout (default 10 s). */
  timeoutMs?: number;
  /** Largest upstream body read (default 1 MiB); larger is `upstream_bad_response`. */
  maxResponseBytes?: number;
  /** Attempts for a `retryUrl` POST (default 3), with 250 ms, 1 s... between them. */
  retryAttempts?: number;
  /** Hosts (`host` or `host:port`) the server may poll; empty or absent = any. */
  allowedHosts?: readonly string[];
  /** Bounds any source's own interval settings must respect. */
  minIntervalFloorMs?: number;
  maxIntervalCeilingMs?: number;
}

export const HTTP_SOURCE_LIMITS = {
  maxHeaders: 32,
  maxHeaderBytes: 8 * 1024,
  maxUrlLength: 2048,
} as const;

/** Headers the client sets itself: a source may not override them. */
const RESERVED_HEADERS = new Set(['host', 'content-length', 'connection', 'transfer-encoding', 'keep-alive', 'upgrade', 'te', 'trailer', 'if-none-match']);

/** Origin + path of a URL, for messages: never the query (keys live there too). */
export function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return '(invalid url)';
  }
}

function checkUrl(value: unknown, field: string, allowedHosts: readonly string[] | undefined): string | null {
  if (typeof value !== 'string' || value === '') return `${field} must be an http(s) URL`;
  if (value.length > HTTP_SOURCE_LIMITS.maxUrlLength) return `${field} is longer than ${HTTP_SOURCE_LIMITS.maxUrlLength} characters`;
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    return `${field} is not a valid URL`;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return `${field} must use http or https`;
  if (u.username || u.password) return `${field} must not embed credentials; use source.headers`;
  if (allowedHosts && allowedHosts.length > 0 && !allowedHosts.includes(u.host) && !allowedHosts.includes(u.hostname)) {
    return `${field} host ${u.host} is not in the server's allowed polling hosts`;
  }
  return null;
}

export class HttpAdapter implements SourceAdapter<HttpJobSource> {
  readonly type = 'http';
  private readonly timeoutMs: number;
  private readonly maxBytes: number;

  constructor(private readonly opts: HttpAdapterOptions = {}) {
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.maxBytes = opts.maxResponseBytes ?? 1024 * 1024;
  }

  validate(source: unknown, steps: readonly StepSpec[]): string | null {
    const s = source as Record<string, unknown>;
    const known = ['type', 'url', 'method', 'headers', 'body', 'map', 'retryUrl', 'minIntervalMs', 'maxIntervalMs'];
    for (const key of Object.keys(s)) if (!known.includes(key)) return `source has an unknown field '${key}'`;
    const badUrl = checkUrl(s.url, 'source.url', this.opts.allowedHosts);
    if (badUrl) return badUrl;
    if (s.method !== undefined && s.method !== 'GET' && s.method !== 'POST') return 'source.method must be "GET" or "POST"';
    if (s.body !== undefined && s.method !== 'POST') return 'source.body needs "method": "POST"';
    if (s.headers !== undefined) {
      if (s.headers === null || typeof s.headers !== 'object' || Array.isArray(s.headers)) return 'source.headers must be an object of strings';
      const entries = Object.entries(s.headers as Record<string, unknown>);
      if (entries.length > HTTP_SOURCE_LIMITS.maxHeaders) return `source.headers has more than ${HTTP_SOURCE_LIMITS.maxHeaders} entries`;
      let bytes = 0;
      for (const [name, value] of entries) {
        if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) return `source.headers has an invalid header name '${name.slice(0, 40)}'`;
        if (RESERVED_HEADERS.has(name.toLowerCase())) return `source.headers may not set '${name}'`;
        // Never echo the value: it is a secret.
        if (typeof value !== 'string' || /[\r\n\0]/.test(value)) return `source.headers.${name} must be a single-line string`;
        bytes += name.length + value.length;
      }
      if (bytes > HTTP_SOURCE_LIMITS.maxHeaderBytes) return `source.headers is larger than ${HTTP_SOURCE_LIMITS.maxHeaderBytes} bytes`;
    }
    if (s.retryUrl !== undefined) {
      const bad = checkUrl(s.retryUrl, 'source.retryUrl', this.opts.allowedHosts);
      if (bad) return bad;
    }
    const floor = this.opts.minIntervalFloorMs ?? 250;
    const ceiling = this.opts.maxIntervalCeilingMs ?? 3_600_000;
    for (const key of ['minIntervalMs', 'maxIntervalMs'] as const) {
      const v = s[key];
      if (v === undefined) continue;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < floor || v > ceiling) {
        return `source.${key} must be an integer from ${floor} to ${ceiling}`;
      }
    }
    if (typeof s.minIntervalMs === 'number' && typeof s.maxIntervalMs === 'number' && s.minIntervalMs > s.maxIntervalMs) {
      return 'source.minIntervalMs must not exceed source.maxIntervalMs';
    }
    return validateSourceMap(s.map, steps);
  }

  start(jobId: string, source: HttpJobSource): PolledSource {
    return new HttpPolledSource(jobId, source, this.timeoutMs, this.maxBytes, this.opts.retryAttempts ?? 3);
  }
}

type Fetched =
  | { ok: true; status: number; headers: Headers; text: string }
  | { ok: false; failure: PollFailure };

class HttpPolledSource implements PolledSource {
  readonly hostKey: string;
  readonly minIntervalMs?: number;
  readonly maxIntervalMs?: number;
  private etag: string | undefined;
  private lastText: string | undefined;
  private lastView: UpstreamView | undefined;
  private readonly controller = new AbortController();

  constructor(
    private readonly jobId: string,
    private readonly source: HttpJobSource,
    private readonly timeoutMs: number,
    private readonly maxBytes: number,
    private readonly retryAttempts: number,
  ) {
    this.hostKey = new URL(source.url).host;
    if (source.minIntervalMs !== undefined) this.minIntervalMs = source.minIntervalMs;
    if (source.maxIntervalMs !== undefined) this.maxIntervalMs = source.maxIntervalMs;
  }

  async poll(job: Job): Promise<PollOutcome> {
    const headers: Record<string, string> = { accept: 'application/json', ...this.source.headers };
    if (this.etag && this.lastView) headers['if-none-match'] = this.etag;
    const method = this.source.method ?? 'GET';
    const init: RequestInit = { method, headers };
    const body = this.source.body;
    if (method === 'POST') {
      headers['content-type'] = 'application/json';
      init.body = JSON.stringify(body ?? {});
    }
    const res = await this.request(this.source.url, init);
    if (!res.ok) return res;
    if (res.status === 304 && this.lastView) return this.outcome(job, this.lastView);
    if (res.status < 200 || res.status > 299) return { ok: false, failure: this.statusFailure(res.status, res.headers) };
    this.etag = res.headers.get('etag') ?? undefined;
    // The same body as last time maps to the same view: skip parsing and mapping.
    if (this.lastView && res.text === this.lastText) return this.outcome(job, this.lastView);
    let doc: unknown;
    try {
      doc = JSON.parse(res.text);
    } catch (err) {
      this.forget();
      return { ok: false, failure: { code: 'upstream_bad_response', path: '', message: `upstream answered malformed JSON (${(err as Error).message.slice(0, 120)})` } };
    }
    try {
      const view = mapResponse(doc, this.source.map, job.steps);
      this.lastText = res.text;
      this.lastView = view;
      return this.outcome(job, view);
    } catch (err) {
      this.forget();
      if (err instanceof UpstreamBadResponse) {
        return { ok: false, failure: { code: 'upstream_bad_response', path: err.path, message: err.message } };
      }
      throw err;
    }
  }

  async retry(job: Job, step: string | undefined): Promise<{ ok: true } | { ok: false; failure: PollFailure }> {
    this.forget(); // the next poll reads the upstream's new state in full
    if (!this.source.retryUrl) return { ok: true };
    const body = JSON.stringify({ type: 'retry', jobId: job.id, ...(step ? { step } : {}) });
    let last: PollFailure = { code: 'upstream_unreachable', message: 'retry not attempted' };
    for (let attempt = 0; attempt < this.retryAttempts; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, 250 * 4 ** (attempt - 1)));
      const res = await this.request(this.source.retryUrl, {
        method: 'POST',
        headers: { ...this.source.headers, 'content-type': 'application/json', accept: 'application/json' },
        body,
      }, describeUrl(this.source.retryUrl));
      if (res.ok && res.status >= 200 && res.status <= 299) return { ok: true };
      last = res.ok ? this.statusFailure(res.status, res.headers, describeUrl(this.source.retryUrl)) : res.failure;
      // A 4xx other than 408/429 will not change by asking again.
      if (res.ok && res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) break;
    }
    return { ok: false, failure: last };
  }

  stop(): void {
    this.controller.abort();
  }

  private outcome(job: Job, view: UpstreamView): PollOutcome {
    const outcome: PollOutcome = { ok: true, events: eventsFor(job, view) };
    if (view.status !== undefined) (outcome as { upstreamStatus?: JobStatus }).upstreamStatus = view.status;
    return outcome;
  }

  private forget(): void {
    this.etag = undefined;
    this.lastText = undefined;
    this.lastView = undefined;
  }

  private statusFailure(status: number, headers: Headers, where = describeUrl(this.source.url)): PollFailure {
    if (status === 429 || status === 503 || status === 408 || status >= 500) {
      const failure: PollFailure = { code: 'upstream_unreachable', message: `${where} answered HTTP ${status}` };
      const wait = status === 429 || status === 503 ? parseRetryAfter(headers.get('retry-after'), Date.now()) : undefined;
      if (wait !== undefined) failure.retryAfterMs = wait;
      return failure;
    }
    return { code: 'upstream_bad_response', path: '', message: `${where} answered HTTP ${status}` };
  }

  private async request(url: string, init: RequestInit, where = describeUrl(url)): Promise<Fetched> {
    const signal = AbortSignal.any([this.controller.signal, AbortSignal.timeout(this.timeoutMs)]);
    try {
      const res = await fetch(url, { ...init, signal, redirect: 'follow' });
      const text = await readCapped(res, this.maxBytes);
      if (text === undefined) {
        return { ok: false, failure: { code: 'upstream_bad_response', path: '', message: `${where} answered more than ${this.maxBytes} bytes` } };
      }
      return { ok: true, status: res.status, headers: res.headers, text };
    } catch (err) {
      const e = err as Error & { cause?: { code?: string } };
      const reason =
        e.name === 'TimeoutError' ? `no answer within ${this.timeoutMs} ms`
        : e.name === 'AbortError' ? 'polling stopped'
        : e.cause?.code ?? e.message;
      return { ok: false, failure: { code: 'upstream_unreachable', message: `${where} unreachable: ${reason}` } };
    }
  }
}

/** Reads a body up to `max` bytes; undefined when it is larger (the rest is not downloaded). */
async function readCapped(res: Response, max: number): Promise<string | undefined> {
  const declared = Number(res.headers.get('content-length'));
  if (declared > max) {
    await res.body?.cancel();
    return undefined;
  }
  if (!res.body) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > max) {
      await res.body.cancel().catch(() => {});
      return undefined;
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}
