/**
 * The BullMQ adapter reports a waiting job's place in line: against a real Redis and BullMQ queue
 * without a worker, a followed job third in the wait list shows `job.queue.position` 2, and 1 once
 * the job ahead of it is gone (LPOS + LLEN on the wait list; see bullmq-adapter.ts).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { Queue } from 'bullmq';
import { startServer, type RunningServer } from '../../server/app/start-server.js';
import { createLogger } from '../../server/app/log.js';
import { BullmqAdapter, waitingPosition } from '../../server/polling/bullmq-adapter.js';
import type { Job } from '../../protocol/index.js';
import { startRedis, type RedisServer } from '../fixtures/redis-server.js';
import { api, mintTestToken, waitFor } from '../fixtures/server-process.js';

let redis: RedisServer;
let server: RunningServer;
const secret = randomBytes(32).toString('base64url');

before(async () => {
  redis = await startRedis();
  const adapter = await BullmqAdapter.create({ connection: { host: '127.0.0.1', port: redis.port } });
  server = await startServer({ port: 0, jwtSecret: secret, db: ':memory:', logger: createLogger('silent'), tickMs: 0, polling: { adapters: [adapter] } });
});

after(async () => {
  await server?.close();
  await redis?.stop();
});

test('a waiting BullMQ job reports how many jobs are ahead of it', async () => {
  const queue = new Queue('lineup', { connection: { host: '127.0.0.1', port: redis.port } });
  try {
    const [first, , third] = await Promise.all([1, 2, 3].map((n) => queue.add('frame', { n })));
    // (Promise.all keeps call order; BullMQ adds them in that order on one connection.)
    assert.equal(await waitingPosition(queue, third!.id!), 2);
    assert.equal(await waitingPosition(queue, first!.id!), 0);
    assert.equal(await waitingPosition(queue, 'no-such-job'), undefined);

    const token = await mintTestToken(secret);
    const created = await api<Job>(server, 'POST', '/v1/jobs', token, {
      id: 'bull-lineup-3',
      kind: 'frame',
      steps: [{ id: 'draw' }],
      source: { type: 'bullmq', queue: 'lineup', jobId: third!.id, minIntervalMs: 200, maxIntervalMs: 400 },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const get = async () => (await api<Job>(server, 'GET', '/v1/jobs/bull-lineup-3', token)).body;
    const queued = await waitFor(async () => ((await get()).queue?.position === 2 ? get() : undefined), 10_000, 'position 2');
    assert.equal(queued.status, 'queued');
    await first!.remove();
    await waitFor(async () => (await get()).queue?.position === 1, 10_000, 'position 1 after the job ahead left');
  } finally {
    await queue.close();
  }
});
