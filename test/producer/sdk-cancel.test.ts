/**
 * The producer SDK hearing a user's Cancel: `onCancel` with the reason, `job.signal` aborting with
 * a typed error, `job.cancel()` ending the job in time; a cancel made while the socket was down
 * (heard once after the reconnect) or before the producer listened; retries after a cancel.
 * Part of the producer SDK tests against the real server (real HTTP, real WebSocket, real
 * SQLite; test/fixtures/producer-harness.ts): faults are injected only between the SDK and the
 * server, never by mocking the server.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isProducerError, ProducerError, type CancelControl } from '../../producer/index.js';
import { producer, rejection, server, startRelay, STEPS, token, waitFor, within, useServer } from '../fixtures/producer-harness.js';

useServer();

describe('cancel', () => {
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const canceler = async (jobs: string[] = ['*']) => producer({ token: await token(['progress:read', 'progress:cancel'], jobs) });
  /** Resolves with the signal's reason once it aborts. */
  const aborted = (signal: AbortSignal) =>
    new Promise<unknown>((resolve) =>
      signal.aborted ? resolve(signal.reason) : signal.addEventListener('abort', () => resolve(signal.reason), { once: true }),
    );


  test('onCancel hears the reason, job.signal aborts with a typed error, and job.cancel() ends the job in time', async () => {
    const states: string[] = [];
    const p = await producer({ onConnection: (s) => states.push(s) });
    const user = await canceler();
    const job = await p.createJob({ kind: 'cancelable', steps: STEPS });
    const heard: CancelControl[] = [];
    const globallyHeard: CancelControl[] = [];
    const stopGlobal = p.onCancel((c) => void globallyHeard.push(c));
    const signal = job.signal; // starts listening
    const requested = () => job.cancelRequested;
    assert.equal(signal.aborted, false);
    assert.equal(requested(), undefined);
    const unsubscribed = job.onCancel(() => assert.fail('an unsubscribed handler must not run'));
    unsubscribed();
    const first = new Promise<CancelControl>((resolve) => job.onCancel((c) => (heard.push(c), resolve(c))));
    await job.startStep('fetch');
    await job.progress(0.2);
    await waitFor('the control socket', async () => (states.includes('open') ? true : undefined));
    await sleep(500); // its subscription answered (a few ms): the cancel is then heard live, not recovered

    const asked = await user.cancelJob(job.id, 'wrong input file');
    const control = await within(first, 'the cancel');
    assert.deepEqual([control.jobId, control.reason, control.recovered], [job.id, 'wrong input file', false]);
    const reason = await within(aborted(signal), 'job.signal to abort');
    assert.ok(isProducerError(reason, 'canceled'), `the signal's reason is a ProducerError 'canceled', got ${String(reason)}`);
    assert.equal(reason.jobId, job.id);
    assert.match(reason.message, /wrong input file/);
    assert.throws(() => signal.throwIfAborted(), (err) => isProducerError(err, 'canceled'));
    assert.equal(requested()?.reason, 'wrong input file');
    assert.equal(job.signal, signal, 'the same signal for the same run');

    // The SDK blocks nothing: the server still takes progress until the job ends.
    assert.ok((await job.progress(0.3)).seq > asked.seq);
    // A handler registered after the cancel hears it at once.
    const late = await within(new Promise<CancelControl>((resolve) => job.onCancel(resolve)), 'a late onCancel');
    assert.equal(late.reason, 'wrong input file');

    await job.cancel({ message: 'Stopped' });
    const final = await p.getJob(job.id);
    assert.equal(final.status, 'canceled');
    assert.equal(final.error, undefined, 'ended by the producer: no cancel_timeout');
    assert.equal(final.cancelRequested?.reason, 'wrong input file');
    await sleep(200);
    assert.equal(heard.length, 1, 'the job handler ran once');
    assert.deepEqual(globallyHeard.map((c) => [c.jobId, c.reason]), [[job.id, 'wrong input file']], 'producer.onCancel ran once');
    stopGlobal();
    // A second cancel of an ended job is refused, with the job named.
    const late409 = await rejection(user.cancelJob(job.id));
    assert.deepEqual([late409.code, late409.status, late409.jobId], ['already_finished', 409, job.id]);
  });

  test('a cancel made while the producer socket was down is heard after it reconnects, exactly once', async () => {
    const relay = await startRelay(server.port);
    const states: string[] = [];
    const opened = () => states.filter((s) => s === 'open').length;
    const p = await producer({ wsUrl: `ws://127.0.0.1:${relay.port}/v1/ws`, onConnection: (s) => states.push(s), onError: () => {} });
    const user = await canceler();
    const job = await p.createJob({ kind: 'cancel-offline', steps: STEPS });
    const heard: CancelControl[] = [];
    const globallyHeard: CancelControl[] = [];
    p.onCancel((c) => void globallyHeard.push(c));
    job.onCancel((c) => void heard.push(c));
    const signal = job.signal;
    await job.startStep('fetch');
    await waitFor('the control socket', async () => (opened() > 0 ? true : undefined));

    relay.cut(); // the socket dies and cannot reconnect...
    await waitFor('the socket to drop', async () => (states.at(-1) !== 'open' ? true : undefined));
    await user.cancelJob(job.id, 'user left'); // ...while the user cancels
    await sleep(300);
    assert.equal(signal.aborted, false, 'nothing heard while down');
    relay.resume();

    await within(aborted(signal), 'the recovered cancel after reconnecting', 20_000);
    await waitFor('the handlers', async () => (heard.length > 0 && globallyHeard.length > 0 ? true : undefined));
    assert.deepEqual([heard[0]!.jobId, heard[0]!.reason, heard[0]!.recovered], [job.id, 'user left', true]);
    assert.ok(heard[0]!.job?.cancelRequested, 'with the job state it was read from');

    // Another reconnect brings the same cancelRequested in its snapshot: not a second cancel.
    relay.cut();
    await waitFor('the socket to drop again', async () => (states.at(-1) !== 'open' ? true : undefined));
    relay.resume();
    await waitFor('the second reconnect', async () => (opened() >= 3 ? true : undefined), 20_000);
    await sleep(300);
    assert.equal(heard.length, 1, 'the job handler ran exactly once');
    assert.equal(globallyHeard.length, 1, 'producer.onCancel ran exactly once');
    await job.cancel();
    assert.equal((await p.getJob(job.id)).status, 'canceled');
    await relay.stop();
  });

  test('a job canceled before the producer listened: reading job.signal catches it', async () => {
    const creator = await producer();
    const user = await canceler();
    const created = await creator.createJob({ kind: 'cancel-early', steps: STEPS });
    await user.cancelJob(created.id);
    // A worker that picks the job up later (say after a restart) opens it by id.
    const errors: ProducerError[] = [];
    const worker = await producer({ onError: (e) => errors.push(e) });
    const job = worker.job(created.id);
    job.onCancel(() => {
      throw new Error('handler bug');
    });
    const control = await within(new Promise<CancelControl>((resolve) => job.onCancel(resolve)), 'the earlier cancel');
    assert.deepEqual([control.jobId, control.reason, control.recovered], [created.id, undefined, true]);
    assert.equal(job.signal.aborted, true);
    // A throwing handler is reported, naming the job; the others still ran.
    const bug = await waitFor('the handler error', async () => errors.find((e) => e.code === 'handler_error'));
    assert.equal(bug.jobId, created.id);
    assert.match(bug.message, /onCancel handler .*handler bug/);
    await job.cancel();
    assert.equal((await worker.getJob(job.id)).error, undefined);
  });

  test('retry handling is unchanged, and a retry after a cancel starts a run with a fresh signal', async () => {
    const p = await producer();
    const user = await producer({ token: await token(['progress:read', 'progress:retry', 'progress:cancel']) });
    const job = await p.createJob({ kind: 'cancel-then-retry', steps: STEPS });
    const cancels: CancelControl[] = [];
    job.onCancel((c) => void cancels.push(c));
    const firstRun = job.signal;
    await job.startStep('fetch');
    await sleep(200);
    await user.cancelJob(job.id, 'oops');
    await within(aborted(firstRun), 'the first cancel');
    // This worker fails the step instead of ending the job; the user then retries it.
    const next = job.nextRetry();
    await job.failStep({ code: 'interrupted', message: 'stopped half way' });
    await user.retryJob(job.id);
    const retry = await within(next, 'the retry');
    assert.deepEqual([retry.step, retry.recovered], ['fetch', false]);
    assert.equal(job.cancelRequested, undefined, 'the earlier cancel is history');
    const secondRun = job.signal;
    assert.notEqual(secondRun, firstRun);
    assert.equal(secondRun.aborted, false);
    assert.equal((await p.getJob(job.id)).cancelRequested, undefined);

    await job.startStep('fetch');
    await user.cancelJob(job.id, 'really');
    await within(aborted(secondRun), 'the second cancel');
    await waitFor('the second handler call', async () => (cancels.length === 2 ? true : undefined));
    assert.deepEqual(cancels.map((c) => c.reason), ['oops', 'really']);
    await job.cancel();
  });
});
