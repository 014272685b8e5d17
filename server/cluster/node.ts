/**
 * One server node of a Redis cluster (`PT_REDIS_URL`): ties the job service to the bus, so local
 * sockets hear changes committed anywhere, and local commits and retries reach other nodes.
 *
 *   local commit ──(store's save script PUBLISHes)──▶ job channel ──▶ nodes whose clients follow it
 *                                                                     └▶ service.applyRemote → hub topic
 *   local socket subscribes ─▶ interest.acquire ─▶ SUBSCRIBE + resync from the store
 *
 * The service's cached state of a job is only trusted while the bus hears the job live
 * (`isFresh`); otherwise reads go to Redis.
 *
 * Tag feeds (core/feed.ts): the service's feed hears other nodes' changes of the jobs carrying a
 * tag through the bus's tag channels, subscribed while the feed follows the tag here.
 *
 *   local client follows a tag ─▶ feed.follow ─▶ bus.acquireTag ─▶ SUBSCRIBE {p}tagch:<tag>
 *   insert/save script on any node ─▶ PUBLISH {p}tagch:<tag> ─▶ bus ─▶ feed.observe ─▶ feed_update
 */
import { randomBytes } from 'node:crypto';
import type { ControlMessage, Job } from '../../protocol/index.js';
import type { FeedInterest } from '../core/feed.js';
import type { RedisStore } from '../store/redis.js';
import type { JobRecord } from '../store/store.js';
import { ClusterBus, type NodeMessage } from './bus.js';
import { watchConnection, type ClusterLogger } from './connection.js';
import { ClusterMetrics } from './metrics.js';

/** What the node needs from the job service (server/job-service.ts). */
export interface ClusterJobService {
  /** Delivers a state committed by another node (ignored unless newer than the cached one). Returns whether it was newer. */
  applyRemote(job: Job, record?: JobRecord): boolean;
  on(event: 'update', listener: (view: { job: Job }) => void): () => void;
  on(event: 'retry', listener: (notice: { jobId: string; step: string }) => void): () => void;
  on(event: 'cancel', listener: (notice: { jobId: string; reason?: string }) => void): () => void;
  /** The service's tag feed (core/feed.ts), when it has one. */
  readonly feed?: ClusterFeed;
}

/** What the node needs from a tag feed. */
export interface ClusterFeed {
  setInterest(interest: FeedInterest): void;
  observe(job: Job): void;
  resync(tags: readonly string[]): Promise<void>;
}

export interface ClusterNodeOptions {
  store: RedisStore;
  log: ClusterLogger;
  /** Stable name for logs and metrics (default: random). */
  nodeId?: string;
  /** Keep a job channel this long after its last local subscriber left (ms, default 5000). */
  lingerMs?: number;
}

export const newNodeId = () => `node-${randomBytes(4).toString('hex')}`;

export class ClusterNode {
  readonly nodeId: string;
  readonly metrics = new ClusterMetrics();
  readonly bus: ClusterBus;
  readonly store: RedisStore;
  readonly log: ClusterLogger;
  private service?: ClusterJobService;
  private controlSink?: (msg: ControlMessage) => void;
  private readonly nodeHandlers = new Set<(msg: NodeMessage) => void>();
  private readonly unbind: Array<() => void> = [];

  constructor(options: ClusterNodeOptions) {
    this.store = options.store;
    this.log = options.log;
    this.nodeId = options.nodeId ?? options.store.nodeId;
    this.unbind.push(watchConnection(options.store.client, 'store', options.log, this.metrics));
    this.bus = new ClusterBus({
      client: options.store.client,
      prefix: options.store.prefix,
      nodeId: this.nodeId,
      log: options.log,
      metrics: this.metrics,
      ...(options.lingerMs !== undefined && { lingerMs: options.lingerMs }),
      handlers: {
        change: (job) => this.service?.applyRemote(job),
        control: (msg) => this.controlSink?.(msg),
        resync: (ids) => this.resync(ids),
        nodeMessage: (msg) => this.nodeHandlers.forEach((fn) => fn(msg)),
        tagChange: (job) => this.service?.feed?.observe(job),
        tagResync: async (tags) => this.service?.feed?.resync(tags),
      },
    });
  }

  /** Connects the bus and starts relaying for `service`. */
  async start(service: ClusterJobService): Promise<void> {
    this.service = service;
    service.feed?.setInterest({ acquire: (tag) => this.bus.acquireTag(tag), release: (tag) => this.bus.releaseTag(tag) });
    this.unbind.push(
      service.on('update', (view) => void this.bus.delivered(view.job.id, view.job.seq)),
      service.on('retry', (notice) => this.publish({ type: 'control', action: 'retry', jobId: notice.jobId, step: notice.step })),
      service.on('cancel', (notice) =>
        this.publish({ type: 'control', action: 'cancel', jobId: notice.jobId, ...(notice.reason !== undefined && { reason: notice.reason }) }),
      ),
    );
    await this.bus.start();
    const durability = await this.store.checkDurability();
    if (durability.fsyncEachWrite === false) {
      this.log.warn(
        { appendonly: durability.appendonly, appendfsync: durability.appendfsync },
        'Redis does not fsync each write (appendonly yes + appendfsync always): a Redis crash may lose acknowledged events (docs/cluster.md)',
      );
    }
    this.log.info({ node: this.nodeId, durability }, 'cluster: node joined (store and fan-out on Redis)');
  }

  /** For the WebSocket hub: a local socket started / stopped following a job. */
  readonly interest = {
    /** Resolves once changes of the job reach this node (subscribed and resynced). */
    acquire: (jobId: string): Promise<void> => this.bus.acquire(jobId),
    release: (jobId: string): void => this.bus.release(jobId),
  };

  /** Whether the cached state of `jobId` is current (the bus hears the job live). */
  readonly isFresh = (jobId: string): boolean => this.bus.isLive(jobId);

  /** Where retry and cancel notices from other nodes go (the hub's `control` topic, SSE streams). */
  onControl(sink: (msg: ControlMessage) => void): void {
    this.controlSink = sink;
  }

  private publish(control: ControlMessage): void {
    this.bus.publishControl(control).catch((err: unknown) =>
      this.log.warn({ jobId: control.jobId, action: control.action, err: (err as Error).message }, 'cluster: control notice not published to other nodes'),
    );
  }

  onNodeMessage(handler: (msg: NodeMessage) => void): () => void {
    this.nodeHandlers.add(handler);
    return () => void this.nodeHandlers.delete(handler);
  }

  renderMetrics(): string {
    return this.metrics.render(this.nodeId);
  }

  async close(): Promise<void> {
    for (const fn of this.unbind.splice(0)) fn();
    await this.bus.close();
  }

  private async resync(ids: readonly string[]): Promise<void> {
    if (!this.service || ids.length === 0) return;
    for (const record of await this.store.getMany(ids)) {
      if (!record) continue;
      this.metrics.resyncReads++;
      if (this.bus.delivered(record.job.id, record.job.seq) && this.service!.applyRemote(record.job, record)) this.metrics.resyncUpdates++;
    }
  }
}

