/**
 * Polling in a cluster: the same poll manager (server/polling/), but a job is followed only by
 * the node holding its lease (server/cluster/lease.ts). Used instead of `attachPolling` when
 * PT_REDIS_URL is set.
 *
 * - A job created with a `source` on any node is listed and leased by that node, which polls it.
 * - When the holder dies its lease expires; the next renewal round of another node claims the job
 *   and resumes polling from the stored state (first poll at once).
 * - A retry requested on a node that does not poll the job is forwarded to the holder over its
 *   node channel (the holder POSTs `retryUrl` and resumes polling); with no holder, the node
 *   takes the lease itself.
 * - A graceful shutdown releases the leases, so other nodes take over without waiting a TTL.
 */
import type { JobService } from '../core/job-service.js';
import type { JobSource } from '../../protocol/index.js';
import { PollManager, type PollManagerOptions } from '../polling/poll-manager.js';
import { PollLeases } from './lease.js';
import type { ClusterNode } from './node.js';

export interface ClusterPollingOptions extends Omit<PollManagerOptions, 'service'> {
  /** Lease lifetime (ms, default 10 000): how long a dead node's jobs wait for a new poller. */
  leaseTtlMs?: number;
}

export interface ClusterPolling {
  manager: PollManager;
  leases: PollLeases;
  close(): Promise<void>;
}

export function attachClusterPolling(service: JobService, node: ClusterNode, options: ClusterPollingOptions = {}): ClusterPolling {
  const { leaseTtlMs, ...managerOptions } = options;
  const log = node.log;
  const manager = new PollManager({
    ...managerOptions,
    service: {
      get: async (id) => (await service.get(id))?.job,
      applyEvents: async (id, events) => (await service.ingest(id, events)).view.job,
      retry: async (id, step) => (await service.retry(id, step)).view.job,
    },
  });
  const sourceOf = async (id: string): Promise<JobSource | undefined> => (await service.getRecord(id))?.source;

  const leases = new PollLeases({
    client: node.store.client,
    prefix: node.store.prefix,
    nodeId: node.nodeId,
    log,
    metrics: node.metrics,
    ...(leaseTtlMs !== undefined && { ttlMs: leaseTtlMs }),
    onAcquired: (jobId, takenOver) => {
      if (!takenOver) return; // `created` follows it right away
      void (async () => {
        const record = await service.getRecord(jobId);
        if (!record?.source || (record.job.status === 'completed' || record.job.status === 'canceled')) {
          await leases.unlist(jobId);
          return;
        }
        log.info({ jobId, node: node.nodeId }, 'cluster: took over polling of a job whose poller stopped');
        manager.follow(jobId, record.source);
      })().catch((err: unknown) => log.warn({ jobId, err: (err as Error).message }, 'cluster: could not resume polling a taken-over job'));
    },
    onLost: (jobId) => manager.unfollow(jobId),
    stillNeeded: (jobId) => manager.isFollowing(jobId),
  });

  const retryHere = async (jobId: string, step: string | undefined, source?: JobSource) => {
    const src = source ?? (await sourceOf(jobId));
    if (src) await manager.onRetry(jobId, step, src);
  };

  const detach = [
    service.on('created', (view, record) => {
      if (!record.source) return;
      const source = record.source;
      leases.register(view.job.id, view.job.createdAt).then(
        (mine) => {
          if (mine) manager.follow(view.job.id, source);
        },
        (err: unknown) => log.warn({ jobId: view.job.id, err: (err as Error).message }, 'cluster: could not lease a new polled job; another node will claim it'),
      );
    }),
    service.on('retry', (notice, record) => {
      if (!record.source) return;
      const { jobId, step } = notice;
      void (async () => {
        if (leases.held.has(jobId)) return retryHere(jobId, step, record.source);
        const holder = await leases.holder(jobId);
        if (holder && holder !== node.nodeId && (await node.bus.sendToNode(holder, { t: 'retry', jobId, step }))) return;
        if (await leases.tryAcquire(jobId, false)) {
          manager.follow(jobId, record.source!, { pollNow: false });
          await retryHere(jobId, step, record.source);
        }
      })().catch((err: unknown) => log.warn({ jobId, err: (err as Error).message }, 'cluster: retry of a polled job not delivered to its poller'));
    }),
    service.on('pruned', (ids) => {
      for (const id of ids) {
        manager.unfollow(id);
        void leases.unlist(id).catch(() => undefined);
      }
    }),
    node.onNodeMessage((msg) => {
      if (msg.t !== 'retry' || !leases.held.has(msg.jobId)) return;
      retryHere(msg.jobId, msg.step).catch((err: unknown) => log.warn({ jobId: msg.jobId, err: (err as Error).message }, 'cluster: forwarded retry failed'));
    }),
  ];
  leases.start();

  return {
    manager,
    leases,
    async close() {
      detach.forEach((off) => off());
      manager.close();
      await leases.close();
    },
  };
}
