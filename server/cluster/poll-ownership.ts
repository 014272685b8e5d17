/**
 * Polling in a cluster: a job is polled only by the node holding its lease
 * (server/cluster/lease.ts). The PollOwnership that `attachPolling` uses when PT_REDIS_URL is set.
 *
 * - A job created with a `source` on any node is listed and leased by that node, which polls it.
 * - When the holder dies its lease expires; the next renewal round of another node claims the job
 *   and resumes polling from the stored state (first poll at once).
 * - A retry requested on a node that does not poll the job is forwarded to the holder over its
 *   node channel (the holder POSTs `retryUrl` and resumes polling); with no holder, the node
 *   takes the lease itself.
 * - A graceful shutdown releases the leases, so other nodes take over without waiting a TTL.
 */
import type { JobSource } from '../../protocol/index.js';
import type { JobService } from '../core/job-service.js';
import type { PollOwnership } from '../polling/attach.js';
import type { PollManager } from '../polling/poll-manager.js';
import { PollLeases } from './lease.js';
import type { ClusterNode } from './node.js';

export function leasedJobs(node: ClusterNode, options: { leaseTtlMs?: number } = {}) {
  return (service: JobService): PollOwnership => new LeasedOwnership(service, node, options.leaseTtlMs);
}

class LeasedOwnership implements PollOwnership {
  private manager!: PollManager;
  private readonly leases: PollLeases;
  private readonly detach: Array<() => void> = [];

  constructor(
    private readonly service: JobService,
    private readonly node: ClusterNode,
    leaseTtlMs: number | undefined,
  ) {
    const log = node.log;
    this.leases = new PollLeases({
      client: node.store.client,
      prefix: node.store.prefix,
      nodeId: node.nodeId,
      log,
      metrics: node.metrics,
      ...(leaseTtlMs !== undefined && { ttlMs: leaseTtlMs }),
      onAcquired: (jobId, takenOver) => {
        if (!takenOver) return; // `created` follows it right away
        this.takeOver(jobId).catch((err: unknown) => log.warn({ jobId, err: (err as Error).message }, 'cluster: could not resume polling a taken-over job'));
      },
      onLost: (jobId) => this.manager.unfollow(jobId),
      stillNeeded: (jobId) => this.manager.isFollowing(jobId),
    });
  }

  start(manager: PollManager): void {
    this.manager = manager;
    this.detach.push(
      this.node.onNodeMessage((msg) => {
        if (msg.t !== 'retry' || !this.leases.held.has(msg.jobId)) return;
        this.retryHere(msg.jobId, msg.step).catch((err: unknown) =>
          this.node.log.warn({ jobId: msg.jobId, err: (err as Error).message }, 'cluster: forwarded retry failed'),
        );
      }),
    );
    this.leases.start();
  }

  created(jobId: string, createdAt: number, source: JobSource): void {
    this.leases.register(jobId, createdAt).then(
      (mine) => {
        if (mine) this.manager.follow(jobId, source);
      },
      (err: unknown) => this.node.log.warn({ jobId, err: (err as Error).message }, 'cluster: could not lease a new polled job; another node will claim it'),
    );
  }

  retry(jobId: string, step: string, source: JobSource): void {
    void (async () => {
      if (this.leases.held.has(jobId)) return this.retryHere(jobId, step, source);
      const holder = await this.leases.holder(jobId);
      if (holder && holder !== this.node.nodeId && (await this.node.bus.sendToNode(holder, { t: 'retry', jobId, step }))) return;
      if (await this.leases.tryAcquire(jobId, false)) {
        this.manager.follow(jobId, source, { pollNow: false });
        await this.retryHere(jobId, step, source);
      }
    })().catch((err: unknown) => this.node.log.warn({ jobId, err: (err as Error).message }, 'cluster: retry of a polled job not delivered to its poller'));
  }

  pruned(ids: readonly string[]): void {
    for (const id of ids) void this.leases.unlist(id).catch(() => undefined);
  }

  async close(): Promise<void> {
    this.detach.forEach((off) => off());
    await this.leases.close();
  }

  private async takeOver(jobId: string): Promise<void> {
    const record = await this.service.getRecord(jobId);
    if (!record?.source || record.job.status === 'completed' || record.job.status === 'canceled') {
      await this.leases.unlist(jobId);
      return;
    }
    this.node.log.info({ jobId, node: this.node.nodeId }, 'cluster: took over polling of a job whose poller stopped');
    this.manager.follow(jobId, record.source);
  }

  private async retryHere(jobId: string, step: string | undefined, source?: JobSource): Promise<void> {
    const src = source ?? (await this.service.getRecord(jobId))?.source;
    if (src) await this.manager.onRetry(jobId, step, src);
  }
}
