// Listing at the store and the job service's merge: both stores walk their listing indexes newest
// first with an exact keyset cursor (ties on createdAt ordered by id), keep the indexes through
// insert, status changes and prune, and check filters the index does not cover within `scan`;
// SQLite migrates a version 1 file (columns, tags, indexes); Redis indexes jobs stored before its
// listing indexes existed and publishes each change on the job's tag channels; listJobs merges
// several walks (a token's tags, several statuses), shows a job once, and stops at its scan budget
// with a cursor that continues exactly where it stopped.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { Redis } from 'ioredis';
import type { Job, JobStatus } from '../../protocol/index.js';
import { createJob } from '../../server/core/job-machine.js';
import { decodeCursor, encodeCursor, listJobs } from '../../server/core/job-list.js';
import { tagChannel } from '../../server/store/redis-channels.js';
import { listMember, RedisStore } from '../../server/store/redis.js';
import { SqliteStore } from '../../server/store/sqlite.js';
import type { ListCursor, Store } from '../../server/store/store.js';
import { startRedis, type RedisServer } from '../fixtures/redis-server.js';

const dir = mkdtempSync(join(tmpdir(), 'pt-listing-'));
let redis: RedisServer;
let prefixes = 0;
before(async () => {
  redis = await startRedis();
});
after(async () => {
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const T0 = 1_700_000_000_000;

function job(id: string, createdAt: number, opts: { tags?: string[]; kind?: string; status?: JobStatus } = {}): Job {
  const j = createJob({ id, kind: opts.kind ?? 'render', steps: [{ id: 'a' }], ...(opts.tags && { tags: opts.tags }) }, createdAt);
  return opts.status ? { ...j, status: opts.status } : j;
}

const ids = (records: Array<{ job: Job }>) => records.map((r) => r.job.id);

/** 30 jobs: j00 (oldest) … j29; three share one millisecond; tags, kinds and statuses spread over them. */
function fixture(): Job[] {
  const jobs: Job[] = [];
  for (let i = 0; i < 30; i++) {
    const at = i >= 10 && i <= 12 ? T0 + 10_000 : T0 + i * 1000; // j10, j11, j12 created in the same ms
    const tags = [i % 3 === 0 ? 'user:alice' : 'user:bob', ...(i % 5 === 0 ? ['org:acme'] : [])];
    jobs.push(job(`j${String(i).padStart(2, '0')}`, at, { tags, kind: i % 2 === 0 ? 'render' : 'export', status: i % 4 === 0 ? 'running' : 'queued' }));
  }
  return jobs;
}

/** The expected order: createdAt DESC, id DESC. */
const newestFirst = (jobs: Job[]) => [...jobs].sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? 1 : -1)).map((j) => j.id);

async function pageAll(store: Store, query: Parameters<Store['list']>[0]): Promise<string[]> {
  const out: string[] = [];
  let before: ListCursor | undefined;
  for (let guard = 0; guard < 100; guard++) {
    const page = await store.list({ ...query, ...(before && { before }) });
    out.push(...ids(page.records));
    if (!page.next) return out;
    before = page.next;
  }
  throw new Error('no end');
}

function contract(name: string, open: () => Promise<Store>) {
  describe(`${name}: list`, () => {
    let store: Store;
    const jobs = fixture();
    before(async () => {
      store = await open();
      for (const j of jobs) assert.equal(await store.insert({ job: j }), true);
    });
    after(async () => {
      await store.close();
    });

    test('every job, newest first, ties by id; a cursor continues exactly after its position', async () => {
      const all = newestFirst(jobs);
      const first = await store.list({ limit: 7 });
      assert.deepEqual(ids(first.records), all.slice(0, 7));
      assert.deepEqual(first.next, { createdAt: jobs.find((j) => j.id === all[6])!.createdAt, id: all[6] });
      assert.deepEqual(await pageAll(store, { limit: 4 }), all);
      // Inside the tie: after j12 come j11 then j10.
      const tie = await store.list({ limit: 2, before: { createdAt: T0 + 10_000, id: 'j12' } });
      assert.deepEqual(ids(tie.records), ['j11', 'j10']);
      // A cursor whose job does not exist still places the walk.
      const ghost = await store.list({ limit: 1, before: { createdAt: T0 + 10_000, id: 'j115' } });
      assert.deepEqual(ids(ghost.records), ['j11']);
    });

    test('by tag, by status, by kind, and filters beside the index', async () => {
      const alice = jobs.filter((j) => j.tags!.includes('user:alice'));
      assert.deepEqual(await pageAll(store, { tag: 'user:alice', limit: 3 }), newestFirst(alice));
      const running = jobs.filter((j) => j.status === 'running');
      assert.deepEqual(await pageAll(store, { statuses: ['running'], limit: 2 }), newestFirst(running));
      const exports = jobs.filter((j) => j.kind === 'export');
      assert.deepEqual(await pageAll(store, { kind: 'export', limit: 5 }), newestFirst(exports));
      const aliceRunningRender = alice.filter((j) => j.status === 'running' && j.kind === 'render');
      assert.deepEqual(await pageAll(store, { tag: 'user:alice', statuses: ['running'], kind: 'render', limit: 2 }), newestFirst(aliceRunningRender));
      const queuedOrRunningExport = exports.filter((j) => j.status === 'queued' || j.status === 'running');
      assert.deepEqual(await pageAll(store, { statuses: ['queued', 'running'], kind: 'export', limit: 4 }), newestFirst(queuedOrRunningExport));
      assert.deepEqual((await store.list({ tag: 'nobody', limit: 5 })).records, []);
      assert.deepEqual((await store.list({ statuses: [], limit: 5 })).records, []);
    });

    test('a filter the index does not cover is checked within `scan`: the page stops where the walk did', async () => {
      // Running and render: every 4th job, walked on the status index, kind checked on the way.
      const page = await store.list({ tag: 'user:bob', statuses: ['completed'], limit: 5, scan: 4 });
      assert.deepEqual(page.records, []);
      assert.equal(page.scanned, 4);
      const bob = newestFirst(jobs.filter((j) => j.tags!.includes('user:bob')));
      assert.equal(page.next?.id, bob[3]);
    });

    test('status changes move a job between status indexes; prune removes it from every index', async () => {
      const j = jobs.find((x) => x.id === 'j29')!;
      const done = { ...j, status: 'completed' as const, seq: j.seq + 1, updatedAt: T0 + 100_000 };
      await store.save({ job: done }, [], j.seq);
      assert.deepEqual(ids((await store.list({ statuses: ['completed'], limit: 10 })).records), ['j29']);
      assert.ok(!ids((await store.list({ statuses: ['queued'], limit: 50 })).records).includes('j29'));
      assert.deepEqual(await store.pruneFinished(T0 + 200_000), ['j29']);
      for (const q of [{}, { tag: 'user:bob' }, { kind: 'export' }, { statuses: ['completed' as const] }]) {
        assert.ok(!ids((await store.list({ ...q, limit: 50 })).records).includes('j29'), JSON.stringify(q));
      }
    });
  });
}

contract('SQLite', async () => new SqliteStore({ path: join(dir, `contract-${++prefixes}.db`) }));
contract('Redis', async () => RedisStore.open({ url: redis.url, prefix: `lst${++prefixes}:` }));

test('SQLite: a version 1 file is migrated at open: created_at, kind and tags from each record, then listed', () => {
  const path = join(dir, 'v1.db');
  const v1 = new Database(path);
  v1.pragma('journal_mode = WAL');
  v1.exec(`CREATE TABLE jobs (id TEXT PRIMARY KEY, status TEXT NOT NULL, seq INTEGER NOT NULL, updated_at INTEGER NOT NULL, finished_at INTEGER, record TEXT NOT NULL);
    CREATE INDEX jobs_status ON jobs(status);
    CREATE INDEX jobs_finished ON jobs(finished_at) WHERE finished_at IS NOT NULL;
    CREATE TABLE event_ids (job_id TEXT NOT NULL, event_id TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (job_id, event_id)) WITHOUT ROWID;
    CREATE TABLE history (id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, sample TEXT NOT NULL);
    CREATE INDEX history_key ON history(key, id);`);
  const insert = v1.prepare('INSERT INTO jobs (id, status, seq, updated_at, finished_at, record) VALUES (?, ?, ?, ?, NULL, ?)');
  const old = [job('old-1', T0, { tags: ['user:alice'] }), job('old-2', T0 + 1, { tags: ['user:alice', 'org:x'], kind: 'export' }), job('old-3', T0 + 2)];
  for (const j of old) insert.run(j.id, j.status, j.seq, j.updatedAt, JSON.stringify({ job: j }));
  v1.pragma('user_version = 1');
  v1.close();

  return (async () => {
    const store = new SqliteStore({ path });
    try {
      assert.deepEqual(ids((await store.list({ limit: 10 })).records), ['old-3', 'old-2', 'old-1']);
      assert.deepEqual(ids((await store.list({ tag: 'user:alice', limit: 10 })).records), ['old-2', 'old-1']);
      assert.deepEqual(ids((await store.list({ kind: 'export', limit: 10 })).records), ['old-2']);
      await store.insert({ job: job('new-1', T0 + 3, { tags: ['org:x'] }) });
      assert.deepEqual(ids((await store.list({ tag: 'org:x', limit: 10 })).records), ['new-1', 'old-2']);
    } finally {
      await store.close();
    }
    const check = new Database(path, { readonly: true });
    assert.equal(check.pragma('user_version', { simple: true }), 2);
    const indexes = (check.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'jobs'").pluck().all() as string[]).sort();
    assert.ok(!indexes.includes('jobs_status'), 'the version 1 status index is replaced');
    assert.ok(indexes.includes('jobs_status_created'));
    check.close();
  })();
});

describe('Redis: older jobs and tag channels', () => {
  test('jobs stored before the listing indexes existed are indexed once, at open', async () => {
    const prefix = `old${++prefixes}:`;
    const raw = new Redis(redis.url);
    try {
      for (const j of [job('r-1', T0, { tags: ['user:alice'] }), job('r-2', T0 + 1, { status: 'running' })]) {
        // What a previous version's insert wrote: no listing indexes, no lm/ix fields.
        await raw.hset(`${prefix}job:${j.id}`, 'seq', j.seq, 'status', j.status, 'rec', JSON.stringify({ job: j }));
        await raw.zadd(`${prefix}st:${j.status}`, j.updatedAt, j.id);
      }
      const store = await RedisStore.open({ url: redis.url, prefix });
      assert.deepEqual(ids((await store.list({ limit: 10 })).records), ['r-2', 'r-1']);
      assert.deepEqual(ids((await store.list({ tag: 'user:alice', limit: 10 })).records), ['r-1']);
      assert.deepEqual(ids((await store.list({ statuses: ['running'], limit: 10 })).records), ['r-2']);
      assert.equal(await raw.get(`${prefix}listidx`), '2');
      assert.equal(await raw.hget(`${prefix}job:r-1`, 'lm'), listMember(T0, 'r-1'));
      assert.equal(await store.indexOlderJobs(), 0, 'done once');
      // And the prune of an indexed older job empties its indexes too.
      const j = job('r-1', T0, { tags: ['user:alice'] });
      await store.save({ job: { ...j, status: 'completed', seq: 2, updatedAt: T0 + 5 } }, [], 1);
      assert.deepEqual(await store.pruneFinished(T0 + 10), ['r-1']);
      assert.equal(await raw.zcard(`${prefix}tag:user:alice`), 0);
      assert.equal(await raw.zcard(`${prefix}created`), 1);
      await store.close();
    } finally {
      raw.disconnect();
    }
  });

  test('the insert and save scripts publish each change on every tag channel of the job', async () => {
    const prefix = `tch${++prefixes}:`;
    const store = await RedisStore.open({ url: redis.url, prefix, nodeId: 'n1' });
    const sub = new Redis(redis.url);
    const heard: Array<[string, { n: string; job: Job }]> = [];
    sub.on('message', (channel: string, text: string) => heard.push([channel, JSON.parse(text) as { n: string; job: Job }]));
    await sub.subscribe(tagChannel(prefix, 'user:alice'), tagChannel(prefix, 'org:acme'));
    try {
      const j = job('p-1', T0, { tags: ['user:alice', 'org:acme'] });
      await store.insert({ job: j });
      await store.save({ job: { ...j, status: 'running', seq: 2 } }, [], 1);
      await store.insert({ job: job('p-2', T0, { tags: ['user:bob'] }) });
      for (let i = 0; i < 50 && heard.length < 4; i++) await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(
        heard.map(([channel, m]) => [channel.slice(prefix.length), m.n, m.job.id, m.job.seq]),
        [
          ['tagch:user:alice', 'n1', 'p-1', 1],
          ['tagch:org:acme', 'n1', 'p-1', 1],
          ['tagch:user:alice', 'n1', 'p-1', 2],
          ['tagch:org:acme', 'n1', 'p-1', 2],
        ],
      );
    } finally {
      sub.disconnect();
      await store.close();
    }
  });
});

describe('listJobs: merging walks', () => {
  let store: SqliteStore;
  const jobs = fixture();
  before(async () => {
    store = new SqliteStore({ path: ':memory:' });
    for (const j of jobs) await store.insert({ job: j });
  });
  after(async () => {
    await store.close();
  });

  async function allPages(q: Omit<Parameters<typeof listJobs>[1], 'before'>): Promise<{ ids: string[]; pages: number }> {
    const out: string[] = [];
    let before: ListCursor | undefined;
    for (let pages = 1; pages < 200; pages++) {
      const r = await listJobs(store, { ...q, ...(before && { before }) });
      assert.ok(r.jobs.length <= q.limit);
      out.push(...r.jobs.map((j) => j.id));
      if (!r.next) return { ids: out, pages };
      before = r.next;
    }
    throw new Error('no end');
  }

  test('the union of several tags, a job carrying two of them shown once, newest first', async () => {
    const union = jobs.filter((j) => j.tags!.includes('user:alice') || j.tags!.includes('org:acme'));
    for (const limit of [1, 3, 50]) assert.deepEqual((await allPages({ tags: ['user:alice', 'org:acme'], limit })).ids, newestFirst(union));
  });

  test('several statuses merge their indexes; an empty tag list lists nothing', async () => {
    const some = jobs.filter((j) => j.status === 'running' || j.status === 'queued');
    assert.deepEqual((await allPages({ statuses: ['running', 'queued'], limit: 4 })).ids, newestFirst(some));
    assert.deepEqual(await listJobs(store, { tags: [], limit: 5 }), { jobs: [], next: null });
  });

  test('`where` within the scan budget: short pages with a cursor, and nothing skipped or repeated', async () => {
    const mine = jobs.filter((j) => j.id.endsWith('7'));
    const { ids: seen, pages } = await allPages({ limit: 2, where: (j) => j.id.endsWith('7'), scanBudget: 5 });
    assert.deepEqual(seen, newestFirst(mine));
    assert.ok(pages > 3, `the budget split the walk into pages (${pages})`);
    const first = await listJobs(store, { limit: 2, where: () => false, scanBudget: 5 });
    assert.deepEqual(first.jobs, []);
    assert.ok(first.next, 'an empty page that is not the end says where to go on');
  });

  test('the last page says so: nextCursor null exactly when nothing is left', async () => {
    const all = newestFirst(jobs);
    const r = await listJobs(store, { limit: all.length });
    assert.equal(r.jobs.length, all.length);
    assert.equal(r.next, null);
    const almost = await listJobs(store, { limit: all.length - 1 });
    assert.deepEqual(almost.next, { createdAt: jobs.find((j) => j.id === all.at(-2))!.createdAt, id: all.at(-2) });
  });

  test('cursors: base64url of createdAt and id, anything else refused', () => {
    const c = { createdAt: T0, id: 'a.b:c-d_e' };
    assert.deepEqual(decodeCursor(encodeCursor(c)), c);
    for (const bad of ['', 'x', Buffer.from('12:').toString('base64url'), Buffer.from('1.5:a').toString('base64url'), Buffer.from('1:bad id').toString('base64url')]) {
      assert.equal(decodeCursor(bad), undefined, bad);
    }
  });
});
