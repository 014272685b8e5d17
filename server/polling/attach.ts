/**
 * Ties polling to the job service, once for every deployment: a poll manager follows the jobs
 * created with a `source`, hears their retries and forgets pruned jobs. Which node polls which
 * job is the ownership strategy's call: `everyJobHere` on a single node, leased jobs in a cluster
 * (server/cluster/poll-ownership.ts). Adapters that are pushed to instead of polling (BullMQ's
 * QueueEvents) get the same way into the service.
 */
import type { JobSource } from '../../protocol/index.js';
import type { JobService } from '../core/job-service.js';
import { PollManager, type PolledJobService, type PollManagerOptions } from './poll-manager.js';

/** Decides which jobs this node polls. */
export interface PollOwnership {
  /** The manager exists: resume following the jobs this node owns (after a restart, a takeover). */
  start(manager: PollManager): void;
  /** A job with a source was created on this node. */
  created(jobId: string, createdAt: number, source: JobSource): void;
  /** A user retried a polled job on this node: the node that polls it must POST the upstream's retry. */
  retry(jobId: string, step: string, source: JobSource): void;
  pruned(ids: readonly string[]): void;
  close(): Promise<void>;
}

/** A single node polls every job that has a source. */
export function everyJobHere(service: JobService): PollOwnership {
  let manager: PollManager | undefined;
  return {
    start(m) {
      manager = m;
      for (const record of service.activeRecords()) if (record.source) m.follow(record.job.id, record.source);
    },
    created: (jobId, _createdAt, source) => manager?.follow(jobId, source),
    retry: (jobId, step, source) => void manager?.onRetry(jobId, step, source),
    pruned: () => undefined,
    close: async () => undefined,
  };
}

export interface AttachPollingOptions extends Omit<PollManagerOptions, 'service'> {
  /** Default: every job on this node. */
  ownership?: (service: JobService) => PollOwnership;
}

/** Call after `service.start()`; `manager.close()` detaches everything. */
export function attachPolling(service: JobService, { ownership = everyJobHere, ...options }: AttachPollingOptions = {}): PollManager {
  const polled: PolledJobService = {
    get: async (id) => (await service.get(id))?.job,
    applyEvents: async (id, events) => (await service.applyEvents(id, events)).view.job,
    retry: async (id, step) => (await service.retry(id, step)).view.job,
  };
  const manager = new PollManager({ ...options, service: polled });
  for (const adapter of options.adapters ?? []) adapter.attach?.(polled);
  const owner = ownership(service);
  const detach = [
    service.on('created', (view, record) => {
      if (record.source) owner.created(view.job.id, view.job.createdAt, record.source);
    }),
    service.on('retry', (notice, record) => {
      if (record.source) owner.retry(notice.jobId, notice.step, record.source);
    }),
    service.on('pruned', (ids) => {
      for (const id of ids) manager.unfollow(id);
      owner.pruned(ids);
    }),
  ];
  manager.onClose(async () => {
    detach.forEach((off) => off());
    await owner.close();
  });
  owner.start(manager);
  return manager;
}
