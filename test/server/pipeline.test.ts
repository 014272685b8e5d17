// The job service pipelines a job's changes (server/job-service.ts `change`): the next event is
// applied while earlier writes wait for the group commit. These tests pin what that must never
// break: answers and updates in seq order, and a failed write taking every later in-flight change
// of that job down with it, so nothing unacknowledged is published and nothing acknowledged is lost.
// The store is the real SQLite store; only its `save` is made to fail once, like a full disk.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { JobService } from '../../server/core/job-service.js';
import { createLogger } from '../../server/app/log.js';
import { SqliteStore } from '../../server/store/sqlite.js';
import type { Store } from '../../server/store/store.js';

async function setup(failSaveNumber?: number) {
  const sqlite = new SqliteStore({ path: ':memory:' });
  let saves = 0;
  const store: Store = Object.assign(Object.create(sqlite) as Store, {
    save: (...args: Parameters<Store['save']>) => {
      saves++;
      return saves === failSaveNumber ? Promise.reject(new Error('disk full')) : sqlite.save(...args);
    },
  });
  const service = new JobService({ store, log: createLogger('silent'), tickMs: 0 });
  await service.start();
  const published: number[] = [];
  service.on('update', (view) => published.push(view.job.seq));
  await service.create({ id: 'p1', kind: 'k', steps: [{ id: 's1' }] });
  await service.applyEvents('p1', [{ type: 'step_start', step: 's1' }]);
  return { service, sqlite, published, close: async () => { await service.close(); await sqlite.close(); } };
}

test('changes of one job sent in the same turn are answered and published in seq order', async () => {
  const { service, published, close } = await setup();
  const before = published.length;
  const answers = await Promise.all(
    Array.from({ length: 50 }, (_, i) => service.applyEvents('p1', [{ type: 'progress', step: 's1', progress: (i + 1) / 100 }])),
  );
  const seqs = answers.map((a) => a.seq);
  assert.deepEqual(seqs, seqs.map((_, i) => seqs[0]! + i), 'answers carry consecutive seqs in request order');
  assert.deepEqual(published.slice(before), seqs, 'updates are published once each, in seq order');
  assert.equal((await service.get('p1')).job.progress > 0, true);
  await close();
});

test('a failed write refuses the changes built on it and publishes none of them', async () => {
  // Saves: 1 = step_start (in setup), 2 = first progress, 3 = fails; later ones are refused when
  // they were built on it, or applied to the last committed state when they came after it.
  const { service, sqlite, published, close } = await setup(3);
  const before = published.length;
  const start = (await service.get('p1')).job.seq;
  const results = await Promise.allSettled(
    [0.1, 0.2, 0.3, 0.4].map((p, i) => service.applyEvents('p1', [{ type: 'progress', step: 's1', progress: p, eventId: `e${i}` }])),
  );
  assert.equal(results[0]!.status, 'fulfilled', 'the write before the failure is acknowledged');
  assert.equal(results[1]!.status, 'rejected', 'the failed write is refused');
  const acknowledged = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value.seq] : []));
  assert.deepEqual(acknowledged, acknowledged.map((_, i) => start + 1 + i), 'acknowledged changes have consecutive seqs');
  assert.deepEqual(published.slice(before), acknowledged, 'exactly the acknowledged changes were published, in order');
  assert.equal((await sqlite.get('p1'))!.job.seq, acknowledged.at(-1), 'the store holds the last acknowledged state');

  // The refused eventId may be sent again and applies once.
  const again = await service.applyEvents('p1', [{ type: 'progress', step: 's1', progress: 0.5, eventId: 'e1' }]);
  assert.equal(again.applied, 1);
  assert.equal(again.seq, acknowledged.at(-1)! + 1);
  await close();
});
