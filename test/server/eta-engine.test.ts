// Unit tests of the ETA engine's mechanisms, each on a virtual clock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EtaEngine } from '../../server/eta/eta-engine.js';
import type { HistoryStore } from '../../server/core/estimator.js';
import type { Job } from '../../protocol/index.js';
import { change, finish, newJob, runJob, seeded } from '../fixtures/eta-jobs.js';

const remainingOfQueued = (engine: EtaEngine, kind: string, steps: Array<{ id: string; complexity?: number }>, now: number, complexity?: number): number => {
  const job = newJob(kind, steps, now, complexity);
  const eta = engine.forecast(job, now);
  assert.ok(eta);
  return eta.remainingMs;
};

/** Mechanism tests look at the raw estimate: no smoothing of the shown finish time, no pessimism. */
const RAW = { tuning: { smoothLater: 1, maxLaterStep: Infinity, pointShift: 0 } };

const near = (actual: number, expected: number, tolerance: number, what: string): void => {
  assert.ok(Math.abs(actual - expected) <= tolerance * expected, `${what}: expected ≈${Math.round(expected)}, got ${Math.round(actual)}`);
};

test('learns the complexity exponent instead of assuming linear', () => {
  const engine = new EtaEngine();
  let t = 0;
  // duration = 1000 ms · complexity^0.5
  for (let i = 0; i < 60; i++) {
    const c = [1, 2, 4, 8, 16][i % 5]!;
    t = runJob(engine, 'render', [{ id: 'draw', complexity: c, durationMs: 1000 * Math.sqrt(c) }], t + 10) + 10;
  }
  near(remainingOfQueued(engine, 'render', [{ id: 'draw', complexity: 16 }], t), 4000, 0.15, 'complexity 16');
  near(remainingOfQueued(engine, 'render', [{ id: 'draw', complexity: 64 }], t), 8000, 0.25, 'complexity 64 (extrapolated)');
});

test('uses job complexity when steps have none', () => {
  const engine = new EtaEngine();
  let t = 0;
  for (let i = 0; i < 40; i++) {
    const c = [1, 4][i % 2]!;
    t = runJob(engine, 'k', [{ id: 's', durationMs: 1000 * c }], t + 10, c) + 10;
  }
  const small = remainingOfQueued(engine, 'k', [{ id: 's' }], t, 1);
  const big = remainingOfQueued(engine, 'k', [{ id: 's' }], t, 4);
  near(big / small, 4, 0.2, 'ratio of job complexities 4:1');
});

test('stretches estimates with system load (concurrent running steps)', () => {
  const engine = new EtaEngine();
  let t = 0;
  for (let round = 0; round < 30; round++) {
    // Alone: 1 s. Four at once: 3 s each.
    t = runJob(engine, 'k', [{ id: 's', durationMs: 1000 }], t + 10) + 10;
    const jobs = [0, 1, 2, 3].map(() => newJob('k', [{ id: 's' }], t));
    for (const j of jobs) engine.observe(undefined, j, t);
    const running = jobs.map((j) => change(engine, j, 's', { status: 'running', startedAt: t }, t));
    t += 3000;
    running.forEach((j) => finish(engine, change(engine, j, 's', { status: 'completed', progress: 1, endedAt: t }, t), t));
    t += 10;
  }
  const alone = remainingOfQueued(engine, 'k', [{ id: 's' }], t);
  // Now keep three other steps running and ask again.
  const others = [0, 1, 2].map(() => newJob('k', [{ id: 'other' }], t));
  for (const j of others) {
    engine.observe(undefined, j, t);
    change(engine, j, 'other', { status: 'running', startedAt: t }, t);
  }
  assert.equal(engine.runningSteps, 3);
  const busy = remainingOfQueued(engine, 'k', [{ id: 's' }], t);
  assert.ok(busy > alone * 1.6, `busy ${busy} should be well above alone ${alone}`);
});

test('follows drift: a system that slows down 2x', () => {
  const engine = new EtaEngine();
  let t = 0;
  for (let i = 0; i < 100; i++) t = runJob(engine, 'k', [{ id: 'a', durationMs: 1000 }, { id: 'b', durationMs: 3000 }], t + 10) + 10;
  near(remainingOfQueued(engine, 'k', [{ id: 'a' }, { id: 'b' }], t), 4000, 0.1, 'before the slowdown');
  for (let i = 0; i < 40; i++) t = runJob(engine, 'k', [{ id: 'a', durationMs: 2000 }, { id: 'b', durationMs: 6000 }], t + 10) + 10;
  near(remainingOfQueued(engine, 'k', [{ id: 'a' }, { id: 'b' }], t), 8000, 0.15, 'after the slowdown');
});

test('robust to outliers: one 50x step barely moves the estimate', () => {
  const engine = new EtaEngine();
  let t = 0;
  for (let i = 0; i < 50; i++) t = runJob(engine, 'k', [{ id: 's', durationMs: 1000 }], t + 10) + 10;
  t = runJob(engine, 'k', [{ id: 's', durationMs: 50_000 }], t + 10) + 10;
  near(remainingOfQueued(engine, 'k', [{ id: 's' }], t), 1000, 0.15, 'after an outlier');
});

test('a retried step restarts its clock; failure rates lengthen later steps', () => {
  const engine = new EtaEngine();
  let t = 0;
  for (let i = 0; i < 40; i++) t = runJob(engine, 'k', [{ id: 's', durationMs: 10_000 }], t + 10) + 10;
  const clean = remainingOfQueued(engine, 'k', [{ id: 's' }], t);
  let job = newJob('k', [{ id: 's' }], t);
  engine.observe(undefined, job, t);
  job = change(engine, job, 's', { status: 'running', startedAt: t }, t);
  t += 8000;
  const late = engine.forecast(job, t)!.remainingMs;
  assert.ok(late < 4000, `8 s into a 10 s step, ${late} ms left`);
  job = change(engine, job, 's', { status: 'failed', endedAt: t }, t);
  const failed = engine.forecast(job, t)!.remainingMs;
  assert.ok(failed > 8000, `after a failure the whole step is ahead again (${failed})`);
  t += 1000;
  job = change(engine, job, 's', { status: 'running', startedAt: t, endedAt: undefined }, t);
  near(engine.forecast(job, t + 1000)!.remainingMs, 9000, 0.2, '1 s into the retry');
  t += 10_000;
  job = change(engine, job, 's', { status: 'completed', endedAt: t, progress: 1 }, t);
  finish(engine, job, t);
  // Half of the attempts of "flaky" fail half way: its expected time includes the retries.
  for (let i = 0; i < 40; i++) {
    t = runJob(engine, 'k', [{ id: 'flaky', durationMs: 10_000, ...(i % 2 ? { failAt: 0.5, retryGapMs: 1000 } : {}) }], t + 10) + 10;
  }
  const flaky = remainingOfQueued(engine, 'k', [{ id: 'flaky' }], t);
  assert.ok(flaky > clean * 1.2, `flaky ${flaky} vs clean ${clean}`);
});

test('finished and failed jobs have no ETA and are forgotten', () => {
  const engine = new EtaEngine();
  let t = runJob(engine, 'k', [{ id: 's', durationMs: 1000 }], 0);
  assert.equal(engine.trackedJobs, 0);
  let job = newJob('k', [{ id: 's' }], t);
  engine.observe(undefined, job, t);
  job = change(engine, job, 's', { status: 'running', startedAt: t }, t);
  assert.equal(engine.trackedJobs, 1);
  t += 100;
  job = change(engine, job, 's', { status: 'failed', endedAt: t }, t);
  job = finish(engine, job, t, 'failed');
  assert.equal(engine.estimate(job, t).eta, null);
  assert.equal(engine.forecast(job, t), null);
  assert.equal(engine.trackedJobs, 0);
  assert.equal(engine.runningSteps, 0);
  const done: Job = { ...job, status: 'completed' };
  assert.deepEqual(engine.estimate(done, t), { progress: 1, eta: null });
});

test('silent step: expected remaining time given the time it has already run', () => {
  const engine = new EtaEngine(RAW);
  const rng = seeded(7);
  let t = 0;
  for (let i = 0; i < 80; i++) t = runJob(engine, 'k', [{ id: 's', durationMs: 10_000 * Math.exp(0.5 * rng.normal()) }], t + 10) + 10;
  let job = newJob('k', [{ id: 's' }], t);
  engine.observe(undefined, job, t);
  job = change(engine, job, 's', { status: 'running', startedAt: t }, t);
  const at0 = engine.forecast(job, t)!.remainingMs;
  const at10 = engine.forecast(job, t + 10_000)!.remainingMs;
  const at30 = engine.forecast(job, t + 30_000)!.remainingMs;
  near(at0, 10_000, 0.3, 'at the start');
  // Past the median the step is not "due now": it still has a few seconds to go, and a step
  // that has overrun a lot is expected to run on for a while (heavy tail).
  assert.ok(at10 > 2000 && at10 < at0, `10 s in: ${at10}`);
  assert.ok(at30 > 3000, `30 s in: ${at30}`);
});

test('cold start: falls back to the same step in other kinds, adjusted by the kind', () => {
  const engine = new EtaEngine();
  let t = 0;
  for (let i = 0; i < 30; i++) {
    t = runJob(engine, 'fast-kind', [{ id: 'fetch', durationMs: 2000 }, { id: 'parse', durationMs: 8000 }], t + 10) + 10;
  }
  // A new kind that we know nothing about: its "parse" is the known "parse".
  near(remainingOfQueued(engine, 'new-kind', [{ id: 'parse' }], t), 8000, 0.2, 'unknown kind, known step');
  // A kind whose "fetch" runs 3x slower than elsewhere: its unseen "parse" is expected slower too.
  for (let i = 0; i < 6; i++) t = runJob(engine, 'slow-kind', [{ id: 'fetch', durationMs: 6000 }], t + 10) + 10;
  const slowParse = remainingOfQueued(engine, 'slow-kind', [{ id: 'parse' }], t);
  assert.ok(slowParse > 8000 * 1.8, `slow kind's parse: ${slowParse}`);
  // Nothing known about the step anywhere: the kind's typical step.
  const unknown = remainingOfQueued(engine, 'fast-kind', [{ id: 'never-seen' }], t);
  assert.ok(unknown > 1500 && unknown < 12_000, `unknown step: ${unknown}`);
});

test('in-step progress shape: a step that starts fast and ends slow', () => {
  const engine = new EtaEngine();
  let t = 0;
  // progress = (time fraction)^0.5: half done after a quarter of the time.
  const reports = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];
  for (let i = 0; i < 40; i++) t = runJob(engine, 'k', [{ id: 's', durationMs: 10_000, reports, shape: 0.5 }], t + 10) + 10;
  // This run is twice as slow: 50% after 5 s (a quarter of 20 s).
  let job = newJob('k', [{ id: 's' }], t);
  engine.observe(undefined, job, t);
  job = change(engine, job, 's', { status: 'running', startedAt: t }, t);
  job = change(engine, job, 's', { progress: 0.5 }, t + 5000);
  const left = engine.forecast(job, t + 5000)!.remainingMs;
  // Linear extrapolation would say 5 s; the learned shape says ~15 s; the prior says 5 s.
  assert.ok(left > 9000, `remaining after 50% in 5 s: ${left}`);
});

test('live blend: trusts the observed rate more as the step advances', () => {
  const engine = new EtaEngine(RAW);
  let t = 0;
  const reports = [0.2, 0.4, 0.6, 0.8];
  for (let i = 0; i < 40; i++) t = runJob(engine, 'k', [{ id: 's', durationMs: 10_000, reports }], t + 10) + 10;
  // This run goes 3x faster than history.
  let job = newJob('k', [{ id: 's' }], t);
  engine.observe(undefined, job, t);
  job = change(engine, job, 's', { status: 'running', startedAt: t }, t);
  const errors = [0.1, 0.5, 0.9].map((p) => {
    const now = t + (p * 10_000) / 3;
    job = change(engine, job, 's', { progress: p }, now);
    const truth = ((1 - p) * 10_000) / 3;
    return Math.abs(engine.forecast(job, now)!.remainingMs - truth) / truth;
  });
  assert.ok(errors[2]! < errors[0]!, `error shrinks as the step advances: ${errors.map((e) => e.toFixed(2))}`);
  assert.ok(errors[2]! < 0.25, `near the end it follows the observation: ${errors[2]}`);
});

test('interval calibration: about 80% of outcomes fall inside the 80% interval', () => {
  const engine = new EtaEngine();
  const rng = seeded(42);
  let t = 0;
  const draw = (): number => 5000 * Math.exp(0.6 * rng.normal());
  for (let i = 0; i < 300; i++) t = runJob(engine, 'k', [{ id: 'a', durationMs: draw() }, { id: 'b', durationMs: draw() }], t + 10) + 10;
  let inside = 0;
  const n = 300;
  for (let i = 0; i < n; i++) {
    const job = newJob('k', [{ id: 'a' }, { id: 'b' }], t);
    const eta = engine.forecast(job, t)!;
    const actual = draw() + draw();
    if (eta.low! <= actual && actual <= eta.high!) inside++;
    assert.ok(eta.low! <= eta.remainingMs && eta.remainingMs <= eta.high!);
  }
  const coverage = inside / n;
  assert.ok(coverage > 0.7 && coverage < 0.9, `coverage ${coverage}`);
});

test('overall progress weighs steps by expected duration once there is history', () => {
  const engine = new EtaEngine();
  const fresh = newJob('k', [{ id: 'short' }, { id: 'long' }], 0);
  assert.deepEqual(engine.estimate(fresh, 0), { progress: 0, eta: null }, 'queued without history: no ETA');
  let t = 0;
  for (let i = 0; i < 20; i++) t = runJob(engine, 'k', [{ id: 'short', durationMs: 1000 }, { id: 'long', durationMs: 9000 }], t + 10) + 10;
  let job = newJob('k', [{ id: 'short' }, { id: 'long' }], t);
  engine.observe(undefined, job, t);
  job = change(engine, job, 'short', { status: 'running', startedAt: t }, t);
  job = change(engine, job, 'short', { status: 'completed', endedAt: t + 1000, progress: 1 }, t + 1000);
  const { progress, eta } = engine.estimate(job, t + 1000);
  near(progress, 0.1, 0.2, 'progress after the short step');
  near(eta!.remainingMs, 9000, 0.15, 'remaining');
});

test('changedMeaningfully ignores the countdown and small moves, reports real changes', () => {
  const engine = new EtaEngine();
  let t = 0;
  for (let i = 0; i < 20; i++) t = runJob(engine, 'k', [{ id: 's', durationMs: 60_000 }], t + 10) + 10;
  let job = newJob('k', [{ id: 's' }], t);
  engine.observe(undefined, job, t);
  job = change(engine, job, 's', { status: 'running', startedAt: t }, t);
  const shown = engine.estimate(job, t).eta;
  const later = engine.estimate(job, t + 5000).eta;
  assert.equal(engine.changedMeaningfully(shown, later), false, 'only time passed');
  assert.equal(engine.changedMeaningfully(shown, { ...shown!, remainingMs: shown!.remainingMs * 2 }), true);
  assert.equal(engine.changedMeaningfully(shown, null), true);
  assert.equal(engine.changedMeaningfully(null, null), false);
  assert.equal(engine.changedMeaningfully({ remainingMs: 10_000 }, { remainingMs: 10_500 }), false);
});

test('history persists through the HistoryStore and is relearned after a restart', async () => {
  const rows: Array<{ key: string; sample: unknown }> = [];
  const store: HistoryStore = {
    appendHistory: async (key, sample, maxPerKey) => {
      rows.push({ key, sample: JSON.parse(JSON.stringify(sample)) });
      const mine = rows.filter((r) => r.key === key);
      if (mine.length > maxPerKey) rows.splice(rows.indexOf(mine[0]!), 1);
    },
    loadHistory: async () => rows,
  };
  const first = new EtaEngine({ history: store, maxSamplesPerKey: 50 });
  let t = 0;
  for (let i = 0; i < 80; i++) t = runJob(first, 'k', [{ id: 's', complexity: 2, durationMs: 4000 }], t + 10) + 10;
  await new Promise((r) => setImmediate(r));
  assert.equal(rows.filter((r) => r.key === JSON.stringify(['k', 's'])).length, 50, 'bounded per key');
  rows.push({ key: 'junk', sample: { type: 'done', kind: 1 } });
  const second = new EtaEngine({ history: store });
  assert.equal(await second.load(), 50);
  near(remainingOfQueued(second, 'k', [{ id: 's', complexity: 2 }], t), 4000, 0.1, 'after restart');
});

test('the shown finish time creeps later instead of jumping, and catches up', () => {
  const engine = new EtaEngine();
  let t = 0;
  const reports = [0.2, 0.4, 0.6, 0.8];
  for (let i = 0; i < 40; i++) t = runJob(engine, 'k', [{ id: 's', durationMs: 10_000, reports }], t + 10) + 10;
  // This run is 3x slower than history: 10% after 3 s.
  let job = newJob('k', [{ id: 's' }], t);
  engine.observe(undefined, job, t);
  job = change(engine, job, 's', { status: 'running', startedAt: t }, t);
  let shownFinish = t + engine.forecast(job, t)!.remainingMs;
  const steps: number[] = [];
  for (let p = 0.1; p < 0.95; p += 0.05) {
    const now = t + p * 30_000;
    job = change(engine, job, 's', { progress: p }, now);
    const finish = now + engine.forecast(job, now)!.remainingMs;
    steps.push((finish - shownFinish) / (t + 30_000 - now));
    shownFinish = finish;
  }
  const jumps = steps.filter((s) => s > 0.1).length;
  assert.ok(jumps <= 2, `moves later by >10% of the true remaining time: ${steps.map((s) => s.toFixed(3))}`);
  const now = t + 0.9 * 30_000;
  // Near the end the shown time is at least half the fresh estimate (3 s left in truth).
  const shown = shownFinish - now;
  assert.ok(shown >= 1200 && shown <= 4000, `near the end: ${shown}`);
});

test('estimate before observe (the job service order) gives the same answer as after', () => {
  const engines = [new EtaEngine(), new EtaEngine()];
  let t = 0;
  for (const e of engines) for (let i = 0; i < 30; i++) runJob(e, 'k', [{ id: 's', durationMs: 10_000, reports: [0.5] }], i * 20_000);
  t = 30 * 20_000;
  const answers = engines.map((engine, i) => {
    let job = newJob('k', [{ id: 's' }], t);
    engine.observe(undefined, job, t);
    const running: Job = { ...job, status: 'running', seq: 2, steps: [{ ...job.steps[0]!, status: 'running', startedAt: t }] };
    const progressed: Job = { ...running, seq: 3, steps: [{ ...running.steps[0]!, progress: 0.5 }] };
    const results: number[] = [];
    for (const [prev, next, now] of [[job, running, t], [running, progressed, t + 2000]] as const) {
      if (i === 0) {
        results.push(engine.estimate(next, now).eta!.remainingMs);
        engine.observe(prev, next, now);
      } else {
        engine.observe(prev, next, now);
        results.push(engine.estimate(next, now).eta!.remainingMs);
      }
      job = next;
    }
    return results;
  });
  assert.deepEqual(answers[0], answers[1]);
  assert.ok(answers[0]![1]! < 4000, `50% after 2 s of a usually 10 s step: ${answers[0]![1]}`);
});

test('cold start of the first job ever: its own finished steps and live rate scale the prior', () => {
  // No history anywhere. Step 1 (complexity 1) takes 5 s; the rest take 5 s per unit of complexity.
  const plan = [
    { id: 'fetch', complexity: 1 },
    { id: 'analyse', complexity: 3 },
    { id: 'draft', complexity: 2 },
    { id: 'polish', complexity: 5 },
    { id: 'export', complexity: 1 },
  ];
  const perUnitMs = 5_000;
  const engine = new EtaEngine(); // the shipped tuning: what the user sees
  let t = 1_000;
  let job = newJob('first-kind', plan, t);
  engine.observe(undefined, job, t);
  job = change(engine, job, 'fetch', { status: 'running', startedAt: t }, t);
  t += perUnitMs;
  job = change(engine, job, 'fetch', { status: 'completed', progress: 1, endedAt: t }, t);
  job = change(engine, job, 'analyse', { status: 'running', startedAt: t }, t);
  const truthAfterStep1 = (3 + 2 + 5 + 1) * perUnitMs;
  const atStep1 = engine.forecast(job, t)!;
  assert.ok(atStep1.remainingMs < 2 * truthAfterStep1 && atStep1.remainingMs > truthAfterStep1 / 2, `after step 1: ${atStep1.remainingMs} vs truth ${truthAfterStep1}`);
  // An honest interval: it holds the truth, and it is wide (one step is little evidence).
  assert.ok(atStep1.low <= truthAfterStep1 && truthAfterStep1 <= atStep1.high, `interval ${atStep1.low}–${atStep1.high}`);
  assert.ok(atStep1.high / atStep1.low > 2, `interval ${atStep1.low}–${atStep1.high} is too sure for one step of evidence`);
  // Step 2 at 16% after 16% of its 15 s: the live rate agrees, the estimate stays close.
  const at16 = t + 0.16 * 3 * perUnitMs;
  job = change(engine, job, 'analyse', { progress: 0.16 }, at16);
  const truthAt16 = truthAfterStep1 - 0.16 * 3 * perUnitMs;
  const live = engine.forecast(job, at16)!;
  assert.ok(live.remainingMs < 2 * truthAt16 && live.remainingMs > truthAt16 / 2, `step 2 at 16%: ${live.remainingMs} vs truth ${truthAt16}`);
  assert.ok(live.low <= truthAt16 && truthAt16 <= live.high, `interval at 16%: ${live.low}–${live.high}`);
  // After step 2 the job has shown its pace twice: the estimate tightens around the truth.
  t += 3 * perUnitMs;
  job = change(engine, job, 'analyse', { status: 'completed', progress: 1, endedAt: t }, t);
  job = change(engine, job, 'draft', { status: 'running', startedAt: t }, t);
  const truthAfterStep2 = (2 + 5 + 1) * perUnitMs;
  const atStep2 = engine.forecast(job, t)!;
  near(atStep2.remainingMs, truthAfterStep2, 0.5, 'after step 2');
});

test('cold start: a job that runs slower than the prior (minutes per unit) is scaled up, too', () => {
  const engine = new EtaEngine(RAW);
  const plan = [{ id: 'a', complexity: 2 }, { id: 'b', complexity: 4 }, { id: 'c', complexity: 1 }];
  const perUnitMs = 120_000;
  let t = 0;
  let job = newJob('slow', plan, t);
  engine.observe(undefined, job, t);
  job = change(engine, job, 'a', { status: 'running', startedAt: t }, t);
  t += 2 * perUnitMs;
  job = change(engine, job, 'a', { status: 'completed', progress: 1, endedAt: t }, t);
  job = change(engine, job, 'b', { status: 'running', startedAt: t }, t);
  near(engine.forecast(job, t)!.remainingMs, 5 * perUnitMs, 0.5, 'after step 1 of a slow job');
});

test('a step started (or resumed) at 50% counts as half done at once, before any time has passed', () => {
  const engine = new EtaEngine();
  let t = 0;
  // History: two equal steps of 10 s each, progress proportional to time.
  for (let i = 0; i < 20; i++) t = runJob(engine, 'k', [{ id: 'a', durationMs: 10_000 }, { id: 'b', durationMs: 10_000 }], t + 10) + 10;
  const job = newJob('k', [{ id: 'a' }, { id: 'b' }], t);
  engine.observe(undefined, job, t);
  const started = change(engine, job, 'a', { status: 'running', startedAt: t, progress: 0.5 }, t);
  const { progress } = engine.estimate(started, t);
  // Half of the first of two equal steps: about a quarter of the job (was 0: no time had passed).
  near(progress * 100, 25, 0.3, 'overall progress (%)');
});
