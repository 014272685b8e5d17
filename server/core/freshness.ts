/**
 * Whether this node's cached state of a job is the truth, and what follows from it. The job
 * service asks this strategy instead of branching on "am I in a cluster":
 *
 * - `singleNode`: the node is the only writer. Its cache is always current, a job's changes are
 *   pipelined (the next is applied while the previous one commits), and it re-estimates every
 *   running job.
 * - `ClusterFreshness` (PT_REDIS_URL, docs/cluster.md): other nodes change the same jobs. A cached
 *   state is trusted only while the bus hears the job live; a save is seq-checked, so each change
 *   waits for the previous commit and a lost race is re-applied on the fresh state; ETA ticks run
 *   on the node that committed a job's latest change, so ticks never race another node's events.
 */
import type { Job } from '../../protocol/index.js';

export interface Freshness {
  /** The cached state of `id` is current. */
  isFresh(id: string): boolean;
  /** A job's next change may be applied before the previous one committed. */
  readonly pipelined: boolean;
  /** This node committed `job`. */
  committed(job: Job): void;
  /** A newer state of `id` came from elsewhere (another node, the store), or the job is gone. */
  superseded(id: string): void;
  /** This node re-estimates `id` on the ETA tick. */
  ticksHere(id: string): boolean;
  /** A save of `id` lost a race to another node. */
  conflicted(id: string): void;
}

export const singleNode: Freshness = {
  isFresh: () => true,
  pipelined: true,
  committed: () => undefined,
  superseded: () => undefined,
  ticksHere: () => true,
  conflicted: () => undefined,
};

export class ClusterFreshness implements Freshness {
  readonly pipelined = false;
  /** Running jobs whose latest state this node committed. */
  private readonly lastWriter = new Set<string>();

  constructor(
    /** Whether the bus hears `id` live (server/cluster/node.ts). */
    readonly isFresh: (id: string) => boolean,
    private readonly onConflict: (id: string) => void = () => undefined,
  ) {}

  committed(job: Job): void {
    if (job.status === 'running') this.lastWriter.add(job.id);
    else this.lastWriter.delete(job.id);
  }

  superseded(id: string): void {
    this.lastWriter.delete(id);
  }

  ticksHere(id: string): boolean {
    return this.lastWriter.has(id);
  }

  conflicted(id: string): void {
    this.onConflict(id);
  }
}
