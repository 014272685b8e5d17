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
 *   {p}created         listing index, every job  ┐ sorted sets, every score 0, member
 *   {p}lst:<status>    listing index, by status  │ `<createdAt, 15 digits>:<id>`, so their
 *   {p}kind:<kind>     listing index, by kind    │ lexicographic order is the listing's
 *   {p}tag:<tag>       listing index, by tag     ┘ (createdAt, id) order, ties included
 *   {p}listidx         "2" once jobs stored before the listing indexes existed were indexed
 *   {p}ch:<id>         pub/sub channel: every committed change of the job (./redis-channels.ts)
 *   {p}tagch:<tag>     pub/sub channel: every committed change of every job carrying the tag
 *
 * Listing: the indexes are sorted sets of one score whose members sort as the listing does, so a
 * page is `ZRANGE <index> (<cursor> - BYLEX REV LIMIT 0 n` (O(log n + n), exact under ties, and
 * the cursor needs no member to still exist), then the records by a pipeline. The insert script
 * adds a job to created, lst:<status>, kind:<kind> and tag:<tag> and remembers its member (`lm`)
 * and those keys (`ix`) in the job's hash; the save script moves it between lst: sets when its
 * status changes; the prune script removes it from all of them. A job Redis expired on its own
 * (the retention TTL, when no node pruned it) leaves members behind: a listing walk skips them and
 * removes them from the index it walked. Jobs stored by an older version are indexed once at open
 * (`{p}listidx`). The prune script reads the keys from `ix`, and the tag channels are named from
 * the job's tags: keys a script does not declare, one more reason this is not for Redis Cluster.
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
import { jobChannel, tagChannel } from './redis-channels.js';
import { defineScripts, type ScriptedRedis } from './redis-scripts.js';
import {
  recordJson,
  SeqConflictError,
  StoreOpenError,
  type EventIdEntry,
  type JobRecord,
  type ListCursor,
  type ListPage,
  type ListQuery,
  type Store,
} from './store.js';

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

/** Entries a listing walk examines when the caller sets no `scan` and the index does not cover every filter. */
const DEFAULT_FILTERED_SCAN = 1000;
/** Index entries read per round trip of a filtered walk. */
const WALK_BATCH = 200;
/** The value of `{p}listidx` once every stored job is in the listing indexes. */
const LIST_INDEX_VERSION = '2';

/** A listing index member: sorts (lexicographically) as the listing does. */
export const listMember = (createdAt: number, id: string): string => `${String(Math.max(0, Math.trunc(createdAt))).padStart(15, '0')}:${id}`;
const cursorOf = (member: string): ListCursor => ({ createdAt: Number(member.slice(0, 15)), id: member.slice(16) });
/** A SCAN MATCH pattern matching `text` literally. */
const globEscape = (text: string) => text.replace(/[*?[\]\\]/g, '\\$&');

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
    this.ownsClient = ownsClient;
    this.prefix = options.prefix ?? 'pt:';
    this.nodeId = options.nodeId ?? Math.random().toString(36).slice(2, 10);
    this.ttlMs = (options.retentionMs ?? 86_400_000) + (options.retentionGraceMs ?? 3_600_000);
    this.publish = options.publish ?? true;
    this.statusKeys = [...JOB_STATUSES.map(this.stKey), ...JOB_STATUSES.map(this.lstKey)];
    this.redis = defineScripts(client);
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
    const store = new RedisStore(client, !options.client, options);
    try {
      await store.indexOlderJobs();
    } catch (err) {
      if (!options.client) client.disconnect();
      throw new StoreOpenError(`cannot use ${where}: indexing stored jobs for listing failed: ${(err as Error).message}`);
    }
    return store;
  }

  // ------------------------------------------------------------------------------------------

  jobKey = (id: string) => `${this.prefix}job:${id}`;
  private evKey = (id: string) => `${this.prefix}ev:${id}`;
  private stKey = (status: JobStatus) => `${this.prefix}st:${status}`;
  private lstKey = (status: JobStatus) => `${this.prefix}lst:${status}`;
  private createdKey = () => `${this.prefix}created`;
  private kindKey = (kind: string) => `${this.prefix}kind:${kind}`;
  private tagKey = (tag: string) => `${this.prefix}tag:${tag}`;
  /** The listing indexes of a job other than its status's (what prune empties, from `ix`). */
  private indexKeys = (job: Job): string[] => [this.createdKey(), this.kindKey(job.kind), ...(job.tags ?? []).map(this.tagKey)];
  /** Every save names the status sets and lists (it moves the job between them): made once, in the constructor. */
  private readonly statusKeys: readonly string[];
  /** The socket is corked until the end of this loop turn (holdWritesForThisTurn). */
  private corked = false;
  private tagChannels = (job: Job): string[] => (this.publish ? (job.tags ?? []).map((tag) => tagChannel(this.prefix, tag)) : []);
  private changeMessage = (jobJson: string) => `{"n":${JSON.stringify(this.nodeId)},"t":"u","job":${jobJson}}`;

  async insert(record: JobRecord): Promise<boolean> {
    const { job } = record;
    const jobJson = JSON.stringify(job);
    const indexes = this.indexKeys(job);
    const channels = this.tagChannels(job);
    const keys = [this.jobKey(job.id), this.stKey(job.status), this.lstKey(job.status), ...indexes];
    this.holdWritesForThisTurn();
    const inserted = await this.redis.ptInsert(
      keys.length, ...keys,
      job.id, job.seq, job.status, job.updatedAt, recordJson(record, jobJson), listMember(job.createdAt, job.id), JSON.stringify(indexes),
      channels.length, ...channels, channels.length > 0 ? this.changeMessage(jobJson) : '',
    );
    return inserted === 1;
  }

  async save(record: JobRecord, eventIds: readonly EventIdEntry[] = [], expectedSeq?: number, jobJson = JSON.stringify(record.job)): Promise<void> {
    const { job } = record;
    const ttl = isTerminal(job.status) ? this.ttlMs : 0;
    // ChangeMessage, spliced from the job's JSON: `{"n":<node>,"t":"u","job":<Job>}`.
    const message = this.publish ? this.changeMessage(jobJson) : '';
    const channels = this.tagChannels(job);
    const args: Array<string | number> = [
      this.jobKey(job.id), this.evKey(job.id), ...this.statusKeys,
      job.id, expectedSeq ?? '', job.seq, job.status, job.updatedAt, recordJson(record, jobJson), ttl,
      this.publish ? jobChannel(this.prefix, job.id) : '', message,
      listMember(job.createdAt, job.id), channels.length, ...channels,
    ];
    for (const e of eventIds) args.push(e.eventId, e.seq);
    this.holdWritesForThisTurn();
    const [outcome, stored] = await this.redis.ptSave(...args);
    if (outcome !== 1) throw new SeqConflictError(job.id, expectedSeq ?? -1, outcome === -1 ? undefined : stored);
  }

  /**
   * Saves (and inserts) made in one event-loop turn leave in one write: the connection's socket
   * is corked at the turn's first save and uncorked once the turn's callbacks have run
   * (setImmediate), so Node writes them with one writev. Uncorked, each save was its own write
   * syscall (~7% of the event loop at 10,000 saves/s); ioredis's auto-pipelining does not help
   * here, because each HTTP request is applied in its own tick. Commands keep their order (one
   * socket, one stream).
   */
  private holdWritesForThisTurn(): void {
    if (this.corked || this.client.status !== 'ready') return;
    const stream = (this.client as unknown as { stream?: import('node:stream').Writable }).stream;
    if (!stream || typeof stream.cork !== 'function') return;
    this.corked = true;
    stream.cork();
    setImmediate(() => {
      this.corked = false;
      stream.uncork();
    });
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

  /**
   * One walk of a listing index (see the header): the tag's, else the one status's, else the
   * kind's, else every job's; other filters are checked on the records, WALK_BATCH entries per
   * round trip.
   */
  async list(query: ListQuery): Promise<ListPage> {
    const { tag, statuses, kind, limit } = query;
    if (limit <= 0 || statuses?.length === 0) return { records: [], scanned: 0 };
    const byStatus = tag === undefined && statuses?.length === 1 ? statuses[0]! : undefined;
    const byKind = tag === undefined && byStatus === undefined ? kind : undefined;
    const key =
      tag !== undefined ? this.tagKey(tag) : byStatus !== undefined ? this.lstKey(byStatus) : byKind !== undefined ? this.kindKey(byKind) : this.createdKey();
    const wantStatus = statuses !== undefined && byStatus === undefined ? new Set(statuses) : undefined;
    const wantKind = kind !== undefined && byKind === undefined ? kind : undefined;
    const filtered = wantStatus !== undefined || wantKind !== undefined;
    const scan = Math.max(1, query.scan ?? (filtered ? DEFAULT_FILTERED_SCAN : limit));
    const records: JobRecord[] = [];
    let scanned = 0;
    let from = query.before ? `(${listMember(query.before.createdAt, query.before.id)}` : '+';
    let last: string | undefined;
    let exhausted = false;
    while (records.length < limit && scanned < scan && !exhausted) {
      const want = Math.min(scan - scanned, filtered ? Math.max(WALK_BATCH, limit - records.length) : limit - records.length);
      const members = (await this.redis.call('ZRANGE', key, from, '-', 'BYLEX', 'REV', 'LIMIT', 0, want)) as string[];
      exhausted = members.length < want;
      const found = await this.getMany(members.map((m) => m.slice(16)));
      const gone: string[] = [];
      for (let i = 0; i < members.length && records.length < limit; i++) {
        scanned++;
        last = members[i]!;
        const record = found[i];
        if (!record) gone.push(last);
        else if ((!wantStatus || wantStatus.has(record.job.status)) && (wantKind === undefined || record.job.kind === wantKind)) records.push(record);
      }
      // Expired by Redis (retention TTL) before a node pruned them: drop their members from this index.
      if (gone.length > 0) void this.redis.zrem(key, ...gone).catch(() => undefined);
      if (last !== undefined) from = `(${last}`;
    }
    const stopped = records.length >= limit || (scanned >= scan && !exhausted);
    return { records, scanned, ...(stopped && last !== undefined && { next: cursorOf(last) }) };
  }

  /**
   * Jobs stored before the listing indexes existed are added to them, once per prefix: by the
   * first node to open it (a lock keeps others from repeating it at once; a node that finds the
   * lock taken goes on without waiting). Safe beside live writes: a job already indexed by its
   * insert, or gone, is left alone.
   */
  async indexOlderJobs(): Promise<number> {
    const done = `${this.prefix}listidx`;
    if ((await this.redis.get(done)) === LIST_INDEX_VERSION) return 0;
    const lock = `${done}:lock`;
    if ((await this.redis.set(lock, this.nodeId, 'PX', 120_000, 'NX')) !== 'OK') return 0;
    let indexed = 0;
    try {
      let cursor = '0';
      const pattern = `${globEscape(this.prefix)}job:*`;
      const skip = this.prefix.length + 'job:'.length;
      do {
        const [next, keys] = await this.redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
        cursor = next;
        const records = await this.getMany(keys.map((k) => k.slice(skip)));
        const pipe = this.redis.pipeline();
        records.forEach((record, i) => {
          if (!record) return;
          const { job } = record;
          (pipe as unknown as ScriptedRedis).ptIndexOne(keys[i]!, listMember(job.createdAt, job.id), JSON.stringify(this.indexKeys(job)), this.prefix);
        });
        for (const [err, n] of (await pipe.exec()) ?? []) if (!err && n === 1) indexed++;
      } while (cursor !== '0');
      await this.redis.set(done, LIST_INDEX_VERSION);
    } finally {
      await this.redis.del(lock);
    }
    return indexed;
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
        for (const id of ids) (pipe as unknown as ScriptedRedis).ptPruneOne(this.stKey(status), this.jobKey(id), this.evKey(id), id, this.prefix);
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
