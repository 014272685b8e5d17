// Tag feeds against the real server, over the WebSocket and SSE: `feed` with the tag's latest
// jobs, then `feed_update` on creation and status changes at once and on progress at most once per
// 2 s per job, ending on the latest state; grants (a tag token cannot follow another tag, an id
// grant no tag at all; a refreshed token that loses the grant loses the feed); feeds count toward
// the subscriptions per socket; unsubscribe stops the updates.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { LISTING, type FeedMessage, type FeedUpdateMessage, type JobSummary, type ServerMessage } from '../../protocol/index.js';
import { openSse } from '../fixtures/sse-client.js';
import { api, connectWs, createJob, metric, startServerProcess, waitFor, type ServerProcess, type WsClient } from '../fixtures/server-process.js';

describe('tag feeds', () => {
  let server: ServerProcess;
  let writer: string;
  const sockets: WsClient[] = [];
  before(async () => {
    server = await startServerProcess({ env: { PT_ETA_TICK: '0' } });
    writer = await server.token({ scope: 'progress:write', jobs: ['*'] });
  });
  after(async () => {
    await Promise.all(sockets.map((s) => s.close()));
    await server.stop();
    server.cleanup();
  });

  const open = async (claims: { scope?: string; jobs?: string[] }) => {
    const ws = await connectWs(server, await server.token({ scope: 'progress:read', ...claims }));
    sockets.push(ws);
    return ws;
  };
  const event = (id: string, body: unknown) => api(server, 'POST', `/v1/jobs/${id}/events`, writer, body).then((r) => assert.equal(r.status, 202, JSON.stringify(r.body)));
  const isUpdate = (tag: string, id?: string) => (m: ServerMessage) => m.type === 'feed_update' && m.tag === tag && (id === undefined || m.job.id === id);
  const updates = (ws: WsClient, id: string) => ws.queue.filter((m): m is FeedUpdateMessage => m.type === 'feed_update' && m.job.id === id);

  test('subscribe: the latest jobs first (newest first, at most 50), creation and status changes at once', async () => {
    for (let i = 0; i < 52; i++) await createJob(server, { id: `fd-old-${String(i).padStart(2, '0')}`, tags: ['user:dora'] });
    await createJob(server, { id: 'fd-untagged' });
    const ws = await open({ jobs: ['tag:user:dora'] });
    ws.send({ type: 'subscribe', tag: 'user:dora' });
    const feed = (await ws.next('feed')) as FeedMessage;
    assert.equal(feed.tag, 'user:dora');
    assert.equal(feed.jobs.length, LISTING.feedJobs);
    assert.equal(feed.jobs[0]!.id, 'fd-old-51');
    assert.deepEqual(Object.keys(feed.jobs[0]!), ['id', 'kind', 'status', 'progress', 'eta', 'tags', 'seq', 'createdAt', 'updatedAt']);

    const started = Date.now();
    await createJob(server, { id: 'fd-new', tags: ['user:dora'], steps: [{ id: 'one' }] });
    const created = (await ws.next(isUpdate('user:dora', 'fd-new'))) as FeedUpdateMessage;
    assert.equal(created.job.status, 'queued');
    await event('fd-new', { type: 'step_start', step: 'one' });
    const running = (await ws.next(isUpdate('user:dora', 'fd-new'))) as FeedUpdateMessage;
    assert.equal(running.job.status, 'running');
    assert.ok(Date.now() - started < 1500, 'status changes are not held');
    await createJob(server, { id: 'fd-other', tags: ['user:eve'] });
    await createJob(server, { id: 'fd-none' });
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(ws.queue.filter((m) => m.type === 'feed_update'), [], 'untagged and other tags never reach this feed');
  });

  test('progress reaches the feed at most once per 2 s per job, and the feed ends on the latest state', async () => {
    await createJob(server, { id: 'fd-prog', tags: ['user:dora'], steps: [{ id: 'one' }, { id: 'two' }] });
    const ws = await open({ jobs: ['tag:user:dora'] });
    ws.send({ type: 'subscribe', tag: 'user:dora' });
    await ws.next('feed');
    await event('fd-prog', { type: 'step_start', step: 'one' }); // a status change: at once
    const first = (await ws.next(isUpdate('user:dora', 'fd-prog'))) as FeedUpdateMessage;
    const t0 = Date.now();
    for (let i = 1; i <= 20; i++) {
      await event('fd-prog', { type: 'progress', step: 'one', progress: i / 20 });
      await new Promise((r) => setTimeout(r, 100));
    }
    // ~2 s of progress events: within it, at most one progress update per 2 s window.
    await new Promise((r) => setTimeout(r, 2300));
    const got = [first, ...updates(ws, 'fd-prog')];
    const progress = got.slice(1);
    assert.ok(progress.length >= 1 && progress.length <= 2, `${progress.length} progress updates for ~2 s of events`);
    const last = got.at(-1)!.job;
    assert.equal(last.progress, 0.5, 'the last one carries the latest progress (step one of two at 100 %)');
    for (let i = 1; i < got.length; i++) assert.ok(got[i]!.job.seq > got[i - 1]!.job.seq);
    assert.ok(Date.now() - t0 >= 2000);
  });

  test('grants: another tag, an id grant, a token without a grant for it are refused; `*` follows any tag', async () => {
    const dora = await open({ jobs: ['tag:user:dora'] });
    dora.send({ type: 'subscribe', tag: 'user:eve' });
    const refused = await dora.next('error');
    assert.deepEqual(refused.type === 'error' && [refused.code, refused.tag, refused.jobId], ['forbidden', 'user:eve', undefined]);
    const byId = await open({ jobs: ['fd-new', 'fd-*'] });
    byId.send({ type: 'subscribe', tag: 'user:dora' });
    assert.equal((await byId.next('error')).code, 'forbidden');
    const star = await open({ jobs: ['*'] });
    star.send({ type: 'subscribe', tag: 'user:eve' });
    assert.deepEqual((await star.next('feed')).jobs.map((j: JobSummary) => j.id), ['fd-other']);
    const bad = await open({ jobs: ['*'] });
    bad.send({ type: 'subscribe', tag: 'has space' });
    assert.equal((await bad.next('error')).code, 'bad_request');
  });

  test('a refreshed token without the grant drops the feed; unsubscribe stops the updates', async () => {
    const ws = await open({ jobs: ['tag:user:dora', 'tag:user:eve'] });
    ws.send({ type: 'subscribe', tag: 'user:dora' });
    ws.send({ type: 'subscribe', tag: 'user:eve' });
    await ws.next('feed');
    await ws.next('feed');
    ws.send({ type: 'auth', token: await server.token({ scope: 'progress:read', jobs: ['tag:user:eve'] }) });
    await ws.next('auth_ok');
    const dropped = await ws.next('error');
    assert.deepEqual(dropped.type === 'error' && [dropped.code, dropped.tag], ['forbidden', 'user:dora']);
    await createJob(server, { id: 'fd-after-refresh', tags: ['user:dora'] });
    await createJob(server, { id: 'fd-eve-2', tags: ['user:eve'] });
    assert.equal(((await ws.next(isUpdate('user:eve'))) as FeedUpdateMessage).job.id, 'fd-eve-2');
    ws.send({ type: 'unsubscribe', tag: 'user:eve' });
    ws.send({ type: 'ping' });
    await ws.next('pong');
    await createJob(server, { id: 'fd-eve-3', tags: ['user:eve'] });
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(ws.queue.filter((m) => m.type === 'feed_update'), []);
  });

  test('feeds count toward the subscriptions per socket', async () => {
    const ws = await open({ jobs: ['*'] });
    for (let i = 0; i < 100; i++) ws.send({ type: 'subscribe', tag: `many:${i}` });
    await waitFor(() => ws.queue.filter((m) => m.type === 'feed').length === 100, 5000, '100 feeds');
    await new Promise((r) => setTimeout(r, 200)); // the rate limit's bucket refills
    ws.send({ type: 'subscribe', jobId: 'fd-new' });
    const refused = await ws.next('error');
    assert.deepEqual(refused.type === 'error' && [refused.code, refused.jobId], ['too_many_subscriptions', 'fd-new']);
    ws.send({ type: 'subscribe', tag: 'many:100' });
    const again = await ws.next('error');
    assert.deepEqual(again.type === 'error' && [again.code, again.tag], ['too_many_subscriptions', 'many:100']);
  });

  test('a stalled socket is sent, once it reads again, the latest state of the feed it missed', async () => {
    const tag = 'user:slow';
    const ws = await open({ jobs: [`tag:${tag}`] });
    ws.send({ type: 'subscribe', tag });
    await ws.next('feed');
    // ~8 KB per summary: 500 creations and 500 status changes are ~8 MB, far past socket buffers
    // and the 256 KiB the server queues per socket.
    const title = 't'.repeat(7900);
    const socket = (ws.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
    socket.pause();
    const ids = Array.from({ length: 500 }, (_, i) => `fd-slow-${String(i).padStart(3, '0')}`);
    const inParallel = async (fn: (id: string) => Promise<unknown>) => {
      const queue = [...ids];
      await Promise.all(Array.from({ length: 8 }, async () => {
        for (let id = queue.shift(); id; id = queue.shift()) await fn(id);
      }));
    };
    await inParallel((id) => createJob(server, { id, tags: [tag], steps: [{ id: 'one' }], meta: { title } }));
    await inParallel((id) => event(id, { type: 'step_start', step: 'one' }));
    assert.ok((await metric(server, 'pt_ws_buffered_bytes_max')) > 128 * 1024, 'the socket was congested');
    socket.resume();
    // More jobs changed than a feed holds: it gets a whole new feed, whose 50 jobs are all running.
    const latest = new Map<string, JobSummary>();
    const newest = ids.slice(-50);
    await waitFor(
      () => {
        for (const m of ws.queue.splice(0)) {
          if (m.type !== 'feed_update' && m.type !== 'feed') continue;
          for (const j of m.type === 'feed' ? m.jobs : [m.job]) if ((latest.get(j.id)?.seq ?? 0) < j.seq) latest.set(j.id, j);
        }
        return newest.every((id) => latest.get(id)?.status === 'running');
      },
      15_000,
      "the feed's 50 jobs running on the stalled socket",
    );
  });

  test('SSE: GET /v1/feed?tag= sends the same messages; refusals are the usual errors', async () => {
    const token = await server.token({ scope: 'progress:read', jobs: ['tag:user:fay'] });
    await createJob(server, { id: 'fd-fay-1', tags: ['user:fay'], steps: [{ id: 'one' }] });
    const stream = await openSse(`${server.url}/v1/feed?tag=user:fay&access_token=${token}`);
    assert.equal(stream.status, 200);
    assert.equal(stream.headers.get('content-type'), 'text/event-stream; charset=utf-8');
    const first = (await stream.next('feed')).data as FeedMessage;
    assert.deepEqual([first.tag, first.jobs.map((j) => j.id)], ['user:fay', ['fd-fay-1']]);
    await createJob(server, { id: 'fd-fay-2', tags: ['user:fay'] });
    const created = (await stream.next('feed_update')).data as FeedUpdateMessage;
    assert.deepEqual([created.tag, created.job.id, created.job.status], ['user:fay', 'fd-fay-2', 'queued']);
    await event('fd-fay-1', { type: 'step_start', step: 'one' });
    await event('fd-fay-1', { type: 'step_end', step: 'one' });
    await event('fd-fay-1', { type: 'job_end', status: 'completed' });
    const statuses: string[] = [];
    while (statuses.at(-1) !== 'completed') statuses.push(((await stream.next('feed_update')).data as FeedUpdateMessage).job.status);
    assert.deepEqual(statuses, ['running', 'completed']);
    stream.close();

    assert.equal((await openSse(`${server.url}/v1/feed?tag=user:eve&access_token=${token}`)).status, 403);
    const missing = await openSse(`${server.url}/v1/feed?access_token=${token}`);
    assert.equal(missing.status, 400);
    assert.match((missing.errorBody as { error: { message: string } }).error.message, /^tag is required/);
    assert.equal((await openSse(`${server.url}/v1/feed?tag=user:fay`)).status, 401);
    const header = await openSse(`${server.url}/v1/feed?tag=user:fay`, { authorization: `Bearer ${token}` });
    assert.equal(header.status, 200);
    header.close();
  });
});
