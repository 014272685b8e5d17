// The SQLite store on a real file, with its writer thread: writes land in order and survive a
// reopen, a save built on a stale seq (or of a missing job) is refused without failing its batch,
// a save that changes the status moves the job between status indexes, a failed batch rejects all
// of its writes, and close leaves a complete .db (WAL folded back). One store per file (the
// lock); the WAL stays bounded under a long write load and is truncated when idle.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { createJob } from '../../server/core/job-machine.js';
import { SqliteStore } from '../../server/store/sqlite.js';
import { SeqConflictError, StoreOpenError } from '../../server/store/store.js';

const dir = mkdtempSync(join(tmpdir(), 'pt-sqlite-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const newJob = (id: string) => createJob({ id, kind: 'k', steps: [{ id: 'a' }] }, 1_700_000_000_000);

test('many concurrent saves of many jobs commit in order and survive a reopen', async () => {
  const path = join(dir, 'order.db');
  const store = new SqliteStore({ path });
  const ids = Array.from({ length: 50 }, (_, i) => `job-${i}`);
  assert.deepEqual(await Promise.all(ids.map((id) => store.insert({ job: newJob(id) }))), ids.map(() => true));
  assert.equal(await store.insert({ job: newJob('job-0') }), false, 'a repeated id is not inserted');
  // 20 pipelined saves per job, all issued before any commits: each expects its predecessor's seq.
  const saves: Promise<void>[] = [];
  for (const id of ids) {
    let job = newJob(id);
    for (let n = 0; n < 20; n++) {
      const next = { ...job, seq: job.seq + 1, updatedAt: job.updatedAt + 1 };
      saves.push(store.save({ job: next }, [{ eventId: `${id}-e${n}`, seq: next.seq }], job.seq));
      job = next;
    }
  }
  await Promise.all(saves);
  assert.equal((await store.get('job-7'))!.job.seq, 21);
  assert.equal(await store.findEvent('job-7', 'job-7-e19'), 21);
  await store.close();
  assert.equal(statSync(`${path}-wal`, { throwIfNoEntry: false })?.size ?? 0, 0, 'the WAL is folded back at close');

  const reopened = new SqliteStore({ path });
  assert.equal((await reopened.get('job-49'))!.job.seq, 21);
  assert.deepEqual(await reopened.getMany(['job-1', 'nope']), [await reopened.get('job-1'), undefined]);
  await reopened.close();
});

test('a save on a stale seq is refused with SeqConflictError; the rest of its batch commits', async () => {
  const store = new SqliteStore({ path: join(dir, 'conflict.db') });
  const job = newJob('c1');
  await store.insert({ job });
  const next = { ...job, seq: 2 };
  const [good, stale, other] = await Promise.allSettled([
    store.save({ job: next }, [], 1),
    store.save({ job: { ...job, seq: 2 } }, [], 5),
    store.insert({ job: newJob('c2') }),
  ]);
  assert.equal(good.status, 'fulfilled');
  assert.equal(stale.status, 'rejected');
  assert.ok((stale as PromiseRejectedResult).reason instanceof SeqConflictError);
  assert.equal((stale as PromiseRejectedResult).reason.actualSeq, 2);
  assert.deepEqual(other, { status: 'fulfilled', value: true });
  await store.close();
});

test('a checked save that changes the status moves the job between status indexes; one of a job that is not there is a conflict', async () => {
  const store = new SqliteStore({ path: join(dir, 'status.db') });
  const job = newJob('s1');
  await store.insert({ job });
  const running = { ...job, status: 'running' as const, seq: 2, updatedAt: job.updatedAt + 1 };
  const progress = { ...running, seq: 3, updatedAt: running.updatedAt + 1 };
  const done = { ...progress, status: 'completed' as const, seq: 4, updatedAt: progress.updatedAt + 1 };
  // One batch: a status change, a save keeping it, a stale one, another status change, a missing job.
  const results = await Promise.allSettled([
    store.save({ job: running }, [], 1),
    store.save({ job: progress }, [], 2),
    store.save({ job: { ...progress, status: 'failed' as const } }, [], 2),
    store.save({ job: done }, [{ eventId: 'last', seq: 4 }], 3),
    store.save({ job: newJob('ghost') }, [], 0),
  ]);
  assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'rejected']);
  assert.equal((results[2] as PromiseRejectedResult).reason.actualSeq, 3);
  assert.ok((results[4] as PromiseRejectedResult).reason instanceof SeqConflictError);
  assert.equal((results[4] as PromiseRejectedResult).reason.actualSeq, undefined);
  assert.equal(await store.get('ghost'), undefined);
  assert.equal((await store.get('s1'))!.job.seq, 4);
  assert.equal(await store.findEvent('s1', 'last'), 4);
  const counts = await store.countByStatus();
  assert.equal(counts.completed, 1);
  assert.equal(counts.running + counts.queued + counts.failed, 0);
  assert.deepEqual((await store.list({ statuses: ['completed'], limit: 10 })).records.map((r) => r.job.seq), [4]);
  assert.deepEqual((await store.list({ statuses: ['running'], limit: 10 })).records, []);
  // finished_at was set by the status change: the prune finds it.
  assert.deepEqual(await store.pruneFinished(done.updatedAt + 1), ['s1']);
  await store.close();
});

test('history and pruning go through the writer too', async () => {
  const store = new SqliteStore({ path: join(dir, 'history.db') });
  for (let i = 0; i < 5; i++) await store.appendHistory('k', { i }, 3);
  assert.deepEqual((await store.loadHistory()).map((h) => h.sample), [{ i: 2 }, { i: 3 }, { i: 4 }]);
  const done = { ...newJob('old'), status: 'completed' as const, seq: 2, updatedAt: 1000 };
  await store.insert({ job: done });
  assert.deepEqual(await store.pruneFinished(2000), ['old']);
  assert.equal(await store.get('old'), undefined);
  await store.close();
  await assert.rejects(store.save({ job: newJob('late') }), /closed/, 'writes after close are refused');
});

test('one store per file: a second one is refused naming the lock and its holder; after close the file opens again', async () => {
  const path = join(dir, 'locked.db');
  const first = new SqliteStore({ path });
  assert.throws(
    () => new SqliteStore({ path }),
    (err: Error) =>
      err instanceof StoreOpenError &&
      err.message.includes(`${path} is in use by another progress-tracker`) &&
      err.message.includes(`pid ${process.pid}`) &&
      err.message.includes(`${path}.lock`),
  );
  await first.insert({ job: newJob('kept') });
  await first.close();
  const second = new SqliteStore({ path });
  assert.equal((await second.get('kept'))!.job.id, 'kept');
  await second.close();
  // `:memory:` stores are private and take no lock.
  const a = new SqliteStore({ path: ':memory:' });
  const b = new SqliteStore({ path: ':memory:' });
  await Promise.all([a.close(), b.close()]);
});

test('the writer thread checkpoints on its own: the WAL stays near 4 MB under a long write load, and is truncated when writes stop', { timeout: 120_000 }, async () => {
  const path = join(dir, 'wal.db');
  const store = new SqliteStore({ path, synchronous: 'normal' });
  const pad = 'w'.repeat(6000);
  let job = newJob('busy');
  await store.insert({ job });
  let maxWal = 0;
  // ~20 MB through the WAL, one commit per save: without the thread's checkpoints a reader could
  // keep SQLite's own from ever finishing.
  for (let n = 0; n < 2400; n++) {
    const next = { ...job, seq: job.seq + 1, meta: { pad, n } };
    await store.save({ job: next }, [{ eventId: `e${n}`, seq: next.seq }], job.seq);
    job = next;
    maxWal = Math.max(maxWal, walSize(path));
  }
  assert.ok(maxWal <= 4.5 * 1024 * 1024, `the WAL reached ${maxWal} bytes`);
  const deadline = Date.now() + 10_000;
  while (walSize(path) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  assert.equal(walSize(path), 0, 'the WAL is truncated once writes stop');
  assert.equal((await store.get('busy'))!.job.seq, 2401);
  await store.close();
});

const walSize = (path: string) => statSync(`${path}-wal`, { throwIfNoEntry: false })?.size ?? 0;
