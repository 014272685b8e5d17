/**
 * The pure parts of the polling adapters: field maps (the three documented response shapes),
 * the view → events reconciliation checked through the real state machine, the timer heap,
 * the cadence policy and the scheduler in virtual time.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { applyEvent, createJob } from '../../server/core/job-machine.js';
import { VirtualClock } from '../../server/polling/clock.js';
import { nextPollDelay } from '../../server/polling/cadence.js';
import { UpstreamBadResponse, mapResponse, readPath, validateSourceMap } from '../../server/polling/field-map.js';
import { eventsFor } from '../../server/polling/reconcile.js';
import { PollScheduler } from '../../server/polling/scheduler.js';
import { TimerHeap } from '../../server/polling/timer-heap.js';
import type { Job, JobEvent, StepSpec } from '../../protocol/index.js';
import { MAPS } from '../fixtures/fake-upstream.js';

const STEPS: StepSpec[] = [{ id: 'init' }, { id: 'analysis' }, { id: 'render', complexity: 2 }];

function newJob(steps = STEPS): Job {
  return createJob({ id: 'j1', kind: 'k', steps }, 1000);
}
/** Applies events through the real state machine, failing the test on any refusal. */
function apply(job: Job, events: JobEvent[], now = 2000): Job {
  for (const e of events) {
    const out = applyEvent(job, e, now);
    assert.ok(out.ok, `event ${JSON.stringify(e)} refused: ${out.ok ? '' : out.error.message}`);
    job = out.value;
  }
  return job;
}
const statuses = (job: Job): string => job.steps.map((s) => `${s.id}:${s.status}:${Math.round(s.progress * 100)}`).join(' ');

describe('field map', () => {
  test('readPath follows dots, numeric and negative indexes', () => {
    const doc = { a: { b: [{ c: 1 }, { c: 2 }] } };
    assert.equal(readPath(doc, 'a.b.0.c'), 1);
    assert.equal(readPath(doc, 'a.b.-1.c'), 2);
    assert.equal(readPath(doc, 'a.x.c'), undefined);
    assert.equal(readPath(doc, 'a.b.name'), undefined);
    assert.deepEqual(readPath(doc, ''), doc);
  });

  test('flat {state, pct} shape', () => {
    const view = mapResponse({ state: 'WORKING', stage: { name: 'analysis' }, pct: 42, error: null }, MAPS.flat, STEPS);
    assert.deepEqual(view, { status: 'running', step: 'analysis', stepProgress: 0.42 });
    const done = mapResponse({ state: 'DONE', stage: { name: 'render' }, pct: 100, output: { url: 'x' } }, MAPS.flat, STEPS);
    assert.deepEqual(done, { status: 'completed', step: 'render', stepProgress: 1, result: { url: 'x' } });
    const failed = mapResponse({ state: 'ERROR', stage: { name: 'render' }, pct: 3, error: 'GPU lost' }, MAPS.flat, STEPS);
    assert.equal(failed.error, 'GPU lost');
    assert.equal(failed.status, 'failed');
  });

  test('{stages:[…]} list shape', () => {
    const doc = {
      status: 'running',
      stages: [
        { name: 'init', status: 'done', progress: 1 },
        { name: 'analysis', status: 'running', progress: 0.5 },
        { name: 'render', status: 'pending', progress: 0 },
      ],
    };
    const view = mapResponse(doc, MAPS.stages, STEPS);
    assert.deepEqual(view.steps, [
      { id: 'init', status: 'completed', progress: 1 },
      { id: 'analysis', status: 'running', progress: 0.5 },
      { id: 'render', status: 'pending', progress: 0 },
    ]);
    // Without an id mapping, stages match steps by position.
    const byPosition = mapResponse(doc, { steps: { path: 'stages', progress: 'progress' } }, STEPS);
    assert.deepEqual(byPosition.steps?.map((s) => s.id), ['init', 'analysis', 'render']);
  });

  test('queue-style {status, progress:{current,total}} shape', () => {
    const view = mapResponse({ status: 'active', progress: { current: 3, total: 12 }, failedReason: null }, MAPS.queue, STEPS);
    assert.deepEqual(view, { status: 'running', progress: 0.25 });
    assert.equal(mapResponse({ status: 'waiting', progress: { current: 0, total: 0 } }, MAPS.queue, STEPS).progress, 0);
  });

  test('index: true reads a step position; values map names', () => {
    assert.equal(mapResponse({ i: 2 }, { step: { path: 'i', index: true } }, STEPS).step, 'render');
    assert.equal(mapResponse({ s: 'Analyse' }, { step: { path: 's', values: { Analyse: 'analysis' } } }, STEPS).step, 'analysis');
  });

  test('unusable values name the failing path', () => {
    const cases: Array<[unknown, string]> = [
      [{ state: 'WORKING', pct: 'lots' }, 'pct'],
      [{ state: 'MELTING' }, 'state'],
      [{ state: 'WORKING', stage: { name: 'nope' } }, 'stage.name'],
      [{ pct: 5 }, 'state'],
      [[1, 2], 'state'],
    ];
    for (const [doc, path] of cases) {
      assert.throws(() => mapResponse(doc, MAPS.flat, STEPS), (err: unknown) => err instanceof UpstreamBadResponse && err.path === path, JSON.stringify(doc));
    }
    assert.throws(() => mapResponse('hello', MAPS.flat, STEPS), (e: unknown) => e instanceof UpstreamBadResponse && e.path === '');
    assert.throws(
      () => mapResponse({ status: 'running', stages: [{ name: 'init', status: 'done', progress: 'x' }] }, MAPS.stages, STEPS),
      (e: unknown) => e instanceof UpstreamBadResponse && e.path === 'stages.0.progress',
    );
    assert.throws(() => mapResponse({ status: 'active', progress: { current: 30, total: 3 } }, MAPS.queue, STEPS), /outside 0\.\.1/);
  });

  test('validateSourceMap rejects bad maps with a precise message', () => {
    assert.equal(validateSourceMap(MAPS.flat, STEPS), null);
    assert.equal(validateSourceMap(MAPS.stages, STEPS), null);
    assert.equal(validateSourceMap(MAPS.queue, STEPS), null);
    assert.match(validateSourceMap({ state: 'x' }, STEPS)!, /unknown field 'state'/);
    assert.match(validateSourceMap({ status: 'a..b' }, STEPS)!, /empty segment/);
    assert.match(validateSourceMap({ status: { path: 'a', scale: 'x' } }, STEPS)!, /scale/);
    assert.match(validateSourceMap({ error: 'e' }, STEPS)!, /at least one/);
    assert.match(validateSourceMap([], STEPS)!, /object/);
  });
});

describe('reconcile (through the real state machine)', () => {
  test('a current step completes the earlier ones, then the job completes with its result', () => {
    let job = newJob();
    job = apply(job, eventsFor(job, { status: 'running', step: 'analysis', stepProgress: 0.3 }));
    assert.equal(statuses(job), 'init:completed:100 analysis:running:30 render:pending:0');
    assert.equal(job.status, 'running');
    assert.deepEqual(eventsFor(job, { status: 'running', step: 'analysis', stepProgress: 0.3 }), []);
    job = apply(job, eventsFor(job, { status: 'running', step: 'analysis', stepProgress: 0.6 }));
    assert.equal(job.steps[1]!.progress, 0.6);
    job = apply(job, eventsFor(job, { status: 'completed', step: 'render', stepProgress: 1, result: { n: 1 } }));
    assert.equal(job.status, 'completed');
    assert.deepEqual(job.result, { n: 1 });
    assert.equal(statuses(job), 'init:completed:100 analysis:completed:100 render:completed:100');
  });

  test('a steps list sets each step; the upstream failure fails the running step, retryable', () => {
    let job = newJob();
    job = apply(job, eventsFor(job, { status: 'running', steps: [{ id: 'init', status: 'completed', progress: 1 }, { id: 'analysis', status: 'running', progress: 0.5 }, { id: 'render', status: 'pending', progress: 0 }] }));
    assert.equal(statuses(job), 'init:completed:100 analysis:running:50 render:pending:0');
    job = apply(job, eventsFor(job, { status: 'failed', error: 'out of memory', steps: [{ id: 'analysis', status: 'failed' }] }));
    assert.equal(job.status, 'failed');
    assert.equal(job.error?.step, 'analysis');
    assert.equal(job.error?.message, 'out of memory');
    assert.equal(job.error?.retryable, true);
    assert.deepEqual(eventsFor(job, { status: 'failed' }), [], 'a failed job waits for a retry');
  });

  test('overall progress only is placed on the steps by complexity', () => {
    let job = newJob(); // weights 1,1,2 → analysis spans 0.25..0.5
    job = apply(job, eventsFor(job, { status: 'running', progress: 0.375 }));
    assert.equal(statuses(job), 'init:completed:100 analysis:running:50 render:pending:0');
    job = apply(job, eventsFor(job, { status: 'running', progress: 0.75 }));
    assert.equal(statuses(job), 'init:completed:100 analysis:completed:100 render:running:50');
    assert.equal(job.progress, 0.75);
  });

  test('failure before any step ran ends the job failed; canceled ends it canceled', () => {
    let job = newJob();
    job = apply(job, eventsFor(job, { status: 'failed', error: 'bad input' }));
    assert.equal(job.status, 'failed');
    assert.equal(job.error?.message, 'bad input');
    let other = newJob();
    other = apply(other, eventsFor(other, { status: 'running', step: 'init' }));
    other = apply(other, eventsFor(other, { status: 'canceled' }));
    assert.equal(other.status, 'canceled');
  });

  test('nothing moves backwards', () => {
    let job = newJob();
    job = apply(job, eventsFor(job, { status: 'running', step: 'render', stepProgress: 0.5 }));
    assert.deepEqual(eventsFor(job, { status: 'running', step: 'init', stepProgress: 0.1 }), []);
  });
});

describe('timer heap', () => {
  test('pops in due order, supports moves and deletes', () => {
    const heap = new TimerHeap();
    const dues = [50, 10, 40, 30, 20, 60, 5];
    dues.forEach((d, i) => heap.set(`t${i}`, d));
    heap.set('t5', 1); // move earlier
    heap.delete('t2');
    heap.set('t0', 100); // move later
    const order: string[] = [];
    for (let e = heap.popDue(1000); e; e = heap.popDue(1000)) order.push(e.id);
    assert.deepEqual(order, ['t5', 't6', 't1', 't4', 't3', 't0']);
    assert.equal(heap.size, 0);
  });

  test('stays ordered under random operations', () => {
    const heap = new TimerHeap();
    const model = new Map<string, number>();
    let seed = 7;
    const rnd = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let i = 0; i < 3000; i++) {
      const id = `x${Math.floor(rnd() * 300)}`;
      if (rnd() < 0.3) {
        heap.delete(id);
        model.delete(id);
      } else {
        const due = Math.floor(rnd() * 10_000);
        heap.set(id, due);
        model.set(id, due);
      }
    }
    let last = -1;
    let count = 0;
    for (let e = heap.popDue(Infinity); e; e = heap.popDue(Infinity)) {
      assert.ok(e.due >= last);
      assert.equal(model.get(e.id), e.due);
      last = e.due;
      count++;
    }
    assert.equal(count, model.size);
  });
});

describe('cadence', () => {
  const limits = { minIntervalMs: 1000, maxIntervalMs: 30_000 };
  test('short near the expected end of the step, long far from it, within [min, max]', () => {
    let job = newJob();
    job = apply(job, [{ type: 'step_start', step: 'init' }], 0);
    job = apply(job, [{ type: 'progress', step: 'init', progress: 0.1 }], 10_000); // ~90 s to go
    assert.equal(nextPollDelay(job, 10_000, limits), 22_500);
    job = apply(job, [{ type: 'progress', step: 'init', progress: 0.9 }], 90_000); // ~10 s to go
    assert.equal(nextPollDelay(job, 90_000, limits), 2500);
    assert.equal(nextPollDelay(job, 99_000, limits), 1000);
    const farAway = apply(newJob(), [{ type: 'step_start', step: 'init' }, { type: 'progress', step: 'init', progress: 0.05 }], 0);
    const later = { ...farAway, updatedAt: 600_000 };
    assert.equal(nextPollDelay(later, 600_000, limits), 30_000);
  });

  test('uses the ETA when the step reports no progress, and elapsed time when nothing is known', () => {
    let job = newJob();
    job = apply(job, [{ type: 'step_start', step: 'init' }], 0);
    // 4 units of work left (init 1, analysis 1, render 2): init's share of 80 s is 20 s.
    const withEta: Job = { ...job, eta: { remainingMs: 80_000 } };
    assert.equal(nextPollDelay(withEta, 0, limits), 5000);
    assert.equal(nextPollDelay(job, 20_000, limits), 5000); // ran 20 s: assume 20 s more
    assert.equal(nextPollDelay(job, 2_000, limits), 1000);
  });

});

describe('scheduler (virtual time)', () => {
  test('one armed timer for many tasks; each runs when due; null stops a task', async () => {
    const clock = new VirtualClock();
    const runs: Array<[string, number]> = [];
    const scheduler = new PollScheduler({
      clock,
      run: async (id) => {
        runs.push([id, clock.now()]);
        return runs.filter(([r]) => r === id).length >= 3 ? null : 1000 * Number(id.slice(1));
      },
    });
    for (let i = 1; i <= 50; i++) scheduler.schedule(`t${i}`, 'h', i);
    assert.equal(clock.pending, 1);
    while (clock.runNext()) {
      await scheduler.idle();
      assert.ok(clock.pending <= 1);
    }
    assert.equal(runs.length, 150);
    assert.equal(scheduler.size, 0);
    assert.deepEqual(runs.filter(([id]) => id === 't7').map(([, at]) => at), [7, 7007, 14007]);
  });

  test('per-host concurrency limit queues extra due polls in order', async () => {
    const clock = new VirtualClock();
    let inFlight = 0;
    let peak = 0;
    const release: Array<() => void> = [];
    const scheduler = new PollScheduler({
      clock,
      maxConcurrentPerHost: 3,
      run: async () => {
        inFlight++;
        peak = Math.max(peak, inFlight);
        await new Promise<void>((r) => release.push(r));
        inFlight--;
        return null;
      },
    });
    for (let i = 0; i < 10; i++) scheduler.schedule(`a${i}`, 'host-a', 0);
    scheduler.schedule('b0', 'host-b', 0);
    clock.runNext();
    assert.equal(inFlight, 4, 'three for host-a, one for host-b');
    while (release.length) {
      release.shift()!();
      await new Promise((r) => setImmediate(r));
    }
    await scheduler.idle();
    assert.equal(peak, 4);
    assert.equal(scheduler.size, 0);
  });

  test('remove stops a task, pollNow brings one forward', async () => {
    const clock = new VirtualClock();
    const runs: string[] = [];
    const scheduler = new PollScheduler({ clock, run: async (id) => (runs.push(id), 60_000) });
    scheduler.schedule('a', 'h', 60_000);
    scheduler.schedule('b', 'h', 60_000);
    scheduler.remove('a');
    scheduler.pollNow('b');
    clock.runNext(1000);
    await scheduler.idle();
    assert.deepEqual(runs, ['b']);
    assert.equal(scheduler.dueAt('b'), 60_000);
    assert.equal(scheduler.has('a'), false);
  });
});
