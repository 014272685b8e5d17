// Signed webhooks (Standard Webhooks): the server's signature against the spec's published
// example, the PT_WEBHOOK_SECRET / PT_WEBHOOK_UNSIGNED settings, and secure by default — without a
// secret a job with a `webhook` is refused with 400 webhook_secret_required and nothing is sent
// unsigned unless PT_WEBHOOK_UNSIGNED allows it. The signed delivery itself, checked by an
// independent implementation of the spec, is in retry.test.ts.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { Job } from '../../protocol/index.js';
import { ConfigError, loadConfig, resolveConfig } from '../../server/app/config.js';
import type { Logger } from '../../server/app/log.js';
import { JobWebhooks, signWebhook, webhookKey } from '../../server/core/webhook.js';
import type { RetryNotice } from '../../server/core/job-service-events.js';
import { api, createJob, startServerProcess, waitFor, type ServerProcess } from '../fixtures/server-process.js';

const JWT = { PT_JWT_SECRET: randomBytes(32).toString('base64url') };
const configProblems = (env: Record<string, string>, argv: string[] = []): string[] => {
  try {
    loadConfig({ ...JWT, ...env }, argv);
    return [];
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.problems;
  }
};

/** A receiver on 127.0.0.1 that records every request and answers 204. */
async function hookReceiver(): Promise<{ url: string; calls: Array<{ headers: IncomingHttpHeaders; body: string }>; close(): Promise<void> }> {
  const calls: Array<{ headers: IncomingHttpHeaders; body: string }> = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      calls.push({ headers: req.headers, body });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    calls,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('webhook signing', () => {
  test('the signature of the Standard Webhooks example', () => {
    // From the Standard Webhooks reference libraries' tests.
    const key = webhookKey('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw');
    assert.equal(signWebhook(key, 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}'), 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=');
  });

  test('PT_WEBHOOK_SECRET: whsec_ and the base64 of 24 to 64 bytes', () => {
    const ok = `whsec_${randomBytes(32).toString('base64')}`;
    assert.equal(loadConfig({ ...JWT, PT_WEBHOOK_SECRET: ok }).webhookSecret, ok);
    assert.equal(loadConfig(JWT, ['--webhook-secret', ok]).webhookSecret, ok);
    assert.equal(loadConfig({ ...JWT, PT_WEBHOOK_SECRET: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' }).webhookSecret, 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'); // 24 bytes
    assert.equal(loadConfig(JWT).webhookSecret, undefined);
    for (const bad of [
      randomBytes(32).toString('base64'), // no prefix
      `whsec_${randomBytes(23).toString('base64')}`, // too short
      `whsec_${randomBytes(65).toString('base64')}`, // too long
      `whsec_${randomBytes(32).toString('hex').slice(0, 40)}!`, // not base64
      'whsec_',
      'a-long-enough-but-plain-text-password-1234567890',
    ]) {
      const problems = configProblems({ PT_WEBHOOK_SECRET: bad });
      assert.equal(problems.length, 1, bad);
      assert.match(problems[0]!, /^PT_WEBHOOK_SECRET \(--webhook-secret\) must be whsec_ followed by the base64 of 24 to 64 random bytes/);
      if (bad !== 'whsec_') assert.ok(!problems[0]!.includes(bad), 'the message never echoes the secret');
    }
    assert.throws(() => resolveConfig({ jwtSecret: JWT.PT_JWT_SECRET, webhookSecret: 'whsec_short' }), /PT_WEBHOOK_SECRET/);
  });

  test('PT_WEBHOOK_UNSIGNED: a boolean, off by default', () => {
    assert.equal(loadConfig(JWT).webhookUnsigned, false);
    assert.equal(loadConfig({ ...JWT, PT_WEBHOOK_UNSIGNED: '1' }).webhookUnsigned, true);
    assert.equal(loadConfig(JWT, ['--webhook-unsigned']).webhookUnsigned, true);
    assert.match(configProblems({ PT_WEBHOOK_UNSIGNED: 'maybe' })[0]!, /^PT_WEBHOOK_UNSIGNED \(--webhook-unsigned\) must be 1\/true or 0\/false/);
  });

  test('JobWebhooks without a secret sends nothing unless unsigned delivery is allowed', async () => {
    const hooks = await hookReceiver();
    const warnings: string[] = [];
    const log = { info() {}, warn: (...args: unknown[]) => void warnings.push(String(args.at(-1))) } as unknown as Logger;
    const notice = { jobId: 'j1', step: 'a', seq: 3 } as RetryNotice;
    const record = { job: {} as Job, webhook: hooks.url };
    try {
      const refusing = new JobWebhooks(log);
      refusing.onRetry(notice, record);
      await refusing.close();
      assert.equal(hooks.calls.length, 0);
      assert.match(warnings.join('\n'), /retry webhook not sent: PT_WEBHOOK_SECRET is not set/);

      const unsigned = new JobWebhooks(log, { unsigned: true });
      assert.match(warnings.join('\n'), /webhooks are sent unsigned/);
      unsigned.onRetry(notice, record);
      await waitFor(() => hooks.calls.length === 1, 5000, 'unsigned webhook');
      await unsigned.close();
      const { headers, body } = hooks.calls[0]!;
      assert.deepEqual(JSON.parse(body), { type: 'retry', jobId: 'j1', step: 'a', seq: 3 });
      assert.match(String(headers['webhook-id']), /^msg_/);
      assert.match(String(headers['webhook-timestamp']), /^\d+$/);
      assert.equal(headers['webhook-signature'], undefined);

      // Every delivery gets its own id.
      const secret = `whsec_${randomBytes(32).toString('base64')}`;
      const signed = new JobWebhooks(log, { secret });
      signed.onRetry(notice, record);
      signed.onRetry({ ...notice, seq: 5 }, record);
      await waitFor(() => hooks.calls.length === 3, 5000, 'signed webhooks');
      await signed.close();
      const ids = hooks.calls.map((c) => c.headers['webhook-id']);
      assert.equal(new Set(ids).size, 3);
      for (const { headers: h, body: b } of hooks.calls.slice(1)) {
        assert.equal(h['webhook-signature'], signWebhook(webhookKey(secret), String(h['webhook-id']), Number(h['webhook-timestamp']), b));
      }
      assert.throws(() => new JobWebhooks(log, { secret: 'not-a-secret' }), /whsec_/);
    } finally {
      await hooks.close();
    }
  });
});

describe('a server without PT_WEBHOOK_SECRET', () => {
  let server: ServerProcess;
  before(async () => {
    server = await startServerProcess({ env: { PT_WEBHOOK_SECRET: '', PT_WEBHOOK_UNSIGNED: '' } });
  });
  after(async () => {
    await server?.stop();
    server?.cleanup();
  });

  test('refuses a job with a webhook: 400 webhook_secret_required; a job without one is fine', async () => {
    const token = await server.token({ scope: 'progress:write', jobs: ['*'] });
    const refused = await api(server, 'POST', '/v1/jobs', token, { id: 'hooked', kind: 'k', steps: [{ id: 'a' }], webhook: 'http://127.0.0.1:9/hook' });
    assert.equal(refused.status, 400);
    assert.equal(refused.body.error.code, 'webhook_secret_required');
    assert.match(refused.body.error.message, /PT_WEBHOOK_SECRET/);
    assert.match(refused.body.error.message, /PT_WEBHOOK_UNSIGNED=1/);
    assert.equal((await api(server, 'GET', '/v1/jobs/hooked', token)).status, 404, 'nothing was created');
    assert.equal((await createJob(server, { id: 'plain', steps: [{ id: 'a' }] })).id, 'plain');
  });
});

describe('a server with PT_WEBHOOK_UNSIGNED=1', () => {
  let server: ServerProcess;
  let hooks: Awaited<ReturnType<typeof hookReceiver>>;
  before(async () => {
    hooks = await hookReceiver();
    server = await startServerProcess({ env: { PT_WEBHOOK_SECRET: '', PT_WEBHOOK_UNSIGNED: '1' } });
  });
  after(async () => {
    await server?.stop();
    server?.cleanup();
    await hooks?.close();
  });

  test('accepts a loopback webhook, says so at start, and delivers it unsigned', async () => {
    assert.match(server.output(), /webhooks are sent unsigned/);
    await createJob(server, { id: 'unsigned-1', steps: [{ id: 'a' }], webhook: hooks.url });
    const token = await server.token({ scope: 'progress:write progress:retry', jobs: ['unsigned-1'] });
    await api(server, 'POST', '/v1/jobs/unsigned-1/events', token, [{ type: 'step_start', step: 'a' }, { type: 'step_failed', step: 'a' }]);
    assert.equal((await api(server, 'POST', '/v1/jobs/unsigned-1/retry', token, {})).status, 202);
    await waitFor(() => hooks.calls.length > 0, 10_000, 'webhook');
    const { headers, body } = hooks.calls[0]!;
    assert.deepEqual(JSON.parse(body), { type: 'retry', jobId: 'unsigned-1', step: 'a', seq: 4 });
    assert.match(String(headers['webhook-id']), /^msg_/);
    assert.equal(headers['webhook-signature'], undefined);
  });
});
