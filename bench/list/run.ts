/**
 * `npm run bench:list`: how fast `GET /v1/jobs` stays with a million stored jobs.
 *
 * Fills a store directly through its write path — `store.insert`, LIST_BATCH inserts in flight,
 * so the SQLite writer thread commits them as one transaction (Redis: one script call each,
 * pipelined on the connection) — with LIST_JOBS jobs spread over 30 days: LIST_TAGS user tags
 * (every job has one, a fifth also one of 50 org tags), 8 kinds, 85 % completed, 7 % failed, 3 %
 * canceled, 3 % running, 2 % queued, one in 500 created in the same millisecond as the previous.
 * Then times the listing as the route runs it (core/job-list.ts `listJobs`, then the summaries'
 * JSON), LIST_RUNS times per query, each run on another random tag or cursor where the query has
 * one: first page, a deep cursor page (among the oldest 10 %), a tag, a deep page of a tag, a
 * status, two statuses (merged), a kind, a tag with a status (checked on the way), the union of
 * three tags (a token with three tag grants), and a prefix grant covering 1 % of the jobs (ids
 * `t<0-99>-…`; checked job by job within the scan budget, so its pages are short). For SQLite, the same first and deep pages over HTTP too (the real server
 * in this process, `fetch` on loopback, token verified from cache).
 *
 * Env: LIST_JOBS (1000000), LIST_TAGS (3000), LIST_RUNS (200), LIST_BATCH (10000),
 * LIST_STORE (sqlite | redis | sqlite,redis; default sqlite), LIST_HTTP (1).
 * The SQLite file and Redis live in a temp dir, removed at the end. Redis: /usr/bin/redis-server,
 * started here without persistence.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { execFileSync } from 'node:child_process';
import Database from 'better-sqlite3';
import { summaryOf, type Job, type JobStatus } from '../../protocol/index.js';
import { createJob } from '../../server/core/job-machine.js';
import { encodeCursor, listJobs, type JobListQuery } from '../../server/core/job-list.js';
import { RedisStore } from '../../server/store/redis.js';
import { SqliteStore } from '../../server/store/sqlite.js';
import type { ListCursor, Store } from '../../server/store/store.js';
import { startServer } from '../../server/app/start-server.js';
import { mintToken } from '../../server/transport/auth.js';
import { startRedis } from '../../test/fixtures/redis-server.js';

const JOBS = Number(process.env.LIST_JOBS ?? 1_000_000);
const TAGS = Number(process.env.LIST_TAGS ?? 3000);
const RUNS = Number(process.env.LIST_RUNS ?? 200);
const BATCH = Number(process.env.LIST_BATCH ?? 10_000);
const STORES = (process.env.LIST_STORE ?? 'sqlite').split(',');
const HTTP = process.env.LIST_HTTP !== '0';

// mulberry32: a seeded PRNG in 32-bit integer arithmetic (a float LCG loses precision past 2^53 and used under half the tags).
let seed = 7;
const random = (): number => {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;

const KINDS = ['render', 'export', 'import', 'transcode', 'report', 'index', 'backup', 'train'];
const STEPS = [{ id: 'prepare' }, { id: 'process' }, { id: 'upload' }, { id: 'notify' }];
const START = Date.now() - 30 * 86_400_000;
const SPACING = (30 * 86_400_000) / JOBS;

function statusAt(r: number): JobStatus {
  return r < 0.85 ? 'completed' : r < 0.92 ? 'failed' : r < 0.95 ? 'canceled' : r < 0.98 ? 'running' : 'queued';
}

/** Job i (0 = oldest): deterministic from the seed. */
function jobAt(i: number, createdAt: number): Job {
  const tags = [`user:u${Math.floor(random() * TAGS)}`];
  if (random() < 0.2) tags.push(`org:o${Math.floor(random() * 50)}`);
  // 100 tenants, one in each hundred jobs: a prefix grant `t7-*` covers 1 % of the jobs, spread over time.
  const job = createJob({ id: `t${i % 100}-${i.toString(36)}-${randomBytes(3).toString('hex')}`, kind: pick(KINDS), steps: STEPS, tags, meta: { title: `Job number ${i}` } }, createdAt);
  const status = statusAt(random());
  const updatedAt = createdAt + 1000 + Math.floor(random() * 60_000);
  if (status === 'queued') return job;
  const done = status === 'completed';
  const steps = job.steps.map((s, n) => ({ ...s, status: done || n < 2 ? ('completed' as const) : n === 2 ? (status === 'running' ? ('running' as const) : ('failed' as const)) : ('pending' as const), progress: done || n < 2 ? 1 : 0.4, startedAt: createdAt + 10 }));
  return {
    ...job,
    status,
    steps,
    progress: done ? 1 : 0.6,
    seq: 8,
    updatedAt,
    ...(status === 'failed' && { error: { code: 'boom', message: 'the upload failed', step: 'upload' } }),
  };
}

interface Filled {
  /** Positions among the oldest 10 %, for deep pages. */
  deep: ListCursor[];
  /** Per tag, a position about half way down its jobs. */
  tagDeep: Map<string, ListCursor>;
  tags: string[];
  seconds: number;
}

async function fill(store: Store): Promise<Filled> {
  seed = 7;
  const started = performance.now();
  const deep: ListCursor[] = [];
  const seenTag = new Map<string, number>();
  const tagDeep = new Map<string, ListCursor>();
  let createdAt = START;
  let inFlight: Promise<boolean>[] = [];
  for (let i = 0; i < JOBS; i++) {
    if (i % 500 !== 0) createdAt += Math.max(1, Math.round(SPACING * (0.5 + random())));
    const job = jobAt(i, createdAt);
    if (i < JOBS / 10 && i % 97 === 0) deep.push({ createdAt, id: job.id });
    const tag = job.tags![0]!;
    const n = (seenTag.get(tag) ?? 0) + 1;
    seenTag.set(tag, n);
    // A tag has ~JOBS/TAGS jobs: remember one from its older half.
    if (n === Math.floor(JOBS / TAGS / 2)) tagDeep.set(tag, { createdAt, id: job.id });
    inFlight.push(store.insert({ job }));
    if (inFlight.length >= BATCH) {
      await Promise.all(inFlight);
      inFlight = [];
      if (i % 100_000 < BATCH) process.stdout.write(`  ${i + 1} jobs, ${Math.round((performance.now() - started) / 1000)} s\r`);
    }
  }
  await Promise.all(inFlight);
  const seconds = (performance.now() - started) / 1000;
  console.log(`  ${JOBS} jobs in ${seconds.toFixed(0)} s (${Math.round(JOBS / seconds)} inserts/s)`);
  return { deep, tagDeep, tags: [...seenTag.keys()], seconds };
}

interface Row {
  query: string;
  p50: number;
  p99: number;
  max: number;
  rows: number;
}

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;

async function time(name: string, make: () => JobListQuery, run: (q: JobListQuery) => Promise<number>): Promise<Row> {
  for (let i = 0; i < 20; i++) await run(make()); // warm up
  const ms: number[] = [];
  let rows = 0;
  for (let i = 0; i < RUNS; i++) {
    const q = make();
    const t = performance.now();
    rows += await run(q);
    ms.push(performance.now() - t);
  }
  ms.sort((a, b) => a - b);
  return { query: name, p50: quantile(ms, 0.5), p99: quantile(ms, 0.99), max: ms.at(-1)!, rows: rows / RUNS };
}

function queries(f: Filled): Array<[string, () => JobListQuery]> {
  const tagsWithDeep = [...f.tagDeep.keys()];
  return [
    ['first page (20), every job', () => ({ limit: 20 })],
    ['deep cursor page (20), oldest 10 %', () => ({ limit: 20, before: pick(f.deep) })],
    ['tag (20)', () => ({ limit: 20, tags: [pick(f.tags)] })],
    ['tag, deep cursor page (20)', () => {
      const tag = pick(tagsWithDeep);
      return { limit: 20, tags: [tag], before: f.tagDeep.get(tag)! };
    }],
    ['status=running (20)', () => ({ limit: 20, statuses: ['running'] })],
    ['status=queued,failed (20, merged)', () => ({ limit: 20, statuses: ['queued', 'failed'] })],
    ['kind (20)', () => ({ limit: 20, kind: pick(KINDS) })],
    ['tag + status=failed (20, status checked on the way)', () => ({ limit: 20, tags: [pick(f.tags)], statuses: ['failed'] })],
    ['three tag grants, their union (20)', () => ({ limit: 20, tags: [pick(f.tags), pick(f.tags), pick(f.tags)] })],
    ['prefix grant t7-* (1 % of jobs; checked per job, budget 1000)', () => ({ limit: 20, where: (job: Job) => job.id.startsWith('t7-') })],
    ['first page (100), every job', () => ({ limit: 100 })],
  ];
}

/** What the route does after authorization: list, then the summaries' JSON. */
const listed = (store: Store) => async (q: JobListQuery): Promise<number> => {
  const { jobs, next } = await listJobs(store, q);
  const body = `{"jobs":[${jobs.map((j) => JSON.stringify(summaryOf(j))).join(',')}],"nextCursor":${next ? JSON.stringify(encodeCursor(next)) : 'null'}}`;
  if (body.length === 0) throw new Error('unreachable');
  return jobs.length;
};

function printTable(title: string, rows: Row[]): void {
  console.log(`\n${title}\n`);
  console.log('| query | p50 ms | p99 ms | max ms | jobs/page |');
  console.log('|---|---:|---:|---:|---:|');
  for (const r of rows) console.log(`| ${r.query} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.max.toFixed(2)} | ${r.rows.toFixed(1)} |`);
}

async function benchSqlite(dir: string): Promise<void> {
  const path = join(dir, 'list.db');
  console.log(`\nSQLite (${path}, synchronous=full)`);
  const filling = new SqliteStore({ path });
  const filled = await fill(filling);
  // Closed (the writer thread folds the WAL back) and opened again, so the reads are not timed
  // against the checkpoint that follows a million inserts.
  await filling.close();
  const store = new SqliteStore({ path });
  const rows: Row[] = [];
  for (const [name, make] of queries(filled)) rows.push(await time(name, make, listed(store)));
  await store.close();
  const size = statSync(path).size;
  printTable(`SQLite, ${JOBS} jobs (${(size / 2 ** 20).toFixed(0)} MiB file), listJobs + summaries JSON, ${RUNS} runs each`, rows);
  if (!HTTP) return;
  const secret = randomBytes(32).toString('base64url');
  // Retention longer than the jobs' 30 days: the start's prune must not delete them.
  const server = await startServer({ db: path, port: 0, host: '127.0.0.1', jwtSecret: secret, logLevel: 'warn', etaTickMs: 0, retentionMs: 365 * 86_400_000 });
  try {
    const token = await mintToken({ secret, audience: 'progress-tracker', scopes: ['progress:read'], jobs: ['*'], ttlSeconds: 3600 });
    const get = (query: string) => async () => {
      const res = await fetch(`${server.url}/v1/jobs${query}`, { headers: { authorization: `Bearer ${token}` } });
      const body = (await res.json()) as { jobs: unknown[] };
      if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
      return body.jobs.length;
    };
    const http: Row[] = [];
    http.push(await time('GET /v1/jobs (first page, 20)', () => ({ limit: 20 }), get('')));
    http.push(await time('GET /v1/jobs?cursor= (deep, 20)', () => ({ limit: 20 }), async () => get(`?cursor=${encodeCursor(pick(filled.deep))}`)()));
    http.push(await time('GET /v1/jobs?tag= (20)', () => ({ limit: 20 }), async () => get(`?tag=${pick(filled.tags)}`)()));
    http.push(await time('GET /v1/jobs?status=running (20)', () => ({ limit: 20 }), get('?status=running')));
    printTable('SQLite over HTTP (the real server in this process, fetch on loopback)', http);
  } finally {
    await server.close();
  }
}

async function benchRedis(): Promise<void> {
  const redis = await startRedis();
  try {
    console.log(`\nRedis (${redis.url}, no persistence)`);
    const store = await RedisStore.open({ url: redis.url, prefix: 'bench:', publish: false });
    const filled = await fill(store);
    const rows: Row[] = [];
    for (const [name, make] of queries(filled)) rows.push(await time(name, make, listed(store)));
    const info = await store.client.info('memory');
    const used = /used_memory:(\d+)/.exec(info)?.[1];
    await store.close();
    printTable(`Redis, ${JOBS} jobs (used_memory ${used ? (Number(used) / 2 ** 20).toFixed(0) : '?'} MiB), listJobs + summaries JSON, ${RUNS} runs each`, rows);
  } finally {
    await redis.stop();
  }
}

function machine(): string {
  const cpu = cpus();
  const sqlite = new Database(':memory:');
  const version = sqlite.prepare('SELECT sqlite_version()').pluck().get() as string;
  sqlite.close();
  let redis = '';
  try {
    redis = execFileSync('/usr/bin/redis-server', ['--version']).toString().split(' ')[2] ?? '';
  } catch {
    /* no redis */
  }
  return `${cpu.length} × ${cpu[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version}, SQLite ${version}${redis ? `, Redis ${redis}` : ''}`;
}

const dir = mkdtempSync(join(tmpdir(), 'pt-bench-list-'));
try {
  console.log(`bench:list — ${JOBS} jobs, ${TAGS} user tags (+50 org tags), ${RUNS} runs per query`);
  console.log(machine());
  console.log(`load average at start: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  if (STORES.includes('sqlite')) await benchSqlite(dir);
  if (STORES.includes('redis')) await benchRedis();
  console.log(`\nload average at the end: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
