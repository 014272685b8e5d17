// The `queued` producer event against a real server process: the job stays queued with its place
// (`job.queue`), its ETA covers the wait (`eta.waitMs`) once the server has seen a queue, the first
// step_start makes it running and ends the wait; bad positions and late `queued` events are refused.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Job } from '../../protocol/index.js';
import { api, createJob, startServerProcess, type ServerProcess } from '../fixtures/server-process.js';

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('queued event', () => {
  let server: ServerProcess;
  let writer: string;

  before(async () => {
    server = await startServerProcess();
    writer = await server.token({ scope: 'progress:write progress:read', jobs: ['*'] });
  });
  after(async () => {
    await server.stop();
    server.cleanup();
  });

  const post = (id: string, body: unknown) => api<any>(server, 'POST', `/v1/jobs/${id}/events`, writer, body);
  const get = async (id: string): Promise<Job> => (await api<Job>(server, 'GET', `/v1/jobs/${id}`, writer)).body;

  test('queued → position and eta.waitMs, then the first step_start → running without a queue', async () => {
    // One job that waited in the queue teaches the server its pace.
    await createJob(server, { id: 'q-1', kind: 'render', steps: [{ id: 'draw' }] });
    assert.equal((await post('q-1', { type: 'queued', position: 1 })).status, 202);
    await pause(150);
    assert.equal((await post('q-1', { type: 'queued', position: 0 })).status, 202);
    await pause(150);
    assert.equal((await post('q-1', [{ type: 'step_start', step: 'draw' }])).status, 202);
    await pause(50);
    assert.equal((await post('q-1', [{ type: 'step_end', step: 'draw' }, { type: 'job_end', status: 'completed' }])).status, 202);

    await createJob(server, { id: 'q-2', kind: 'render', steps: [{ id: 'draw' }] });
    const accepted = await post('q-2', { type: 'queued', position: 2 });
    assert.equal(accepted.status, 202);
    const queued = await get('q-2');
    assert.equal(queued.status, 'queued');
    assert.equal(queued.queue?.position, 2);
    assert.equal(typeof queued.queue?.since, 'number');
    assert.ok(queued.eta, 'a queued job with a known queue has an ETA');
    assert.equal(typeof queued.eta.waitMs, 'number');
    assert.ok(queued.eta.waitMs! >= 0 && queued.eta.waitMs! <= queued.eta.remainingMs, JSON.stringify(queued.eta));

    const since = queued.queue!.since;
    await post('q-2', { type: 'queued' });
    const unknown = await get('q-2');
    assert.equal(unknown.queue?.position, undefined, 'a queued event without position clears it');
    assert.equal(unknown.queue?.since, since, 'the wait still began at the first queued event');

    assert.equal((await post('q-2', { type: 'step_start', step: 'draw' })).status, 202);
    const running = await get('q-2');
    assert.equal(running.status, 'running');
    assert.equal(running.queue, undefined);
    assert.equal(running.eta?.waitMs, undefined);

    const late = await post('q-2', { type: 'queued', position: 0 });
    assert.equal(late.status, 409);
    assert.equal(late.body.error.code, 'invalid_transition');
  });

  test('a bad position is refused with 400 bad_request naming the field', async () => {
    await createJob(server, { id: 'q-bad', kind: 'render', steps: [{ id: 'draw' }] });
    for (const body of [
      { type: 'queued', position: -1 },
      { type: 'queued', position: 1.5 },
      { type: 'queued', position: '3' },
      { type: 'queued', position: 2e9 },
      { type: 'step_start', step: 'draw', position: 1 },
    ]) {
      const res = await post('q-bad', body);
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(res.body.error.code, 'bad_request');
      assert.match(res.body.error.message, /position/);
    }
    assert.equal((await get('q-bad')).seq, 1, 'nothing was applied');
  });
});
