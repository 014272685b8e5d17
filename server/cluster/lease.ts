/**
 * Poll leases: in a cluster exactly one node polls each polled job.
 *
 * - `{prefix}polled` (sorted set) lists the jobs that need a poller.
 * - `{prefix}lease:<id>` holds the id of the node that polls the job, with a TTL (default 10 s)
 *   the holder renews every ttl/3 in one script call for all its leases.
 * - Every renewal round each node also claims jobs whose lease is gone (a node died, or shut down
 *   and released them): another node takes over within about one TTL.
 * - A node that cannot renew for a full TTL (Redis unreachable, the process stalled) drops its
 *   leases and stops polling those jobs itself: two pollers at once cannot last longer than that.
 *
 * The scripts build lease keys from the prefix, so this needs one Redis (or a Sentinel-managed
 * primary), not Redis Cluster.
 */
import type { Redis } from 'ioredis';
import type { ClusterLogger } from './connection.js';
import type { ClusterMetrics } from './metrics.js';

/** KEYS: lease keys · ARGV: node, ttl → per key 1 (still ours, renewed) or 0 (lost) */
const RENEW_SCRIPT = `
local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
`;

/** KEYS: lease · ARGV: node → 1 when it was ours and is gone */
const RELEASE_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

/** KEYS: polled · ARGV: prefix, node, ttl, max, start → ids claimed now */
const CLAIM_SCRIPT = `
local ids = redis.call('ZRANGE', KEYS[1], tonumber(ARGV[5]), tonumber(ARGV[5]) + 999)
local claimed = {}
for _, id in ipairs(ids) do
  if #claimed >= tonumber(ARGV[4]) then break end
  if redis.call('SET', ARGV[1] .. 'lease:' .. id, ARGV[2], 'NX', 'PX', ARGV[3]) then
    claimed[#claimed + 1] = id
  end
end
return claimed
`;

interface LeaseRedis extends Redis {
  ptLeaseRenew(...args: Array<string | number>): Promise<number[]>;
  ptLeaseRelease(...args: Array<string | number>): Promise<number>;
  ptLeaseClaim(...args: Array<string | number>): Promise<string[]>;
}

export interface PollLeasesOptions {
  client: Redis;
  prefix: string;
  nodeId: string;
  log: ClusterLogger;
  metrics: ClusterMetrics;
  /** Lease lifetime (ms, default 10 000); renewed every ttl/3. */
  ttlMs?: number;
  /** Most orphaned jobs claimed per round (default 200), so one node does not take all at once. */
  maxClaimPerRound?: number;
  /** This node got a lease (a new job, or taken over from a dead node). */
  onAcquired(jobId: string, takenOver: boolean): void;
  /** This node lost a lease: stop polling that job. */
  onLost(jobId: string): void;
  /** Whether this node still wants the lease (false: the job finished; release and unlist it). */
  stillNeeded(jobId: string): boolean;
}

export class PollLeases {
  private readonly redis: LeaseRedis;
  private readonly o: PollLeasesOptions;
  private readonly ttlMs: number;
  readonly held = new Set<string>();
  private lastRenewed = Date.now();
  private timer?: NodeJS.Timeout;
  private round?: Promise<void>;
  private claimCursor = 0;

  constructor(options: PollLeasesOptions) {
    this.o = options;
    this.ttlMs = options.ttlMs ?? 10_000;
    this.redis = options.client as LeaseRedis;
    this.redis.defineCommand('ptLeaseRenew', { lua: RENEW_SCRIPT });
    this.redis.defineCommand('ptLeaseRelease', { numberOfKeys: 1, lua: RELEASE_SCRIPT });
    this.redis.defineCommand('ptLeaseClaim', { numberOfKeys: 1, lua: CLAIM_SCRIPT });
  }

  private leaseKey = (id: string) => `${this.o.prefix}lease:${id}`;
  private polledKey = () => `${this.o.prefix}polled`;

  start(): void {
    const every = Math.max(50, Math.floor(this.ttlMs / 3));
    this.timer = setInterval(() => {
      this.round ??= this.renewAndClaim().finally(() => (this.round = undefined));
    }, every);
    this.timer.unref();
    this.round = this.renewAndClaim().finally(() => (this.round = undefined));
  }

  /** A new polled job: list it and try to take its lease. Resolves true when this node polls it. */
  async register(jobId: string, score = Date.now()): Promise<boolean> {
    await this.redis.zadd(this.polledKey(), 'NX', score, jobId);
    return this.tryAcquire(jobId, false);
  }

  async tryAcquire(jobId: string, takenOver: boolean): Promise<boolean> {
    if (this.held.has(jobId)) return true;
    const ok = await this.redis.set(this.leaseKey(jobId), this.o.nodeId, 'PX', this.ttlMs, 'NX');
    if (ok !== 'OK') return false;
    this.gained(jobId, takenOver);
    return true;
  }

  /** The node polling the job right now, if any. */
  async holder(jobId: string): Promise<string | null> {
    return this.redis.get(this.leaseKey(jobId));
  }

  /** The job no longer needs a poller (finished or deleted). */
  async unlist(jobId: string): Promise<void> {
    await this.release(jobId);
    await this.redis.zrem(this.polledKey(), jobId);
  }

  async release(jobId: string): Promise<void> {
    if (!this.held.delete(jobId)) return;
    this.o.metrics.leasesHeld = this.held.size;
    await this.redis.ptLeaseRelease(this.leaseKey(jobId), this.o.nodeId).catch(() => undefined);
  }

  /** Releases every lease (graceful shutdown): other nodes take the jobs over at their next round. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.round?.catch(() => undefined);
    await Promise.all([...this.held].map((id) => this.release(id)));
  }

  // ------------------------------------------------------------------------------------------

  private gained(jobId: string, takenOver: boolean): void {
    this.held.add(jobId);
    this.o.metrics.leasesHeld = this.held.size;
    this.o.metrics.leasesAcquired++;
    if (takenOver) this.o.metrics.leasesTakenOver++;
    this.o.onAcquired(jobId, takenOver);
  }

  private lose(jobId: string, why: string): void {
    if (!this.held.delete(jobId)) return;
    this.o.metrics.leasesHeld = this.held.size;
    this.o.metrics.leasesLost++;
    this.o.log.warn({ jobId, why }, 'cluster: poll lease lost; this node stops polling the job');
    this.o.onLost(jobId);
  }

  private async renewAndClaim(): Promise<void> {
    try {
      for (const id of [...this.held]) {
        if (!this.o.stillNeeded(id)) await this.unlist(id);
      }
      const ids = [...this.held];
      for (let i = 0; i < ids.length; i += 500) {
        const batch = ids.slice(i, i + 500);
        const results = await this.redis.ptLeaseRenew(batch.length, ...batch.map(this.leaseKey), this.o.nodeId, this.ttlMs);
        batch.forEach((id, j) => {
          if (results[j] !== 1) this.lose(id, 'another node holds the lease');
        });
      }
      this.lastRenewed = Date.now();
      const claimed = await this.redis.ptLeaseClaim(this.polledKey(), this.o.prefix, this.o.nodeId, this.ttlMs, this.o.maxClaimPerRound ?? 200, this.claimCursor);
      // Walk long lists 1000 ids at a time across rounds.
      const listed = await this.redis.zcard(this.polledKey());
      this.claimCursor = this.claimCursor + 1000 < listed ? this.claimCursor + 1000 : 0;
      for (const id of claimed) this.gained(id, true);
    } catch (err) {
      this.o.log.warn({ err: (err as Error).message, held: this.held.size }, 'cluster: poll lease renewal failed');
      if (Date.now() - this.lastRenewed >= this.ttlMs) {
        // Our leases may have expired and been claimed elsewhere: stop before two nodes poll.
        for (const id of [...this.held]) this.lose(id, 'could not renew within the lease TTL');
      }
    }
  }
}
