/**
 * `verifyWebhook` (producer/webhook.ts) against webhooks signed by an implementation written here
 * from the Standard Webhooks spec (not the server's): genuine ones pass, and stale, replayed,
 * re-timestamped, tampered, future and unsigned ones are refused with a reason. The receiver of
 * docs/producer.md runs at the end against a real HTTP request.
 */
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { buffer } from 'node:stream/consumers';
import { describe, test } from 'node:test';
import {
  isWebhookVerificationError,
  verifyWebhook,
  WebhookVerificationError,
  type WebhookVerificationReason,
} from '../../producer/index.js';

/** The spec: key = base64-decoded bytes after `whsec_`; `v1,` + base64 HMAC-SHA256 of `${id}.${timestamp}.${body}`. */
function specSign(secret: string, id: string, timestamp: number, body: string): Record<string, string> {
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const signature = createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64');
  return { 'webhook-id': id, 'webhook-timestamp': String(timestamp), 'webhook-signature': `v1,${signature}` };
}

const secret = `whsec_${randomBytes(32).toString('base64')}`;
const body = JSON.stringify({ type: 'retry', jobId: 'job-1', step: 'render', seq: 7 });
const nowSeconds = Math.floor(Date.now() / 1000);

function refused(fn: () => unknown, reason: WebhookVerificationReason): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof WebhookVerificationError, String(err));
    assert.equal(err.reason, reason, err.message);
    assert.ok(isWebhookVerificationError(err, reason));
    return true;
  });
}

describe('verifyWebhook', () => {
  test('a genuine webhook: returns the parsed body', () => {
    const headers = specSign(secret, 'msg_1', nowSeconds, body);
    assert.deepEqual(verifyWebhook(secret, headers, body), { type: 'retry', jobId: 'job-1', step: 'render', seq: 7 });
    assert.deepEqual(verifyWebhook(secret, headers, Buffer.from(body)), JSON.parse(body));
    assert.deepEqual(verifyWebhook(secret, new Headers(headers), new TextEncoder().encode(body)), JSON.parse(body));
    // The whsec_ prefix may be left out; header names are case-insensitive in a plain record too.
    assert.ok(verifyWebhook(secret.slice('whsec_'.length), headers, body));
    const upper = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toUpperCase(), v]));
    assert.ok(verifyWebhook(secret, upper, body));
  });

  test("the Standard Webhooks example, at its own time", () => {
    const headers = {
      'webhook-id': 'msg_p5jXN8AQM9LWM0D4loKWxJek',
      'webhook-timestamp': '1614265330',
      'webhook-signature': 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
    };
    const example = '{"test": 2432232314}';
    assert.deepEqual(verifyWebhook('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', headers, example, { now: new Date(1614265330 * 1000) }), { test: 2432232314 });
    refused(() => verifyWebhook('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', headers, example), 'timestamp_too_old');
  });

  test('any matching v1 entry of a space-separated list (secret rotation); other versions ignored', () => {
    const good = specSign(secret, 'msg_2', nowSeconds, body)['webhook-signature']!;
    const other = specSign(`whsec_${randomBytes(32).toString('base64')}`, 'msg_2', nowSeconds, body)['webhook-signature']!;
    const headers = { 'webhook-id': 'msg_2', 'webhook-timestamp': String(nowSeconds) };
    assert.ok(verifyWebhook(secret, { ...headers, 'webhook-signature': `${other} v1a,AAAA ${good}` }, body));
    assert.ok(verifyWebhook(secret, { ...headers, 'webhook-signature': [other, good] }, body));
    refused(() => verifyWebhook(secret, { ...headers, 'webhook-signature': other }, body), 'invalid_signature');
    refused(() => verifyWebhook(secret, { ...headers, 'webhook-signature': good.replace('v1,', 'v2,') }, body), 'invalid_signature');
    refused(() => verifyWebhook(secret, { ...headers, 'webhook-signature': good.slice(0, 12) }, body), 'invalid_signature');
    refused(() => verifyWebhook(secret, { ...headers, 'webhook-signature': 'v1,' }, body), 'invalid_signature');
  });

  test('a replayed webhook: stale with its own timestamp, forged with a fresh one', () => {
    // Captured 6 minutes ago and sent again as is.
    const captured = specSign(secret, 'msg_3', nowSeconds - 360, body);
    refused(() => verifyWebhook(secret, captured, body), 'timestamp_too_old');
    // Still fine at the time it was sent.
    assert.ok(verifyWebhook(secret, captured, body, { now: (nowSeconds - 360) * 1000 }));
    // Refreshing the timestamp breaks the signature, which covers it.
    refused(() => verifyWebhook(secret, { ...captured, 'webhook-timestamp': String(nowSeconds) }, body), 'invalid_signature');
    // So do another id and another body.
    const fresh = specSign(secret, 'msg_4', nowSeconds, body);
    refused(() => verifyWebhook(secret, { ...fresh, 'webhook-id': 'msg_5' }, body), 'invalid_signature');
    refused(() => verifyWebhook(secret, fresh, body.replace('"seq":7', '"seq":8')), 'invalid_signature');
    refused(() => verifyWebhook(secret, fresh, JSON.stringify(JSON.parse(body), null, 2)), 'invalid_signature');
  });

  test('5 minutes either way', () => {
    const at = (offset: number) => specSign(secret, 'msg_6', nowSeconds + offset, body);
    const now = nowSeconds * 1000;
    assert.ok(verifyWebhook(secret, at(-300), body, { now }));
    assert.ok(verifyWebhook(secret, at(300), body, { now }));
    refused(() => verifyWebhook(secret, at(-301), body, { now }), 'timestamp_too_old');
    refused(() => verifyWebhook(secret, at(301), body, { now }), 'timestamp_too_new');
    assert.ok(verifyWebhook(secret, at(-301), body, { now, toleranceSeconds: 600 }));
  });

  test('missing or malformed headers, unsigned webhooks, bodies that are not webhooks', () => {
    const headers = specSign(secret, 'msg_7', nowSeconds, body);
    for (const name of ['webhook-id', 'webhook-timestamp', 'webhook-signature']) {
      const { [name]: _, ...rest } = headers;
      refused(() => verifyWebhook(secret, rest, body), 'missing_header');
    }
    refused(() => verifyWebhook(secret, { ...headers, 'webhook-id': ['msg_7', 'msg_8'] }, body), 'missing_header');
    refused(() => verifyWebhook(secret, { ...headers, 'webhook-timestamp': '1614265330.5' }, body), 'invalid_timestamp');
    refused(() => verifyWebhook(secret, { ...headers, 'webhook-timestamp': 'soon' }, body), 'invalid_timestamp');
    const notJson = 'retry job-1';
    refused(() => verifyWebhook(secret, specSign(secret, 'msg_9', nowSeconds, notJson), notJson), 'invalid_payload');
    refused(() => verifyWebhook(secret, specSign(secret, 'msg_9', nowSeconds, '[1]'), '[1]'), 'invalid_payload');
  });

  test('wrong calls are TypeErrors, not verification failures', () => {
    const headers = specSign(secret, 'msg_10', nowSeconds, body);
    assert.throws(() => verifyWebhook('not a secret!', headers, body), TypeError);
    assert.throws(() => verifyWebhook('', headers, body), TypeError);
    assert.throws(() => verifyWebhook(secret, headers, JSON.parse(body) as never), /rawBody must be the body as received/);
  });

  test('the signed example of docs/protocol.md', () => {
    const headers = {
      'webhook-id': 'msg_Jq3v7Hk2bV0mXyQ1rT9sZcLd',
      'webhook-timestamp': '1767000000',
      'webhook-signature': 'v1,kTuv+S/47ohy6pz6Jm1GHFOFztfT+DVt2KvwJzptY8M=',
    };
    const example = '{"type":"retry","jobId":"gen-42","step":"analysis","seq":8}';
    const docs = readFileSync(new URL('../../docs/protocol.md', import.meta.url), 'utf8');
    for (const line of [...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), example, 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw']) assert.ok(docs.includes(line), line);
    assert.deepEqual(verifyWebhook('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', headers, example, { now: 1767000000 * 1000 + 999 }), JSON.parse(example));
    assert.deepEqual(headers, specSign('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', headers['webhook-id'], 1767000000, example));
  });

  test("the docs' receiver (docs/producer.md) over real HTTP", async () => {
    const process = { env: { PT_WEBHOOK_SECRET: secret } };
    const resumed: string[] = [];
    const resumeJob = async (jobId: string, step: string) => void resumed.push(`${jobId}@${step}`);
    // --- as in docs/producer.md "Verifying webhooks" ---
    const handled = new Set<string>(); // webhook-ids acted on (keep them 10 minutes in production)
    const receiver = createServer(async (req, res) => {
      try {
        const hook = verifyWebhook(process.env.PT_WEBHOOK_SECRET!, req.headers, await buffer(req));
        const id = req.headers['webhook-id'] as string;
        if (!handled.has(id)) { await resumeJob(hook.jobId, hook.step); handled.add(id); }
        res.writeHead(204).end();
      } catch (err) {
        res.writeHead(err instanceof WebhookVerificationError ? 401 : 500).end(); // the server does not retry a 401
      }
    });
    // ---
    // The same lines as in the docs.
    const code = (text: string) => text.slice(text.indexOf('const handled'), text.indexOf('    res.writeHead(err instanceof')).split('\n').map((l) => l.trim()).join('\n');
    const docsCode = code(readFileSync(new URL('../../docs/producer.md', import.meta.url), 'utf8'));
    assert.ok(docsCode.length > 200);
    assert.equal(code(readFileSync(new URL(import.meta.url), 'utf8')).replace('const receiver = createServer', 'createServer'), docsCode);
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks/progress`;
    const post = (headers: Record<string, string>, text = body) => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: text }).then((r) => r.status);
    try {
      const signed = specSign(secret, 'msg_11', Math.floor(Date.now() / 1000), body);
      assert.equal(await post(signed), 204);
      assert.equal(await post(signed), 204, 'a second attempt of the same delivery is acknowledged');
      assert.deepEqual(resumed, ['job-1@render'], '…and acted on once');
      assert.equal(await post(specSign(secret, 'msg_12', Math.floor(Date.now() / 1000) - 600, body)), 401);
      assert.equal(await post({ 'webhook-id': 'msg_13', 'webhook-timestamp': String(Math.floor(Date.now() / 1000)) }), 401);
      assert.deepEqual(resumed, ['job-1@render']);
    } finally {
      await new Promise((resolve) => receiver.close(resolve));
    }
  });
});
