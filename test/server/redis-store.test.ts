/**
 * RedisStore against a real redis-server (started here on a free port): the Store contract the
 * SQLite store meets, plus what a shared store must add: seq-checked saves, idempotent resends,
 * prune once across nodes, retention TTL, commit-ordered change messages, and durability across
 * a kill -9 of Redis with `appendfsync always`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { createJob } from '../../server/core/job-machine.js';
import type { Job } from '../../protocol/index.js';
import { jobChannel, type ChangeMessage } from '../../server/store/redis-channels.js';
import { RedisStore } from '../../server/store/redis.js';
import { SeqConflictError, StoreOpenError, type JobRecord } from '../../server/store/store.js';
import { freePort, startRedis, type RedisServer } from '../fixtures/redis-server.js';

let redis: RedisServer;
let prefixCounter = 0;
const open = (extra: Partial<Parameters<typeof RedisStore.open>[0]> = {}) =>
  RedisStore.open({ url: redis.url, prefix: `t${++prefixCounter}:`, ...extra });

const newJob = (id: string, now = 1_000): Job =>
  createJob({ id, kind: 'test', steps: [{ id: 'a' }, { id: 'b' }] }, now);
const next = (job: Job, patch: Partial<Job>): Job => ({ ...job, ...patch, seq: job.seq + 1, updatedAt: job.updatedAt + 1 });

before(async () => {
  redis = await startRedis({ appendonly: true });
});
after(async () => {
  await redis?.stop();
});

describe('RedisStore', () => {
  test('insert refuses a duplicate id; get returns the record with its private parts', async () => {
    const store = await open();
    const record: JobRecord = { job: newJob('j1'), webhook: 'https://example.test/hook', source: { type: 'http', url: 'https://up.test/1', map: {} } };
    assert.equal(await store.insert(record), true);
    assert.equal(await store.insert({ job: newJob('j1') }), false);
    assert.deepEqual(await store.get('j1'), record);
    assert.equal(await store.get('missing'), undefined);
    await store.close();
  });

  test('save is seq-checked: a stale writer gets SeqConflictError and changes nothing', async () => {
    const store = await open();
    const j0 = newJob('race');
    await store.insert({ job: j0 });
    const a = next(j0, { status: 'running' });
    const b = next(j0, { status: 'failed' });
    await store.save({ job: a }, [], j0.seq);
    await assert.rejects(store.save({ job: b }, [], j0.seq), (err: unknown) => {
      assert.ok(err instanceof SeqConflictError);
      assert.equal(err.actualSeq, a.seq);
      return true;
    });
    assert.equal((await store.get('race'))?.job.status, 'running');
    // The very same save resent (a reply lost on a dropped connection) is a success, not a conflict.
    await store.save({ job: a }, [], j0.seq);
    // A job that does not exist is a conflict too.
    await assert.rejects(store.save({ job: newJob('ghost') }, [], 0), SeqConflictError);
    await store.close();
  });

  test('concurrent writers from two connections: exactly one wins each seq', async () => {
    const s1 = await open();
    const s2 = await RedisStore.open({ url: redis.url, prefix: s1.prefix });
    let job = newJob('contended');
    await s1.insert({ job });
    let wins = 0;
    let conflicts = 0;
    for (let i = 0; i < 50; i++) {
      const candidate = next(job, { progress: i / 50 });
      const results = await Promise.allSettled([s1.save({ job: candidate }, [], job.seq), s2.save({ job: { ...candidate, kind: 'other' } }, [], job.seq)]);
      wins += results.filter((r) => r.status === 'fulfilled').length;
      conflicts += results.filter((r) => r.status === 'rejected' && r.reason instanceof SeqConflictError).length;
      job = (await s1.get('contended'))!.job;
      assert.equal(job.seq, candidate.seq);
    }
    assert.equal(wins, 50);
    assert.equal(conflicts, 50);
    await Promise.all([s1.close(), s2.close()]);
  });

  test('eventIds are remembered with the seq of their first acceptance', async () => {
    const store = await open();
    const j0 = newJob('ev');
    await store.insert({ job: j0 });
    const j1 = next(j0, {});
    await store.save({ job: j1 }, [{ eventId: 'e1', seq: j1.seq }], j0.seq);
    const j2 = next(j1, {});
    await store.save({ job: j2 }, [{ eventId: 'e1', seq: j2.seq }, { eventId: 'e2', seq: j2.seq }], j1.seq);
    assert.equal(await store.findEvent('ev', 'e1'), j1.seq);
    assert.equal(await store.findEvent('ev', 'e2'), j2.seq);
    assert.equal(await store.findEvent('ev', 'nope'), undefined);
    await store.close();
  });

  test('listByStatus (newest first) and countByStatus follow status changes', async () => {
    const store = await open();
    for (let i = 0; i < 5; i++) await store.insert({ job: newJob(`l${i}`, 1000 + i) });
    const j = (await store.get('l2'))!.job;
    await store.save({ job: { ...next(j, { status: 'completed' }), updatedAt: 5000 } }, [], j.seq);
    const queued = await store.listByStatus(['queued'], 10);
    assert.deepEqual(queued.map((r) => r.job.id), ['l4', 'l3', 'l1', 'l0']);
    assert.deepEqual((await store.listByStatus(['queued', 'completed'], 2)).map((r) => r.job.id), ['l2', 'l4']);
    const counts = await store.countByStatus();
    assert.deepEqual(counts, { queued: 4, running: 0, completed: 1, failed: 0, canceled: 0 });
    await store.close();
  });

  test('finished jobs carry a retention TTL, cleared again when a retry reopens them', async () => {
    const store = await open({ retentionMs: 60_000, retentionGraceMs: 1000 });
    const j0 = newJob('ttl');
    await store.insert({ job: j0 });
    const failed = next(j0, { status: 'failed' });
    await store.save({ job: failed }, [{ eventId: 'x', seq: failed.seq }], j0.seq);
    const ttl = await store.client.pttl(store.jobKey('ttl'));
    assert.ok(ttl > 55_000 && ttl <= 61_000, `ttl ${ttl}`);
    const requeued = next(failed, { status: 'queued' });
    await store.save({ job: requeued }, [], failed.seq);
    assert.equal(await store.client.pttl(store.jobKey('ttl')), -1);
    await store.close();
  });

  test('pruneFinished deletes each old finished job once even when two nodes prune together', async () => {
    const s1 = await open();
    const s2 = await RedisStore.open({ url: redis.url, prefix: s1.prefix });
    for (let i = 0; i < 30; i++) {
      const j0 = newJob(`p${i}`, 1000);
      await s1.insert({ job: j0 });
      const done = { ...next(j0, { status: i % 3 === 0 ? 'failed' : 'completed' }), updatedAt: i < 20 ? 2000 : 9000 };
      await s1.save({ job: done }, [{ eventId: 'e', seq: done.seq }], j0.seq);
    }
    await s1.insert({ job: newJob('running-one', 10) });
    const [a, b] = await Promise.all([s1.pruneFinished(5000), s2.pruneFinished(5000)]);
    assert.equal(a.length + b.length, 20);
    assert.equal(new Set([...a, ...b]).size, 20);
    assert.equal(await s1.get('p0'), undefined);
    assert.equal(await s1.findEvent('p0', 'e'), undefined);
    assert.ok(await s1.get('p25'));
    assert.ok(await s1.get('running-one'));
    await Promise.all([s1.close(), s2.close()]);
  });

  test('ETA history is bounded per key and loads in append order', async () => {
    const store = await open();
    for (let i = 0; i < 10; i++) {
      await store.appendHistory('k1', { i }, 3);
      await store.appendHistory('k2', { i }, 100);
    }
    const all = await store.loadHistory();
    assert.deepEqual(all.filter((h) => h.key === 'k1').map((h) => (h.sample as { i: number }).i), [7, 8, 9]);
    assert.equal(all.filter((h) => h.key === 'k2').length, 10);
    // Global order: k2's samples 0..6 come before k1's 7, as they were appended.
    const order = all.map((h) => `${h.key}:${(h.sample as { i: number }).i}`);
    assert.ok(order.indexOf('k2:6') < order.indexOf('k1:7'));
    await store.close();
  });

  test('each save publishes the new state on the job channel, in commit order', async () => {
    const store = await open({ nodeId: 'node-x' });
    const sub = new Redis(redis.url);
    const got: ChangeMessage[] = [];
    sub.on('message', (_ch, text: string) => got.push(JSON.parse(text) as ChangeMessage));
    await sub.subscribe(jobChannel(store.prefix, 'pub'));
    let job = newJob('pub');
    await store.insert({ job, webhook: 'https://secret.test/hook' });
    for (let i = 0; i < 20; i++) {
      const n = next(job, { progress: i / 20 });
      await store.save({ job: n, webhook: 'https://secret.test/hook' }, [], job.seq);
      job = n;
    }
    const deadline = Date.now() + 3000;
    while (got.length < 20 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(got.map((m) => m.job.seq), Array.from({ length: 20 }, (_, i) => i + 2));
    assert.ok(got.every((m) => m.n === 'node-x' && m.t === 'u'));
    // Only the public job goes on the channel, never the webhook or a source.
    assert.ok(!JSON.stringify(got).includes('secret.test'));
    sub.disconnect();
    await store.close();
  });

  test('with appendfsync always, every acknowledged save survives kill -9 of Redis', async () => {
    const store = await open();
    const durability = await store.checkDurability();
    assert.deepEqual(durability, { appendonly: 'yes', appendfsync: 'always', fsyncEachWrite: true });
    let job = newJob('durable');
    await store.insert({ job });
    for (let i = 0; i < 25; i++) {
      const n = next(job, { progress: i / 25 });
      await store.save({ job: n }, [{ eventId: `e${i}`, seq: n.seq }], job.seq);
      job = n;
    }
    await redis.kill9();
    await redis.start();
    // ioredis reconnects by itself; the next call waits for it.
    const stored = await store.get('durable');
    assert.equal(stored?.job.seq, job.seq);
    assert.equal(await store.findEvent('durable', 'e24'), job.seq);
    await store.close();
  });

  test('an unreachable Redis fails to open with a clear StoreOpenError and no password in it', async () => {
    const port = await freePort();
    await assert.rejects(
      RedisStore.open({ url: `redis://:hunter2@127.0.0.1:${port}`, connectTimeoutMs: 1500, redis: { retryStrategy: () => null } }),
      (err: unknown) => {
        assert.ok(err instanceof StoreOpenError);
        assert.match(err.message, /cannot use Redis at redis:\/\/:\*\*\*@127\.0\.0\.1/);
        assert.ok(!err.message.includes('hunter2'));
        return true;
      },
    );
    await assert.rejects(RedisStore.open({ url: 'http://127.0.0.1:1' }), /must start with redis:\/\//);
  });
});
