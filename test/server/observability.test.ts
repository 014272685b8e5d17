// Operating the server: `progress-tracker token`, the warning about unknown PT_* variables, auth
// errors that name what was expected, lifecycle and request log lines (never a token), and a
// /metrics that `promtool check metrics` accepts, with the event latency histograms.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { decodeJwt } from 'jose';
import { ROOT, api, connectWs, createJob, startServerProcess, waitFor, type ServerProcess } from '../fixtures/server-process.js';

const SECRET = 'observability-test-secret-0123456789-abcdefgh';

function cli(args: string[], env: Record<string, string>) {
  const res = spawnSync(process.execPath, [join(ROOT, 'bin', 'progress-tracker.js'), ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', ...env },
    encoding: 'utf8',
    timeout: 15_000,
  });
  return { code: res.status, stdout: res.stdout, stderr: res.stderr };
}

/** The server's JSON log lines. */
function logLines(server: ServerProcess): Array<Record<string, unknown>> {
  return server
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('progress-tracker token', () => {
  let server: ServerProcess;
  before(async () => {
    server = await startServerProcess({ secret: SECRET, env: { PT_JWT_ISSUER: 'https://issuer.example', PT_FOO: 'bar' } });
  });
  after(async () => {
    await server.stop();
    server.cleanup();
  });

  test('prints a token that verifies against a server with the same secret and carries the claims', async () => {
    const out = cli(['token', '--scope', 'progress:write progress:read', '--jobs', '*', '--ttl', '1h', '--sub', 'alice'], {
      PT_JWT_SECRET: SECRET,
      PT_JWT_ISSUER: 'https://issuer.example',
    });
    assert.equal(out.code, 0, out.stderr);
    const token = out.stdout.trim();
    const claims = decodeJwt(token);
    assert.equal(claims.scope, 'progress:write progress:read');
    assert.deepEqual(claims.jobs, ['*']);
    assert.equal(claims.sub, 'alice');
    assert.equal(claims.aud, 'progress-tracker');
    assert.equal(claims.iss, 'https://issuer.example');
    assert.equal(claims.exp! - claims.iat!, 3600);
    const created = await api(server, 'POST', '/v1/jobs', token, { id: 'tok-1', kind: 'cli', steps: [{ id: 'a' }] });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal((await api(server, 'GET', '/v1/jobs/tok-1', token)).status, 200);
  });

  test('refuses without PT_JWT_SECRET, with an unknown scope or a ttl over PT_JWT_MAX_TTL', () => {
    const none = cli(['token', '--scope', 'progress:read', '--jobs', '*'], {});
    assert.equal(none.code, 2);
    assert.match(none.stderr, /PT_JWT_SECRET/);
    assert.equal(none.stdout, '');
    const scope = cli(['token', '--scope', 'progress:admin', '--jobs', '*'], { PT_JWT_SECRET: SECRET });
    assert.equal(scope.code, 2);
    assert.match(scope.stderr, /unknown scope "progress:admin"/);
    const long = cli(['token', '--scope', 'progress:read', '--jobs', '*', '--ttl', '48h'], { PT_JWT_SECRET: SECRET });
    assert.equal(long.code, 2);
    assert.match(long.stderr, /PT_JWT_MAX_TTL/);
  });

  test('a token for another audience or issuer is refused naming the expected one, without echoing the token', async () => {
    const wrongAud = cli(['token', '--scope', 'progress:read', '--jobs', '*', '--aud', 'someone-else', '--iss', 'https://issuer.example'], { PT_JWT_SECRET: SECRET });
    assert.equal(wrongAud.code, 0, wrongAud.stderr);
    const audToken = wrongAud.stdout.trim();
    const res = await api<{ error: { message: string } }>(server, 'GET', '/v1/jobs/tok-1', audToken);
    assert.equal(res.status, 401);
    assert.match(res.body.error.message, /expects "progress-tracker"/);
    assert.match(res.body.error.message, /audience/);
    assert.ok(!res.body.error.message.includes(audToken));

    const wrongIss = cli(['token', '--scope', 'progress:read', '--jobs', '*', '--iss', 'https://other.example'], { PT_JWT_SECRET: SECRET });
    const issRes = await api<{ error: { message: string } }>(server, 'GET', '/v1/jobs/tok-1', wrongIss.stdout.trim());
    assert.equal(issRes.status, 401);
    assert.match(issRes.body.error.message, /issuer .*expects "https:\/\/issuer\.example"/);
    for (const line of server.output().split('\n')) {
      assert.ok(!line.includes(audToken) && !line.includes(wrongIss.stdout.trim()), `a log line holds a token: ${line}`);
    }
  });

  test('an unknown PT_* variable is warned about at start', () => {
    const warning = logLines(server).find((l) => l.variable === 'PT_FOO');
    assert.ok(warning, server.output());
    assert.equal(warning.level, 40);
    assert.match(String(warning.msg), /unknown environment variable PT_FOO/);
    // Known ones are not.
    assert.ok(!logLines(server).some((l) => l.variable === 'PT_JWT_ISSUER'));
  });
});

describe('logs', () => {
  let server: ServerProcess;
  before(async () => {
    server = await startServerProcess({ env: { LOG_LEVEL: 'debug' } });
  });
  after(async () => {
    await server.stop();
    server.cleanup();
  });

  test('one info line per lifecycle change, debug lines per request and change, never a token or a body', async () => {
    const write = await server.token({ scope: 'progress:write progress:read progress:retry progress:cancel', jobs: ['*'] });
    const post = (id: string, body: unknown) => api(server, 'POST', `/v1/jobs/${id}/events`, write, body);
    await createJob(server, { id: 'log-ok', kind: 'render', steps: [{ id: 'a' }] });
    await post('log-ok', [{ type: 'step_start', step: 'a' }, { type: 'progress', step: 'a', progress: 0.5, message: 'SECRET-BODY-TEXT' }]);
    await post('log-ok', { type: 'step_end', step: 'a' });
    await post('log-ok', { type: 'job_end', status: 'completed', result: { note: 'SECRET-RESULT' } });

    await createJob(server, { id: 'log-fail', kind: 'ingest', steps: [{ id: 'a' }, { id: 'b' }] });
    await post('log-fail', { type: 'step_start', step: 'a' });
    await post('log-fail', { type: 'step_failed', step: 'a', error: { code: 'upstream_down', message: 'SECRET-ERROR-TEXT' } });
    assert.equal((await api(server, 'POST', '/v1/jobs/log-fail/retry', write, {})).status, 202);

    await createJob(server, { id: 'log-cancel', kind: 'export', steps: [{ id: 'a' }] });
    await post('log-cancel', { type: 'step_start', step: 'a' });
    assert.equal((await api(server, 'POST', '/v1/jobs/log-cancel/cancel', write, { reason: 'SECRET-REASON' })).status, 202);
    await post('log-cancel', { type: 'job_end', status: 'canceled' });
    await api(server, 'GET', `/v1/jobs/log-ok?access_token=${write}`);

    const lines = await waitFor(() => {
      const all = logLines(server);
      return all.some((l) => l.jobId === 'log-cancel' && l.event === 'canceled') ? all : undefined;
    });
    const events = (id: string) => lines.filter((l) => l.jobId === id && l.level === 30).map((l) => l.event);
    assert.deepEqual(events('log-ok'), ['created', 'started', 'completed']);
    assert.deepEqual(events('log-fail'), ['created', 'started', 'failed', 'retry requested']);
    assert.deepEqual(events('log-cancel'), ['created', 'started', 'cancel requested', 'canceled']);
    const completed = lines.find((l) => l.jobId === 'log-ok' && l.event === 'completed')!;
    assert.equal(completed.kind, 'render');
    assert.equal(typeof completed.seq, 'number');
    assert.equal(typeof completed.ageMs, 'number');
    assert.equal(typeof completed.runMs, 'number');
    assert.equal(completed.msg, 'job completed');
    const failed = lines.find((l) => l.jobId === 'log-fail' && l.event === 'failed')!;
    assert.equal(failed.errorCode, 'upstream_down');

    // debug: one line per HTTP request (method, path without the query, status, time) and per accepted change.
    const requests = lines.filter((l) => l.msg === 'http request');
    const eventsPost = requests.find((l) => l.path === '/v1/jobs/log-ok/events' && l.method === 'POST');
    assert.ok(eventsPost, 'request line for POST /v1/jobs/log-ok/events');
    assert.equal(eventsPost.status, 202);
    assert.equal(typeof eventsPost.ms, 'number');
    // The query string (here with a token in it) is never part of the line.
    const get = requests.find((l) => String(l.path).startsWith('/v1/jobs/log-ok') && l.method === 'GET');
    assert.ok(get, 'request line for GET /v1/jobs/log-ok');
    assert.equal(get.path, '/v1/jobs/log-ok');
    assert.equal(typeof get.status, 'number');
    assert.ok(lines.some((l) => l.jobId === 'log-ok' && l.level === 20 && l.msg === 'job changed'));

    const output = server.output();
    assert.ok(!output.includes(write), 'no token in any log line');
    for (const text of ['SECRET-BODY-TEXT', 'SECRET-RESULT', 'SECRET-ERROR-TEXT', 'SECRET-REASON']) assert.ok(!output.includes(text), `${text} logged`);
  });
});

describe('stall log lines', () => {
  let server: ServerProcess;
  before(async () => {
    server = await startServerProcess({ env: { PT_STALL_AFTER: '1s', PT_STALL_FAIL_AFTER: '0' } });
  });
  after(async () => {
    await server.stop();
    server.cleanup();
  });

  test('a job its producer went silent about gets one info line when it stalls and one when it resumes', async () => {
    const write = await server.token({ scope: 'progress:write', jobs: ['*'] });
    await createJob(server, { id: 'log-stall', kind: 'crawl', steps: [{ id: 'a' }] });
    assert.equal((await api(server, 'POST', '/v1/jobs/log-stall/events', write, { type: 'step_start', step: 'a' })).status, 202);
    const stalled = await waitFor(() => logLines(server).find((l) => l.jobId === 'log-stall' && l.event === 'stalled'), 8000, 'stalled line');
    assert.equal(stalled.level, 30);
    assert.equal(stalled.kind, 'crawl');
    assert.equal(typeof stalled.seq, 'number');
    assert.ok(Number(stalled.silentMs) >= 900, `silentMs ${stalled.silentMs}`);
    assert.equal((await api(server, 'POST', '/v1/jobs/log-stall/events', write, { type: 'progress', step: 'a', progress: 0.5 })).status, 202);
    await waitFor(() => logLines(server).find((l) => l.jobId === 'log-stall' && l.event === 'resumed'), 5000, 'resumed line');
    assert.equal(logLines(server).filter((l) => l.jobId === 'log-stall' && l.event === 'stalled').length, 1);
  });
});

describe('/metrics', () => {
  let server: ServerProcess;
  before(async () => {
    server = await startServerProcess();
  });
  after(async () => {
    await server.stop();
    server.cleanup();
  });

  test('passes `promtool check metrics` after some traffic, with the event latency histograms', async () => {
    const which = spawnSync('sh', ['-c', 'command -v promtool'], { encoding: 'utf8' });
    assert.equal(which.status, 0, 'promtool is missing: apt-get install -y prometheus (npm test provisions it)');
    const token = await server.token({ scope: 'progress:write progress:read', jobs: ['*'] });
    const ws = await connectWs(server, token);
    await createJob(server, { id: 'm-1', steps: [{ id: 'a' }] });
    ws.send({ type: 'subscribe', jobId: 'm-1' });
    await ws.next('snapshot');
    assert.equal((await api(server, 'POST', '/v1/jobs/m-1/events', token, { type: 'step_start', step: 'a' })).status, 202);
    for (let i = 1; i <= 4; i++) {
      assert.equal((await api(server, 'POST', '/v1/jobs/m-1/events', token, { type: 'progress', step: 'a', progress: i / 10 })).status, 202);
    }
    await ws.next('update');
    await api(server, 'GET', '/v1/jobs/nope', token);
    await ws.close();

    const text = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(text, /^# TYPE pt_event_commit_seconds histogram$/m);
    assert.match(text, /^pt_event_commit_seconds_count 5$/m);
    assert.match(text, /^pt_event_publish_seconds_bucket\{le="\+Inf"\} 5$/m);
    const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.equal(check.status, 0, `promtool check metrics:\n${check.stdout}${check.stderr}`);
    assert.equal(check.stdout + check.stderr, '', 'no lint findings');

    // Every metric is documented in docs/metrics.md's table.
    const doc = readFileSync(join(ROOT, 'docs', 'metrics.md'), 'utf8');
    const names = [...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!);
    assert.ok(names.length > 20);
    for (const name of names) assert.ok(doc.includes(`| \`${name}\` |`), `${name} is not in docs/metrics.md`);
  });
});
