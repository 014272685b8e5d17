/**
 * The Redis store (`PT_REDIS_URL`): the same Store contract as SQLite, shared by every server
 * node of a cluster.
 *
 * Keys (prefix `pt:` by default; one Redis database or a Sentinel-managed primary, not Redis
 * Cluster, because the status indexes are global keys):
 *   {p}job:<id>        hash: seq, status, rec (the JobRecord as JSON)
 *   {p}ev:<id>         hash: eventId → seq of its first acceptance (idempotent retries)
 *   {p}st:<status>     sorted set: job ids in that status, scored by updatedAt
 *   {p}hist:<key>      list: ETA history samples, trimmed to maxPerKey ("<n>|<json>")
 *   {p}hist:keys       set of history keys; {p}hist:n the global sample counter
 *   {p}ch:<id>         pub/sub channel: every committed change of the job (./redis-channels.ts)
 *
 * Atomicity: `save` is one Lua script that checks the stored seq, writes the record, moves the id
 * between status indexes, records eventIds, sets or clears the retention TTL and PUBLISHes the new
 * state. Redis runs a script as one step, so two nodes can never interleave on one job, and the
 * notifications of a job reach every subscriber in commit order (PUBLISH inside the script).
 *
 * Durability: the promise resolves once Redis answered. Whether that answer means "on disk" is
 * Redis's `appendonly yes` + `appendfsync always` (then Redis fsyncs the AOF before it replies);
 * `checkDurability()` reports the server's setting and docs/cluster.md explains the choice.
 *
 * Retention: finished jobs get a TTL of `retentionMs + retentionGraceMs`, so Redis frees them even
 * if no node prunes; `pruneFinished` deletes them on time and tells the service which ids went.
 */
import { Redis, type RedisOptions } from 'ioredis';
import { JOB_STATUSES, isTerminal, type Job, type JobStatus } from '../../protocol/index.js';
import { jobChannel } from './redis-channels.js';
import { recordJson, SeqConflictError, StoreOpenError, type EventIdEntry, type JobRecord, type Store } from './store.js';

export interface RedisStoreOptions {
  /** `redis://[:password@]host:port[/db]` or `rediss://` (TLS). Ignored when `client` is given. */
  url?: string;
  /** Use this connection (the store does not close it). */
  client?: Redis;
  /** Key prefix (default `pt:`), so several deployments can share one Redis. */
  prefix?: string;
  /** How long finished jobs are kept (ms, default 24 h): the TTL is this plus retentionGraceMs. */
  retentionMs?: number;
  /** Extra TTL so `pruneFinished` (which emits `pruned`) normally runs first (default 1 h). */
  retentionGraceMs?: number;
  /** Publish each committed state on `{prefix}ch:<id>` (default true; the cluster bus listens). */
  publish?: boolean;
  /** Written into published messages so a node can skip its own (default: random). */
  nodeId?: string;
  /** Give up opening after this long (ms, default 10 s). */
  connectTimeoutMs?: number;
  /** Extra ioredis options. */
  redis?: RedisOptions;
}

/** What Redis says about its persistence (undefined fields: CONFIG is disabled, e.g. managed Redis). */
export interface RedisDurability {
  appendonly?: string;
  appendfsync?: string;
  /** true when an acknowledged write is fsynced before the reply. */
  fsyncEachWrite?: boolean;
}

const STATUS_LIST = JOB_STATUSES.map((s) => `'${s}'`).join(', ');

/**
 * KEYS: job, ev, st:queued, st:running, st:completed, st:failed, st:canceled
 * ARGV: id, expectedSeq ('' = unchecked), seq, status, updatedAt, rec, ttlMs, channel, message, [eventId, seq]...
 * → {1, seq} saved (or the identical save was already applied) · {0, storedSeq} conflict · {-1, 0} no job
 */
const SAVE_SCRIPT = `
local names = {${STATUS_LIST}}
local function idx(name) for i, n in ipairs(names) do if n == name then return i end end return nil end
local cur = redis.call('HGET', KEYS[1], 'seq')
if ARGV[2] ~= '' then
  if not cur then return {-1, 0} end
  if tonumber(cur) ~= tonumber(ARGV[2]) then
    -- A reply lost on a dropped connection makes ioredis resend: the same save is a success.
    if tonumber(cur) == tonumber(ARGV[3]) and redis.call('HGET', KEYS[1], 'rec') == ARGV[6] then return {1, tonumber(cur)} end
    return {0, tonumber(cur)}
  end
end
local old = redis.call('HGET', KEYS[1], 'status')
redis.call('HSET', KEYS[1], 'seq', ARGV[3], 'status', ARGV[4], 'rec', ARGV[6])
local oi = old and idx(old)
local ni = idx(ARGV[4])
if oi and oi ~= ni then redis.call('ZREM', KEYS[2 + oi], ARGV[1]) end
redis.call('ZADD', KEYS[2 + ni], tonumber(ARGV[5]), ARGV[1])
for i = 10, #ARGV, 2 do redis.call('HSETNX', KEYS[2], ARGV[i], ARGV[i + 1]) end
local ttl = tonumber(ARGV[7])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
else
  redis.call('PERSIST', KEYS[1])
  redis.call('PERSIST', KEYS[2])
end
if ARGV[8] ~= '' then redis.call('PUBLISH', ARGV[8], ARGV[9]) end
return {1, tonumber(ARGV[3])}
`;

/** KEYS: job, st:<status> · ARGV: id, seq, status, updatedAt, rec → 1 inserted, 0 exists */
const INSERT_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'seq', ARGV[2], 'status', ARGV[3], 'rec', ARGV[5])
redis.call('ZADD', KEYS[2], tonumber(ARGV[4]), ARGV[1])
return 1
`;

/** KEYS: st:<finished status>, job, ev · ARGV: id → 1 when this call deleted it */
const PRUNE_ONE_SCRIPT = `
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('DEL', KEYS[2], KEYS[3])
return 1
`;

/** KEYS: hist:<key>, hist:keys, hist:n · ARGV: key, sample, maxPerKey */
const HISTORY_SCRIPT = `
local n = redis.call('INCR', KEYS[3])
redis.call('RPUSH', KEYS[1], n .. '|' .. ARGV[2])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[3]), -1)
redis.call('SADD', KEYS[2], ARGV[1])
return n
`;

interface ScriptedRedis extends Redis {
  ptSave(...args: Array<string | number>): Promise<[number, number]>;
  ptInsert(...args: Array<string | number>): Promise<number>;
  ptPruneOne(...args: Array<string | number>): Promise<number>;
  ptHistory(...args: Array<string | number>): Promise<number>;
}

const FINISHED: readonly JobStatus[] = ['completed', 'failed', 'canceled'];

/** The URL without its password, for logs and errors. */
export function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(invalid Redis URL)';
  }
}

export class RedisStore implements Store {
  readonly client: Redis;
  readonly prefix: string;
  readonly nodeId: string;
  private readonly redis: ScriptedRedis;
  private readonly ownsClient: boolean;
  private readonly ttlMs: number;
  private readonly publish: boolean;

  private constructor(client: Redis, ownsClient: boolean, options: RedisStoreOptions) {
    this.client = client;
    this.redis = client as ScriptedRedis;
    this.ownsClient = ownsClient;
    this.prefix = options.prefix ?? 'pt:';
    this.nodeId = options.nodeId ?? Math.random().toString(36).slice(2, 10);
    this.ttlMs = (options.retentionMs ?? 86_400_000) + (options.retentionGraceMs ?? 3_600_000);
    this.publish = options.publish ?? true;
    // defineCommand uses EVALSHA and falls back to EVAL on NOSCRIPT (a restarted Redis forgot them).
    client.defineCommand('ptSave', { numberOfKeys: 2 + JOB_STATUSES.length, lua: SAVE_SCRIPT });
    client.defineCommand('ptInsert', { numberOfKeys: 2, lua: INSERT_SCRIPT });
    client.defineCommand('ptPruneOne', { numberOfKeys: 3, lua: PRUNE_ONE_SCRIPT });
    client.defineCommand('ptHistory', { numberOfKeys: 3, lua: HISTORY_SCRIPT });
  }

  /** Connects (or adopts `client`) and checks Redis answers; StoreOpenError otherwise. */
  static async open(options: RedisStoreOptions): Promise<RedisStore> {
    const timeoutMs = options.connectTimeoutMs ?? 10_000;
    let client = options.client;
    const where = options.client ? 'the given Redis connection' : `Redis at ${redactRedisUrl(options.url ?? '')}`;
    if (!client) {
      if (!options.url) throw new StoreOpenError('no Redis URL given (PT_REDIS_URL)');
      if (!/^rediss?:\/\//.test(options.url)) throw new StoreOpenError(`PT_REDIS_URL must start with redis:// or rediss://, got ${redactRedisUrl(options.url)}`);
      client = new Redis(options.url, {
        // Commands issued while Redis restarts wait for the reconnect instead of failing at once.
        maxRetriesPerRequest: 20,
        connectTimeout: timeoutMs,
        lazyConnect: true,
        ...options.redis,
      });
      let cause = '';
      const remember = (err: Error) => (cause = err.message);
      client.on('error', remember); // later errors are surfaced by watchConnection (server/cluster) and by the calls that fail
      try {
        await withTimeout(client.connect(), timeoutMs, `cannot reach ${where} within ${timeoutMs} ms`);
      } catch (err) {
        client.disconnect();
        const why = (err as Error).message;
        throw new StoreOpenError(`cannot use ${where}: ${why}${cause && cause !== why ? ` (${cause})` : ''}`);
      }
      client.off('error', remember);
      client.on('error', () => undefined);
    }
    try {
      await withTimeout(client.ping(), timeoutMs, `no answer to PING within ${timeoutMs} ms`);
    } catch (err) {
      if (!options.client) client.disconnect();
      throw new StoreOpenError(`cannot use ${where}: ${(err as Error).message}`);
    }
    return new RedisStore(client, !options.client, options);
  }

  // ------------------------------------------------------------------------------------------

  jobKey = (id: string) => `${this.prefix}job:${id}`;
  private evKey = (id: string) => `${this.prefix}ev:${id}`;
  private stKey = (status: JobStatus) => `${this.prefix}st:${status}`;

  async insert(record: JobRecord): Promise<boolean> {
    const { job } = record;
    const inserted = await this.redis.ptInsert(
      this.jobKey(job.id), this.stKey(job.status),
      job.id, job.seq, job.status, job.updatedAt, JSON.stringify(record),
    );
    return inserted === 1;
  }

  async save(record: JobRecord, eventIds: readonly EventIdEntry[] = [], expectedSeq?: number, jobJson = JSON.stringify(record.job)): Promise<void> {
    const { job } = record;
    const ttl = isTerminal(job.status) ? this.ttlMs : 0;
    // ChangeMessage, spliced from the job's JSON: `{"n":<node>,"t":"u","job":<Job>}`.
    const message = this.publish ? `{"n":${JSON.stringify(this.nodeId)},"t":"u","job":${jobJson}}` : '';
    const args: Array<string | number> = [
      this.jobKey(job.id), this.evKey(job.id), ...JOB_STATUSES.map(this.stKey),
      job.id, expectedSeq ?? '', job.seq, job.status, job.updatedAt, recordJson(record, jobJson), ttl,
      this.publish ? jobChannel(this.prefix, job.id) : '', message,
    ];
    for (const e of eventIds) args.push(e.eventId, e.seq);
    const [outcome, stored] = await this.redis.ptSave(...args);
    if (outcome !== 1) throw new SeqConflictError(job.id, expectedSeq ?? -1, outcome === -1 ? undefined : stored);
  }

  async get(id: string): Promise<JobRecord | undefined> {
    const text = await this.redis.hget(this.jobKey(id), 'rec');
    return text === null ? undefined : (JSON.parse(text) as JobRecord);
  }

  async getMany(ids: readonly string[]): Promise<Array<JobRecord | undefined>> {
    if (ids.length === 0) return [];
    const pipe = this.redis.pipeline();
    for (const id of ids) pipe.hget(this.jobKey(id), 'rec');
    const replies = (await pipe.exec()) ?? [];
    return replies.map(([err, text]) => (err || typeof text !== 'string' ? undefined : (JSON.parse(text) as JobRecord)));
  }

  /** The stored seq only (cheap freshness check). */
  async seqOf(id: string): Promise<number | undefined> {
    const seq = await this.redis.hget(this.jobKey(id), 'seq');
    return seq === null ? undefined : Number(seq);
  }

  async findEvent(jobId: string, eventId: string): Promise<number | undefined> {
    const seq = await this.redis.hget(this.evKey(jobId), eventId);
    return seq === null ? undefined : Number(seq);
  }

  async listByStatus(statuses: readonly JobStatus[], limit: number): Promise<JobRecord[]> {
    if (statuses.length === 0 || limit <= 0) return [];
    const ranked: Array<{ id: string; at: number }> = [];
    for (const status of statuses) {
      const flat = await this.redis.zrevrange(this.stKey(status), 0, limit - 1, 'WITHSCORES');
      for (let i = 0; i < flat.length; i += 2) ranked.push({ id: flat[i]!, at: Number(flat[i + 1]) });
    }
    ranked.sort((a, b) => b.at - a.at);
    const ids = ranked.slice(0, limit).map((r) => r.id);
    const records: JobRecord[] = [];
    for (let i = 0; i < ids.length; i += 500) {
      const pipe = this.redis.pipeline();
      for (const id of ids.slice(i, i + 500)) pipe.hget(this.jobKey(id), 'rec');
      for (const [err, text] of (await pipe.exec()) ?? []) {
        if (!err && typeof text === 'string') records.push(JSON.parse(text) as JobRecord);
      }
    }
    return records;
  }

  async countByStatus(): Promise<Record<JobStatus, number>> {
    const pipe = this.redis.pipeline();
    for (const s of JOB_STATUSES) pipe.zcard(this.stKey(s));
    const replies = (await pipe.exec()) ?? [];
    return Object.fromEntries(JOB_STATUSES.map((s, i) => [s, Number(replies[i]?.[1] ?? 0)])) as Record<JobStatus, number>;
  }

  /**
   * Deletes finished jobs last changed before `before`. Safe to run on every node at once: each
   * id is removed from its index by exactly one script call, and only that call reports it.
   */
  async pruneFinished(before: number): Promise<string[]> {
    const pruned: string[] = [];
    for (const status of FINISHED) {
      for (;;) {
        const ids = await this.redis.zrangebyscore(this.stKey(status), '-inf', `(${before}`, 'LIMIT', 0, 1000);
        if (ids.length === 0) break;
        const pipe = this.redis.pipeline();
        for (const id of ids) (pipe as unknown as ScriptedRedis).ptPruneOne(this.stKey(status), this.jobKey(id), this.evKey(id), id);
        const replies = (await pipe.exec()) ?? [];
        replies.forEach(([err, n], i) => {
          if (!err && n === 1) pruned.push(ids[i]!);
        });
        if (ids.length < 1000) break;
      }
    }
    return pruned;
  }

  async appendHistory(key: string, sample: unknown, maxPerKey: number): Promise<void> {
    const p = this.prefix;
    await this.redis.ptHistory(`${p}hist:${key}`, `${p}hist:keys`, `${p}hist:n`, key, JSON.stringify(sample), Math.max(1, maxPerKey));
  }

  /** Every key's samples, oldest first across keys (the order they were appended in). */
  async loadHistory(): Promise<Array<{ key: string; sample: unknown }>> {
    const keys = await this.redis.smembers(`${this.prefix}hist:keys`);
    const all: Array<{ n: number; key: string; sample: unknown }> = [];
    for (let i = 0; i < keys.length; i += 200) {
      const batch = keys.slice(i, i + 200);
      const pipe = this.redis.pipeline();
      for (const key of batch) pipe.lrange(`${this.prefix}hist:${key}`, 0, -1);
      const replies = (await pipe.exec()) ?? [];
      replies.forEach(([err, items], j) => {
        if (err || !Array.isArray(items)) return;
        for (const item of items as string[]) {
          const bar = item.indexOf('|');
          try {
            all.push({ n: Number(item.slice(0, bar)), key: batch[j]!, sample: JSON.parse(item.slice(bar + 1)) as unknown });
          } catch {
            /* a corrupt sample is skipped, not fatal */
          }
        }
      });
    }
    all.sort((a, b) => a.n - b.n);
    return all.map(({ key, sample }) => ({ key, sample }));
  }

  /** Redis's persistence settings, to warn when an acknowledged event is not on disk. */
  async checkDurability(): Promise<RedisDurability> {
    try {
      const aof = (await this.redis.config('GET', 'appendonly')) as string[];
      const fsync = (await this.redis.config('GET', 'appendfsync')) as string[];
      const appendonly = aof[1];
      const appendfsync = fsync[1];
      return { appendonly, appendfsync, fsyncEachWrite: appendonly === 'yes' && appendfsync === 'always' };
    } catch {
      return {};
    }
  }

  async close(): Promise<void> {
    if (!this.ownsClient) return;
    try {
      await this.client.quit();
    } catch {
      this.client.disconnect();
    }
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(message)), ms);
    }),
  ]);
}
