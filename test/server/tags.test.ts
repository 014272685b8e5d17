// Tags and tag grants: a job carries its tags; a token with `tag:user:alice` reads, follows and
// cancels exactly the jobs tagged user:alice — not untagged ones, not Bob's — and lists and follows
// the tag user:alice only.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Job } from '../../protocol/index.js';
import { api, connectWs, createJob, startServerProcess, type ServerProcess } from '../fixtures/server-process.js';
import { openSse } from '../fixtures/sse-client.js';

describe('tags', () => {
  let server: ServerProcess;
  before(async () => {
    server = await startServerProcess();
    await createJob(server, { id: 'tg-alice', tags: ['user:alice', 'org:acme'] });
    await createJob(server, { id: 'tg-bob', tags: ['user:bob', 'org:acme'] });
    await createJob(server, { id: 'tg-none' });
  });
  after(async () => {
    await server.stop();
    server.cleanup();
  });

  const alice = () => server.token({ scope: 'progress:read progress:cancel', jobs: ['tag:user:alice'], sub: 'alice' });

  test('tags are part of the job; bad tags are refused with 400', async () => {
    const job = (await api<Job>(server, 'GET', '/v1/jobs/tg-alice', await server.token())).body;
    assert.deepEqual(job.tags, ['user:alice', 'org:acme']);
    const writer = await server.token({ scope: 'progress:write', jobs: ['*'] });
    const bad = await api<{ error: { message: string } }>(server, 'POST', '/v1/jobs', writer, { kind: 'k', steps: [{ id: 'a' }], tags: ['has space'] });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error.message, /tags\[0\]/);
    const many = await api(server, 'POST', '/v1/jobs', writer, { kind: 'k', steps: [{ id: 'a' }], tags: Array.from({ length: 17 }, (_, i) => `t${i}`) });
    assert.equal(many.status, 400);
  });

  test('a tag grant reads, follows and cancels its tagged jobs only (HTTP, WebSocket, SSE)', async () => {
    const token = await alice();
    assert.equal((await api(server, 'GET', '/v1/jobs/tg-alice', token)).status, 200);
    assert.equal((await api(server, 'GET', '/v1/jobs/tg-bob', token)).status, 403);
    assert.equal((await api(server, 'GET', '/v1/jobs/tg-none', token)).status, 403);
    assert.equal((await api(server, 'GET', '/v1/jobs/tg-missing', token)).status, 403, 'no hint whether a job exists');
    assert.equal((await api(server, 'POST', '/v1/jobs/tg-bob/cancel', token, {})).status, 403);
    const ws = await connectWs(server, token);
    ws.send({ type: 'subscribe', jobId: 'tg-alice' });
    assert.equal((await ws.next('snapshot')).type, 'snapshot');
    ws.send({ type: 'subscribe', jobId: 'tg-bob' });
    const refused = await ws.next('error');
    assert.deepEqual(refused.type === 'error' && [refused.code, refused.jobId], ['forbidden', 'tg-bob']);
    assert.equal((await openSse(`${server.url}/v1/jobs/tg-alice/stream?access_token=${token}`)).status, 200);
    assert.equal((await openSse(`${server.url}/v1/jobs/tg-none/stream?access_token=${token}`)).status, 403);
    assert.equal((await api(server, 'POST', '/v1/jobs/tg-alice/cancel', token, {})).status, 202);
    await ws.close();
  });

  test('a tag token can neither list nor follow an untagged or differently tagged job, nor another tag', async () => {
    const token = await alice();
    const listed = await api<{ jobs: Array<{ id: string }> }>(server, 'GET', '/v1/jobs?limit=100', token);
    assert.equal(listed.status, 200);
    assert.deepEqual(listed.body.jobs.map((j) => j.id), ['tg-alice']);
    assert.equal((await api(server, 'GET', '/v1/jobs?tag=user:bob', token)).status, 403);
    assert.equal((await api(server, 'GET', '/v1/jobs?tag=org:acme', token)).status, 403, 'not granted, though one of its jobs carries it');
    const ws = await connectWs(server, token);
    ws.send({ type: 'subscribe', tag: 'user:bob' });
    const refused = await ws.next('error');
    assert.deepEqual(refused.type === 'error' && [refused.code, refused.tag], ['forbidden', 'user:bob']);
    ws.send({ type: 'subscribe', jobId: 'tg-none' });
    assert.equal((await ws.next('error')).code, 'forbidden');
    ws.send({ type: 'subscribe', tag: 'user:alice' });
    assert.deepEqual((await ws.next('feed')).jobs.map((j) => j.id), ['tg-alice']);
    await createJob(server, { id: 'tg-bob-2', tags: ['user:bob'] });
    await createJob(server, { id: 'tg-none-2' });
    await createJob(server, { id: 'tg-alice-2', tags: ['user:alice'] });
    const update = await ws.next('feed_update');
    assert.equal(update.job.id, 'tg-alice-2', "Bob's and untagged jobs never reach Alice's feed");
    assert.equal((await openSse(`${server.url}/v1/feed?tag=user:bob&access_token=${token}`)).status, 403);
    await ws.close();
  });

  test('a producer token with a tag grant creates jobs carrying that tag, and only those', async () => {
    const producer = await server.token({ scope: 'progress:write', jobs: ['tag:team:render'] });
    const made = await api<Job>(server, 'POST', '/v1/jobs', producer, { kind: 'k', steps: [{ id: 'a' }], tags: ['team:render'] });
    assert.equal(made.status, 201);
    assert.equal((await api(server, 'POST', `/v1/jobs/${made.body.id}/events`, producer, { type: 'step_start', step: 'a' })).status, 202);
    assert.equal((await api(server, 'POST', '/v1/jobs', producer, { kind: 'k', steps: [{ id: 'a' }], tags: ['team:other'] })).status, 403);
  });
});
