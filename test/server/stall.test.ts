// Stalled jobs against a real server process (PT_STALL_AFTER=1s, PT_STALL_FAIL_AFTER=3s, a fast
// ETA tick): silence marks a job `stalled` (seq + 1, eta null), an event clears it, ETA ticks are
// not activity, a silent job ends failed/producer_lost and Retry queues it again, a job's own
// `stallAfterMs` overrides the default.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Job, ServerMessage } from '../../protocol/index.js';
import { createLogger } from '../../server/app/log.js';
import { JobService } from '../../server/core/job-service.js';
import { StallWatch } from '../../server/core/stall-watch.js';
import { SqliteStore } from '../../server/store/sqlite.js';
import { api, connectWs, createJob, startServerProcess, waitFor, type ServerProcess, type WsClient } from '../fixtures/server-process.js';

describe('stalled jobs', () => {
  let server: ServerProcess;

  before(async () => {
    server = await startServerProcess({ env: { PT_STALL_AFTER: '1s', PT_STALL_FAIL_AFTER: '3s', PT_ETA_TICK: '100ms' } });
  });
  after(async () => {
    await server.stop();
    server.cleanup();
  });

  const jobsOf = (ws: WsClient, id: string): Job[] =>
    ws.queue.flatMap((m: ServerMessage) => (m.type === 'update' && m.job.id === id ? [m.job] : []));

  test('silence stalls the job, an event clears it, ETA ticks are not activity, 3 s of silence fails it and Retry re-queues it', async () => {
    const writer = await server.token({ scope: 'progress:write progress:retry', jobs: ['stall-1'] });
    const post = (body: unknown) => api<{ seq: number }>(server, 'POST', '/v1/jobs/stall-1/events', writer, body);
    await createJob(server, { id: 'stall-1', steps: [{ id: 'a' }, { id: 'b' }] });
    const browser = await connectWs(server, await server.token({ scope: 'progress:read', jobs: ['stall-1'] }));
    browser.send({ type: 'subscribe', jobId: 'stall-1' });
    await browser.next('snapshot');

    assert.equal((await post({ type: 'step_start', step: 'a' })).status, 202);
    const lastEvent = await post({ type: 'progress', step: 'a', progress: 0.4 });
    const eventAt = Date.now();
    const stalled = (await browser.next((m) => m.type === 'update' && m.job.stalled !== undefined, 4000)) as { job: Job };
    const waited = Date.now() - eventAt;
    assert.ok(waited >= 900, `stalled after ${waited} ms of silence`);
    const before = jobsOf(browser, 'stall-1').filter((j) => j.seq < stalled.job.seq);
    const prev = before.at(-1)!;
    assert.equal(stalled.job.seq, prev.seq + 1, 'a new seq');
    assert.equal(stalled.job.status, 'running');
    assert.equal(stalled.job.eta, null, 'the ETA is unknown while stalled');
    assert.equal(stalled.job.stalled!.since, stalled.job.lastEventAt, 'silence counted from the last producer event');
    // ETA ticks (if any) between the event and the stall moved seq but not lastEventAt.
    const ticks = before.filter((j) => j.seq > lastEvent.body.seq);
    console.log(`${ticks.length} ETA tick update(s) during the silence`);
    for (const t of ticks) assert.equal(t.lastEventAt, stalled.job.stalled!.since, 'a tick is not producer activity');
    const viaGet = await api<Job>(server, 'GET', '/v1/jobs/stall-1', writer);
    assert.deepEqual(viaGet.body.stalled, stalled.job.stalled);

    // A stalled job's ETA is not re-estimated: nothing changes until the producer speaks.
    await new Promise((r) => setTimeout(r, 400));
    assert.deepEqual(jobsOf(browser, 'stall-1').filter((j) => j.seq > stalled.job.seq), [], 'no tick on a stalled job');

    // An event clears it (and restarts the silence).
    const resumed = await post({ type: 'progress', step: 'a', progress: 0.5 });
    const cleared = (await browser.next((m) => m.type === 'update' && m.job.seq === resumed.body.seq)) as { job: Job };
    assert.equal(cleared.job.stalled, undefined);
    assert.ok(cleared.job.lastEventAt! > stalled.job.stalled!.since);
    const resumedAt = Date.now();

    // Silent again: stalled at 1 s, failed at 3 s after the last event.
    await browser.next((m) => m.type === 'update' && m.job.seq > resumed.body.seq && m.job.stalled !== undefined, 4000);
    const failed = (await browser.next((m) => m.type === 'update' && m.job.status === 'failed', 5000)) as { job: Job };
    const silent = Date.now() - resumedAt;
    assert.ok(silent >= 2800 && silent < 4500, `failed after ${silent} ms of silence`);
    assert.equal(failed.job.error?.code, 'producer_lost');
    assert.equal(failed.job.error?.retryable, true);
    assert.equal(failed.job.stalled, undefined);
    assert.equal(failed.job.eta, null);
    assert.equal(failed.job.lastEventAt, cleared.job.lastEventAt, 'the server is not the producer');

    const retried = await api<{ seq: number }>(server, 'POST', '/v1/jobs/stall-1/retry', writer, {});
    assert.equal(retried.status, 202);
    const queued = (await browser.next((m) => m.type === 'update' && m.job.seq === retried.body.seq)) as { job: Job };
    assert.equal(queued.job.status, 'queued');
    assert.equal(queued.job.error, undefined);
    assert.equal(queued.job.stalled, undefined);
    assert.equal((await post({ type: 'step_start', step: 'a' })).status, 202, 'the producer resumes it');
    await browser.close();
  });

  test('a producer that keeps speaking is never stalled; its silence counts from its last event', async () => {
    const writer = await server.token({ scope: 'progress:write', jobs: ['stall-busy'] });
    const post = (body: unknown) => api<{ seq: number }>(server, 'POST', '/v1/jobs/stall-busy/events', writer, body);
    await createJob(server, { id: 'stall-busy', steps: [{ id: 'a' }] });
    const browser = await connectWs(server, await server.token({ scope: 'progress:read', jobs: ['stall-busy'] }));
    browser.send({ type: 'subscribe', jobId: 'stall-busy' });
    await browser.next('snapshot');
    assert.equal((await post({ type: 'step_start', step: 'a' })).status, 202);
    // Every 300 ms for 2.1 s: the first deadline (1 s after the start) passes while the job is active.
    for (let i = 1; i <= 7; i++) {
      await new Promise((r) => setTimeout(r, 300));
      assert.equal((await post({ type: 'progress', step: 'a', progress: i / 10 })).status, 202);
    }
    const lastEventAt = Date.now();
    assert.deepEqual(jobsOf(browser, 'stall-busy').filter((j) => j.stalled !== undefined), [], 'not stalled while its producer speaks');
    const stalled = (await browser.next((m) => m.type === 'update' && m.job.stalled !== undefined, 4000)) as { job: Job };
    const waited = Date.now() - lastEventAt;
    assert.ok(waited >= 900, `stalled ${waited} ms after the last event`);
    assert.equal(stalled.job.stalled!.since, stalled.job.lastEventAt);
    await browser.close();
  });

  test('a queued job stalls too; stallAfterMs on create overrides PT_STALL_AFTER', async () => {
    const created = await createJob(server, { id: 'stall-2', steps: [{ id: 'a' }], stallAfterMs: 2000 });
    assert.equal(created.stallAfterMs, 2000);
    await createJob(server, { id: 'stall-3', steps: [{ id: 'a' }] });
    const reader = await server.token({ scope: 'progress:read', jobs: ['*'] });
    const get = async (id: string) => (await api<Job>(server, 'GET', `/v1/jobs/${id}`, reader)).body;
    const short = await waitFor(async () => ((await get('stall-3')).stalled ? await get('stall-3') : undefined), 3000, 'stall-3 stalled');
    assert.equal(short.status, 'queued');
    assert.equal((await get('stall-2')).stalled, undefined, 'its own 2 s are not over');
    const long = await waitFor(async () => ((await get('stall-2')).stalled ? await get('stall-2') : undefined), 3000, 'stall-2 stalled');
    assert.ok(Date.now() - created.createdAt >= 1900);
    assert.equal(long.stalled!.since, created.createdAt);
  });

  test('stallAfterMs is validated: an integer of ms from 1 s to 7 d', async () => {
    const token = await server.token({ scope: 'progress:write', jobs: ['*'] });
    for (const stallAfterMs of [999, 1500.5, '60000', 7 * 86_400_000 + 1]) {
      const res = await api<{ error: { code: string; message: string } }>(server, 'POST', '/v1/jobs', token, { kind: 'x', steps: [{ id: 'a' }], stallAfterMs });
      assert.equal(res.status, 400, `stallAfterMs ${JSON.stringify(stallAfterMs)}`);
      assert.match(res.body.error.message, /stallAfterMs/);
    }
    const ok = await api<Job>(server, 'POST', '/v1/jobs', token, { kind: 'x', steps: [{ id: 'a' }], stallAfterMs: 7 * 86_400_000 });
    assert.equal(ok.status, 201);
  });
});

// In process, with an estimator whose every tick is news: ticks bump seq but are not activity,
// and a stalled job is not re-estimated (its ETA stays null).
test('ETA ticks do not count as activity and skip a stalled job', async () => {
  const store = new SqliteStore({ path: ':memory:' });
  let calls = 0;
  const service = new JobService({
    store,
    log: createLogger('silent'),
    tickMs: 50,
    estimator: { estimate: () => ({ progress: 0.5, eta: { remainingMs: 10_000 + (calls++ % 2) * 50_000 } }), observe: () => undefined, changedMeaningfully: () => true },
  });
  await service.start();
  const watch = new StallWatch(service, { stallAfterMs: 400, failAfterMs: 0 }, createLogger('silent'));
  const seen: Job[] = [];
  service.on('update', (view) => seen.push(view.job));
  try {
    await service.create({ id: 'tick-1', kind: 'k', steps: [{ id: 'a' }] });
    const started = await service.applyEvents('tick-1', [{ type: 'step_start', step: 'a' }]);
    const stalled = await waitFor(() => seen.find((j) => j.stalled), 3000, 'stalled');
    const ticks = seen.filter((j) => j.seq > started.seq && j.seq < stalled.seq);
    assert.ok(ticks.length >= 3, `ticks published before the stall: ${ticks.length}`);
    for (const t of ticks) assert.equal(t.lastEventAt, started.view.job.lastEventAt);
    assert.ok(stalled.updatedAt - started.view.job.lastEventAt! >= 400, 'ticks did not postpone the stall');
    assert.equal(stalled.eta, null);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(seen.at(-1)!.seq, stalled.seq, 'no tick after the stall');
    const resumed = await service.applyEvents('tick-1', [{ type: 'progress', step: 'a', progress: 0.6 }]);
    assert.equal(resumed.view.job.stalled, undefined);
    assert.notEqual(resumed.view.job.eta, null, 'estimated again once the producer speaks');
  } finally {
    watch.close();
    await service.close();
    await store.close();
  }
});
