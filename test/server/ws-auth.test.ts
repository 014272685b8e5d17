// Credentials on an open WebSocket: first-message auth (no token in the URL), its deadline, token
// refresh in place across the old token's expiry, and a narrower token revoking subscriptions.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { api, connectWs, createJob, metric, startServerProcess, type ServerProcess } from '../fixtures/server-process.js';

describe('WebSocket auth message', () => {
  let server: ServerProcess;
  before(async () => {
    server = await startServerProcess();
    await createJob(server, { id: 'wa-1', steps: [{ id: 'a' }, { id: 'b' }] });
    await createJob(server, { id: 'wa-2', steps: [{ id: 'a' }] });
  });
  after(async () => {
    await server.stop();
    server.cleanup();
  });

  test('without access_token: nothing is served before auth; a bad token is refused; a good one opens the socket', async () => {
    const ws = await connectWs(server, undefined);
    ws.send({ type: 'subscribe', jobId: 'wa-1' });
    const refused = await ws.next('error');
    assert.equal(refused.type === 'error' && refused.code, 'unauthorized');
    ws.send({ type: 'ping' });
    assert.equal((await ws.next('error')).type, 'error', 'not even a ping before auth');
    ws.send({ type: 'auth', token: await server.token({ expiresIn: -120 }) });
    const expired = await ws.next('error');
    assert.match(expired.type === 'error' ? expired.message : '', /expired/);
    const token = await server.token({ scope: 'progress:read', jobs: ['wa-1'], expiresIn: 300 });
    ws.send({ type: 'auth', token });
    const ok = await ws.next('auth_ok');
    assert.ok(ok.type === 'auth_ok' && Math.abs(ok.exp - (Date.now() / 1000 + 300)) < 5, JSON.stringify(ok));
    ws.send({ type: 'subscribe', jobId: 'wa-1' });
    assert.equal((await ws.next('snapshot')).type, 'snapshot');
    await ws.close();
  });

  test('no auth message within 5 s: closed with 4001', async () => {
    const ws = await connectWs(server, undefined);
    const started = Date.now();
    const { code } = await ws.closed;
    assert.equal(code, 4001);
    const waited = Date.now() - started;
    assert.ok(waited >= 3_500 && waited < 8_000, `closed after ${waited} ms`);
  });

  test('refresh in place: a new token before expiry keeps the same socket open past the old exp', async () => {
    const write = await server.token({ scope: 'progress:write', jobs: ['*'] });
    const ws = await connectWs(server, await server.token({ scope: 'progress:read', jobs: ['wa-2'], expiresIn: 2 }));
    ws.send({ type: 'subscribe', jobId: 'wa-2' });
    await ws.next('snapshot');
    const accepted = await metric(server, 'pt_ws_connections_total');
    ws.send({ type: 'auth', token: await server.token({ scope: 'progress:read', jobs: ['wa-2'], expiresIn: 120 }) });
    await ws.next('auth_ok');
    await new Promise((r) => setTimeout(r, 3_500)); // past the first token's expiry (and the sweep)
    assert.equal((await api(server, 'POST', '/v1/jobs/wa-2/events', write, { type: 'step_start', step: 'a' })).status, 202);
    const update = await ws.next('update');
    assert.equal(update.type === 'update' && update.job.status, 'running');
    assert.equal(await metric(server, 'pt_ws_connections_total'), accepted, 'no second upgrade');
    await ws.close();
  });

  test('a narrower token drops the subscriptions it no longer grants, with forbidden', async () => {
    const write = await server.token({ scope: 'progress:write', jobs: ['*'] });
    const ws = await connectWs(server, await server.token({ scope: 'progress:read', jobs: ['wa-1', 'wa-2'] }));
    ws.send({ type: 'subscribe', jobId: 'wa-1' });
    ws.send({ type: 'subscribe', jobId: 'wa-2' });
    await ws.next('snapshot');
    await ws.next('snapshot');
    ws.send({ type: 'auth', token: await server.token({ scope: 'progress:read', jobs: ['wa-1'] }) });
    await ws.next('auth_ok');
    const dropped = await ws.next('error');
    assert.deepEqual(dropped.type === 'error' && [dropped.code, dropped.jobId], ['forbidden', 'wa-2']);
    await api(server, 'POST', '/v1/jobs/wa-2/events', write, { type: 'progress', step: 'a', progress: 0.5 });
    await api(server, 'POST', '/v1/jobs/wa-1/events', write, { type: 'step_start', step: 'a' });
    const update = await ws.next('update');
    assert.equal(update.type === 'update' && update.job.id, 'wa-1');
    assert.equal(ws.queue.some((m) => m.type === 'update' && m.job.id === 'wa-2'), false, 'no update of the revoked job');
    await ws.close();
  });
});
