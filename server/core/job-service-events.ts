/**
 * What the job service tells the rest of the server (job-service.ts): the events it emits —
 * `created`, `update`, `retry`, `cancel`, `pruned` — their payloads, and the emitter that calls
 * the listeners. Listeners (the WebSocket hub, SSE, polling, webhooks, the cluster bus) are wired
 * in assembly (server/app/start-server.ts); one that throws is logged and never stops the others
 * or the change that was already durable. Kept apart from the service so the modules that only
 * listen (webhook.ts, transports) depend on these types, not on how jobs change.
 */
import type { Job } from '../../protocol/index.js';
import type { Logger } from '../app/log.js';
import type { JobRecord } from '../store/store.js';
import type { JobView } from './job-view.js';

export interface RetryNotice {
  jobId: string;
  /** The step the producer should resume from. */
  step: string;
  seq: number;
  view: JobView;
}

export interface CancelNotice {
  jobId: string;
  seq: number;
  reason?: string;
  view: JobView;
}

export interface EventsResult {
  /** The job's seq after the request (for an all-duplicate request: the first acceptance's seq). */
  seq: number;
  applied: number;
  duplicates: number;
  view: JobView;
}

export interface JobServiceEvents {
  /** A job was created (polling adapters start following `record.source` here). */
  created: (view: JobView, record: Readonly<JobRecord>) => void;
  /** A job changed; `prev` is the state before. Emitted after the change is durable. */
  update: (view: JobView, prev: Job) => void;
  /** Someone asked to retry a failed job: the producer should resume from `notice.step`. */
  retry: (notice: RetryNotice, record: Readonly<JobRecord>) => void;
  /** Someone asked to cancel the job: its producer should stop (first request only). */
  cancel: (notice: CancelNotice, record: Readonly<JobRecord>) => void;
  /** Finished jobs past retention were deleted. */
  pruned: (ids: readonly string[]) => void;
}

type Listeners = { [K in keyof JobServiceEvents]: Set<JobServiceEvents[K]> };

export class ServiceEmitter {
  private readonly listeners: Listeners = { created: new Set(), update: new Set(), retry: new Set(), cancel: new Set(), pruned: new Set() };

  constructor(private readonly log: Logger) {}

  on<K extends keyof JobServiceEvents>(event: K, listener: JobServiceEvents[K]): () => void {
    const set = this.listeners[event] as Set<JobServiceEvents[K]>;
    set.add(listener);
    return () => void set.delete(listener);
  }

  emit<K extends keyof JobServiceEvents>(event: K, ...args: Parameters<JobServiceEvents[K]>): void {
    for (const listener of this.listeners[event]) {
      try {
        (listener as (...a: Parameters<JobServiceEvents[K]>) => void)(...args);
      } catch (err) {
        this.log.error({ err, event }, 'job service listener threw');
      }
    }
  }
}
