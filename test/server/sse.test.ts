// GET /v1/jobs/{id}/stream: a snapshot first, then every update (id: = seq), control messages for
// write scope, heartbeats, the same authorization, origin and per-address rules as the WebSocket,
// and headers that keep a reverse proxy from buffering.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { api, connectWs, createJob, startServerProcess, type ServerProcess } from '../fixtures/server-process.js';
import { openSse } from '../fixtures/sse-client.js';

describe('SSE stream', () => {
  let server: ServerProcess;
  before(async () => {
    server = await startServerProcess({ env: { PT_MAX_CONNECTIONS_PER_IP: '3', PT_ALLOWED_ORIGINS: 'https://app.example' } });
  });
  after(async () => {
    await server.stop();
    server.cleanup();
  });

  const streamUrl = (id: string, token?: string) => `${server.url}/v1/jobs/${id}/stream${token ? `?access_token=${encodeURIComponent(token)}` : ''}`;

  test('snapshot, then every update with id = seq; a reconnect with Last-Event-ID starts from a snapshot again', async () => {
    const writer = await server.token({ scope: 'progress:write', jobs: ['*'] });
    const job = await createJob(server, { id: 'sse-1', steps: [{ id: 'a' }, { id: 'b' }] });
    const reader = await server.token({ scope: 'progress:read', jobs: ['sse-1'] });
    const s = await openSse(streamUrl('sse-1'), { authorization: `Bearer ${reader}`, origin: 'https://app.example' });
    assert.equal(s.status, 200);
    assert.match(s.headers.get('content-type')!, /^text\/event-stream/);
    assert.equal(s.headers.get('x-accel-buffering'), 'no');
    assert.match(s.headers.get('cache-control')!, /no-cache/);
    assert.equal(s.headers.get('access-control-allow-origin'), 'https://app.example');
    const snap = await s.next('snapshot');
    assert.equal(snap.id, String(job.seq));
    assert.equal(s.retryMs, 3000);
    for (const event of [{ type: 'step_start', step: 'a' }, { type: 'progress', step: 'a', progress: 0.5 }, { type: 'step_end', step: 'a' }]) {
      assert.equal((await api(server, 'POST', '/v1/jobs/sse-1/events', writer, event)).status, 202);
    }
    const seqs: number[] = [];
    while (seqs.length < 3) {
      const e = await s.next('update');
      assert.equal(e.data.type, 'update');
      if (e.data.type === 'update') {
        assert.equal(e.id, String(e.data.job.seq));
        seqs.push(e.data.job.seq);
      }
    }
    assert.deepEqual(seqs, [2, 3, 4]);
    s.close();
    // A reconnect names the last id it saw; it gets the full current state, not a replay.
    const again = await openSse(streamUrl('sse-1', reader), { 'last-event-id': '3' });
    const resumed = await again.next('snapshot');
    assert.equal(resumed.id, '4');
    again.close();
  });

  test('control messages reach a write-scope stream, not a read-only one', async () => {
    await createJob(server, { id: 'sse-ctl', steps: [{ id: 'a' }] });
    const writer = await server.token({ scope: 'progress:write progress:read', jobs: ['sse-ctl'] });
    const reader = await server.token({ scope: 'progress:read progress:retry', jobs: ['sse-ctl'] });
    const producer = await openSse(streamUrl('sse-ctl', writer));
    const browser = await openSse(streamUrl('sse-ctl', reader));
    await producer.next('snapshot');
    await browser.next('snapshot');
    await api(server, 'POST', '/v1/jobs/sse-ctl/events', writer, [{ type: 'step_start', step: 'a' }, { type: 'step_failed', step: 'a', error: { code: 'x', message: 'boom' } }]);
    assert.equal((await api(server, 'POST', '/v1/jobs/sse-ctl/retry', reader, {})).status, 202);
    const control = await producer.next('control');
    assert.deepEqual(control.data, { type: 'control', action: 'retry', jobId: 'sse-ctl', step: 'a' });
    await browser.next('update'); // failed
    const queued = await browser.next('update');
    assert.equal(queued.data.type === 'update' && queued.data.job.status, 'queued');
    assert.equal(browser.events.some((e) => e.data.type === 'control'), false);
    producer.close();
    browser.close();
  });

  test('refusals: no token 401, another job 403, unknown job 404, a foreign origin 403', async () => {
    await createJob(server, { id: 'sse-auth', steps: [{ id: 'a' }] });
    const other = await server.token({ scope: 'progress:read', jobs: ['someone-else'] });
    const all = await server.token({ scope: 'progress:read', jobs: ['*'] });
    const none = await openSse(streamUrl('sse-auth'));
    assert.equal(none.status, 401);
    assert.equal(none.headers.get('www-authenticate'), 'Bearer');
    assert.deepEqual((none.errorBody as { error: { code: string } }).error.code, 'unauthorized');
    assert.equal((await openSse(streamUrl('sse-auth', other))).status, 403);
    assert.equal((await openSse(streamUrl('nope', all))).status, 404);
    assert.equal((await openSse(streamUrl('sse-auth', all), { origin: 'https://evil.example' })).status, 403);
  });

  test('WebSocket and SSE share the per-address connection limit', async () => {
    await createJob(server, { id: 'sse-limit', steps: [{ id: 'a' }] });
    const token = await server.token({ scope: 'progress:read', jobs: ['*'] });
    const ws = await connectWs(server, token);
    const a = await openSse(streamUrl('sse-limit', token));
    const b = await openSse(streamUrl('sse-limit', token));
    assert.equal(a.status, 200);
    assert.equal(b.status, 200);
    const c = await openSse(streamUrl('sse-limit', token));
    assert.equal(c.status, 429);
    await assert.rejects(connectWs(server, token), /429/);
    a.close();
    await a.ended;
    // The freed slot is usable again (the server hears the close).
    let d = await openSse(streamUrl('sse-limit', token));
    for (let i = 0; i < 20 && d.status === 429; i++) {
      await new Promise((r) => setTimeout(r, 50));
      d = await openSse(streamUrl('sse-limit', token));
    }
    assert.equal(d.status, 200);
    b.close();
    d.close();
    await ws.close();
  });
});
