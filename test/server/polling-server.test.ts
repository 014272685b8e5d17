/**
 * Polled jobs through the real server: `POST /v1/jobs` with a `source`, a real fake upstream,
 * and WebSocket subscribers that see the right steps, progress and completion. Real time, with
 * short steps and a short minimum interval so it stays quick.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import { startServer, type RunningServer } from '../../server/app/start-server.js';
import { createLogger } from '../../server/app/log.js';
import type { HttpJobSource, Job, ServerMessage } from '../../protocol/index.js';
import { FakeUpstream, MAPS, type UpstreamShape } from '../fixtures/fake-upstream.js';

const secret = randomBytes(32).toString('base64url');
const STEPS = [
  { name: 'init', durationMs: 600 },
  { name: 'analysis', durationMs: 1500 },
  { name: 'render', durationMs: 900 },
];

async function token(scope: string, jobs = ['*']): Promise<string> {
  return new SignJWT({ scope, jobs })
    .setProtectedHeader({ alg: 'HS256' })
    .setAudience('progress-tracker')
    .setExpirationTime('10m')
    .sign(new TextEncoder().encode(secret));
}

/** A WebSocket subscriber that records every job state it is sent. */
async function subscribe(server: RunningServer, jobId: string): Promise<{ states: Job[]; done: Promise<Job>; close(): void }> {
  const ws = new WebSocket(`${server.url.replace('http', 'ws')}/v1/ws?access_token=${await token('progress:read')}`);
  await new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject)));
  const states: Job[] = [];
  const done = new Promise<Job>((resolve, reject) => {
    ws.on('message', (data) => {
      const msg = JSON.parse(String(data)) as ServerMessage;
      if (msg.type === 'error') reject(new Error(`${msg.code}: ${msg.message}`));
      if (msg.type !== 'snapshot' && msg.type !== 'update') return;
      states.push(msg.job);
      if (msg.job.status === 'completed' || msg.job.status === 'failed') resolve(msg.job);
    });
  });
  ws.send(JSON.stringify({ type: 'subscribe', jobId }));
  return { states, done, close: () => ws.close() };
}

async function post(server: RunningServer, path: string, body: unknown): Promise<Response> {
  return fetch(`${server.url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${await token('progress:write progress:read progress:retry')}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

describe('polled jobs through the server', () => {
  let server: RunningServer;
  let upstream: FakeUpstream;
  before(async () => {
    upstream = new FakeUpstream();
    await upstream.start();
    server = await startServer({
      port: 0,
      jwtSecret: secret,
      jwtAlgorithms: ['HS256'],
      db: ':memory:',
      logger: createLogger('silent'),
      polling: { minIntervalMs: 100, maxIntervalMs: 400, unreachableAfterMs: 1000, backoffBaseMs: 100, backoffMaxMs: 300 },
    });
  });
  after(async () => {
    await server.close();
    await upstream.close();
  });

  const source = (id: string, shape: UpstreamShape, extra: Partial<HttpJobSource> = {}): HttpJobSource => ({
    type: 'http',
    url: upstream.statusUrl(id),
    map: MAPS[shape],
    headers: { Authorization: 'Bearer upstream-secret-123' },
    minIntervalMs: 250,
    maxIntervalMs: 1000,
    ...extra,
  });

  for (const shape of ['flat', 'stages', 'queue'] as const) {
    test(`${shape} shape: subscribers see each step, rising progress and completion; secrets never come back`, async () => {
      const id = `poll-${shape}`;
      upstream.addJob({ id, steps: STEPS, shape, result: { file: `${id}.zip` } });
      const res = await post(server, '/v1/jobs', { id, kind: 'render', steps: STEPS.map((s) => ({ id: s.name })), source: source(id, shape) });
      assert.equal(res.status, 201);
      const created = await res.text();
      assert.ok(!created.includes('upstream-secret-123'), 'the API never returns source headers');
      const a = await subscribe(server, id);
      const b = await subscribe(server, id);
      const final = await a.done;
      await b.done;
      a.close();
      b.close();
      assert.equal(final.status, 'completed');
      assert.equal(final.progress, 1);
      if (shape !== 'stages') assert.deepEqual(final.result, { file: `${id}.zip` });
      const running = a.states.map((j) => j.steps.find((s) => s.status === 'running')?.id).filter((x, i, all) => x && x !== all[i - 1]);
      assert.deepEqual(running, ['init', 'analysis', 'render'], 'every step was seen running, in order');
      for (let i = 1; i < a.states.length; i++) {
        assert.ok(a.states[i]!.seq > a.states[i - 1]!.seq, 'seq rises');
        assert.ok(a.states[i]!.progress >= a.states[i - 1]!.progress - 1e-9, 'progress never goes back');
      }
      assert.ok(a.states.some((j) => j.progress > 0 && j.progress < 1), 'in-between progress was shown');
      // One poll loop for the job, however many subscribers: about one poll per 250 ms at most.
      const polls = upstream.jobs.get(id)!.polls;
      assert.ok(polls <= 3000 / 250 + 4, `${polls} polls for a 3 s job watched by two sockets`);
      assert.ok(upstream.requests.filter((r) => r.jobId === id).every((r) => r.headers.authorization === 'Bearer upstream-secret-123'));
      const got = await fetch(`${server.url}/v1/jobs/${id}`, { headers: { authorization: `Bearer ${await token('progress:read')}` } });
      assert.ok(!(await got.text()).includes('upstream-secret'));
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      const counted = Number(/^pt_poll_requests_total (\d+)$/m.exec(metrics)?.[1]);
      assert.ok(counted >= polls, `/metrics counts the upstream polls (${counted} >= ${polls})`);
    });
  }

  test('a bad source is a 400 with a precise message, and no job', async () => {
    const res = await post(server, '/v1/jobs', {
      id: 'bad-source',
      kind: 'render',
      steps: [{ id: 'a' }],
      source: { type: 'http', url: 'ftp://example/x', map: { status: 'state' }, headers: { Authorization: 'secret-zzz' } },
    });
    assert.equal(res.status, 400);
    const body = (await res.json()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'bad_request');
    assert.match(body.error.message, /source.url must use http or https/);
    assert.ok(!JSON.stringify(body).includes('secret-zzz'));
    const missing = await post(server, '/v1/jobs', { id: 'bad-map', kind: 'r', steps: [{ id: 'a' }], source: { type: 'http', url: 'http://x/y', map: { sttaus: 'a' } } });
    assert.equal(missing.status, 400);
    assert.match(((await missing.json()) as { error: { message: string } }).error.message, /unknown field 'sttaus'/);
  });

  test('unreachable upstream → upstream_unreachable on the socket, then it recovers and completes', async () => {
    const id = 'poll-down';
    upstream.addJob({ id, steps: STEPS, shape: 'flat' });
    upstream.setFault({ type: 'reset' }, id);
    const res = await post(server, '/v1/jobs', { id, kind: 'render', steps: STEPS.map((s) => ({ id: s.name })), source: source(id, 'flat') });
    assert.equal(res.status, 201);
    const sub = await subscribe(server, id);
    const failed = await sub.done;
    assert.equal(failed.status, 'failed');
    assert.equal(failed.error?.code, 'upstream_unreachable');
    assert.equal(failed.error?.retryable, true);
    upstream.setFault(null, id);
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && sub.states.at(-1)!.status !== 'completed') await new Promise((r) => setTimeout(r, 100));
    sub.close();
    assert.equal(sub.states.at(-1)!.status, 'completed');
  });

  test('retry of an upstream failure reaches retryUrl and the job completes', async () => {
    const id = 'poll-retry';
    upstream.addJob({ id, steps: STEPS, shape: 'stages', failAt: { step: 1, fraction: 0.5, message: 'worker crashed' } });
    const res = await post(server, '/v1/jobs', { id, kind: 'render', steps: STEPS.map((s) => ({ id: s.name })), source: source(id, 'stages', { retryUrl: upstream.retryUrl(id) }) });
    assert.equal(res.status, 201);
    const sub = await subscribe(server, id);
    const failed = await sub.done;
    assert.equal(failed.error?.code, 'upstream_failed');
    assert.equal(failed.error?.step, 'analysis');
    const retry = await post(server, `/v1/jobs/${id}/retry`, {});
    assert.equal(retry.status, 202);
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && sub.states.at(-1)!.status !== 'completed') await new Promise((r) => setTimeout(r, 100));
    sub.close();
    assert.equal(upstream.jobs.get(id)!.retries.length, 1);
    assert.equal(upstream.jobs.get(id)!.retries[0]!.headers.authorization, 'Bearer upstream-secret-123');
    assert.equal(sub.states.at(-1)!.status, 'completed');
  });
});
