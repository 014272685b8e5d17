/**
 * The cluster bus: how a change committed on one node reaches the sockets of every other node
 * that has clients following the job, and nothing else.
 *
 * - One Redis channel per job (`{prefix}ch:<id>`). The store's save script PUBLISHes the committed
 *   state on it inside the same atomic step, so messages of a job arrive in commit order and a
 *   node dying between commit and publish cannot lose one.
 * - A node SUBSCRIBEs to a job's channel only while its own clients follow the job (`acquire` /
 *   `release`, reference counted, released after a short linger so a reconnecting browser does
 *   not churn). Redis sends a message only to subscribed nodes: traffic grows with
 *   (jobs × nodes that watch them), not nodes × jobs.
 * - Every message carries the full job and its seq: a receiver drops what is not newer than what
 *   it already delivered, so duplicates and races between the bus and local commits are harmless.
 * - After each SUBSCRIBE is confirmed, and after every Redis reconnect (ioredis replays the
 *   SUBSCRIBEs), the bus asks for a `resync` of the job(s): the node re-reads them from the store
 *   and delivers whatever moved on while it was not listening. Nothing published during an
 *   outage is lost to a client, because the store, not the channel, is the source of truth.
 * - A per-node channel (`{prefix}node:<id>`) carries directed requests (a retry of a polled job
 *   forwarded to the node that polls it), and job channels also carry retry `control` notices.
 * - Tag feeds: the store's insert and save scripts also PUBLISH each committed state on
 *   `{prefix}tagch:<tag>` for every tag of the job. A node SUBSCRIBEs to a tag's channel while its
 *   clients follow the tag's feed (`acquireTag` / `releaseTag`, counted and lingering like job
 *   channels) and hands what it hears to the feed (`tagChange`), which drops seqs it has seen.
 *   After a Redis reconnect the feed re-reads each followed tag's latest jobs (`tagResync`).
 */
import type { Redis } from 'ioredis';
import type { ControlMessage, Job } from '../../protocol/index.js';
import { jobChannel, nodeChannel, tagChannel, type JobChannelMessage, type NodeMessage } from '../store/redis-channels.js';
import { watchConnection, type ClusterLogger } from './connection.js';
import type { ClusterMetrics } from './metrics.js';

export type { NodeMessage };

export interface BusHandlers {
  /** A newer state of a followed job, committed by another node. */
  change(job: Job): void;
  /** A retry or cancel of a followed job (the producer's sockets get the `control` message). */
  control(msg: ControlMessage): void;
  /** Re-read these jobs from the store and deliver what changed (after subscribe or reconnect). */
  resync(jobIds: readonly string[]): Promise<void>;
  /** A request addressed to this node. */
  nodeMessage(msg: NodeMessage): void;
  /** A state of a job carrying a tag this node follows, committed by another node (creation included). */
  tagChange?(job: Job): void;
  /** Re-read these tags' latest jobs (after a reconnect: what was published meanwhile is lost). */
  tagResync?(tags: readonly string[]): Promise<void>;
}

export interface ClusterBusOptions {
  /** The command connection (PUBLISH); the bus opens its own subscriber connection from it. */
  client: Redis;
  prefix: string;
  nodeId: string;
  log: ClusterLogger;
  metrics: ClusterMetrics;
  handlers: BusHandlers;
  /** Keep a channel this long after the last local subscriber left (ms, default 5000). */
  lingerMs?: number;
}

interface Interest {
  refs: number;
  /** Resolves when SUBSCRIBE was confirmed and the job resynced. */
  ready: Promise<void>;
  live: boolean;
  /** Highest seq delivered locally (from the bus, a resync, or a local commit). */
  seq: number;
  linger?: NodeJS.Timeout;
}

interface TagInterest {
  refs: number;
  ready: Promise<void>;
  linger?: NodeJS.Timeout;
}

export class ClusterBus {
  private readonly sub: Redis;
  private readonly interests = new Map<string, Interest>();
  private readonly tagInterests = new Map<string, TagInterest>();
  private readonly o: ClusterBusOptions;
  private readonly lingerMs: number;
  private readonly unwatch: Array<() => void> = [];
  private closed = false;

  constructor(options: ClusterBusOptions) {
    this.o = options;
    this.lingerMs = options.lingerMs ?? 5000;
    // A subscriber connection cannot run other commands; ioredis re-subscribes it on reconnect.
    this.sub = options.client.duplicate({ autoResubscribe: true, maxRetriesPerRequest: null, lazyConnect: true });
    // This node's own commits and controls come back on the channels it follows: they start with
    // its id (`{"n":"<id>",`, see JobChannelMessage) and are dropped before any decoding. Each of
    // its updates was a full parse of the job's JSON, for nothing.
    const own = Buffer.from(`{"n":${JSON.stringify(options.nodeId)},`);
    this.sub.on('messageBuffer', (channel: Buffer, message: Buffer) => {
      if (message.length > own.length && message.compare(own, 0, own.length, 0, own.length) === 0) return;
      this.onMessage(channel.toString(), message.toString());
    });
    this.unwatch.push(watchConnection(this.sub, 'bus', options.log, options.metrics, () => void this.recovered()));
  }

  private channel = (jobId: string) => jobChannel(this.o.prefix, jobId);
  private tagChannel = (tag: string) => tagChannel(this.o.prefix, tag);
  private get tagChannelPrefix(): string {
    return tagChannel(this.o.prefix, '');
  }
  private nodeChannel = (nodeId: string) => nodeChannel(this.o.prefix, nodeId);

  async start(): Promise<void> {
    await this.sub.connect();
    await this.sub.subscribe(this.nodeChannel(this.o.nodeId));
  }

  /** A local client started following `jobId`. Resolves once the node hears its changes. */
  acquire(jobId: string): Promise<void> {
    let interest = this.interests.get(jobId);
    if (interest) {
      interest.refs++;
      if (interest.linger) {
        clearTimeout(interest.linger);
        delete interest.linger;
      }
      return interest.ready;
    }
    const created: Interest = { refs: 1, live: false, seq: 0, ready: Promise.resolve() };
    this.interests.set(jobId, created);
    created.ready = this.subscribe(jobId, created);
    return created.ready;
  }

  /** A local client stopped following `jobId`. */
  release(jobId: string): void {
    const interest = this.interests.get(jobId);
    if (!interest || interest.refs === 0) return;
    if (--interest.refs > 0) return;
    interest.linger = setTimeout(() => {
      if (interest.refs > 0 || this.interests.get(jobId) !== interest) return;
      this.interests.delete(jobId);
      this.o.metrics.channels--;
      this.o.metrics.unsubscribes++;
      if (!this.closed) void this.sub.unsubscribe(this.channel(jobId)).catch(() => undefined);
    }, this.lingerMs);
    interest.linger.unref();
  }

  /** Local clients started following a tag's feed. Resolves once the node hears the tag's changes. */
  acquireTag(tag: string): Promise<void> {
    const known = this.tagInterests.get(tag);
    if (known) {
      known.refs++;
      if (known.linger) {
        clearTimeout(known.linger);
        delete known.linger;
      }
      return known.ready;
    }
    const created: TagInterest = { refs: 1, ready: Promise.resolve() };
    this.tagInterests.set(tag, created);
    this.o.metrics.tagChannels++;
    created.ready = this.sub.subscribe(this.tagChannel(tag)).then(
      () => undefined,
      (err: unknown) => {
        // The reconnect path resubscribes (ioredis) and resyncs every followed tag.
        this.o.log.warn({ tag, err: (err as Error).message }, 'cluster: subscribing to a tag channel failed; will resync on reconnect');
      },
    );
    return created.ready;
  }

  /** Local clients stopped following a tag's feed. */
  releaseTag(tag: string): void {
    const interest = this.tagInterests.get(tag);
    if (!interest || interest.refs === 0) return;
    if (--interest.refs > 0) return;
    interest.linger = setTimeout(() => {
      if (interest.refs > 0 || this.tagInterests.get(tag) !== interest) return;
      this.tagInterests.delete(tag);
      this.o.metrics.tagChannels--;
      if (!this.closed) void this.sub.unsubscribe(this.tagChannel(tag)).catch(() => undefined);
    }, this.lingerMs);
    interest.linger.unref();
  }

  /** Tags local clients follow. */
  get followedTags(): string[] {
    return [...this.tagInterests.keys()];
  }

  /**
   * Whether the node hears every change of `jobId` right now (subscribed, resynced, connected):
   * then its cached state is current and can be served without reading the store.
   */
  isLive(jobId: string): boolean {
    return this.interests.get(jobId)?.live === true && this.sub.status === 'ready';
  }

  /** Jobs local clients follow. */
  get followed(): string[] {
    return [...this.interests.keys()];
  }

  /**
   * Records that local sockets were given `seq` of the job (a local commit or delivery), so an
   * older or equal state arriving later is not delivered again. Returns false when not newer.
   */
  delivered(jobId: string, seq: number): boolean {
    const interest = this.interests.get(jobId);
    if (!interest) return true;
    if (seq <= interest.seq) return false;
    interest.seq = seq;
    return true;
  }

  /** Tells every node whose clients follow the job that a retry or cancel was requested. */
  async publishControl(control: ControlMessage): Promise<void> {
    const msg: JobChannelMessage = { n: this.o.nodeId, t: 'c', control };
    await this.o.client.publish(this.channel(control.jobId), JSON.stringify(msg));
  }

  /** Sends a request to one node; resolves with whether a node was listening. */
  async sendToNode(nodeId: string, msg: Omit<NodeMessage, 'n'>): Promise<boolean> {
    const receivers = await this.o.client.publish(this.nodeChannel(nodeId), JSON.stringify({ ...msg, n: this.o.nodeId }));
    return receivers > 0;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const interest of this.interests.values()) if (interest.linger) clearTimeout(interest.linger);
    this.interests.clear();
    for (const interest of this.tagInterests.values()) if (interest.linger) clearTimeout(interest.linger);
    this.tagInterests.clear();
    for (const fn of this.unwatch) fn();
    try {
      await this.sub.quit();
    } catch {
      this.sub.disconnect();
    }
  }

  // ------------------------------------------------------------------------------------------

  private async subscribe(jobId: string, interest: Interest): Promise<void> {
    this.o.metrics.channels++;
    this.o.metrics.subscribes++;
    try {
      await this.sub.subscribe(this.channel(jobId));
      // Anything committed before the SUBSCRIBE took effect is read from the store instead.
      await this.o.handlers.resync([jobId]);
      if (this.interests.get(jobId) === interest) interest.live = true;
    } catch (err) {
      // The reconnect path resubscribes and resyncs every followed job.
      this.o.log.warn({ jobId, err: (err as Error).message }, 'cluster: subscribing to a job channel failed; will resync on reconnect');
    }
  }

  private async recovered(): Promise<void> {
    if (this.closed) return;
    this.o.metrics.redisRecoveries++;
    for (const interest of this.interests.values()) interest.live = false;
    try {
      // ioredis sent the SUBSCRIBEs again before 'ready'; a PING on the same connection
      // returns after Redis processed them, so nothing published from here on is missed.
      await this.sub.ping();
      const ids = this.followed;
      for (let i = 0; i < ids.length; i += 200) await this.o.handlers.resync(ids.slice(i, i + 200));
      for (const id of ids) {
        const interest = this.interests.get(id);
        if (interest) interest.live = true;
      }
      const tags = this.followedTags;
      if (tags.length > 0) await this.o.handlers.tagResync?.(tags);
      this.o.log.info({ jobs: ids.length, tags: tags.length }, 'cluster: resubscribed and resynced after the Redis outage');
    } catch (err) {
      this.o.log.error({ err: (err as Error).message }, 'cluster: resync after reconnect failed; will retry on the next reconnect');
    }
  }

  private onMessage(channel: string, text: string): void {
    let msg: JobChannelMessage | NodeMessage;
    try {
      msg = JSON.parse(text) as JobChannelMessage | NodeMessage;
    } catch {
      this.o.log.warn({ channel }, 'cluster: unreadable bus message ignored');
      return;
    }
    if (msg.t === 'retry') {
      this.o.handlers.nodeMessage(msg);
      return;
    }
    if (msg.n === this.o.nodeId) return; // our own commit: already delivered locally
    if (channel.startsWith(this.tagChannelPrefix)) {
      // A tag channel: to the feed (it drops a seq it has seen, e.g. from the job channel or another tag's).
      if (msg.t === 'u' && msg.job && this.tagInterests.has(channel.slice(this.tagChannelPrefix.length))) {
        this.o.metrics.tagUpdates++;
        this.o.handlers.tagChange?.(msg.job);
      }
      return;
    }
    if (msg.t === 'c') {
      if (this.interests.has(msg.control.jobId)) this.o.handlers.control(msg.control);
      return;
    }
    if (msg.t !== 'u' || !msg.job || !this.interests.has(msg.job.id)) return;
    if (!this.delivered(msg.job.id, msg.job.seq)) {
      this.o.metrics.staleDropped++;
      return;
    }
    this.o.metrics.remoteUpdates++;
    this.o.handlers.change(msg.job);
  }
}
