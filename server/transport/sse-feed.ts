/**
 * A tag's feed over Server-Sent Events: `GET /v1/feed?tag=<tag>` (`text/event-stream`), the same
 * messages as a WebSocket feed subscription (core/feed.ts decides them):
 *
 *   retry: 3000
 *
 *   data: {"type":"feed","tag":"user:alice","jobs":[…]}          (the tag's latest jobs)
 *
 *   data: {"type":"feed_update","tag":"user:alice","job":{…}}    (created, status, progress ≤ 1/2 s)
 *
 *   : ping                                                       (every 15 s)
 *
 * No `id:` lines: a reconnect always starts with a whole `feed`, so there is nothing to resume.
 *
 * Authorization as for the WebSocket subscribe: read (or write) scope and a grant `tag:<tag>` or
 * `*` (auth.ts canReadTag), by `Authorization: Bearer` or `?access_token=`. The stream ends when
 * the token expires. The Origin allow-list, CORS and the per-address connection limit (shared
 * with the hub and the job streams) apply, as in sse.ts.
 *
 * Slow consumers, as in sse.ts: while a write waits in the send buffer, later updates are skipped;
 * once writable, the stream gets the latest summary of each job sent to the tag since its last
 * complete write (or a whole `feed` when too many changed).
 */
import type { HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { ApiError, forbidden, LIMITS, parseFeedQuery } from '../../protocol/index.js';
import { canReadTag, type Principal } from './auth.js';
import type { SseContext } from './sse.js';
import { admitStream, refuseStream, startEventStream } from './sse-stream.js';
import { corsHeaders, rawQuery, remoteAddress } from './uws-http.js';
import { feedMessage, feedUpdateMessage } from './wire.js';


interface FeedStream {
  readonly res: HttpResponse;
  readonly tag: string;
  readonly remote: string;
  /** The feed's counter for the tag at the last complete write of a change (or of the `feed`). */
  synced: number;
  congested: boolean;
  behind: boolean;
  closed: boolean;
  expiry?: NodeJS.Timeout;
}

const data = (message: string) => `data: ${message}\n\n`;

export class SseFeeds {
  private readonly byTag = new Map<string, Set<FeedStream>>();
  private readonly unbind: Array<() => void> = [];
  private heartbeat?: NodeJS.Timeout;
  private shuttingDown = false;

  constructor(private readonly ctx: SseContext) {
    this.unbind.push(
      ctx.service.feed.onUpdate((tag, summary, seq) => {
        const streams = this.byTag.get(tag);
        if (!streams) return;
        const text = data(feedUpdateMessage(tag, summary));
        for (const s of streams) this.write(s, text, seq);
      }),
    );
  }

  get streamCount(): number {
    let n = 0;
    for (const set of this.byTag.values()) n += set.size;
    return n;
  }

  register(app: TemplatedApp, path = '/v1/feed'): void {
    app.get(path, (res, req) => {
      // HttpRequest dies when this function returns: copy what we need now.
      const query = new URLSearchParams(rawQuery(req));
      const origin = req.getHeader('origin');
      const bearer = /^Bearer\s+(\S+)\s*$/i.exec(req.getHeader('authorization'))?.[1];
      const token = bearer ?? query.get('access_token') ?? undefined;
      const remote = remoteAddress(res, req, this.ctx.config.trustProxy);
      void this.open(res, { query, origin, token, remote });
    });
    this.heartbeat = setInterval(() => {
      for (const set of this.byTag.values()) for (const s of set) this.write(s, ': ping\n\n');
    }, LIMITS.sseHeartbeatSeconds * 1000);
    this.heartbeat.unref();
  }

  closeAll(): void {
    this.shuttingDown = true;
    clearInterval(this.heartbeat);
    for (const off of this.unbind) off();
    for (const set of [...this.byTag.values()]) {
      for (const s of [...set]) {
        if (!s.closed) s.res.cork(() => s.res.end());
        this.drop(s);
      }
    }
  }

  // ------------------------------------------------------------------------------------------

  private async open(res: HttpResponse, req: { query: URLSearchParams; origin: string; token: string | undefined; remote: string }): Promise<void> {
    const { config, metrics, log, service, addresses } = this.ctx;
    const cors = corsHeaders(config, req.origin);
    let stream: FeedStream | undefined;
    let aborted = false;
    /** Counted toward the address limit, and following the tag (both undone by `release`). */
    let holding: string | undefined;
    const release = () => {
      if (holding === undefined) return;
      service.feed.unfollow(holding);
      addresses.remove(req.remote);
      holding = undefined;
    };
    res.onAborted(() => {
      aborted = true;
      if (stream) this.drop(stream);
      else release();
    });
    metrics.httpRequests++;
    const refuse = (err: ApiError) => void (aborted || refuseStream(this.ctx, res, cors, err));
    try {
      const principal = await admitStream(this.ctx, req, this.shuttingDown, 'sse feed auth failure');
      const tag = parseFeedQuery(req.query);
      if (!canReadTag(principal, tag)) throw forbidden(`the feed of tag ${tag} needs progress:read and a jobs grant tag:${tag} or *`);
      if (aborted) return;
      // Counted from here, so the limit holds while the feed is read.
      addresses.add(req.remote);
      holding = tag;
      await service.feed.follow(tag);
      const seq = service.feed.tagSeq(tag);
      const summaries = await service.feed.latest(tag);
      if (aborted) return;
      holding = undefined;
      stream = { res, tag, remote: req.remote, synced: seq, congested: false, behind: false, closed: false };
      this.start(stream, feedMessage(tag, summaries), cors, principal);
    } catch (err) {
      release();
      if (err instanceof ApiError) return refuse(err);
      log.error({ err }, 'sse feed failed');
      refuse(new ApiError(500, 'internal', 'internal error'));
    }
  }

  private start(s: FeedStream, first: string, cors: Record<string, string>, principal: Principal): void {
    const { res } = s;
    let set = this.byTag.get(s.tag);
    if (!set) this.byTag.set(s.tag, (set = new Set()));
    set.add(s);
    this.ctx.metrics.sseStreams++;
    s.expiry = setTimeout(() => this.end(s), Math.max(0, principal.expiresAt - Date.now()));
    s.expiry.unref();
    res.onWritable(() => {
      s.congested = false;
      if (s.behind) {
        s.behind = false;
        this.catchUp(s);
      }
      return true;
    });
    if (!startEventStream(res, cors, data(first))) s.congested = true;
  }

  /** What the stream skipped while congested: each changed job's latest summary, or a whole feed. */
  private catchUp(s: FeedStream): void {
    const { feed } = this.ctx.service;
    const seq = feed.tagSeq(s.tag);
    const changed = feed.changedSince(s.tag, s.synced);
    if (changed !== undefined) {
      this.write(s, changed.map((summary) => data(feedUpdateMessage(s.tag, summary))).join(''), seq);
      return;
    }
    void feed.latest(s.tag).then(
      (summaries) => this.write(s, data(feedMessage(s.tag, summaries)), seq),
      (err: unknown) => this.ctx.log.error({ err, tag: s.tag }, 'sse feed catch-up failed'),
    );
  }

  /** Writes unless congested; `seq` marks a feed change (skipped ones are caught up once writable). */
  private write(s: FeedStream, text: string, seq?: number): void {
    if (s.closed) return;
    if (s.congested) {
      if (seq !== undefined) {
        s.behind = true;
        this.ctx.metrics.droppedBackpressure++;
      }
      return;
    }
    s.res.cork(() => {
      if (!s.res.write(text)) s.congested = true;
    });
    if (seq !== undefined && seq > s.synced) s.synced = seq;
  }

  private end(s: FeedStream): void {
    if (s.closed) return;
    s.res.cork(() => s.res.end());
    this.drop(s);
  }

  private drop(s: FeedStream): void {
    if (s.closed) return;
    s.closed = true;
    clearTimeout(s.expiry);
    const set = this.byTag.get(s.tag);
    if (set?.delete(s) && set.size === 0) this.byTag.delete(s.tag);
    this.ctx.addresses.remove(s.remote);
    this.ctx.service.feed.unfollow(s.tag);
    this.ctx.metrics.sseStreams--;
  }
}
