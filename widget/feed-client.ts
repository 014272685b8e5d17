/**
 * FeedClient: follows a tag's feed (the jobs carrying a tag, e.g. `user:alice`) down the same
 * transport chain as ProgressClient (live-channel.ts): `{"type":"subscribe","tag"}` on the
 * WebSocket, else `GET /v1/feed?tag=` (SSE), else polling `GET /v1/jobs?tag=&limit=50`. The token
 * needs `progress:read` and a grant `tag:<tag>` (or `*`).
 *
 * It keeps one summary per job, the one with the highest `seq` (a `feed_update` may arrive before
 * the `feed`, or twice), at most 50, newest first, and emits `jobs` with all of them on every
 * message or poll. `finished` lists the jobs that turned completed, failed or canceled in it; the
 * first list never does (it is the past).
 *
 *   const feed = new FeedClient({ src: 'wss://host/v1/ws', tag: 'user:alice', tokenProvider });
 *   feed.on('jobs', (jobs, finished) => draw(jobs));
 *   feed.open();   // … later: feed.close();
 */
import { isTerminal, type ClientMessage, type JobSummary, type ServerMessage } from '../protocol/index.js';
import { isNewer } from './job-order.js';
import type { ChannelEvents, ChannelOptions } from './channel-types.js';
import { LiveChannel } from './live-channel.js';

/** Jobs kept (the server's `feed` holds the tag's latest 50). */
const KEPT = 50;

export interface FeedClientEvents extends ChannelEvents {
  /** A list or a change arrived: all known jobs, newest first, and those that finished in it. */
  jobs: (jobs: JobSummary[], finished: JobSummary[]) => void;
}

export interface FeedClientOptions extends ChannelOptions {
  tag: string;
}

export class FeedClient extends LiveChannel<FeedClientEvents> {
  readonly tag: string;
  private byId = new Map<string, JobSummary>();
  /** A first list arrived. */
  loaded = false;

  constructor(options: FeedClientOptions) {
    const tag = encodeURIComponent(options.tag);
    super(options, `/v1/feed?tag=${tag}`, `/v1/jobs?tag=${tag}&limit=${KEPT}`);
    this.tag = options.tag;
  }

  /** Known jobs, newest first. */
  get jobs(): JobSummary[] {
    return [...this.byId.values()].sort((a, b) => b.createdAt - a.createdAt);
  }

  protected subscription(): ClientMessage {
    return { type: 'subscribe', tag: this.tag };
  }

  protected handle(msg: ServerMessage): void {
    if (msg.type === 'feed' && msg.tag === this.tag) this.merge(msg.jobs);
    else if (msg.type === 'feed_update' && msg.tag === this.tag) this.merge([msg.job]);
    // A refusal of this socket's one subscription (or of the socket: rate limit, a bad message).
    else if (msg.type === 'error' && !msg.jobId) this.fail(msg);
  }

  protected polled(body: unknown): void {
    this.merge((body as { jobs?: JobSummary[] }).jobs ?? []);
  }

  /** Takes the newer summaries and emits `jobs` (also when nothing was news: a repeated list). */
  private merge(summaries: JobSummary[]): void {
    const finished: JobSummary[] = [];
    for (const job of summaries) {
      const known = this.byId.get(job.id);
      if (!isNewer(job, known)) continue;
      // News of an end: terminal now, and not known as ended (a retried job is known running again).
      if (this.loaded && isTerminal(job.status) && !(known && isTerminal(known.status))) finished.push(job);
      this.byId.set(job.id, job);
    }
    this.loaded = true;
    const jobs = this.jobs;
    for (const job of jobs.slice(KEPT)) this.byId.delete(job.id);
    this.emitter.emit('jobs', jobs.slice(0, KEPT), finished);
  }
}
