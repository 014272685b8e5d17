// A job from creation to completion as producers and subscribers see it: every accepted change
// adds exactly 1 to seq and reaches subscribers as the full job; re-subscribing gives a snapshot;
// eventIds make retries idempotent; bad events get precise codes; polling gets ETags.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Job } from '../../protocol/index.js';
import { api, connectWs, createJob, startServerProcess, type ServerProcess } from '../fixtures/server-process.js';

describe('job lifecycle', () => {
  let server: ServerProcess;
  let write: string;

  before(async () => {
    server = await startServerProcess();
    write = await server.token({ scope: 'progress:write', jobs: ['*'] });
  });
  after(async () => {
    await server.stop();
    server.cleanup();
  });

  const post = (jobId: string, body: unknown) => api(server, 'POST', `/v1/jobs/${jobId}/events`, write, body);

  test('create → steps → job_end: seq strictly +1 per change, subscribers get every update', async () => {
    const created = await createJob(server, { id: 'life-1', steps: [{ id: 'a', label: 'Analysis', complexity: 1 }, { id: 'b', complexity: 3 }] });
    assert.equal(created.status, 'queued');
    assert.equal(created.seq, 1);
    assert.equal(created.progress, 0);
    assert.deepEqual(created.steps.map((s) => [s.id, s.label, s.status]), [['a', 'Analysis', 'pending'], ['b', 'b', 'pending']]);

    const ws = await connectWs(server, await server.token({ scope: 'progress:read', jobs: ['life-1'] }));
    ws.send({ type: 'subscribe', jobId: 'life-1' });
    assert.equal((await ws.next('snapshot')).job.seq, 1);

    const events = [
      { type: 'step_start', step: 'a' },
      { type: 'progress', step: 'a', progress: 0.5, message: 'halfway' },
      { type: 'step_end', step: 'a' },
      { type: 'step_start', step: 'b' },
      { type: 'progress', step: 'b', progress: 0.5 },
      { type: 'step_end', step: 'b' },
      { type: 'job_end', status: 'completed', result: { url: 'https://example.com/out' } },
    ];
    // (The ETA engine may add its own updates between events: those are changes too, seq + 1.)
    const all: Job[] = [];
    const seen: Job[] = [];
    let lastSeq = 1;
    for (const event of events) {
      const res = await post('life-1', event);
      assert.equal(res.status, 202, JSON.stringify(res.body));
      assert.ok(res.body.seq > lastSeq);
      lastSeq = res.body.seq;
      for (;;) {
        const { job } = await ws.next('update');
        all.push(job);
        if (job.seq === res.body.seq) break;
      }
      seen.push(all.at(-1)!);
    }
    assert.deepEqual(all.map((j) => j.seq), Array.from({ length: all.length }, (_, i) => i + 2));
    assert.equal(seen[0]!.status, 'running');
    assert.equal(seen[1]!.steps[0]!.message, 'halfway');
    // Overall progress only moves forward while steps advance (its weights come from the ETA engine).
    const progress = seen.map((j) => j.progress);
    assert.ok(progress[1]! > 0 && progress[3]! < 1, progress.join());
    assert.ok(progress.every((p, i) => i === 0 || p >= progress[i - 1]!), progress.join());
    const final = seen.at(-1)!;
    assert.equal(final.status, 'completed');
    assert.equal(final.progress, 1);
    assert.equal(final.eta, null);
    assert.deepEqual(final.result, { url: 'https://example.com/out' });
    assert.ok(final.steps.every((s) => s.status === 'completed' && typeof s.startedAt === 'number' && typeof s.endedAt === 'number'));

    // After the end, events are refused.
    const late = await post('life-1', { type: 'progress', step: 'b', progress: 0.9 });
    assert.equal(late.status, 409);
    assert.equal(late.body.error.code, 'job_finished');
    await ws.close();
  });

  test('snapshot on re-subscribe after a disconnect carries what was missed', async () => {
    await createJob(server, { id: 'life-2' });
    const read = await server.token({ scope: 'progress:read', jobs: ['life-2'] });
    const first = await connectWs(server, read);
    first.send({ type: 'subscribe', jobId: 'life-2' });
    assert.equal((await first.next('snapshot')).job.seq, 1);
    await first.close();

    await post('life-2', [{ type: 'step_start', step: 'one' }, { type: 'progress', step: 'one', progress: 0.4 }]);
    await post('life-2', { type: 'step_end', step: 'one' });

    const second = await connectWs(server, read);
    second.send({ type: 'subscribe', jobId: 'life-2', since: 1 });
    const snap = await second.next('snapshot');
    assert.equal(snap.job.seq, 4);
    assert.equal(snap.job.steps[0]!.status, 'completed');
    assert.equal(snap.job.status, 'running');
    // Subscribing again on the same socket answers a fresh snapshot too.
    second.send({ type: 'subscribe', jobId: 'life-2' });
    assert.equal((await second.next('snapshot')).job.seq, 4);
    await second.close();
  });

  test('a repeated eventId changes nothing and answers the seq of its first acceptance', async () => {
    await createJob(server, { id: 'life-3' });
    const first = await post('life-3', { type: 'step_start', step: 'one', eventId: 'e-1' });
    assert.equal(first.status, 202);
    assert.equal(first.body.seq, 2);
    const second = await post('life-3', { type: 'progress', step: 'one', progress: 0.3, eventId: 'e-2' });
    const again = await post('life-3', { type: 'step_start', step: 'one', eventId: 'e-1' });
    assert.equal(again.status, 202);
    assert.equal(again.body.seq, 2);
    assert.equal((await post('life-3', { type: 'progress', step: 'one', progress: 0.3, eventId: 'e-2' })).body.seq, second.body.seq);
    // In a batch, the duplicate is skipped and the new event applied.
    const before = (await api<Job>(server, 'GET', '/v1/jobs/life-3', write)).body.seq;
    const batch = await post('life-3', [
      { type: 'progress', step: 'one', progress: 0.3, eventId: 'e-2' },
      { type: 'progress', step: 'one', progress: 0.6, eventId: 'e-3' },
    ]);
    assert.ok(batch.body.seq > before);
    const job = (await api<Job>(server, 'GET', '/v1/jobs/life-3', write)).body;
    assert.ok(job.seq >= batch.body.seq);
    assert.equal(job.steps[0]!.progress, 0.6);
  });

  test('invalid events are refused with precise codes and change nothing', async () => {
    await createJob(server, { id: 'life-4' });
    const cases: Array<[unknown, number, string]> = [
      [{ type: 'step_start', step: 'nope' }, 400, 'unknown_step'],
      [{ type: 'progress', step: 'one', progress: 0.5 }, 409, 'step_not_running'],
      [{ type: 'progress', step: 'one', progress: 1.5 }, 400, 'progress_out_of_range'],
      [{ type: 'progress', step: 'one', progress: -0.1 }, 400, 'progress_out_of_range'],
      [{ type: 'explode' }, 400, 'bad_request'],
      [{ type: 'step_end', step: 'one', eventId: 42 }, 400, 'bad_request'],
      ['{not json', 400, 'bad_request'],
      [[{ type: 'step_start', step: 'one' }, { type: 'step_start', step: 'one' }], 409, 'invalid_transition'],
    ];
    for (const [body, status, code] of cases) {
      const res = await post('life-4', body);
      assert.equal(res.status, status, JSON.stringify(body));
      assert.equal(res.body.error.code, code, JSON.stringify(body));
    }
    // The refused batch was atomic: step one is still pending, seq unchanged.
    const job = (await api<Job>(server, 'GET', '/v1/jobs/life-4', write)).body;
    assert.equal(job.seq, 1);
    assert.equal(job.steps[0]!.status, 'pending');
    assert.equal((await post('life-4', { type: 'step_start', step: 'one' })).status, 202);
    const done = await post('life-4', { type: 'step_end', step: 'one' });
    assert.equal(done.status, 202);
    const again = await post('life-4', { type: 'step_end', step: 'one' });
    assert.equal(again.body.error.code, 'step_already_finished');
    assert.equal((await post('no-such-job', { type: 'step_start', step: 'one' })).status, 404);
  });

  test('creation errors: duplicate id → 409, bad body → 400, unknown route → 404 JSON', async () => {
    await createJob(server, { id: 'life-5' });
    const dup = await api(server, 'POST', '/v1/jobs', write, { id: 'life-5', kind: 'x', steps: [{ id: 'a' }] });
    assert.equal(dup.status, 409);
    assert.equal(dup.body.error.code, 'duplicate_job');
    const bad = await api(server, 'POST', '/v1/jobs', write, { kind: 'x', steps: [] });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'bad_request');
    const nowhere = await api(server, 'GET', '/v1/nothing', write);
    assert.equal(nowhere.status, 404);
    assert.equal(nowhere.body.error.code, 'not_found');
    const big = await api(server, 'POST', '/v1/jobs', write, { kind: 'x', steps: [{ id: 'a' }], meta: { pad: 'x'.repeat(300_000) } });
    assert.equal(big.status, 413);
    assert.equal(big.body.error.code, 'payload_too_large');
  });

  test('GET has an ETag; If-None-Match answers 304 until the job changes', async () => {
    await createJob(server, { id: 'life-6' });
    const read = await server.token({ scope: 'progress:read', jobs: ['life-6'] });
    const first = await api(server, 'GET', '/v1/jobs/life-6', read);
    const etag = first.headers.get('etag')!;
    assert.ok(etag);
    const same = await api(server, 'GET', '/v1/jobs/life-6', read, undefined, { 'if-none-match': etag });
    assert.equal(same.status, 304);
    await post('life-6', { type: 'step_start', step: 'one' });
    const changed = await api<Job>(server, 'GET', '/v1/jobs/life-6', read, undefined, { 'if-none-match': etag });
    assert.equal(changed.status, 200);
    assert.equal(changed.body.seq, 2);
    assert.notEqual(changed.headers.get('etag'), etag);
  });

  test('runs of progress reports in a batch end as the same job as the reports one by one, seq + 1 each', async () => {
    const steps = [{ id: 'a' }, { id: 'b' }];
    const batch = [
      { type: 'progress', step: 'a', progress: 0.2, message: 'first' },
      { type: 'progress', step: 'a', progress: 0.4 },
      { type: 'progress', step: 'a', progress: 0.3, message: 'last said' },
      { type: 'step_end', step: 'a' },
      { type: 'step_start', step: 'b' },
      { type: 'progress', step: 'b', progress: 0.1 },
      { type: 'progress', step: 'b', progress: 0.6, message: 'b going' },
    ];
    await createJob(server, { id: 'run-batch', steps });
    await createJob(server, { id: 'run-single', steps });
    for (const id of ['run-batch', 'run-single']) assert.equal((await post(id, { type: 'step_start', step: 'a' })).status, 202);
    const together = await post('run-batch', batch);
    assert.equal(together.status, 202, JSON.stringify(together.body));
    let single: { status: number; body: { seq: number } } | undefined;
    for (const event of batch) single = await post('run-single', event);
    assert.equal(together.body.seq, single!.body.seq, 'seq advanced once per event either way');
    const [a, b] = await Promise.all(['run-batch', 'run-single'].map(async (id) => (await api<Job>(server, 'GET', `/v1/jobs/${id}`, write)).body));
    const comparable = (job: Job) => job.steps.map((s) => ({ ...s, startedAt: 0, endedAt: 0 }));
    assert.deepEqual(comparable(a!), comparable(b!));
    assert.deepEqual(a!.steps.map((s) => [s.status, s.progress, s.message]), [['completed', 1, 'last said'], ['running', 0.6, 'b going']]);

    // A run the machine refuses (its step is not running) is refused as a whole, named by its first event.
    const refused = await post('run-batch', [{ type: 'progress', step: 'b', progress: 0.7 }, { type: 'progress', step: 'a', progress: 0.1 }, { type: 'progress', step: 'a', progress: 0.2 }]);
    assert.equal(refused.status, 409);
    assert.match(JSON.stringify(refused.body), /events\[1\]/);
    assert.equal((await api<Job>(server, 'GET', '/v1/jobs/run-batch', write)).body.seq, together.body.seq, 'nothing applied');
  });
});
