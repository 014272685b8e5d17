/**
 * Adaptive polling in virtual time: the real job service (SQLite in memory), the real poll
 * manager and HTTP adapter, and a real local fake upstream, all on one virtual clock. Hours of
 * polling take a second, and the counts are exact.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { close, createPolled, runUntil, stack, STEPS, type Stack } from '../fixtures/polling-stack.js';

describe('adaptive polling (virtual time)', () => {
  let adaptive: Stack;
  let fixed: Stack;
  before(async () => {
    adaptive = await stack();
    fixed = await stack();
  });
  after(async () => {
    await close(adaptive);
    await close(fixed);
  });

  test('needs at most half the polls of a fixed 1 s interval and sees completion within 2 s', async () => {
    await createPolled(adaptive, 'a1', 'flat');
    await createPolled(fixed, 'f1', 'flat', { minIntervalMs: 1000, maxIntervalMs: 1000 });
    const end = adaptive.upstream.completesAt('a1');
    await runUntil(adaptive, end + 10_000);
    await runUntil(fixed, fixed.upstream.completesAt('f1') + 10_000);

    const adaptivePolls = adaptive.upstream.jobs.get('a1')!.polls;
    const fixedPolls = fixed.upstream.jobs.get('f1')!.polls;
    const lag = adaptive.completedAt.get('a1')! - end;
    console.log(`# adaptive ${adaptivePolls} polls, fixed 1 s ${fixedPolls} polls (ratio ${(adaptivePolls / fixedPolls).toFixed(2)}), completion seen after ${lag} ms`);
    assert.ok(fixedPolls >= 160, `the fixed baseline polls about once a second (${fixedPolls})`);
    assert.ok(adaptivePolls <= fixedPolls / 2, `adaptive ${adaptivePolls} polls vs fixed ${fixedPolls}`);
    assert.ok(lag >= 0 && lag <= 2000, `completion noticed ${lag} ms after it happened`);

    const job = (await adaptive.service.get('a1'))!.job;
    assert.equal(job.status, 'completed');
    assert.deepEqual(job.result, { url: 'https://cdn.example/a1.zip' });
    assert.equal(adaptive.manager.isFollowing('a1'), false, 'polling stopped at the terminal state');
    await runUntil(adaptive, end + 600_000);
    assert.equal(adaptive.upstream.jobs.get('a1')!.polls, adaptivePolls, 'no poll after completion');
  });

  test('every step change is seen in order, with seq rising', () => {
    const seen = adaptive.updates.filter((j) => j.id === 'a1');
    const running = seen.map((j) => j.steps.find((s) => s.status === 'running')?.id).filter((x, i, a) => x && x !== a[i - 1]);
    assert.deepEqual(running, STEPS.map((s) => s.name));
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i]!.seq > seen[i - 1]!.seq, "seq only rises");
  });

  test('the scheduler keeps one timer for many jobs', async () => {
    const s = await stack();
    try {
      for (let i = 0; i < 40; i++) await createPolled(s, `m${i}`, (['flat', 'stages', 'queue'] as const)[i % 3]);
      await runUntil(s, s.clock.now() + 30_000);
      assert.ok(s.clock.pending <= 1, `${s.clock.pending} timers armed`);
      await runUntil(s, s.upstream.completesAt('m0') + 5000);
      for (let i = 0; i < 40; i++) assert.equal((await s.service.get(`m${i}`))!.job.status, 'completed', `m${i}`);
      assert.equal(s.manager.activeCount, 0);
    } finally {
      await close(s);
    }
  });
});
