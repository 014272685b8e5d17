/**
 * The producer SDK's WebSocket credentials: the control socket sends its token in its first
 * message (never in the upgrade request), a refused token is reported and retried with a fresh
 * one, a short-lived token is refreshed in place (no reconnect), and a refreshed token without the
 * job stops the following and reports forbidden.
 * Part of the producer SDK tests against the real server (real HTTP, real WebSocket, real
 * SQLite; test/fixtures/producer-harness.ts): faults are injected only between the SDK and the
 * server, never by mocking the server.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ProducerError, type RetryControl } from '../../producer/index.js';
import { metric } from '../fixtures/server-process.js';
import { producer, server, startRelay, STEPS, token, waitFor, within, useServer } from '../fixtures/producer-harness.js';

useServer();

describe('producer WebSocket credentials', () => {
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const opened = (states: string[]) => states.filter((s) => s === 'open').length;

  test('the retry socket sends its token in its first message, never in the upgrade request', async () => {
    const relay = await startRelay(server.port);
    const jwt = await token(['progress:read', 'progress:write']);
    const states: string[] = [];
    const p = await producer({ token: jwt, wsUrl: `ws://127.0.0.1:${relay.port}/v1/ws`, onConnection: (s) => states.push(s) });
    const user = await producer({ token: await token(['progress:read', 'progress:retry']) });
    const job = await p.createJob({ kind: 'no-url-token', steps: STEPS });
    const next = job.nextRetry();
    await waitFor('the control socket', async () => (opened(states) > 0 ? true : undefined));

    // What actually went over the wire, not what the SDK meant to send.
    assert.equal(relay.heads.length, 1);
    const head = relay.heads[0]!;
    assert.match(head, /^GET \/v1\/ws HTTP\/1\.1\r\n/i, 'no query string at all');
    assert.equal(head.includes('access_token'), false);
    assert.equal(head.includes(jwt.split('.')[2]!), false, 'the token (its signature) is nowhere in the request head');

    // Authenticated by message: the socket works.
    await job.startStep('fetch');
    await job.failStep({ code: 'flaky', message: 'try again' });
    await user.retryJob(job.id);
    const control = await within(next, 'the retry control');
    assert.deepEqual([control.jobId, control.step, control.recovered], [job.id, 'fetch', false]);
    await p.close();
    await relay.stop();
  });

  test('a token refused in the auth message is reported, and the socket retries with a fresh one', async () => {
    const errors: ProducerError[] = [];
    let asked = 0;
    const p = await producer({
      token: undefined,
      tokenProvider: () => {
        asked++;
        return token(['progress:write'], ['*'], { audience: 'someone-else' });
      },
      onError: (e) => errors.push(e),
    });
    p.onRetry('refused-token-job', () => {});
    const refusals = () => errors.filter((e) => e.code === 'unauthorized' && /auth refused/.test(e.message));
    // Well before the server's 5 s auth deadline: the SDK closes and backs off on the refusal itself.
    await waitFor('two refusals', async () => (refusals().length >= 2 ? true : undefined), 4_000);
    assert.match(refusals()[0]!.message, /audience|aud/);
    assert.ok(asked >= 2, 'the provider was asked for every connect');
    await p.close(); // it would keep retrying (and counting connections) otherwise
  });

  test('a short-lived token is refreshed in place: control still arrives after it expired, with no reconnect', async () => {
    let failNext = 0;
    const errors: ProducerError[] = [];
    const states: string[] = [];
    const p = await producer({
      token: undefined,
      // Each call mints a fresh 3 s token (so the socket refreshes every ~2.4 s), or fails on demand.
      tokenProvider: async () => {
        if (failNext > 0) {
          failNext--;
          throw new Error('auth service unavailable');
        }
        return server.token({ scope: 'progress:read progress:write', jobs: ['*'], expiresIn: 3 });
      },
      onError: (e) => errors.push(e),
      onConnection: (s) => states.push(s),
    });
    const user = await producer({ token: await token(['progress:read', 'progress:retry']) });
    const job = await p.createJob({ kind: 'refresh', steps: STEPS });
    const next = job.nextRetry();
    await job.startStep('fetch');
    await job.failStep({ code: 'flaky', message: 'try again' });
    await waitFor('the control socket', async () => (opened(states) > 0 ? true : undefined));
    const connections = await metric(server, 'pt_ws_connections_total');

    // No HTTP call runs from here on, so the provider's next call is a refresh: make it fail once.
    failNext = 1;
    const failure = await waitFor('the failed refresh', async () => errors.find((e) => /token provider failed/.test(e.message)), 5_000);
    assert.deepEqual([failure.code, failure.retryable], ['unauthorized', true]);
    // Past the expiry (at most 3 s) of the token in force when that refresh failed, and past the
    // server's expiry sweep: without a refresh the server would have closed the socket with 4001.
    await sleep(4_000);
    assert.deepEqual(states, ['connecting', 'open'], 'the socket never closed');

    await user.retryJob(job.id);
    const control = await within(next, 'the retry control after the first token expired');
    assert.deepEqual([control.jobId, control.step, control.recovered], [job.id, 'fetch', false]);
    assert.equal(await metric(server, 'pt_ws_connections_total'), connections, 'no second upgrade');
    assert.deepEqual(errors, [failure], 'the one injected provider failure, nothing else');
    await p.close();
  });

  test('a refreshed token without a job: the SDK stops following it and reports forbidden', async () => {
    const relay = await startRelay(server.port);
    const run = Date.now().toString(36);
    const [idA, idB] = [`revoke-a-${run}`, `revoke-b-${run}`];
    let narrow = false;
    const errors: ProducerError[] = [];
    const states: string[] = [];
    const p = await producer({
      token: undefined,
      // Short-lived tokens for every job, then (once `narrow`) long-lived ones for job A only.
      tokenProvider: () =>
        server.token({ scope: 'progress:read progress:write', jobs: narrow ? [idA] : ['*'], expiresIn: narrow ? 300 : 3 }),
      wsUrl: `ws://127.0.0.1:${relay.port}/v1/ws`,
      onError: (e) => errors.push(e),
      onConnection: (s) => states.push(s),
    });
    const user = await producer({ token: await token(['progress:read', 'progress:retry']) });
    const a = await p.createJob({ id: idA, kind: 'revoke', steps: STEPS });
    const b = await p.createJob({ id: idB, kind: 'revoke', steps: STEPS });
    const heardB: RetryControl[] = [];
    b.onRetry((c) => void heardB.push(c));
    const nextA = a.nextRetry();
    await waitFor('the control socket', async () => (opened(states) > 0 ? true : undefined));

    narrow = true; // the next refresh (within ~2.4 s) no longer grants B
    const forbidden = () => errors.filter((e) => e.code === 'forbidden');
    await waitFor('B dropped on refresh', async () => (forbidden().length > 0 ? true : undefined), 5_000);
    assert.match(forbidden()[0]!.message, new RegExp(`job ${idB}\\b`));
    assert.equal(forbidden()[0]!.jobId, idB, 'the dropped job is named in the error, not only its message');
    assert.equal(opened(states), 1, 'refreshed in place');

    // A reconnect re-subscribes A only: B would earn a second forbidden.
    relay.cut();
    await waitFor('the socket to drop', async () => (states.at(-1) !== 'open' ? true : undefined));
    relay.resume();
    await waitFor('the reconnect', async () => (opened(states) === 2 ? true : undefined), 10_000);
    await a.startStep('fetch');
    await a.failStep({ code: 'flaky', message: 'try again' });
    await user.retryJob(a.id);
    const control = await within(nextA, 'the retry control of A');
    assert.deepEqual([control.jobId, control.step], [idA, 'fetch']);
    assert.equal(forbidden().length, 1, 'B was not subscribed again');
    assert.equal(heardB.length, 0);
    await p.close();
    await relay.stop();
  });
});
