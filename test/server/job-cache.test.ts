// The job cache: every queued and running job stays; finished ones are kept up to a bound, least
// recently used first out; a retried job is active again.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Job, JobStatus } from '../../protocol/index.js';
import { JobCache } from '../../server/core/job-cache.js';
import { viewOf } from '../../server/core/job-view.js';

const job = (id: string, status: JobStatus, seq = 1): Job => ({ id, kind: 'k', status, progress: 0, seq, steps: [], eta: null, createdAt: 1, updatedAt: 1 });
const put = (cache: JobCache, j: Job) => cache.set({ job: j }, viewOf(j));

test('active jobs are never evicted; finished ones beyond the bound go least recently used first', () => {
  const cache = new JobCache(2);
  for (let i = 0; i < 5; i++) put(cache, job(`run-${i}`, 'running'));
  put(cache, job('done-a', 'completed'));
  put(cache, job('done-b', 'failed'));
  assert.ok(cache.get('done-a'), 'read: now the most recently used');
  put(cache, job('done-c', 'canceled'));
  assert.equal(cache.peek('done-b'), undefined, 'the least recently used finished job went');
  assert.ok(cache.peek('done-a') && cache.peek('done-c'));
  assert.deepEqual(cache.activeRecords().map((r) => r.job.id), ['run-0', 'run-1', 'run-2', 'run-3', 'run-4']);
  assert.deepEqual([...cache.activeEntries()].length, 5);
});

test('a job moves between active and finished with its status, and a change replaces its entry', () => {
  const cache = new JobCache(10);
  put(cache, job('j', 'running', 1));
  put(cache, job('j', 'running', 2));
  assert.equal(cache.peek('j')!.record.job.seq, 2);
  put(cache, job('j', 'failed', 3));
  assert.deepEqual(cache.activeRecords(), [], 'finished: no longer active');
  put(cache, job('j', 'queued', 4)); // retried
  assert.deepEqual(cache.activeRecords().map((r) => r.job.seq), [4]);
  cache.delete('j');
  assert.equal(cache.peek('j'), undefined);
});
