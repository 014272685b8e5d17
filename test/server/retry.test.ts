// Retry and resume: a failed step fails the job; a retry (HTTP or WebSocket) resets that step and
// the later unfinished ones, keeps completed steps, queues the job with seq + 1, and tells the
// producer through a `control` message on its socket and through the job's signed webhook.
import assert from 'node:assert/strict';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { Job } from '../../protocol/index.js';
import { verifyWebhook } from '../../producer/index.js';
import { api, connectWs, createJob, startServerProcess, waitFor, type ServerProcess } from '../fixtures/server-process.js';

/**
 * Standard Webhooks, written here from the spec and sharing no code with the server or the SDK:
 * the key is the base64-decoded part of `whsec_<base64>`; the signature header is a
 * space-separated list of `v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`.
 */
function specSignatureValid(secret: string, headers: IncomingHttpHeaders, body: Buffer): boolean {
  const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
  const content = Buffer.concat([Buffer.from(`${headers['webhook-id']}.${headers['webhook-timestamp']}.`), body]);
  const mac = createHmac('sha256', key).update(content).digest();
  return String(headers['webhook-signature'] ?? '')
    .split(' ')
    .some((sig) => {
      const [version, b64] = sig.split(',');
      const given = Buffer.from(b64 ?? '', 'base64');
      return version === 'v1' && given.length === mac.length && timingSafeEqual(given, mac);
    });
}

describe('retry flow', () => {
  const webhookSecret = `whsec_${randomBytes(32).toString('base64')}`;
  let server: ServerProcess;
  let hooks: Server;
  let hookUrl: string;
  const received: unknown[] = [];
  const calls: Array<{ headers: IncomingHttpHeaders; body: Buffer; at: number }> = [];

  before(async () => {
    server = await startServerProcess({ env: { PT_WEBHOOK_SECRET: webhookSecret, PT_WEBHOOK_UNSIGNED: '' } });
    hooks = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        calls.push({ headers: req.headers, body, at: Math.floor(Date.now() / 1000) });
        // The first delivery fails: the server must retry it.
        if (calls.length === 1) {
          res.writeHead(503).end();
          return;
        }
        received.push(JSON.parse(body.toString()));
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => hooks.listen(0, '127.0.0.1', resolve));
    hookUrl = `http://127.0.0.1:${(hooks.address() as AddressInfo).port}/hooks/retry`;
  });
  after(async () => {
    await server.stop();
    server.cleanup();
    await new Promise((resolve) => hooks.close(resolve));
  });

  test('step_failed → job failed; retry over the WebSocket → control to the producer, webhook, resume', async () => {
    await createJob(server, { id: 'retry-1', steps: [{ id: 'a' }, { id: 'b' }, { id: 'c' }], webhook: hookUrl });
    const write = await server.token({ scope: 'progress:write', jobs: ['retry-1'] });
    const post = (body: unknown) => api(server, 'POST', '/v1/jobs/retry-1/events', write, body);

    // The producer follows its job with write scope: it gets control messages.
    const producer = await connectWs(server, write);
    producer.send({ type: 'subscribe', jobId: 'retry-1' });
    await producer.next('snapshot');
    // The browser has read + retry.
    const browser = await connectWs(server, await server.token({ scope: 'progress:read progress:retry', jobs: ['retry-1'] }));
    browser.send({ type: 'subscribe', jobId: 'retry-1' });
    await browser.next('snapshot');

    await post([{ type: 'step_start', step: 'a' }, { type: 'step_end', step: 'a' }, { type: 'step_start', step: 'b' }, { type: 'progress', step: 'b', progress: 0.4 }]);
    const failed = await post({ type: 'step_failed', step: 'b', error: { code: 'model_timeout', message: 'the model did not answer', retryable: true } });
    assert.equal(failed.status, 202);
    const failedJob = (await browser.next((m) => m.type === 'update' && m.job.status === 'failed')) as { job: Job };
    assert.equal(failedJob.job.steps[1]!.status, 'failed');
    assert.deepEqual(failedJob.job.error, { code: 'model_timeout', message: 'the model did not answer', retryable: true, step: 'b' });
    // Nothing but a retry (or a final job_end) moves a failed job.
    assert.equal((await post({ type: 'step_start', step: 'c' })).body.error.code, 'job_finished');

    browser.send({ type: 'retry', jobId: 'retry-1' });
    const control = await producer.next('control');
    assert.deepEqual(control, { type: 'control', action: 'retry', jobId: 'retry-1', step: 'b' });
    // Read-only subscribers do not get control messages.
    const queued = (await browser.next((m) => m.type === 'update' && m.job.status === 'queued')) as { job: Job };
    assert.equal(queued.job.seq, failedJob.job.seq + 1);
    assert.deepEqual(queued.job.steps.map((s) => s.status), ['completed', 'pending', 'pending']);
    assert.equal(queued.job.steps[1]!.progress, 0);
    assert.equal(queued.job.error, undefined);
    assert.equal(queued.job.attempts, 1);
    assert.ok(!browser.queue.some((m) => m.type === 'control'));

    // The webhook got it too, after one failed delivery.
    await waitFor(() => received.length > 0, 10_000, 'webhook');
    assert.deepEqual(received[0], { type: 'retry', jobId: 'retry-1', step: 'b', seq: queued.job.seq });
    // Both attempts signed per Standard Webhooks, checked by the spec implementation above; one
    // delivery keeps its webhook-id across attempts (receivers dedupe on it).
    assert.equal(calls.length, 2);
    for (const call of calls) {
      assert.match(String(call.headers['webhook-id']), /^msg_[A-Za-z0-9_-]+$/);
      assert.match(String(call.headers['webhook-timestamp']), /^\d+$/);
      assert.ok(Math.abs(Number(call.headers['webhook-timestamp']) - call.at) <= 5, 'timestamp is the attempt time, in seconds');
      assert.match(String(call.headers['webhook-signature']), /^v1,[A-Za-z0-9+/]+={0,2}$/);
      assert.ok(specSignatureValid(webhookSecret, call.headers, call.body), 'signature checks out against the spec');
      assert.ok(!specSignatureValid(`whsec_${randomBytes(32).toString('base64')}`, call.headers, call.body), 'and not against another secret');
    }
    assert.equal(calls[0]!.headers['webhook-id'], calls[1]!.headers['webhook-id']);
    // The SDK's helper accepts the real delivery.
    assert.deepEqual(verifyWebhook(webhookSecret, calls[1]!.headers, calls[1]!.body), received[0]);

    // The producer resumes from the failed step and finishes.
    for (const event of [{ type: 'step_start', step: 'b' }, { type: 'step_end', step: 'b' }, { type: 'step_start', step: 'c' }, { type: 'step_end', step: 'c' }, { type: 'job_end', status: 'completed' }]) {
      assert.equal((await post(event)).status, 202);
    }
    const done = (await browser.next((m) => m.type === 'update' && m.job.status === 'completed')) as { job: Job };
    assert.equal(done.job.progress, 1);
    await producer.close();
    await browser.close();
  });

  test('HTTP retry: 202 with the step; 409 nothing_to_retry when nothing failed', async () => {
    await createJob(server, { id: 'retry-2', steps: [{ id: 'a' }, { id: 'b' }] });
    const token = await server.token({ scope: 'progress:write progress:retry', jobs: ['retry-2'] });
    const nothing = await api(server, 'POST', '/v1/jobs/retry-2/retry', token, {});
    assert.equal(nothing.status, 409);
    assert.equal(nothing.body.error.code, 'nothing_to_retry');
    await api(server, 'POST', '/v1/jobs/retry-2/events', token, [{ type: 'step_start', step: 'a' }, { type: 'step_failed', step: 'a' }]);
    const ok = await api(server, 'POST', '/v1/jobs/retry-2/retry', token, { step: 'a' });
    assert.equal(ok.status, 202);
    assert.deepEqual(ok.body, { seq: 4, step: 'a' });
    const again = await api(server, 'POST', '/v1/jobs/retry-2/retry', token);
    assert.equal(again.body.error.code, 'nothing_to_retry');
  });
});
