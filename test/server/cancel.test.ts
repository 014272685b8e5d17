// Cancel end to end: the user asks (HTTP or WebSocket, scope progress:cancel), the job shows
// cancelRequested with a new seq, the producer hears control/cancel over WebSocket, SSE and its
// signed webhook, and ends the job as canceled — or the server does after PT_CANCEL_GRACE.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { Job } from '../../protocol/index.js';
import { api, connectWs, createJob, startServerProcess, waitFor, type ServerProcess } from '../fixtures/server-process.js';
import { openSse } from '../fixtures/sse-client.js';

const WEBHOOK_SECRET = `whsec_${Buffer.from('a-32-byte-webhook-secret-for-test').toString('base64')}`;

describe('cancel', () => {
  let server: ServerProcess;
  let hooks: Server;
  let hookUrl: string;
  const hooksReceived: Array<{ headers: Record<string, unknown>; body: unknown }> = [];

  before(async () => {
    server = await startServerProcess({ env: { PT_CANCEL_GRACE: '1s', PT_WEBHOOK_SECRET: WEBHOOK_SECRET } });
    hooks = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        hooksReceived.push({ headers: req.headers, body: JSON.parse(body) });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => hooks.listen(0, '127.0.0.1', resolve));
    hookUrl = `http://127.0.0.1:${(hooks.address() as AddressInfo).port}/hooks`;
  });
  after(async () => {
    await server.stop();
    server.cleanup();
    await new Promise((resolve) => hooks.close(resolve));
  });

  const userToken = (jobs: string[], scope = 'progress:read progress:cancel') => server.token({ scope, jobs, sub: 'alice' });

  test('the producer hears it over WebSocket, SSE and its webhook, and ends the job as canceled', async () => {
    const writer = await server.token({ scope: 'progress:write', jobs: ['cx-1'] });
    await createJob(server, { id: 'cx-1', steps: [{ id: 'a' }, { id: 'b' }], webhook: hookUrl });
    await api(server, 'POST', '/v1/jobs/cx-1/events', writer, { type: 'step_start', step: 'a' });
    const producer = await connectWs(server, writer);
    producer.send({ type: 'subscribe', jobId: 'cx-1' });
    await producer.next('snapshot');
    const stream = await openSse(`${server.url}/v1/jobs/cx-1/stream`, { authorization: `Bearer ${writer}` });
    await stream.next('snapshot');
    const browser = await connectWs(server, await userToken(['cx-1']));
    browser.send({ type: 'subscribe', jobId: 'cx-1' });
    await browser.next('snapshot');

    const res = await api<{ seq: number }>(server, 'POST', '/v1/jobs/cx-1/cancel', await userToken(['cx-1']), { reason: 'not needed' });
    assert.equal(res.status, 202);
    const update = await browser.next('update');
    const job = (update as { job: Job }).job;
    assert.equal(job.seq, res.body.seq);
    assert.equal(job.status, 'running', 'still running until the producer stops');
    assert.equal(job.cancelRequested?.by, 'alice');
    assert.equal(job.cancelRequested?.reason, 'not needed');
    assert.deepEqual(await producer.next('control'), { type: 'control', action: 'cancel', jobId: 'cx-1', reason: 'not needed' });
    assert.deepEqual((await stream.next('control')).data, { type: 'control', action: 'cancel', jobId: 'cx-1', reason: 'not needed' });
    assert.equal(browser.queue.some((m) => m.type === 'control'), false, 'read-only sockets hear no control');
    const hook = await waitFor(() => hooksReceived.find((h) => (h.body as { jobId: string }).jobId === 'cx-1'), 5000, 'cancel webhook');
    assert.deepEqual(hook.body, { type: 'cancel', jobId: 'cx-1', seq: res.body.seq, reason: 'not needed' });
    assert.match(String(hook.headers['webhook-signature']), /^v1,/);

    // Idempotent: a second cancel changes nothing.
    const again = await api<{ seq: number }>(server, 'POST', '/v1/jobs/cx-1/cancel', await userToken(['cx-1']), {});
    assert.deepEqual([again.status, again.body.seq], [202, res.body.seq]);

    assert.equal((await api(server, 'POST', '/v1/jobs/cx-1/events', writer, { type: 'job_end', status: 'canceled' })).status, 202);
    const ended = (await browser.next((m) => m.type === 'update' && m.job.status === 'canceled')) as { job: Job };
    assert.equal(ended.job.error, undefined, 'the producer stopped in time: no cancel_timeout');
    const late = await api<{ error: { code: string } }>(server, 'POST', '/v1/jobs/cx-1/cancel', await userToken(['cx-1']), {});
    assert.deepEqual([late.status, late.body.error.code], [409, 'already_finished']);
    stream.close();
    await producer.close();
    await browser.close();
  });

  test('a producer that never stops: the server ends the job as canceled with cancel_timeout', async () => {
    await createJob(server, { id: 'cx-2', steps: [{ id: 'a' }] });
    const browser = await connectWs(server, await userToken(['cx-2']));
    browser.send({ type: 'subscribe', jobId: 'cx-2' });
    await browser.next('snapshot');
    browser.send({ type: 'cancel', jobId: 'cx-2' }); // over the WebSocket this time
    const asked = (await browser.next('update')) as { job: Job };
    assert.ok(asked.job.cancelRequested);
    const ended = (await browser.next((m) => m.type === 'update' && m.job.status === 'canceled', 5000)) as { job: Job };
    assert.equal(ended.job.error?.code, 'cancel_timeout');
    assert.ok(Date.now() - asked.job.cancelRequested!.at >= 900, 'not before the grace period');
    await browser.close();
  });

  test('a token without progress:cancel gets 403 (HTTP) and forbidden (WebSocket); the job is untouched', async () => {
    const job = await createJob(server, { id: 'cx-3', steps: [{ id: 'a' }] });
    const reader = await userToken(['cx-3'], 'progress:read progress:retry');
    const res = await api<{ error: { code: string } }>(server, 'POST', '/v1/jobs/cx-3/cancel', reader, {});
    assert.deepEqual([res.status, res.body.error.code], [403, 'forbidden']);
    const ws = await connectWs(server, reader);
    ws.send({ type: 'cancel', jobId: 'cx-3' });
    const err = await ws.next('error');
    assert.equal(err.type === 'error' && err.code, 'forbidden');
    assert.equal((await api<Job>(server, 'GET', '/v1/jobs/cx-3', reader)).body.seq, job.seq);
    await ws.close();
  });
});
