// GET /v1/jobs against the real server: summaries newest first with an opaque cursor; pagination
// stays exact while jobs are created concurrently; what a token lists follows its grants (a tag
// token never sees an untagged or differently tagged job, and cannot list another tag); filters;
// bad parameters answer 400 naming the parameter.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { ErrorBody, JobList, JobSummary } from '../../protocol/index.js';
import { api, createJob, startServerProcess, type ServerProcess } from '../fixtures/server-process.js';

describe('GET /v1/jobs', () => {
  let server: ServerProcess;
  let all: string;
  before(async () => {
    server = await startServerProcess({ env: { PT_ETA_TICK: '0' } });
    all = await server.token({ scope: 'progress:read', jobs: ['*'] });
    await createJob(server, { id: 'ls-alice-1', tags: ['user:alice'], meta: { title: 'Report Q3', secret: 'x' } });
    await createJob(server, { id: 'ls-bob-1', tags: ['user:bob'], kind: 'export' });
    await createJob(server, { id: 'ls-none-1' });
    await createJob(server, { id: 'ls-alice-2', tags: ['user:alice', 'org:acme'], kind: 'export' });
    await createJob(server, { id: 'ls-acme-1', tags: ['org:acme'] });
  });
  after(async () => {
    await server.stop();
    server.cleanup();
  });

  const list = (token: string, query = '') => api<JobList & ErrorBody>(server, 'GET', `/v1/jobs${query}`, token);

  test('summaries newest first: the documented fields, meta.title only, tags always an array', async () => {
    const res = await list(all);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('cache-control'), 'no-store');
    assert.deepEqual(res.body.jobs.map((j) => j.id).slice(0, 5), ['ls-acme-1', 'ls-alice-2', 'ls-none-1', 'ls-bob-1', 'ls-alice-1']);
    assert.equal(res.body.nextCursor, null);
    const alice = res.body.jobs.find((j) => j.id === 'ls-alice-1')!;
    assert.deepEqual(Object.keys(alice), ['id', 'kind', 'status', 'progress', 'eta', 'tags', 'seq', 'createdAt', 'updatedAt', 'meta']);
    assert.deepEqual(alice.meta, { title: 'Report Q3' });
    assert.deepEqual(res.body.jobs.find((j) => j.id === 'ls-none-1')!.tags, []);
    assert.equal((await list('')).status, 401);
  });

  test('a tag token lists its tags only: no untagged or differently tagged job, no other tag', async () => {
    const alice = await server.token({ scope: 'progress:read', jobs: ['tag:user:alice'] });
    assert.deepEqual((await list(alice)).body.jobs.map((j) => j.id), ['ls-alice-2', 'ls-alice-1']);
    assert.deepEqual((await list(alice, '?tag=user:alice')).body.jobs.map((j) => j.id), ['ls-alice-2', 'ls-alice-1']);
    const other = await list(alice, '?tag=user:bob');
    assert.equal(other.status, 403);
    assert.equal(other.body.error.code, 'forbidden');
    assert.equal((await list(alice, '?tag=org:acme')).status, 403, 'a job of its own carries org:acme; the tag is still not granted');
    // Two tags: their union, a job carrying both listed once.
    const both = await server.token({ scope: 'progress:read', jobs: ['tag:user:alice', 'tag:org:acme'] });
    assert.deepEqual((await list(both)).body.jobs.map((j) => j.id), ['ls-acme-1', 'ls-alice-2', 'ls-alice-1']);
    // Id and prefix grants: the jobs they cover, checked one by one; a tag needs a tag grant or *.
    const ids = await server.token({ scope: 'progress:read', jobs: ['ls-bob-1', 'ls-none*'] });
    assert.deepEqual((await list(ids)).body.jobs.map((j) => j.id), ['ls-none-1', 'ls-bob-1']);
    assert.equal((await list(ids, '?tag=user:bob')).status, 403);
    // A token without read or write scope lists nothing.
    assert.equal((await list(await server.token({ scope: 'progress:retry', jobs: ['*'] }))).status, 403);
  });

  test('filters: status (a comma list), kind, tag together', async () => {
    const writer = await server.token({ scope: 'progress:write', jobs: ['*'] });
    assert.equal((await api(server, 'POST', '/v1/jobs/ls-bob-1/events', writer, { type: 'step_start', step: 'one' })).status, 202);
    assert.deepEqual((await list(all, '?status=running')).body.jobs.map((j) => j.id), ['ls-bob-1']);
    const queuedOrRunning = (await list(all, '?status=running,queued&limit=100')).body.jobs.map((j) => j.id);
    assert.ok(queuedOrRunning.includes('ls-bob-1') && queuedOrRunning.includes('ls-alice-1'));
    assert.deepEqual((await list(all, '?kind=export')).body.jobs.map((j) => j.id), ['ls-alice-2', 'ls-bob-1']);
    assert.deepEqual((await list(all, '?kind=export&tag=org:acme&status=queued')).body.jobs.map((j) => j.id), ['ls-alice-2']);
    assert.deepEqual((await list(all, '?tag=org:acme&status=completed')).body, { jobs: [], nextCursor: null });
  });

  test('bad parameters: 400 naming the parameter', async () => {
    const cases: Array<[string, RegExp]> = [
      ['?status=running,done', /^status must be/],
      ['?limit=0', /^limit must be/],
      ['?limit=101', /^limit must be/],
      ['?limit=ten', /^limit must be/],
      ['?tag=has%20space', /^tag must be/],
      ['?kind=a&kind=b', /^kind is given more than once/],
      ['?cursor=!!', /^cursor must be/],
      [`?cursor=${Buffer.from('nope').toString('base64url')}`, /^cursor must be/],
    ];
    for (const [query, message] of cases) {
      const res = await list(all, query);
      assert.equal(res.status, 400, query);
      assert.equal(res.body.error.code, 'bad_request');
      assert.match(res.body.error.message, message, query);
    }
  });

  test('pagination is exact while jobs are created concurrently: nothing skipped or shown twice', async () => {
    const writer = await server.token({ scope: 'progress:write', jobs: ['*'] });
    const make = (id: string) =>
      api(server, 'POST', '/v1/jobs', writer, { id, kind: 'page', steps: [{ id: 'a' }], tags: ['page:run'] }).then((r) => assert.equal(r.status, 201));
    for (let i = 0; i < 60; i++) await make(`pg-${String(i).padStart(3, '0')}`);
    const present = (await list(all, '?tag=page:run&limit=100')).body.jobs.map((j) => j.id);
    assert.equal(present.length, 60);

    // Page with limit 7 while a writer keeps creating jobs with the same tag.
    let stop = false;
    let created = 0;
    const writing = (async () => {
      while (!stop) await make(`pg-new-${created++}`);
    })();
    const seen: JobSummary[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await list(all, `?tag=page:run&limit=7${cursor ? `&cursor=${cursor}` : ''}`);
      assert.equal(res.status, 200);
      assert.ok(res.body.jobs.length <= 7);
      seen.push(...res.body.jobs);
      cursor = res.body.nextCursor;
      pages++;
      await new Promise((r) => setTimeout(r, 15)); // let inserts land between pages
    } while (cursor);
    stop = true;
    await writing;
    assert.ok(created > 5, `jobs were created while paging (${created})`);
    const ids = seen.map((j) => j.id);
    assert.equal(new Set(ids).size, ids.length, 'no job twice');
    for (const id of present) assert.ok(ids.includes(id), `${id} (present throughout) was listed`);
    for (let i = 1; i < seen.length; i++) {
      const [a, b] = [seen[i - 1]!, seen[i]!];
      assert.ok(a.createdAt > b.createdAt || (a.createdAt === b.createdAt && a.id > b.id), `order at ${i}: ${a.id} then ${b.id}`);
    }
    assert.ok(pages >= 9);
  });
});
