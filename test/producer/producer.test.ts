/**
 * The producer SDK and the demo pipeline against the real server (real HTTP, real WebSocket,
 * real SQLite). Faults are injected only between the SDK and the server: a fetch wrapper that
 * loses a response after the server handled the request, and a TCP relay we can cut, so the
 * server itself is never mocked.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import net from 'node:net';
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import type { ServerMessage } from '../../protocol/index.js';
import { startDemoJob, DEMO_STAGES, DEMO_FAILING_STAGE } from '../../demo/pipeline.js';
import {
  createProducer,
  isProducerError,
  ProducerError,
  type Job,
  type Producer,
  type ProducerOptions,
  type CancelControl,
  type RetryControl,
  type RetryAttempt,
} from '../../producer/index.js';
import { api, metric, startServerProcess, type ServerProcess } from '../fixtures/server-process.js';

let server: ServerProcess;
const producers: Producer[] = [];
/** Relays still listening when the tests end (a failed test leaves its own open): closed in after(). */
const relays = new Set<{ stop(): Promise<void> }>();

before(async () => {
  server = await startServerProcess();
});
after(async () => {
  await Promise.all(producers.map((p) => p.close().catch(() => undefined)));
  await Promise.all([...relays].map((r) => r.stop()));
  await server?.stop();
  server?.cleanup();
});

type Scope = 'progress:read' | 'progress:write' | 'progress:retry' | 'progress:cancel';

async function token(scopes: Scope[], jobs: string[] = ['*'], opts: { audience?: string } = {}): Promise<string> {
  return new SignJWT({ scope: scopes.join(' '), jobs })
    .setProtectedHeader({ alg: 'HS256' })
    .setAudience(opts.audience ?? 'progress-tracker')
    .setIssuedAt()
    .setExpirationTime('10m')
    .sign(new TextEncoder().encode(server.secret));
}

async function producer(options: Partial<ProducerOptions> = {}): Promise<Producer> {
  const p = createProducer({
    url: server.url,
    token: await token(['progress:read', 'progress:write']),
    retry: { minDelayMs: 20, maxDelayMs: 200 },
    ...options,
  });
  producers.push(p);
  return p;
}

const STEPS = [{ id: 'fetch', label: 'Fetch' }, { id: 'build', label: 'Build', complexity: 3 }, { id: 'ship' }];

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Fails clearly instead of hanging when something never arrives. */
async function within<T>(promise: Promise<T>, what: string, ms = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function rejection(promise: Promise<unknown>): Promise<ProducerError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof ProducerError, `expected a ProducerError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a rejection');
}

describe('producer SDK', () => {
  test('runs a job through its whole lifecycle; every accepted event adds one to seq', async () => {
    const p = await producer();
    const job = await p.createJob({ kind: 'report', steps: STEPS, meta: { owner: 'billing' } });
    assert.equal(job.snapshot?.status, 'queued');
    assert.equal(job.snapshot?.seq, 1);

    const seqs: number[] = [];
    seqs.push((await job.startStep('fetch', { message: 'Downloading' })).seq);
    assert.equal((await p.getJob(job.id)).status, 'running');
    seqs.push((await job.progress(0.4)).seq);
    seqs.push((await job.progress(0.9, { message: 'Almost there' })).seq);
    seqs.push((await job.endStep()).seq);
    seqs.push((await job.startStep('build')).seq);
    seqs.push((await job.endStep('build')).seq);
    seqs.push((await job.startStep('ship')).seq);
    seqs.push((await job.endStep()).seq);
    seqs.push((await job.complete({ result: { url: '/reports/7' } })).seq);
    assert.deepEqual(seqs, [2, 3, 4, 5, 6, 7, 8, 9, 10]);

    const final = await p.getJob(job.id);
    assert.equal(final.status, 'completed');
    assert.equal(final.progress, 1);
    assert.equal(final.seq, 10);
    assert.deepEqual(final.result, { url: '/reports/7' });
    assert.deepEqual(final.steps.map((s) => [s.id, s.status]), [
      ['fetch', 'completed'],
      ['build', 'completed'],
      ['ship', 'completed'],
    ]);
    assert.equal(job.lastSeq, 10);
  });

  test('calls fired without awaiting arrive in order; bursts of progress are batched', async () => {
    let posts = 0;
    const p = await producer({
      fetch: (input, init) => {
        if (String(input).endsWith('/events')) posts++;
        return fetch(input, init);
      },
    });
    const job = await p.createJob({ kind: 'burst', steps: [{ id: 'only' }] });
    const calls = [job.startStep('only')];
    for (let i = 1; i <= 100; i++) calls.push(job.progress(i / 100, { message: `item ${i}` }));
    calls.push(job.endStep(), job.complete());
    const accepted = await Promise.all(calls);
    const final = await p.getJob(job.id);
    assert.equal(final.status, 'completed');
    assert.equal(final.steps[0]!.message, 'item 100');
    assert.equal(Math.max(...accepted.map((a) => a.seq)), final.seq);
    assert.ok(posts < 10, `expected the burst to be batched, got ${posts} POSTs`);
  });

  test('the events of one turn go out in one request', async () => {
    const bodies: unknown[] = [];
    const p = await producer({
      fetch: (input, init) => {
        if (String(input).endsWith('/events')) bodies.push(JSON.parse(String(init?.body)));
        return fetch(input, init);
      },
    });
    const job = await p.createJob({ kind: 'turn', steps: STEPS });
    await Promise.all([job.startStep('fetch'), job.progress(0.5), job.endStep('fetch'), job.startStep('build')]);
    assert.equal(bodies.length, 1, 'one POST for the four calls');
    assert.deepEqual((bodies[0] as Array<{ type: string }>).map((e) => e.type), ['step_start', 'progress', 'step_end', 'step_start']);
    assert.equal((await p.getJob(job.id)).steps[1]!.status, 'running');
  });

  test('one bad call in a batch fails alone', async () => {
    const p = await producer();
    const job = await p.createJob({ kind: 'mixed', steps: STEPS });
    await job.startStep('fetch');
    const inFlight = job.progress(0.1); // the next calls queue behind this request and form a batch
    const good = job.progress(0.2, { step: 'fetch', message: 'good' });
    const bad = job.progress(0.3, { step: 'ship' }); // ship is not running
    const after = job.endStep('fetch');
    await inFlight;
    const err = await rejection(bad);
    assert.equal(err.code, 'step_not_running');
    await good;
    await after;
    const final = await p.getJob(job.id);
    assert.equal(final.steps[0]!.status, 'completed');
    assert.equal(final.steps[0]!.message, 'good');
  });

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

describe('demo pipeline', () => {
  test('runs the five stages to completion using only the SDK', async () => {
    const { jobId, done } = await startDemoJob({
      baseUrl: server.url,
      token: await token(['progress:read', 'progress:write'], ['demo-*']),
      speed: 40,
    });
    assert.match(jobId, /^demo-/);
    const reader = await producer();
    const first = await reader.getJob(jobId);
    assert.equal(first.kind, 'generation');
    assert.deepEqual(
      first.steps.map((s) => s.id),
      ['initialization', 'analysis', 'planning', 'implementation', 'finalization'],
    );
    assert.deepEqual(
      first.steps.map((s) => s.label),
      DEMO_STAGES.map((s) => s.label),
    );

    // Follow it like a browser does, and keep every state it is shown.
    const seen = await watchJob(jobId, await token(['progress:read'], [jobId]));
    assert.equal(await within(done, 'the demo run', 20_000), 'completed');
    const final = await reader.getJob(jobId);
    assert.equal(final.status, 'completed');
    assert.ok(final.steps.every((s) => s.status === 'completed'));
    assert.ok(final.seq > 15, `expected many progress events, seq is ${final.seq}`);
    await waitFor('the final update', async () => (seen.jobs.at(-1)?.status === 'completed' ? true : undefined));
    seen.close();
    const partial = seen.jobs.flatMap((j) => j.steps).filter((s) => s.status === 'running' && s.progress > 0 && s.progress < 1);
    assert.ok(partial.length > 5, 'in-step progress was shown while stages ran');
    assert.ok(new Set(partial.map((s) => s.message)).size > 2, 'with changing messages');
    const overall = seen.jobs.map((j) => j.progress);
    assert.deepEqual(overall, [...overall].sort((a, b) => a - b), 'overall progress never goes back');
  });

  test('with fail: true, one stage fails part-way, waits for a retry and resumes from it', async () => {
    const { jobId, done } = await startDemoJob({
      baseUrl: server.url,
      token: await token(['progress:read', 'progress:write'], ['demo-*']),
      fail: true,
      speed: 40,
    });
    const user = await producer({ token: await token(['progress:read', 'progress:retry'], [jobId]) });
    const failed: Job = await waitFor('the injected failure', async () => {
      const j = await user.getJob(jobId);
      return j.status === 'failed' ? j : undefined;
    });
    const failedStep = failed.steps.find((s) => s.status === 'failed')!;
    assert.equal(failedStep.id, DEMO_FAILING_STAGE);
    assert.ok(failedStep.progress > 0.3 && failedStep.progress < 0.7, `failed part-way (${failedStep.progress})`);
    assert.equal(failed.error?.retryable, true);
    assert.equal(failed.error?.step, DEMO_FAILING_STAGE);

    await user.retryJob(jobId);
    assert.equal(await within(done, 'the resumed demo run', 20_000), 'completed');
    const final = await user.getJob(jobId);
    assert.equal(final.status, 'completed');
    assert.equal(final.attempts, 1);
    for (const stage of ['initialization', 'analysis', 'planning']) {
      const before = failed.steps.find((s) => s.id === stage)!;
      const after = final.steps.find((s) => s.id === stage)!;
      assert.equal(after.startedAt, before.startedAt, `${stage} was not run again`);
    }
  });
  test('Cancel stops the five-stage run at once and it ends the job as canceled', async () => {
    const { jobId, done } = await startDemoJob({
      baseUrl: server.url,
      token: await token(['progress:read', 'progress:write'], ['demo-*']),
      speed: 4, // about 10 s in all: a cancel lands mid-run
    });
    const user = await producer({ token: await token(['progress:read', 'progress:cancel'], [jobId]) });
    await waitFor('a stage in progress', async () => {
      const j = await user.getJob(jobId);
      return j.steps.some((s) => s.status === 'running' && s.progress > 0) ? j : undefined;
    });
    const canceledAt = Date.now();
    await user.cancelJob(jobId, 'changed my mind');
    assert.equal(await within(done, 'the demo run to stop', 5_000), 'canceled');
    const tookMs = Date.now() - canceledAt;
    assert.ok(tookMs < 3_000, `stopped in ${tookMs} ms, far within the server's 30 s grace`);
    const final = await user.getJob(jobId);
    assert.equal(final.status, 'canceled');
    assert.equal(final.error, undefined, 'no cancel_timeout: the producer ended it');
    assert.equal(final.cancelRequested?.reason, 'changed my mind');
    assert.ok(final.steps.some((s) => s.status !== 'completed'), 'it did not run to the end');
  });
  test("the demo server's job: the page's Cancel (its browser token over HTTP) ends it as canceled at once", async () => {
    // The demo as users run it: `serve --demo` starts the pipeline (dist/demo/pipeline.js) at full length.
    const demo = await startServerProcess({ env: { PT_DEMO: '1' } });
    try {
      const started = await api<{ jobId: string; token: string }>(demo, 'POST', '/demo/jobs', undefined, {});
      assert.equal(started.status, 201, JSON.stringify(started.body));
      const { jobId, token: browserToken } = started.body;
      const read = () => api<Job>(demo, 'GET', `/v1/jobs/${jobId}`, browserToken).then((r) => r.body);
      await waitFor('a stage in progress', async () => {
        const j = await read();
        return j.steps.some((s) => s.status === 'running' && s.progress > 0) ? j : undefined;
      });
      const canceledAt = Date.now();
      const res = await api<{ seq: number }>(demo, 'POST', `/v1/jobs/${jobId}/cancel`, browserToken, { reason: 'from the page' });
      assert.equal(res.status, 202, JSON.stringify(res.body));
      const final = await waitFor('the job to end', async () => {
        const j = await read();
        return j.status === 'canceled' ? j : undefined;
      }, 10_000);
      const tookMs = Date.now() - canceledAt;
      assert.ok(tookMs < 3_000, `ended ${tookMs} ms after the cancel (the server's grace is 30 s)`);
      assert.equal(final.error, undefined, 'ended by the pipeline, not by cancel_timeout');
      assert.equal(final.cancelRequested?.reason, 'from the page');
      assert.ok(final.steps.some((s) => s.status !== 'completed'), 'the run stopped early');
    } finally {
      await demo.stop();
      demo.cleanup();
    }
  });
});

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

/** Subscribes over the real WebSocket and records every job state received. */
async function watchJob(jobId: string, jwt: string): Promise<{ jobs: Job[]; close(): void }> {
  const ws = new WebSocket(`${server.url.replace('http', 'ws')}/v1/ws?access_token=${jwt}`);
  const jobs: Job[] = [];
  ws.on('message', (data) => {
    const msg = JSON.parse(String(data)) as ServerMessage;
    if (msg.type === 'snapshot' || msg.type === 'update') jobs.push(msg.job);
  });
  await new Promise<void>((resolve, reject) => ws.once('open', () => resolve()).once('error', reject));
  ws.send(JSON.stringify({ type: 'subscribe', jobId }));
  return { jobs, close: () => ws.close() };
}

/**
 * A TCP relay to the server that can be cut (closing every connection and refusing new ones). It
 * records the head of each connection's first request (the WebSocket upgrade, as sent).
 */
async function startRelay(targetPort: number) {
  const sockets = new Set<net.Socket>();
  const heads: string[] = [];
  let refusing = false;
  const relay = net.createServer((client) => {
    if (refusing) return client.destroy();
    let head = '';
    const record = (chunk: Buffer) => {
      head += chunk.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      heads.push(head.slice(0, end));
      client.off('data', record);
    };
    client.on('data', record);
    const upstream = net.connect(targetPort, '127.0.0.1');
    sockets.add(client).add(upstream);
    client.pipe(upstream).pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  const handle = {
    port: (relay.address() as net.AddressInfo).port,
    /** Request heads (request line and headers) of the connections so far, in order. */
    heads,
    cut() {
      refusing = true;
      for (const s of sockets) s.destroy();
    },
    resume() {
      refusing = false;
    },
    /** Closes every connection and the listener. */
    stop() {
      relays.delete(handle);
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => (relay.listening ? relay.close(() => resolve()) : resolve()));
    },
  };
  relays.add(handle);
  return handle;
}
