/**
 * Two server nodes in separate processes (`node bin/progress-tracker.js serve`, so build first:
 * `npm run build:server`) sharing a real Redis (started here, AOF with appendfsync always):
 * cross-node fan-out in order, failover after kill -9 of a node, a Redis restart mid-job with no
 * acknowledged event lost, and polling by exactly one node with takeover when it dies.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, afterEach, before, describe, test } from 'node:test';
import type { Job, JobEvent } from '../../protocol/index.js';
import { FakeUpstream, MAPS } from '../fixtures/fake-upstream.js';
import { startRedis, type RedisServer } from '../fixtures/redis-server.js';
import { api, connectWs, createJob, metric, startServerProcess, waitFor, type ServerProcess, type WsClient } from '../fixtures/server-process.js';

let redis: RedisServer;
const secret = randomBytes(32).toString('base64url');
let started: ServerProcess[] = [];
let sockets: WsClient[] = [];

async function node(name: string, env: Record<string, string> = {}): Promise<ServerProcess> {
  const server = await startServerProcess({
    secret,
    env: { PT_REDIS_URL: redis.url, PT_NODE_ID: name, PT_POLL_LEASE_TTL: '1500ms', ...env },
  });
  started.push(server);
  return server;
}

async function watch(server: ServerProcess, jobId: string): Promise<{ ws: WsClient; snapshot: Job }> {
  const ws = await connectWs(server, await server.token({ scope: 'progress:read', jobs: ['*'] }));
  sockets.push(ws);
  ws.send({ type: 'subscribe', jobId });
  return { ws, snapshot: (await ws.next('snapshot')).job };
}

/** The events of a three-step job (`one`, `two`, `three`), each with an eventId. */
function script(jobId: string): JobEvent[] {
  const events: JobEvent[] = [];
  for (const step of ['one', 'two', 'three']) {
    events.push({ type: 'step_start', step });
    for (const p of [0.25, 0.5, 0.75]) events.push({ type: 'progress', step, progress: p });
    events.push({ type: 'step_end', step });
  }
  events.push({ type: 'job_end', status: 'completed' });
  return events.map((e, i) => ({ ...e, eventId: `${jobId}-e${i}` }));
}

/** Posts one event, retrying on 5xx and network errors (what the producer SDK does). Returns the seq. */
async function postDurably(servers: ServerProcess[], jobId: string, event: JobEvent): Promise<number> {
  const deadline = Date.now() + 20_000;
  for (let attempt = 0; ; attempt++) {
    const server = servers[attempt % servers.length]!;
    try {
      const res = await api<{ seq: number }>(server, 'POST', `/v1/jobs/${jobId}/events`, await server.token({ scope: 'progress:write' }), event);
      if (res.status === 202) return res.body.seq;
      if (res.status < 500) throw new Error(`event refused: ${res.status} ${JSON.stringify(res.body)}`);
    } catch (err) {
      if ((err as Error).message.startsWith('event refused')) throw err;
    }
    if (Date.now() > deadline) throw new Error(`event ${event.eventId} not accepted within 20 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Collects updates until the job is finished; checks seq never goes backwards. */
async function untilFinished(ws: WsClient, from: Job, timeoutMs = 15_000): Promise<Job[]> {
  const seen = [from];
  const deadline = Date.now() + timeoutMs;
  while (!['completed', 'failed', 'canceled'].includes(seen.at(-1)!.status)) {
    const m = await ws.next('update', Math.max(100, deadline - Date.now()));
    assert.ok(m.job.seq > seen.at(-1)!.seq, `seq went from ${seen.at(-1)!.seq} to ${m.job.seq}`);
    seen.push(m.job);
  }
  return seen;
}

before(async () => {
  redis = await startRedis({ appendonly: true });
});
afterEach(async () => {
  await Promise.all(sockets.map((s) => s.close()));
  sockets = [];
  await Promise.all(started.map(async (s) => (await s.stop(), s.cleanup())));
  started = [];
});
after(async () => {
  await redis?.stop();
});

describe('cluster on Redis', () => {
  test('subscriber on node A, producer on node B: every update arrives on A, in order', async () => {
    const [a, b] = await Promise.all([node('node-a'), node('node-b')]);
    const job = await createJob(b, { id: 'order-1' });
    const { ws, snapshot } = await watch(a, job.id);
    assert.equal(snapshot.seq, job.seq);
    const acked: number[] = [];
    for (const event of script(job.id)) acked.push(await postDurably([b], job.id, event));
    const seen = await untilFinished(ws, snapshot);
    // No gap: every accepted change (events, plus ETA re-estimates) reached node A's socket.
    for (let i = 1; i < seen.length; i++) assert.equal(seen[i]!.seq, seen[i - 1]!.seq + 1);
    for (const seq of acked) assert.ok(seen.some((j) => j.seq === seq), `update ${seq} was delivered`);
    const progressOfTwo = seen.filter((j) => j.steps[1]!.status === 'running').map((j) => j.steps[1]!.progress);
    assert.deepEqual([...new Set(progressOfTwo)], [0, 0.25, 0.5, 0.75]);
    assert.equal(seen.at(-1)!.status, 'completed');
    assert.equal((await api<Job>(a, 'GET', `/v1/jobs/${job.id}`, await a.token())).body.seq, seen.at(-1)!.seq);
    assert.ok((await metric(a, 'pt_cluster_remote_updates_total')) >= acked.length);
  });

  test('two nodes changing one job at once: every event gets its own seq, none is lost', async () => {
    const [a, b] = await Promise.all([node('node-a'), node('node-b')]);
    const job = await createJob(a, { id: 'race-1', steps: [{ id: 'one' }] });
    await postDurably([a], job.id, { type: 'step_start', step: 'one', eventId: 'start' });
    const events = Array.from({ length: 40 }, (_, i): JobEvent => ({ type: 'progress', step: 'one', progress: (i + 1) / 100, eventId: `p${i}` }));
    // Even events through A, odd through B, all in flight together.
    const seqs = await Promise.all(events.map((e, i) => postDurably([i % 2 === 0 ? a : b], job.id, e)));
    assert.equal(new Set(seqs).size, events.length, 'each accepted event produced its own seq');
    const final = (await api<Job>(b, 'GET', `/v1/jobs/${job.id}`, await b.token())).body;
    assert.ok(final.seq >= Math.max(...seqs));
    // Each event is stored under the seq it was acknowledged with.
    for (const [i, e] of events.entries()) {
      const again = await api<{ seq: number }>(i % 2 === 0 ? b : a, 'POST', `/v1/jobs/${job.id}/events`, await a.token({ scope: 'progress:write' }), e);
      assert.equal(again.body.seq, seqs[i]);
    }
    const conflicts = (await metric(a, 'pt_cluster_seq_conflicts_total')) + (await metric(b, 'pt_cluster_seq_conflicts_total'));
    assert.ok(conflicts > 0, 'the race happened and was resolved by re-applying on the fresh state');
  });

  test('a retry asked on node B reaches the producer socket on node A as a control message', async () => {
    const [a, b] = await Promise.all([node('node-a'), node('node-b')]);
    const job = await createJob(a, { id: 'control-1' });
    const producer = await connectWs(a, await a.token({ scope: 'progress:read progress:write', jobs: ['*'] }));
    sockets.push(producer);
    producer.send({ type: 'subscribe', jobId: job.id });
    await producer.next('snapshot');
    await postDurably([a], job.id, { type: 'step_start', step: 'one' });
    await postDurably([a], job.id, { type: 'step_failed', step: 'one', error: { code: 'boom', message: 'boom' } });
    const res = await api(b, 'POST', `/v1/jobs/${job.id}/retry`, await b.token({ scope: 'progress:retry' }), {});
    assert.equal(res.status, 202);
    const control = await producer.next('control');
    assert.deepEqual(control, { type: 'control', action: 'retry', jobId: job.id, step: 'one' });
  });

  test('kill -9 of node A mid-job: the client moves to node B and ends on the final state', async () => {
    const [a, b] = await Promise.all([node('node-a'), node('node-b')]);
    const job = await createJob(a, { id: 'failover-1' });
    const { ws, snapshot } = await watch(a, job.id);
    const events = script(job.id);
    // The producer talks to A until A dies, then to B (same eventIds: retries are idempotent).
    for (const event of events.slice(0, 6)) await postDurably([a], job.id, event);
    await waitFor(() => ws.queue.filter((m) => m.type === 'update').length >= 6, 5000, 'first updates on A');
    await a.kill9();
    const lost = await ws.closed;
    assert.notEqual(lost.code, 1000);
    // What the widget does with several URLs in `src`: try them in turn, resubscribe, resync from the snapshot.
    let moved: { ws: WsClient; snapshot: Job } | undefined;
    for (const candidate of [a, b]) {
      try {
        moved = await watch(candidate, job.id);
        break;
      } catch {
        /* node down: next */
      }
    }
    assert.ok(moved, 'reconnected to a live node');
    assert.ok(moved.snapshot.seq >= snapshot.seq + 6, 'the snapshot on B has everything A acknowledged');
    assert.equal(moved.snapshot.steps[1]!.status, 'running');
    for (const event of events.slice(6)) await postDurably([a, b], job.id, event);
    const seen = await untilFinished(moved.ws, moved.snapshot);
    const final = seen.at(-1)!;
    assert.equal(final.status, 'completed');
    assert.deepEqual(final.steps.map((s) => s.status), ['completed', 'completed', 'completed']);
    assert.equal((await api<Job>(b, 'GET', `/v1/jobs/${job.id}`, await b.token())).body.seq, final.seq);
  });

  test('Redis restarted mid-job: nodes reconnect and resync, no acknowledged event is lost', async () => {
    const [a, b] = await Promise.all([node('node-a'), node('node-b')]);
    const job = await createJob(b, { id: 'redis-restart-1' });
    const { ws, snapshot } = await watch(a, job.id);
    const events = script(job.id);
    const acked = new Map<string, number>();
    for (const event of events.slice(0, 7)) acked.set(event.eventId!, await postDurably([b], job.id, event));
    await redis.kill9();
    // Producer calls made during the outage wait for Redis (or fail with 503 and are retried).
    const during = postDurably([b], job.id, events[7]!);
    await new Promise((r) => setTimeout(r, 400));
    await redis.start();
    acked.set(events[7]!.eventId!, await during);
    for (const event of events.slice(8)) acked.set(event.eventId!, await postDurably([b], job.id, event));

    const seen = await untilFinished(ws, snapshot, 20_000);
    assert.equal(seen.at(-1)!.status, 'completed');
    // Every acknowledged event is still known with the seq it was acknowledged with.
    for (const [eventId, seq] of acked) {
      const event = events.find((e) => e.eventId === eventId)!;
      const again = await api<{ seq: number }>(a, 'POST', `/v1/jobs/${job.id}/events`, await a.token({ scope: 'progress:write' }), event);
      assert.equal(again.status, 202);
      assert.equal(again.body.seq, seq, `event ${eventId} kept its seq`);
    }
    await waitFor(async () => (await metric(a, 'pt_cluster_redis_recoveries_total')) >= 1, 5000, 'recovery counted on A');
    assert.equal(await metric(a, 'pt_cluster_redis_up', '{connection="bus"}'), 1);
    assert.match(a.output(), /redis connection lost/);
    assert.match(a.output(), /resynced after the Redis outage/);
  });

  test('a misconfigured or unreachable Redis stops the start with a clear message, password redacted', async () => {
    const unreachable = startServerProcess({ secret, env: { PT_REDIS_URL: 'redis://:hunter2@127.0.0.1:1' } });
    await assert.rejects(unreachable, (err: Error) => {
      assert.match(err.message, /exited with code 1/);
      assert.match(err.message, /cannot use Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:1.*ECONNREFUSED/);
      assert.ok(!err.message.includes('hunter2'));
      return true;
    });
    await assert.rejects(startServerProcess({ secret, env: { PT_REDIS_URL: 'http://127.0.0.1:6379' } }), /exited with code 2[\s\S]*PT_REDIS_URL \(--redis-url\) must be a redis:\/\/ or rediss:\/\/ URL/);
  });

  test('a polled job is polled by one node only, and by the other once the first dies', async () => {
    const upstream = new FakeUpstream();
    await upstream.start();
    try {
      const steps = [{ name: 'init', durationMs: 800 }, { name: 'plan', durationMs: 4000 }, { name: 'build', durationMs: 800 }];
      upstream.addJob({ id: 'up-1', steps, shape: 'flat' });
      const [a, b] = await Promise.all([node('node-a'), node('node-b')]);
      const res = await api<Job>(a, 'POST', '/v1/jobs', await a.token({ scope: 'progress:write' }), {
        id: 'polled-1',
        kind: 'render',
        steps: steps.map((s) => ({ id: s.name })),
        source: { type: 'http', url: upstream.statusUrl('up-1'), map: MAPS.flat, minIntervalMs: 250, maxIntervalMs: 400 },
      });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      const { ws, snapshot } = await watch(b, 'polled-1');
      await waitFor(async () => (await metric(a, 'pt_poll_requests_total')) >= 3, 5000, 'A polls');
      assert.equal(await metric(a, 'pt_cluster_poll_leases'), 1);
      assert.equal(await metric(b, 'pt_cluster_poll_leases'), 0);
      assert.equal(await metric(b, 'pt_poll_requests_total'), 0, 'B never polled while A held the lease');
      await a.kill9();
      await waitFor(async () => (await metric(b, 'pt_cluster_poll_leases')) === 1, 6000, 'B takes the lease over');
      const seen = await untilFinished(ws, snapshot, 15_000);
      assert.equal(seen.at(-1)!.status, 'completed');
      assert.ok((await metric(b, 'pt_poll_requests_total')) > 0);
      assert.equal(await metric(b, 'pt_cluster_poll_leases_taken_over_total'), 1);
    } finally {
      await upstream.close();
    }
  });
});
