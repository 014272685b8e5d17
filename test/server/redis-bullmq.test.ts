/**
 * The BullMQ adapter against a real Redis, a real BullMQ queue and worker, and the real server:
 * a job created with a `bullmq` source follows the worker's `updateProgress({step, progress})`,
 * a bare percentage, a failure, a retry through our API that calls BullMQ's `job.retry()`, and
 * the completion with its return value — seen by a WebSocket subscriber, in seq order.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { Queue, Worker, type Job as BullJob } from 'bullmq';
import { startServer, type RunningServer } from '../../server/app/start-server.js';
import { createLogger } from '../../server/app/log.js';
import { BullmqAdapter, viewOfBullmq } from '../../server/polling/bullmq-adapter.js';
import { HttpAdapter } from '../../server/polling/http-adapter.js';
import type { Job } from '../../protocol/index.js';
import { startRedis, type RedisServer } from '../fixtures/redis-server.js';
import { api, connectWs, mintTestToken, waitFor } from '../fixtures/server-process.js';

let redis: RedisServer;
let server: RunningServer;
let adapter: BullmqAdapter;
const secret = randomBytes(32).toString('base64url');

before(async () => {
  redis = await startRedis();
  adapter = await BullmqAdapter.create({ connection: { host: '127.0.0.1', port: redis.port } });
  server = await startServer({
    port: 0,
    jwtSecret: secret,
    db: ':memory:',
    logger: createLogger('silent'),
    tickMs: 0,
    polling: { adapters: [new HttpAdapter(), adapter] },
  });
});

after(async () => {
  await server?.close(); // closes the adapter too
  await redis?.stop();
});

test('BullMQ progress shapes map onto our steps', () => {
  assert.deepEqual(viewOfBullmq('active', { step: 'b', progress: 0.25 }), { status: 'running', step: 'b', stepProgress: 0.25 });
  assert.deepEqual(viewOfBullmq('active', 40), { status: 'running', stepProgress: 0.4 });
  assert.deepEqual(viewOfBullmq('waiting', 0), { status: 'queued', stepProgress: 0 });
  assert.deepEqual(viewOfBullmq('failed', { step: 'b' }, 'boom'), { status: 'failed', error: 'boom', step: 'b' });
  assert.deepEqual(viewOfBullmq('completed', 100, undefined, { ok: 1 }), { status: 'completed', result: { ok: 1 }, stepProgress: 1 });
});

test('a job follows a real BullMQ worker through progress, failure, retry via job.retry(), and completion', async () => {
  const connection = { host: '127.0.0.1', port: redis.port };
  const queue = new Queue('render', { connection });
  const gate = { release: () => {} };
  const firstStepSeen = new Promise<void>((resolve) => (gate.release = resolve));
  let attempts = 0;
  const worker = new Worker(
    'render',
    async (job: BullJob) => {
      attempts++;
      const resumeFrom = (job.progress as { step?: string } | undefined)?.step;
      if (resumeFrom !== 'b') {
        await job.updateProgress({ step: 'a', progress: 0.5 });
        await firstStepSeen;
        await job.updateProgress({ step: 'b', progress: 0 });
      }
      await job.updateProgress(50); // a bare number: 50 % of the current step
      if (attempts === 1) throw new Error('GPU fell over');
      await job.updateProgress({ step: 'c', progress: 0.9 });
      return { frames: 120 };
    },
    { connection, autorun: true },
  );
  try {
    const bullJob = await queue.add('frame', { scene: 1 }, { attempts: 1 });
    const token = await mintTestToken(secret);
    const created = await api<Job>(server, 'POST', '/v1/jobs', token, {
      id: 'bull-render-1',
      kind: 'render',
      steps: [{ id: 'a' }, { id: 'b' }, { id: 'c' }],
      source: { type: 'bullmq', queue: 'render', jobId: bullJob.id },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const ws = await connectWs({ wsUrl: server.url.replace('http', 'ws') + '/v1/ws' }, token);
    ws.send({ type: 'subscribe', jobId: 'bull-render-1' });
    const seen: Job[] = [(await ws.next('snapshot')).job];
    const nextUpdate = async (until: (j: Job) => boolean) => {
      for (;;) {
        const m = await ws.next('update', 10_000);
        seen.push(m.job);
        if (until(m.job)) return m.job;
      }
    };
    if (seen[0]!.steps[0]!.progress !== 0.5) await nextUpdate((j) => j.steps[0]!.progress === 0.5);
    gate.release();
    const failed = await nextUpdate((j) => j.status === 'failed');
    assert.equal(failed.steps[0]!.status, 'completed');
    assert.equal(failed.steps[1]!.status, 'failed');
    assert.equal(failed.steps[1]!.progress, 0.5, 'the bare 50 went to the current step b');
    assert.match(failed.error?.message ?? '', /GPU fell over/);

    const retried = await api(server, 'POST', '/v1/jobs/bull-render-1/retry', token, {});
    assert.equal(retried.status, 202, JSON.stringify(retried.body));
    const done = await nextUpdate((j) => j.status === 'completed');
    assert.equal(attempts, 2, 'BullMQ ran the job again: job.retry() was called');
    assert.deepEqual(done.steps.map((s) => s.status), ['completed', 'completed', 'completed']);
    assert.deepEqual((done as Job & { result?: unknown }).result, { frames: 120 });
    // seq never goes backwards and grows by one per accepted change.
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i]!.seq > seen[i - 1]!.seq);
    await waitFor(async () => (await queue.getJob(bullJob.id!))?.finishedOn !== undefined, 5000, 'bull job finished');
    await ws.close();
  } finally {
    await worker.close();
    await queue.close();
  }
});
