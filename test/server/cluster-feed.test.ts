/**
 * Listing and tag feeds across two server nodes in separate processes sharing a real Redis
 * (`node bin/progress-tracker.js serve`, so build first): a feed followed on node A hears jobs
 * created and changed through node B (creation, status at once, throttled progress ending on the
 * latest state), over the WebSocket and SSE; A lists B's jobs; a tag token still sees only its tag.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { FeedMessage, FeedUpdateMessage, JobList, ServerMessage } from '../../protocol/index.js';
import { startRedis, type RedisServer } from '../fixtures/redis-server.js';
import { api, connectWs, createJob, metric, startServerProcess, waitFor, type ServerProcess, type WsClient } from '../fixtures/server-process.js';
import { openSse } from '../fixtures/sse-client.js';

describe('tag feeds and listing across cluster nodes', () => {
  let redis: RedisServer;
  let a: ServerProcess;
  let b: ServerProcess;
  const sockets: WsClient[] = [];
  const secret = randomBytes(32).toString('base64url');
  before(async () => {
    redis = await startRedis({ appendonly: true });
    const env = (name: string) => ({ PT_REDIS_URL: redis.url, PT_NODE_ID: name, PT_ETA_TICK: '0' });
    [a, b] = await Promise.all([startServerProcess({ secret, env: env('node-a') }), startServerProcess({ secret, env: env('node-b') })]);
  });
  after(async () => {
    await Promise.all(sockets.map((s) => s.close()));
    await Promise.all([a, b].map(async (s) => (await s?.stop(), s?.cleanup())));
    await redis?.stop();
  });

  const event = async (server: ServerProcess, id: string, body: unknown) => {
    const res = await api(server, 'POST', `/v1/jobs/${id}/events`, await server.token({ scope: 'progress:write', jobs: ['*'] }), body);
    assert.equal(res.status, 202, JSON.stringify(res.body));
  };
  const isUpdate = (id: string) => (m: ServerMessage) => m.type === 'feed_update' && m.job.id === id;

  test('a feed on node A hears creation, status changes and throttled progress of jobs changed through node B', async () => {
    await createJob(b, { id: 'cf-before', tags: ['user:alice'] });
    const ws = await connectWs(a, await a.token({ scope: 'progress:read', jobs: ['tag:user:alice'] }));
    sockets.push(ws);
    ws.send({ type: 'subscribe', tag: 'user:alice' });
    const feed = (await ws.next('feed')) as FeedMessage;
    assert.deepEqual(feed.jobs.map((j) => j.id), ['cf-before'], 'the feed on A lists the job created on B');
    const sse = await openSse(`${a.url}/v1/feed?tag=user:alice&access_token=${await a.token({ scope: 'progress:read', jobs: ['tag:user:alice'] })}`);
    assert.equal(((await sse.next('feed')).data as FeedMessage).jobs.length, 1);

    await createJob(b, { id: 'cf-1', tags: ['user:alice'], steps: [{ id: 'one' }] });
    await createJob(b, { id: 'cf-bob', tags: ['user:bob'] });
    await createJob(b, { id: 'cf-none' });
    const created = (await ws.next(isUpdate('cf-1'))) as FeedUpdateMessage;
    assert.deepEqual([created.tag, created.job.status, created.job.seq], ['user:alice', 'queued', 1]);
    const t0 = Date.now();
    await event(b, 'cf-1', { type: 'step_start', step: 'one' });
    assert.equal(((await ws.next(isUpdate('cf-1'))) as FeedUpdateMessage).job.status, 'running');
    assert.ok(Date.now() - t0 < 1500, 'a status change is not held');
    for (let i = 1; i <= 10; i++) await event(b, 'cf-1', { type: 'progress', step: 'one', progress: i / 10 });
    // Held by the 2 s window on A, then the latest progress.
    const progressed = (await ws.next(isUpdate('cf-1'), 4000)) as FeedUpdateMessage;
    assert.equal(progressed.job.progress, 1);
    await event(b, 'cf-1', { type: 'step_end', step: 'one' });
    await event(b, 'cf-1', { type: 'job_end', status: 'completed' });
    const ended = (await ws.next((m) => isUpdate('cf-1')(m) && (m as FeedUpdateMessage).job.status === 'completed', 4000)) as FeedUpdateMessage;
    assert.equal(ended.job.progress, 1);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(ws.queue.filter((m) => m.type === 'feed_update' && m.job.id !== 'cf-1'), [], "Bob's and untagged jobs never reach Alice's feed");

    // The SSE stream on A heard the same, ending on the completed state.
    const statuses: string[] = [];
    while (statuses.at(-1) !== 'completed') {
      const m = (await sse.next('feed_update', 4000)).data as FeedUpdateMessage;
      assert.equal(m.job.id, 'cf-1');
      statuses.push(m.job.status);
    }
    assert.deepEqual([...new Set(statuses)], ['queued', 'running', 'completed']);
    sse.close();
    assert.ok((await metric(a, 'pt_cluster_tag_updates_total')) >= 4);
    assert.equal(await metric(a, 'pt_cluster_tag_channels'), 1);
  });

  test('listing on either node sees every node’s jobs; a tag token still lists its tag only', async () => {
    await createJob(a, { id: 'cl-a', tags: ['team:x'] });
    await createJob(b, { id: 'cl-b', tags: ['team:x'] });
    await createJob(b, { id: 'cl-y', tags: ['team:y'] });
    const x = await a.token({ scope: 'progress:read', jobs: ['tag:team:x'] });
    for (const server of [a, b]) {
      const res = await api<JobList>(server, 'GET', '/v1/jobs', x);
      assert.deepEqual(res.body.jobs.map((j) => j.id), ['cl-b', 'cl-a']);
      assert.equal((await api(server, 'GET', '/v1/jobs?tag=team:y', x)).status, 403);
    }
    const all = await b.token({ scope: 'progress:read', jobs: ['*'] });
    const page = await api<JobList>(b, 'GET', '/v1/jobs?limit=2', all);
    assert.deepEqual(page.body.jobs.map((j) => j.id), ['cl-y', 'cl-b']);
    const rest = await api<JobList>(a, 'GET', `/v1/jobs?limit=2&cursor=${page.body.nextCursor}`, all);
    assert.deepEqual(rest.body.jobs.map((j) => j.id), ['cl-a', 'cf-none'], 'a cursor from one node continues on the other');
  });

  test('the tag channel is released after the last follower leaves', async () => {
    for (const s of sockets.splice(0)) await s.close();
    // Released after the bus's linger (5 s).
    await waitFor(async () => (await metric(a, 'pt_cluster_tag_channels')) === 0, 9000, 'tag channel released');
  });
});
