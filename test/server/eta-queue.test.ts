// Unit tests of queue waits (queue-wait.ts through the engine), on a virtual clock: a job reported
// `queued` gets an ETA that covers its wait plus its run, with `eta.waitMs` the waiting part.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EtaEngine } from '../../server/eta/eta-engine.js';
import { applyEvent, createJob } from '../../server/core/job-machine.js';
import type { HistoryStore } from '../../server/core/estimator.js';
import type { Job, JobEvent } from '../../protocol/index.js';

const near = (actual: number, expected: number, tolerance: number, what: string): void => {
  assert.ok(Math.abs(actual - expected) <= tolerance * expected, `${what}: expected ≈${Math.round(expected)}, got ${Math.round(actual)}`);
};

let ids = 0;
function step(engine: EtaEngine, job: Job, event: JobEvent, now: number): Job {
  const out = applyEvent(job, event, now);
  assert.ok(out.ok, out.ok ? '' : out.error.message);
  engine.observe(job, out.value, now);
  return out.value;
}
function create(engine: EtaEngine, kind: string, now: number): Job {
  const job = createJob({ id: `j${++ids}`, kind, steps: [{ id: 'work' }] }, now);
  engine.observe(undefined, job, now);
  return job;
}

/** A job that waits at positions 2, 1, 0 (`slotMs` apart), runs 1 s and completes; returns the end time. */
function queuedJob(engine: EtaEngine, kind: string, t: number, slotMs: number, positions = true): number {
  let job = create(engine, kind, t);
  for (let p = 2; p >= 0; p--) job = step(engine, job, positions ? { type: 'queued', position: p } : { type: 'queued' }, t + (2 - p) * slotMs);
  t += 3 * slotMs;
  job = step(engine, job, { type: 'step_start', step: 'work' }, t);
  job = step(engine, job, { type: 'step_end', step: 'work' }, t + 1000);
  step(engine, job, { type: 'job_end', status: 'completed' }, t + 1000);
  return t + 1010;
}

test('queue wait: learns the time per slot from positions going down and the start, and counts the wait down', () => {
  const engine = new EtaEngine();
  let t = 0;
  for (let i = 0; i < 12; i++) t = queuedJob(engine, 'encode', t, 4000);
  let job = create(engine, 'encode', t);
  job = step(engine, job, { type: 'queued', position: 4 }, t);
  const waiting = engine.estimate(job, t).eta;
  assert.ok(waiting && waiting.waitMs !== undefined, 'a queued job with a known queue has eta.waitMs');
  near(waiting.waitMs, 5 * 4000, 0.25, 'wait at position 4 (5 slots of 4 s)');
  near(waiting.remainingMs, 5 * 4000 + 1000, 0.3, 'wait plus run');
  assert.ok(waiting.waitMs <= waiting.remainingMs && waiting.low! < waiting.remainingMs && waiting.high! > waiting.remainingMs);
  // Ten seconds later, no news: the wait has counted down.
  const later = engine.estimate(job, t + 10_000).eta;
  assert.ok(later?.waitMs !== undefined && later.waitMs < waiting.waitMs, `wait after 10 s: ${later?.waitMs}`);
  // Moving up shortens it; the first step ends it.
  job = step(engine, job, { type: 'queued', position: 1 }, t + 12_000);
  near(engine.estimate(job, t + 12_000).eta!.waitMs!, 2 * 4000, 0.3, 'wait at position 1');
  job = step(engine, job, { type: 'step_start', step: 'work' }, t + 20_000);
  assert.equal(job.status, 'running');
  assert.equal(engine.estimate(job, t + 20_000).eta?.waitMs, undefined, 'a running job has no wait');
});

test('queue wait: a new kind takes the pooled rate; its own evidence takes over', () => {
  const engine = new EtaEngine();
  let t = 0;
  for (let i = 0; i < 10; i++) t = queuedJob(engine, 'encode', t, 4000);
  let job = step(engine, create(engine, 'thumbs', t), { type: 'queued', position: 1 }, t);
  near(engine.estimate(job, t).eta!.waitMs!, 2 * 4000, 0.35, 'first queued job of a new kind: the pool');
  for (let i = 0; i < 8; i++) t = queuedJob(engine, 'thumbs', t, 1000);
  job = step(engine, create(engine, 'thumbs', t), { type: 'queued', position: 1 }, t);
  near(engine.estimate(job, t).eta!.waitMs!, 2 * 1000, 0.35, 'after its own queue was seen');
});

test('queue wait without positions: the whole wait, given the time already waited', () => {
  const engine = new EtaEngine();
  let t = 0;
  for (let i = 0; i < 12; i++) t = queuedJob(engine, 'batch', t, 5000, false);
  const job = step(engine, create(engine, 'batch', t), { type: 'queued' }, t);
  near(engine.estimate(job, t).eta!.waitMs!, 15_000, 0.25, 'whole wait');
  const later = engine.estimate(job, t + 10_000).eta!.waitMs!;
  assert.ok(later > 0 && later < 15_000, `after 10 s of waiting: ${later}`);
  // A job never reported queued has no wait (its producer did not say it waits).
  const plain = create(engine, 'batch', t);
  assert.equal(engine.estimate(plain, t).eta?.waitMs, undefined);
});

test('queue waits persist through the HistoryStore and are relearned after a restart', async () => {
  const rows: Array<{ key: string; sample: unknown }> = [];
  const store: HistoryStore = {
    appendHistory: async (key, sample) => void rows.push({ key, sample: JSON.parse(JSON.stringify(sample)) }),
    loadHistory: async () => rows,
  };
  const first = new EtaEngine({ history: store });
  let t = 0;
  for (let i = 0; i < 10; i++) t = queuedJob(first, 'encode', t, 3000);
  await new Promise((r) => setImmediate(r));
  const queueRows = rows.filter((r) => r.key === JSON.stringify(['encode', '#queue']));
  assert.ok(queueRows.length >= 10, `queue records: ${queueRows.length}`);
  rows.push({ key: JSON.stringify(['encode', '#queue']), sample: { type: 'queue_slots', kind: 'encode', at: 1 } });
  const second = new EtaEngine({ history: store });
  await second.load();
  const job = step(second, create(second, 'encode', t), { type: 'queued', position: 3 }, t);
  near(second.estimate(job, t).eta!.waitMs!, 4 * 3000, 0.25, 'after restart');
});
