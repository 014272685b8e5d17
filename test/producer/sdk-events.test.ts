/**
 * The producer SDK's events: a job's whole lifecycle through the SDK (each accepted event adds one
 * to seq), call order kept for calls fired without awaiting, batching (bursts of progress, the
 * events of one turn in one request) and one bad call in a batch failing alone.
 * Part of the producer SDK tests against the real server (real HTTP, real WebSocket, real
 * SQLite; test/fixtures/producer-harness.ts): faults are injected only between the SDK and the
 * server, never by mocking the server.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { producer, rejection, STEPS, useServer } from '../fixtures/producer-harness.js';

useServer();

describe('producer SDK', () => {
  test('runs a job through its whole lifecycle; every accepted event adds one to seq', async () => {
    const p = await producer();
    const job = await p.createJob({ kind: 'report', steps: STEPS, meta: { owner: 'billing' } });
    assert.equal(job.snapshot?.status, 'queued');
    assert.equal(job.snapshot?.seq, 1);

    const seqs: number[] = [];
    seqs.push((await job.startStep('fetch', { message: 'Downloading' })).seq);
    assert.equal((await p.getJob(job.id)).status, 'running');
    seqs.push((await job.progress(0.4)).seq);
    seqs.push((await job.progress(0.9, { message: 'Almost there' })).seq);
    seqs.push((await job.endStep()).seq);
    seqs.push((await job.startStep('build')).seq);
    seqs.push((await job.endStep('build')).seq);
    seqs.push((await job.startStep('ship')).seq);
    seqs.push((await job.endStep()).seq);
    seqs.push((await job.complete({ result: { url: '/reports/7' } })).seq);
    assert.deepEqual(seqs, [2, 3, 4, 5, 6, 7, 8, 9, 10]);

    const final = await p.getJob(job.id);
    assert.equal(final.status, 'completed');
    assert.equal(final.progress, 1);
    assert.equal(final.seq, 10);
    assert.deepEqual(final.result, { url: '/reports/7' });
    assert.deepEqual(final.steps.map((s) => [s.id, s.status]), [
      ['fetch', 'completed'],
      ['build', 'completed'],
      ['ship', 'completed'],
    ]);
    assert.equal(job.lastSeq, 10);
  });

  test('calls fired without awaiting arrive in order; bursts of progress are batched', async () => {
    let posts = 0;
    const p = await producer({
      fetch: (input, init) => {
        if (String(input).endsWith('/events')) posts++;
        return fetch(input, init);
      },
    });
    const job = await p.createJob({ kind: 'burst', steps: [{ id: 'only' }] });
    const calls = [job.startStep('only')];
    for (let i = 1; i <= 100; i++) calls.push(job.progress(i / 100, { message: `item ${i}` }));
    calls.push(job.endStep(), job.complete());
    const accepted = await Promise.all(calls);
    const final = await p.getJob(job.id);
    assert.equal(final.status, 'completed');
    assert.equal(final.steps[0]!.message, 'item 100');
    assert.equal(Math.max(...accepted.map((a) => a.seq)), final.seq);
    assert.ok(posts < 10, `expected the burst to be batched, got ${posts} POSTs`);
  });

  test('the events of one turn go out in one request', async () => {
    const bodies: unknown[] = [];
    const p = await producer({
      fetch: (input, init) => {
        if (String(input).endsWith('/events')) bodies.push(JSON.parse(String(init?.body)));
        return fetch(input, init);
      },
    });
    const job = await p.createJob({ kind: 'turn', steps: STEPS });
    await Promise.all([job.startStep('fetch'), job.progress(0.5), job.endStep('fetch'), job.startStep('build')]);
    assert.equal(bodies.length, 1, 'one POST for the four calls');
    assert.deepEqual((bodies[0] as Array<{ type: string }>).map((e) => e.type), ['step_start', 'progress', 'step_end', 'step_start']);
    assert.equal((await p.getJob(job.id)).steps[1]!.status, 'running');
  });

  test('one bad call in a batch fails alone', async () => {
    const p = await producer();
    const job = await p.createJob({ kind: 'mixed', steps: STEPS });
    await job.startStep('fetch');
    const inFlight = job.progress(0.1); // the next calls queue behind this request and form a batch
    const good = job.progress(0.2, { step: 'fetch', message: 'good' });
    const bad = job.progress(0.3, { step: 'ship' }); // ship is not running
    const after = job.endStep('fetch');
    await inFlight;
    const err = await rejection(bad);
    assert.equal(err.code, 'step_not_running');
    await good;
    await after;
    const final = await p.getJob(job.id);
    assert.equal(final.steps[0]!.status, 'completed');
    assert.equal(final.steps[0]!.message, 'good');
  });
});
