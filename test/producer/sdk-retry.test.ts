/**
 * The producer SDK hearing a user's Retry: `onRetry` on a job and on the producer (every job it
 * creates) gets the control message and the producer resumes from the failed step, including a
 * retry made while the producer's socket was down (delivered after it reconnects).
 * Part of the producer SDK tests against the real server (real HTTP, real WebSocket, real
 * SQLite; test/fixtures/producer-harness.ts): faults are injected only between the SDK and the
 * server, never by mocking the server.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { RetryControl } from '../../producer/index.js';
import { producer, rejection, server, startRelay, STEPS, token, waitFor, within, useServer } from '../fixtures/producer-harness.js';

useServer();

describe('producer SDK', () => {
  test('onRetry hears the control message after a retry, and the producer resumes from the failed step', async () => {
    const p = await producer();
    const user = await producer({ token: await token(['progress:read', 'progress:retry']) });
    const job = await p.createJob({ kind: 'resumable', steps: STEPS });
    const controls: RetryControl[] = [];
    const resumed = new Promise<void>((resolve, reject) => {
      job.onRetry(async (control) => {
        try {
          controls.push(control);
          await job.startStep(control.step);
          await job.endStep();
          await job.startStep('ship');
          await job.endStep();
          await job.complete();
          resolve();
        } catch (err) {
          reject(err);
        }
      });
    });

    await job.startStep('fetch');
    await job.endStep();
    await job.startStep('build');
    await job.progress(0.3);
    await job.failStep({ code: 'oom', message: 'Builder ran out of memory' });
    const failed = await p.getJob(job.id);
    assert.equal(failed.status, 'failed');
    assert.deepEqual(failed.error, { code: 'oom', message: 'Builder ran out of memory', retryable: true, step: 'build' });

    await user.retryJob(job.id);
    await within(resumed, 'the retry control and resume');
    assert.equal(controls.length, 1);
    assert.equal(controls[0]!.step, 'build');
    assert.equal(controls[0]!.recovered, false);

    const final = await p.getJob(job.id);
    assert.equal(final.status, 'completed');
    assert.equal(final.attempts, 1);
    assert.equal(final.steps[0]!.endedAt, failed.steps[0]!.endedAt, 'the completed step was kept');

    const nothing = await rejection(user.retryJob(job.id));
    assert.deepEqual([nothing.code, nothing.status], ['nothing_to_retry', 409]);
  });

  test('onRetry(handler) hears retries of every job the producer creates', async () => {
    const p = await producer();
    const user = await producer({ token: await token(['progress:read', 'progress:retry']) });
    const heard: RetryControl[] = [];
    let wake: () => void = () => {};
    const stop = p.onRetry((control) => {
      heard.push(control);
      wake();
    });
    const a = await p.createJob({ kind: 'many', steps: STEPS });
    const b = await p.createJob({ kind: 'many', steps: STEPS });
    for (const job of [a, b]) {
      await job.startStep('fetch');
      await job.failStep({ code: 'flaky', message: 'try again' });
    }
    const both = new Promise<void>((resolve) => (wake = () => heard.length === 2 && resolve()));
    await user.retryJob(b.id);
    await user.retryJob(a.id);
    await within(both, 'retries of both jobs');
    assert.deepEqual(heard.map((c) => [c.jobId, c.step]).sort(), [[a.id, 'fetch'], [b.id, 'fetch']].sort());
    stop();
  });

  test('a retry made while the producer socket was down is delivered after it reconnects', async () => {
    const relay = await startRelay(server.port);
    const states: string[] = [];
    const p = await producer({ wsUrl: `ws://127.0.0.1:${relay.port}/v1/ws`, onConnection: (s) => states.push(s), onError: () => {} });
    const user = await producer({ token: await token(['progress:read', 'progress:retry']) });
    const job = await p.createJob({ kind: 'resumable', steps: STEPS });
    const next = job.nextRetry();
    await waitFor('the control socket', async () => (states.includes('open') ? true : undefined));

    await job.startStep('fetch');
    await job.failStep(new Error('upstream said no'));
    relay.cut(); // the socket dies and cannot reconnect...
    await waitFor('the socket to drop', async () => (states.at(-1) !== 'open' ? true : undefined));
    await user.retryJob(job.id); // ...while the user retries
    relay.resume();

    const control = await within(next, 'the recovered retry after reconnecting', 20_000);
    assert.deepEqual([control.jobId, control.step, control.recovered], [job.id, 'fetch', true]);
    assert.equal(control.job?.status, 'queued');
    await job.startStep(control.step);
    await relay.stop();
  });
});
