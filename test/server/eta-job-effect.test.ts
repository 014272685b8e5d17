// What a job's steps share beyond the levels (job-effect.ts): learned from completed jobs, used by
// the job's pace so a job whose first step ran slow as a whole is expected to stay slow — and not
// where jobs show no such effect.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { JobEffect } from '../../server/eta/job-effect.js';
import { EtaEngine } from '../../server/eta/eta-engine.js';
import { change, newJob, runJob, seeded } from '../fixtures/eta-jobs.js';

test('JobEffect: residuals shared within jobs give their variance; independent ones give 0', () => {
  const rng = seeded(7);
  const shared = new JobEffect();
  const independent = new JobEffect();
  for (let j = 0; j < 400; j++) {
    const u = 0.6 * rng.normal();
    shared.addJob([0, 1, 2, 3].map(() => ({ residual: u + 0.2 * rng.normal(), loading: 1 })), 0);
    independent.addJob([0, 1, 2, 3].map(() => ({ residual: 0.6 * rng.normal(), loading: 1 })), 0);
  }
  assert.ok(Math.abs(shared.variance - 0.36) < 0.1, `shared: ${shared.variance} (≈0.36 less a small deadband)`);
  assert.ok(independent.variance < 0.01, `independent: ${independent.variance}`);
});

test('JobEffect: the shared level uncertainty is not counted as a job effect; few jobs say little', () => {
  const rng = seeded(3);
  const e = new JobEffect();
  // Residuals correlated only through the level (variance 0.25, loading 1), which the caller reports.
  for (let j = 0; j < 400; j++) {
    const level = 0.5 * rng.normal();
    e.addJob([0, 1, 2].map(() => ({ residual: level + 0.2 * rng.normal(), loading: 1 })), 0.25);
  }
  assert.ok(e.variance < 0.03, `level only: ${e.variance}`);
  const few = new JobEffect();
  few.addJob([{ residual: 1, loading: 1 }, { residual: 1, loading: 1 }], 0);
  assert.ok(few.variance < 0.2, `one job: ${few.variance}`);
});

const RAW = { tuning: { smoothLater: 1, maxLaterStep: Infinity, pointShift: 0 } };

/** History of one kind, 3 steps; each job's size (not reported) scales all its steps when `sized`. */
function history(engine: EtaEngine, sized: boolean): number {
  const rng = seeded(11);
  let t = 0;
  for (let j = 0; j < 150; j++) {
    const size = sized ? Math.exp(0.7 * rng.normal()) : 1;
    const noise = (): number => Math.exp((sized ? 0.15 : 0.7) * rng.normal());
    t = runJob(engine, 'k', [
      { id: 'a', durationMs: 4000 * size * noise() },
      { id: 'b', durationMs: 8000 * size * noise() },
      { id: 'c', durationMs: 6000 * size * noise() },
    ], t + 10) + 10;
  }
  return t;
}

/** The remaining time after step a ran 3x its usual time (as step b starts). */
function afterSlowFirstStep(engine: EtaEngine, t: number): number {
  let job = newJob('k', [{ id: 'a' }, { id: 'b' }, { id: 'c' }], t);
  engine.observe(undefined, job, t);
  job = change(engine, job, 'a', { status: 'running', startedAt: t, progress: 0 }, t);
  job = change(engine, job, 'a', { status: 'completed', progress: 1, endedAt: t + 12_000 }, t + 12_000);
  job = change(engine, job, 'b', { status: 'running', startedAt: t + 12_000, progress: 0 }, t + 12_000);
  return engine.forecast(job, t + 12_000)!.remainingMs;
}

test('engine: where jobs run fast or slow as a whole, a slow first step makes the rest slower', () => {
  const sized = new EtaEngine(RAW);
  const ts = history(sized, true);
  assert.ok(sized.jobEffectVariance > 0.2, `learned job effect ${sized.jobEffectVariance}`);
  const slow = afterSlowFirstStep(sized, ts);
  const plain = new EtaEngine(RAW);
  const tp = history(plain, false);
  assert.ok(plain.jobEffectVariance < 0.03, `no job effect where steps vary independently: ${plain.jobEffectVariance}`);
  const unmoved = afterSlowFirstStep(plain, tp);
  // Typical b + c ≈ 14 s in both; the sized history says this job is ≈3x: most of the way there.
  assert.ok(slow > 14_000 * 2, `sized: ${slow}`);
  assert.ok(unmoved < 14_000 * 1.6, `independent: ${unmoved}`);
});
