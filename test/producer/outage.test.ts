/**
 * Producer resilience against the real server process (file database): a 60 s outage in the middle
 * of a job (SIGKILL, then a restart on the same port and database) and a retry budget that runs out.
 * The worker fires every call without awaiting, as the docs' hot loop does: no call may reject
 * unhandled, and no structural event may be lost, repeated or reordered.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createProducer, ProducerError, type EventsAccepted, type JobEvent, type Producer } from '../../producer/index.js';
import { api, startServerProcess, type ServerProcess } from '../fixtures/server-process.js';

const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);
const servers: ServerProcess[] = [];
/** No ETA ticks: a re-estimate adds one to a job's seq, and the test counts seq exactly. */
const env = { PT_ETA_TICK: '0' };
const producers: Producer[] = [];

before(() => process.on('unhandledRejection', onUnhandled));
after(async () => {
  process.off('unhandledRejection', onUnhandled);
  await Promise.all(producers.map((p) => p.close({ flush: false }).catch(() => undefined)));
  for (const s of servers) await s.stop();
  for (const s of servers) s.cleanup();
});

/**
 * The same server again: same port, database and secret. The killed server's side of its open
 * connections may hold the port in TIME_WAIT for a while: try again until the port is free.
 */
async function restart(old: ServerProcess): Promise<ServerProcess> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const s = await startServerProcess({ db: old.db, port: old.port, secret: old.secret, env });
      servers.push(s);
      return s;
    } catch (err) {
      if (!/port is in use/.test(String(err)) || Date.now() > deadline) throw err;
      await sleep(500);
    }
  }
}

/** Records the events of every POST the server accepted (202), in the order of the answers. */
function recordingFetch(accepted: JobEvent[][]): typeof fetch {
  return async (input, init) => {
    const res = await fetch(input, init);
    if (String(input).endsWith('/events') && res.status === 202) {
      const body = JSON.parse(String(init?.body)) as JobEvent | JobEvent[];
      accepted.push(Array.isArray(body) ? body : [body]);
    }
    return res;
  };
}

test('the server is down for 60 s mid-job: every structural event arrives once and in order, the job completes', { timeout: 150_000 }, async () => {
  const first = await startServerProcess({ env });
  servers.push(first);
  const errors: ProducerError[] = [];
  const retried: string[] = [];
  const posted: JobEvent[][] = [];
  const p = createProducer({
    url: first.url,
    token: await first.token({ scope: 'progress:read progress:write', jobs: ['*'], expiresIn: 600 }),
    retry: { minDelayMs: 50, maxDelayMs: 2_000 }, // the default 10-minute budget
    onError: (e) => errors.push(e),
    onRetryAttempt: (a) => retried.push(a.error.code),
    fetch: recordingFetch(posted),
  });
  producers.push(p);
  const STEPS = ['a', 'b', 'c', 'd'];
  const job = await p.createJob({ kind: 'outage', steps: STEPS.map((id) => ({ id })) });

  // The worker: every call fired without awaiting, progress in a hot loop (~3 s per step).
  const calls: Array<Promise<EventsAccepted>> = [];
  const worker = (async () => {
    for (const step of STEPS) {
      calls.push(job.startStep(step));
      for (let i = 1; i <= 150; i++) {
        calls.push(job.progress(i / 150, { message: `${step} ${i}` }));
        await sleep(20);
      }
      calls.push(job.endStep(step));
    }
    calls.push(job.complete({ result: { ok: true } }));
  })();

  await sleep(1_500); // in step a
  await first.kill9();
  const killedAt = Date.now();
  await worker; // the worker keeps going while the server is away: steps b, c, d and the end queue up
  assert.equal(job.status, 'running', 'nothing was answered during the outage');
  await sleep(60_000 - (Date.now() - killedAt));
  const second = await restart(first);

  await job.flush();
  const settled = await Promise.allSettled(calls);
  const rejected = settled.filter((s) => s.status === 'rejected');
  assert.deepEqual(rejected, [], 'no call failed');
  assert.deepEqual(unhandled, [], 'no unhandled rejection');
  assert.deepEqual(errors, [], 'nothing was reported through onError: the outage was ridden out');

  const token = await second.token({ scope: 'progress:read', jobs: ['*'] });
  const final = (await api(second, 'GET', `/v1/jobs/${job.id}`, token)).body as {
    status: string;
    seq: number;
    result?: unknown;
    steps: Array<{ id: string; status: string; progress: number; startedAt?: number; endedAt?: number }>;
  };
  assert.equal(final.status, 'completed');
  assert.deepEqual(final.result, { ok: true });
  assert.deepEqual(final.steps.map((s) => [s.id, s.status, s.progress]), STEPS.map((id) => [id, 'completed', 1]));
  for (let i = 1; i < STEPS.length; i++) {
    assert.ok(final.steps[i - 1]!.endedAt! <= final.steps[i]!.startedAt!, `step ${STEPS[i]} started after ${STEPS[i - 1]} ended`);
  }

  // Exactly once: the distinct events the server accepted, plus the creation, are its seq; a
  // batch resent after the kill (same eventIds) was not applied twice.
  const seen = new Map<string, JobEvent>();
  for (const batch of posted) for (const e of batch) if (!seen.has(e.eventId!)) seen.set(e.eventId!, e);
  assert.equal(final.seq, 1 + seen.size, 'every accepted event was applied once');
  const structural = [...seen.values()].filter((e) => e.type !== 'progress').map((e) => `${e.type} ${e.step ?? e.status}`);
  assert.deepEqual(structural, [...STEPS.flatMap((s) => [`step_start ${s}`, `step_end ${s}`]), 'job_end completed']);
  const progressPerStep = [...seen.values()].filter((e) => e.type === 'progress').length;
  assert.ok(progressPerStep < 600, `progress coalesced (${progressPerStep} of 600 sent)`);
  assert.ok(retried.length > 0 && retried.every((c) => c === 'network_error'), `retried through the outage: ${retried.length} retries`);
});

test('when the retry budget runs out: calls reject with producer_gave_up, and the job is marked failed once the server answers', { timeout: 60_000 }, async () => {
  const server = await startServerProcess({ env });
  servers.push(server);
  const errors: ProducerError[] = [];
  let down = false; // the outage, between the SDK and the real server
  const p = createProducer({
    url: server.url,
    token: await server.token({ scope: 'progress:read progress:write', jobs: ['*'], expiresIn: 600 }),
    retry: { maxRetryTime: 3_000, minDelayMs: 50, maxDelayMs: 200 },
    onError: (e) => errors.push(e),
    fetch: async (input, init) => {
      if (down) throw new TypeError('fetch failed', { cause: { code: 'ECONNREFUSED' } });
      return fetch(input, init);
    },
  });
  producers.push(p);
  const job = await p.createJob({ kind: 'give-up', steps: [{ id: 'a' }, { id: 'b' }] });
  await job.startStep('a');
  down = true;

  const started = Date.now();
  const progress = job.progress(0.5); // fired and forgotten: must not reject unhandled
  const end = job.endStep('a');
  const err = await end.then(
    () => assert.fail('endStep resolved while the server was down'),
    (e: unknown) => e as ProducerError,
  );
  const took = Date.now() - started;
  assert.equal(err.code, 'producer_gave_up');
  assert.equal(err.jobId, job.id);
  assert.equal((err.cause as ProducerError).code, 'network_error');
  assert.ok(took >= 2_900 && took < 6_000, `gave up after ${took} ms (budget 3000)`);
  await assert.rejects(progress, (e: unknown) => e === err, 'the queued calls share the failure');
  await assert.rejects(job.startStep('b'), (e: unknown) => (e as ProducerError).code === 'producer_gave_up', 'later calls too');
  assert.deepEqual(
    errors.map((e) => e.code),
    ['producer_gave_up'],
    'reported once through onError',
  );

  down = false;
  await job.flush(); // the job's end is retried until the server answers
  const token = await server.token({ scope: 'progress:read', jobs: ['*'] });
  const final = (await api(server, 'GET', `/v1/jobs/${job.id}`, token)).body as { status: string; error?: { code: string } };
  assert.equal(final.status, 'failed');
  assert.equal(final.error?.code, 'producer_gave_up');
  assert.equal(job.status, 'failed');
  assert.deepEqual(unhandled, [], 'no unhandled rejection');
});
