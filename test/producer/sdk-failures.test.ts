/**
 * The producer SDK when requests fail: a lost answer resent with the same eventId and applied
 * once, 429 and 5xx retried honouring Retry-After, a typed network error once the retry budget
 * runs out, server refusals as ProducerError (code and status, no retry), and a token provider
 * asked again after a 401 (generated ids use the token's prefix grant).
 * Part of the producer SDK tests against the real server (real HTTP, real WebSocket, real
 * SQLite; test/fixtures/producer-harness.ts): faults are injected only between the SDK and the
 * server, never by mocking the server.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createProducer, isProducerError, type RetryAttempt } from '../../producer/index.js';
import { producer, rejection, server, STEPS, token, producers, useServer } from '../fixtures/producer-harness.js';

useServer();

describe('producer SDK', () => {
  test('a POST whose answer is lost is retried with the same eventId and applied once', async () => {
    let lose = 0;
    const retries: RetryAttempt[] = [];
    const p = await producer({
      onRetryAttempt: (a) => retries.push(a),
      // The server handles the request, then the answer is "lost" on the way back.
      fetch: async (input, init) => {
        const res = await fetch(input, init);
        if (lose > 0) {
          lose--;
          await res.arrayBuffer();
          throw new TypeError('fetch failed', { cause: { code: 'ECONNRESET' } });
        }
        return res;
      },
    });
    lose = 1; // the create reached the server: the retry's 409 must be recognised as ours
    const job = await p.createJob({ kind: 'flaky', steps: STEPS });
    assert.equal(job.snapshot?.id, job.id);
    assert.equal(job.snapshot?.seq, 1);

    lose = 1;
    const started = await job.startStep('fetch');
    assert.equal(started.seq, 2);
    lose = 2;
    const progressed = await job.progress(0.5);
    assert.equal(progressed.seq, 3);

    const server = await p.getJob(job.id);
    assert.equal(server.seq, 3, 'each event was applied exactly once');
    assert.equal(retries.length, 4);
    assert.ok(retries.every((r) => r.error.code === 'network_error'));

    // With the caller's own id, a retried create is recognised only when the job has the same shape.
    lose = 1;
    const own = await p.createJob({ id: `${job.id}-own`, kind: 'flaky', steps: STEPS });
    assert.equal(own.snapshot?.seq, 1);
    lose = 1;
    const other = await rejection(p.createJob({ id: job.id, kind: 'something-else', steps: [{ id: 'x' }] }));
    assert.deepEqual([other.code, other.status], ['duplicate_job', 409]);
  });

  test('429 and 5xx are retried, honouring Retry-After', async () => {
    const injected = [
      new Response(JSON.stringify({ error: { code: 'rate_limited', message: 'slow down' } }), {
        status: 429,
        headers: { 'retry-after': '1', 'content-type': 'application/json' },
      }),
      new Response('bad gateway', { status: 502 }),
    ];
    const retries: RetryAttempt[] = [];
    const p = await producer({
      onRetryAttempt: (a) => retries.push(a),
      fetch: async (input, init) => injected.shift() ?? fetch(input, init),
    });
    const job = await p.createJob({ kind: 'throttled', steps: STEPS });
    assert.equal(job.snapshot?.status, 'queued');
    assert.deepEqual(
      retries.map((r) => [r.error.code, r.error.status]),
      [
        ['rate_limited', 429],
        ['bad_response', 502],
      ],
    );
    assert.equal(retries[0]!.delayMs, 1000, 'Retry-After: 1 waits one second');
  });

  test('gives up after the retry budget with a typed network error', async () => {
    const p = createProducer({ url: 'http://127.0.0.1:9', token: 'x.y.z', retry: { retries: 2, minDelayMs: 5 } });
    producers.push(p);
    const err = await rejection(p.getJob('nope'));
    assert.equal(err.code, 'network_error');
    assert.equal(err.status, 0);
    assert.equal(err.retryable, true);
  });

  test('server refusals surface as ProducerError with the server code and HTTP status, without retrying', async () => {
    let requests = 0;
    const p = await producer({
      fetch: (input, init) => {
        requests++;
        return fetch(input, init);
      },
    });
    const job = await p.createJob({ kind: 'typed', steps: STEPS });

    requests = 0;
    const dup = await rejection(p.createJob({ id: job.id, kind: 'typed', steps: STEPS }));
    assert.deepEqual([dup.code, dup.status, requests], ['duplicate_job', 409, 1]);
    assert.ok(isProducerError(dup, 'duplicate_job'));

    const unknown = await rejection(job.startStep('nope'));
    assert.deepEqual([unknown.code, unknown.status, unknown.jobId], ['unknown_step', 400, job.id]);

    const notRunning = await rejection(job.progress(0.5, { step: 'build' }));
    assert.deepEqual([notRunning.code, notRunning.status], ['step_not_running', 409]);

    const outOfRange = await rejection(job.progress(1.5, { step: 'fetch' }));
    assert.equal(outOfRange.code, 'progress_out_of_range');

    await job.cancel();
    const finished = await rejection(job.startStep('fetch'));
    assert.deepEqual([finished.code, finished.status], ['job_finished', 409]);

    const missing = await rejection(p.getJob('no-such-job'));
    assert.deepEqual([missing.code, missing.status, missing.jobId], ['not_found', 404, 'no-such-job']);

    const readOnly = createProducer({ url: server.url, token: await token(['progress:read']) });
    producers.push(readOnly);
    const forbidden = await rejection(readOnly.createJob({ kind: 'x', steps: STEPS }));
    assert.deepEqual([forbidden.code, forbidden.status], ['forbidden', 403]);

    const wrongAudience = createProducer({
      url: server.url,
      token: await token(['progress:write'], ['*'], { audience: 'someone-else' }),
    });
    producers.push(wrongAudience);
    const unauthorized = await rejection(wrongAudience.createJob({ kind: 'x', steps: STEPS }));
    assert.deepEqual([unauthorized.code, unauthorized.status], ['unauthorized', 401]);
  });

  test('a token provider is asked again after a 401, and generated ids use the token prefix grant', async () => {
    const stale = await token(['progress:write'], ['acme-*'], { audience: 'stale' });
    const tokens = [stale, stale, await token(['progress:read', 'progress:write'], ['acme-*'])];
    let asked = 0;
    const p = await producer({
      token: undefined,
      tokenProvider: () => tokens[Math.min(asked++, tokens.length - 1)]!,
    });
    const job = await p.createJob({ kind: 'tenant', steps: STEPS });
    assert.match(job.id, /^acme-[0-9a-f-]{36}$/);
    assert.ok(asked >= 3, 'the provider was asked again after the 401');
  });
});
