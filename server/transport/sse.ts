/**
 * Server-Sent Events: `GET /v1/jobs/{id}/stream` (`text/event-stream`), for networks that break
 * WebSockets and for producers without a WebSocket library. The same JSON as the WebSocket
 * messages, one per `data:` line:
 *
 *   retry: 3000
 *
 *   id: 7
 *   data: {"type":"snapshot","job":{…}}
 *
 *   id: 8
 *   data: {"type":"update","job":{…}}
 *
 *   data: {"type":"control","action":"retry","jobId":"…","step":"…"}     (write scope only)
 *
 *   : ping                                                                (every 15 s)
 *
 * `id:` is the job's seq. Every stream starts with a snapshot, reconnects with `Last-Event-ID`
 * included: the client is always exactly up to date, never replaying a gap.
 *
 * Authorization: `Authorization: Bearer` or `?access_token=` (EventSource cannot set headers);
 * checked against the job like a WebSocket subscribe. The stream ends when the token expires;
 * the client reconnects with a fresh one. The Origin allow-list, CORS and the per-address
 * connection limit (shared with the WebSocket hub) apply.
 *
 * Slow consumers: when a write cannot go out at once (uWS buffers the rest), later updates are
 * not queued behind it; once the socket is writable again the stream gets the job's latest state.
 * Memory per stream stays bounded by one message, and the latest state always arrives.
 * `X-Accel-Buffering: no` and `Cache-Control: no-transform` keep proxies from buffering or
 * compressing the stream (nginx: docs/deployment.md).
 *
 * `register` also registers a tag's feed, `GET /v1/feed?tag=` (sse-feed.ts), which shares this
 * context: the same connection limit, origin check and shutdown.
 */
import type { HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { ApiError, forbidden, JOB_ID_PATTERN, LIMITS, notFound, type ControlMessage } from '../../protocol/index.js';
import type { JobView } from '../core/job-view.js';
import { canRead, canWrite, hasTagGrants, type Principal } from './auth.js';
import { admitStream, refuseStream, startEventStream } from './sse-stream.js';
import { corsHeaders, decodeParam, rawQuery, remoteAddress } from './uws-http.js';
import { SseFeeds } from './sse-feed.js';
import type { HubContext } from './ws-socket.js';
import { controlMessage, snapshotMessage, updateMessage } from './wire.js';

/** The same context as the WebSocket hub's: both live transports share the limit, auth and service. */
export type SseContext = HubContext;


interface Stream {
  readonly res: HttpResponse;
  readonly jobId: string;
  readonly remote: string;
  readonly control: boolean;
  /** A write did not go out whole: skip updates until the socket is writable again. */
  congested: boolean;
  /** An update was skipped while congested: send the latest state once writable. */
  behind: boolean;
  closed: boolean;
  expiry?: NodeJS.Timeout;
}

const event = (view: JobView, message: string) => `id: ${view.job.seq}\ndata: ${message}\n\n`;

export class SseStreams {
  private readonly byJob = new Map<string, Set<Stream>>();
  private readonly unbind: Array<() => void> = [];
  private heartbeat?: NodeJS.Timeout;
  private shuttingDown = false;
  /** `GET /v1/feed` streams. */
  readonly feeds: SseFeeds;

  constructor(private readonly ctx: SseContext) {
    this.feeds = new SseFeeds(ctx);
    this.unbind.push(
      ctx.service.on('update', (view) => {
        const streams = this.byJob.get(view.job.id);
        if (streams) for (const s of streams) this.write(s, event(view, updateMessage(view)));
      }),
      ctx.service.on('retry', (notice) => this.deliverControl({ type: 'control', action: 'retry', jobId: notice.jobId, step: notice.step })),
      ctx.service.on('cancel', (notice) =>
        this.deliverControl({ type: 'control', action: 'cancel', jobId: notice.jobId, ...(notice.reason !== undefined && { reason: notice.reason }) }),
      ),
    );
  }

  get streamCount(): number {
    let n = this.feeds.streamCount;
    for (const set of this.byJob.values()) n += set.size;
    return n;
  }

  /** The job stream at `path`, and a tag's feed at `feedPath`. */
  register(app: TemplatedApp, path = '/v1/jobs/:id/stream', feedPath = '/v1/feed'): void {
    this.feeds.register(app, feedPath);
    app.get(path, (res, req) => {
      // HttpRequest dies when this function returns: copy what we need now.
      const jobId = decodeParam(req.getParameter(0) ?? '');
      const origin = req.getHeader('origin');
      const bearer = /^Bearer\s+(\S+)\s*$/i.exec(req.getHeader('authorization'))?.[1];
      const token = bearer ?? new URLSearchParams(rawQuery(req)).get('access_token') ?? undefined;
      const remote = remoteAddress(res, req, this.ctx.config.trustProxy);
      void this.open(res, { jobId, origin, token, remote });
    });
    this.heartbeat = setInterval(() => this.ping(), LIMITS.sseHeartbeatSeconds * 1000);
    this.heartbeat.unref();
  }

  /** A retry or cancel (local or from another node): `control` to the job's write-scope streams. */
  deliverControl(msg: ControlMessage): void {
    const streams = this.byJob.get(msg.jobId);
    if (!streams) return;
    const text = `data: ${controlMessage(msg)}\n\n`;
    for (const s of streams) if (s.control) this.write(s, text);
  }

  /** Ends every stream (server going away); clients reconnect elsewhere or later. */
  closeAll(): void {
    this.shuttingDown = true;
    clearInterval(this.heartbeat);
    this.feeds.closeAll();
    for (const off of this.unbind) off();
    for (const set of [...this.byJob.values()]) {
      for (const s of [...set]) {
        if (!s.closed) s.res.cork(() => s.res.end());
        this.drop(s);
      }
    }
  }

  // ------------------------------------------------------------------------------------------

  private async open(res: HttpResponse, req: { jobId: string; origin: string; token: string | undefined; remote: string }): Promise<void> {
    const { config, metrics, log, service, addresses, interest } = this.ctx;
    const cors = corsHeaders(config, req.origin);
    let stream: Stream | undefined;
    let aborted = false;
    let counted = false;
    res.onAborted(() => {
      aborted = true;
      if (stream) this.drop(stream);
      else if (counted) addresses.remove(req.remote);
    });
    metrics.httpRequests++;
    const refuse = (err: ApiError) => void (aborted || refuseStream(this.ctx, res, cors, err));
    try {
      const principal = await admitStream(this.ctx, req, this.shuttingDown, 'sse auth failure');
      if (!JOB_ID_PATTERN.test(req.jobId)) throw notFound(`job ${req.jobId} not found`);
      const load = async (id: string) => (service.peek(id) ?? (await service.get(id)))?.job;
      const job = canRead(principal, req.jobId) || !hasTagGrants(principal) ? req.jobId : ((await load(req.jobId)) ?? req.jobId);
      if (!canRead(principal, job)) throw forbidden(`reading job ${req.jobId} needs progress:read and a jobs grant`);
      // Counted from here, so the limit holds while the snapshot is read.
      addresses.add(req.remote);
      counted = true;
      await interest?.acquire(req.jobId);
      const view = service.peek(req.jobId) ?? (await service.get(req.jobId));
      if (aborted) {
        interest?.release(req.jobId);
        return;
      }
      if (!view) {
        interest?.release(req.jobId);
        addresses.remove(req.remote);
        counted = false;
        throw notFound(`job ${req.jobId} not found`);
      }
      stream = { res, jobId: req.jobId, remote: req.remote, control: canWrite(principal, job), congested: false, behind: false, closed: false };
      this.start(stream, service.peek(req.jobId) ?? view, cors, principal);
    } catch (err) {
      if (err instanceof ApiError) return refuse(err);
      log.error({ err, jobId: req.jobId }, 'sse stream failed');
      refuse(new ApiError(500, 'internal', 'internal error'));
    }
  }

  private start(s: Stream, view: JobView, cors: Record<string, string>, principal: Principal): void {
    const { res } = s;
    let set = this.byJob.get(s.jobId);
    if (!set) this.byJob.set(s.jobId, (set = new Set()));
    set.add(s);
    this.ctx.metrics.sseStreams++;
    s.expiry = setTimeout(() => this.end(s), Math.max(0, principal.expiresAt - Date.now()));
    s.expiry.unref();
    res.onWritable(() => {
      s.congested = false;
      if (s.behind) {
        s.behind = false;
        const latest = this.ctx.service.peek(s.jobId);
        if (latest) this.write(s, event(latest, updateMessage(latest)));
      }
      return true;
    });
    if (!startEventStream(res, cors, event(view, snapshotMessage(view)))) s.congested = true;
  }

  /** Writes unless congested; a write that does not go out whole congests the stream. */
  private write(s: Stream, text: string): void {
    if (s.closed) return;
    if (s.congested) {
      if (text.startsWith('id:')) {
        s.behind = true;
        this.ctx.metrics.droppedBackpressure++;
      }
      return;
    }
    s.res.cork(() => {
      if (!s.res.write(text)) s.congested = true;
    });
  }

  private ping(): void {
    for (const set of this.byJob.values()) for (const s of set) this.write(s, ': ping\n\n');
  }

  /** Ends a stream whose token expired: the client reconnects with a fresh token. */
  private end(s: Stream): void {
    if (s.closed) return;
    s.res.cork(() => s.res.end());
    this.drop(s);
  }

  private drop(s: Stream): void {
    if (s.closed) return;
    s.closed = true;
    clearTimeout(s.expiry);
    const set = this.byJob.get(s.jobId);
    if (set?.delete(s) && set.size === 0) this.byJob.delete(s.jobId);
    this.ctx.addresses.remove(s.remote);
    this.ctx.interest?.release(s.jobId);
    this.ctx.metrics.sseStreams--;
  }
}
