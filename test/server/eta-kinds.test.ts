// Cross-kind cold start (duration-model.ts, kind-offset.ts), on a virtual clock: the first job of a
// new kind is estimated from the steps other kinds share with it, and a kind's own speed is learned
// from its first finished steps, shrunk toward the pool by evidence.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EtaEngine } from '../../server/eta/eta-engine.js';
import { newJob, runJob } from '../fixtures/eta-jobs.js';

/** Raw estimates (no smoothing, no pessimism). */
const RAW = { tuning: { smoothLater: 1, maxLaterStep: Infinity, pointShift: 0 } };
const near = (actual: number, expected: number, tolerance: number, what: string): void => {
  assert.ok(Math.abs(actual - expected) <= tolerance * expected, `${what}: expected ≈${Math.round(expected)}, got ${Math.round(actual)}`);
};
const BASE: Record<string, number> = { render: 4000, upload: 1000, transcode: 9000, analysis: 3000 };

/** Jobs of `kinds` kinds, each running a few of the shared steps at its own speed. */
function platform(engine: EtaEngine, speeds: number[], jobsPerKind: number): number {
  let t = 0;
  const names = Object.keys(BASE);
  for (let j = 0; j < jobsPerKind; j++) {
    speeds.forEach((speed, k) => {
      const steps = [names[k % 4]!, names[(k + 1) % 4]!, names[(k + 2) % 4]!];
      t = runJob(engine, `kind-${k}`, steps.map((id) => ({ id, durationMs: BASE[id]! * speed })), t + 10) + 10;
    });
  }
  return t;
}

test("a new kind's first job: its steps come from other kinds at once", () => {
  const engine = new EtaEngine(RAW);
  const t = platform(engine, [0.5, 0.8, 1, 1.25, 2, 1, 0.7, 1.4], 4);
  // A kind never seen, made of known steps: the pooled steps (kinds average about 1x).
  const job = newJob('brand-new', [{ id: 'transcode' }, { id: 'upload' }], t);
  const eta = engine.forecast(job, t)!;
  near(eta.remainingMs, 9000 + 1000, 0.35, 'transcode + upload from other kinds');
  assert.ok(eta.low! < 10_000 && eta.high! > 10_000, `interval ${eta.low}–${eta.high} holds the pooled truth`);
});

test("a new kind's speed is learned from its first finished steps and carries to steps it has not run", () => {
  const engine = new EtaEngine(RAW);
  let t = platform(engine, [0.5, 0.8, 1, 1.25, 2, 1, 0.7, 1.4], 4);
  // The new kind runs 3x slower than the pool: after one job of render + upload, its transcode (never run by it) is slower too.
  const slowJob = [{ id: 'render', durationMs: 12_000 }, { id: 'upload', durationMs: 3000 }];
  t = runJob(engine, 'slow-new', slowJob, t + 10) + 10;
  const one = engine.forecast(newJob('slow-new', [{ id: 'transcode' }], t), t)!;
  // One job of a 3x kind among kinds that differ by about ±50%: shrunk toward the pool, but moved, and honest about it.
  assert.ok(one.remainingMs > 9000 * 1.4, `its transcode after one slow job: ${one.remainingMs} (pool 9000, truth 27000)`);
  assert.ok(one.low! < 27_000 && one.high! > 27_000, `interval ${one.low}–${one.high} holds the truth`);
  for (let i = 0; i < 3; i++) t = runJob(engine, 'slow-new', slowJob, t + 10) + 10;
  const four = engine.forecast(newJob('slow-new', [{ id: 'transcode' }], t), t)!;
  assert.ok(four.remainingMs > one.remainingMs && four.remainingMs > 9000 * 1.8, `after four slow jobs: ${four.remainingMs}`);
  assert.ok(four.high! / four.low! < one.high! / one.low!, 'and surer (a narrower interval, as a ratio)');
});
