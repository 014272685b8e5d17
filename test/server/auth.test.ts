// Auth at the door: HTTP and WebSocket refuse missing, expired, forged, unsigned and mis-addressed
// tokens, tokens that live too long (PT_JWT_MAX_TTL, default 24 h) and scopes in another form than
// the `scope` string, and a disallowed Origin, before anything else happens. Authorization is per job.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { SignJWT } from 'jose';
import { ConfigError, loadConfig } from '../../server/app/config.js';
import { api, connectWs, createJob, mintTestToken, startServerProcess, unsignedToken, UpgradeRefused, type ServerProcess } from '../fixtures/server-process.js';

describe('auth', () => {
  let server: ServerProcess;
  let jobId: string;

  before(async () => {
    server = await startServerProcess({ env: { PT_ALLOWED_ORIGINS: 'https://app.example.com' } });
    jobId = (await createJob(server, { id: 'auth-job-1' })).id;
  });
  after(async () => {
    await server.stop();
    server.cleanup();
  });

  const refusedUpgrade = async (token: string | undefined, origin?: string) => {
    const err = await connectWs(server, token, origin !== undefined ? { origin } : {}).then(
      () => assert.fail('the upgrade should have been refused'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof UpgradeRefused, String(err));
    return err;
  };

  const badTokens = async (): Promise<Array<[string, string | undefined]>> => [
    ['missing', undefined],
    ['expired', await server.token({ expiresIn: -120 })],
    ['bad signature', await mintTestToken('another-secret-that-is-long-enough-0123456789', {})],
    ['alg none', unsignedToken({ scope: 'progress:read', jobs: ['*'], aud: 'progress-tracker', exp: Math.floor(Date.now() / 1000) + 300 })],
    ['wrong audience', await server.token({ aud: 'someone-else' })],
    ['no exp', await server.token({ expiresIn: null })],
    ['oversized', await server.token({ jobs: Array.from({ length: 800 }, (_, i) => `job-with-a-long-name-${i}`) })],
    ['exp 1e308 (never expires)', await signed(server.secret, { exp: 1e308 })],
    ['lifetime over 24 h', await server.token({ expiresIn: 25 * 3600 })],
    ['issued 2 days ago, valid 10 more minutes (lifetime over 24 h)', await signed(server.secret, { iat: now() - 2 * 86_400, exp: now() + 600 })],
    ['scope as an array', await signed(server.secret, { scope: ['progress:read'] })],
    ['scp claim', await signed(server.secret, { scope: undefined, scp: 'progress:read' })],
    ['scp claim beside scope', await signed(server.secret, { scp: ['progress:read'] })],
  ];

  test('WebSocket upgrade: empty, expired, bad signature, alg none, wrong audience, no exp, oversized, too long-lived, scope not a string → 401', async () => {
    // Without access_token the upgrade is accepted for first-message auth (ws-auth.test.ts); an empty one is refused.
    for (const [name, token] of (await badTokens()).map(([n, t]): [string, string] => [n, t ?? ''])) {
      const err = await refusedUpgrade(token);
      assert.equal(err.status, 401, name);
      assert.equal(JSON.parse(err.body).error.code, 'unauthorized', name);
    }
  });

  test('HTTP: the same tokens → 401 with {"error":{"code":"unauthorized"}}', async () => {
    for (const [name, token] of await badTokens()) {
      const res = await api(server, 'GET', `/v1/jobs/${jobId}`, token);
      assert.equal(res.status, 401, name);
      assert.equal(res.body.error.code, 'unauthorized', name);
      assert.equal(typeof res.body.error.message, 'string');
    }
  });

  test('the refusals say why: lifetime, implausible exp, scope form', async () => {
    const reason = async (token: string) => ((await api(server, 'GET', `/v1/jobs/${jobId}`, token)).body as { error: { message: string } }).error.message;
    assert.match(await reason(await signed(server.secret, { exp: 1e308 })), /"exp" is too far in the future.*at most 86400 s/);
    assert.match(await reason(await signed(server.secret, { iat: now() - 2 * 86_400, exp: now() + 600 })), /lifetime \(exp - iat\) is longer than this server accepts/);
    assert.match(await reason(await signed(server.secret, { scope: ['progress:read'] })), /"scope" must be a space-separated string/);
    assert.match(await reason(await signed(server.secret, { scope: undefined, scp: 'progress:read' })), /"scp" is not accepted/);
  });

  test('tokens up to 24 h are accepted, and without iat too', async () => {
    for (const token of [
      await server.token({ expiresIn: 24 * 3600 }),
      await signed(server.secret, { iat: undefined, exp: now() + 23 * 3600 }),
      await signed(server.secret, { iat: now() - 23 * 3600, exp: now() + 3600 }),
    ]) {
      assert.equal((await api(server, 'GET', `/v1/jobs/${jobId}`, token)).status, 200);
      const ws = await connectWs(server, token);
      await ws.close();
    }
  });

  test('WebSocket upgrade from a disallowed Origin → 403, allowed Origin → open', async () => {
    const token = await server.token({ scope: 'progress:read', jobs: [jobId] });
    const err = await refusedUpgrade(token, 'https://evil.example.com');
    assert.equal(err.status, 403);
    assert.equal(JSON.parse(err.body).error.code, 'forbidden');
    const ok = await connectWs(server, token, { origin: 'https://app.example.com' });
    await ok.close();
  });

  test('subscribing to a job outside the jobs claim → forbidden; inside → snapshot', async () => {
    const other = await createJob(server, { id: 'auth-other-job' });
    const ws = await connectWs(server, await server.token({ scope: 'progress:read', jobs: ['auth-job-*'] }));
    ws.send({ type: 'subscribe', jobId: other.id });
    const refused = await ws.next('error');
    assert.equal(refused.code, 'forbidden');
    assert.equal(refused.jobId, other.id);
    ws.send({ type: 'subscribe', jobId });
    const snap = await ws.next('snapshot');
    assert.equal(snap.job.id, jobId);
    await ws.close();
  });

  test('scopes are checked per action: read cannot post events or retry', async () => {
    const read = await server.token({ scope: 'progress:read', jobs: ['*'] });
    assert.equal((await api(server, 'POST', `/v1/jobs/${jobId}/events`, read, { type: 'step_start', step: 'one' })).status, 403);
    assert.equal((await api(server, 'POST', `/v1/jobs/${jobId}/retry`, read, {})).status, 403);
    assert.equal((await api(server, 'POST', '/v1/jobs', read, { kind: 'x', steps: [{ id: 'a' }] })).status, 403);
    const ws = await connectWs(server, read);
    ws.send({ type: 'retry', jobId });
    assert.equal((await ws.next('error')).code, 'forbidden');
    await ws.close();
  });

  test('tokens never appear in the logs', async () => {
    const token = await server.token({ expiresIn: -120 });
    await refusedUpgrade(token);
    await api(server, 'GET', `/v1/jobs/${jobId}`, token);
    assert.ok(!server.output().includes(token.split('.')[2]!), 'a token signature was logged');
    assert.match(server.output(), /auth failure/);
  });
});

describe('PT_JWT_MAX_TTL', () => {
  test('a shorter maximum: a 2 h token is refused, a 30 min one accepted', async () => {
    const server = await startServerProcess({ env: { PT_JWT_MAX_TTL: '1h' } });
    try {
      await createJob(server, { id: 'ttl-1' });
      const long = await api(server, 'GET', '/v1/jobs/ttl-1', await server.token({ expiresIn: 2 * 3600 }));
      assert.equal(long.status, 401);
      assert.match(long.body.error.message, /at most 3600 s/);
      assert.equal((await api(server, 'GET', '/v1/jobs/ttl-1', await server.token({ expiresIn: 1800 }))).status, 200);
    } finally {
      await server.stop();
      server.cleanup();
    }
  });

  test('it is a duration of at least 1 s; the flag wins over the variable', () => {
    const env = { PT_JWT_SECRET: 'a-test-secret-that-is-long-enough-0123456789' };
    assert.equal(loadConfig(env).jwtMaxTtlMs, 86_400_000);
    assert.equal(loadConfig({ ...env, PT_JWT_MAX_TTL: '15m' }).jwtMaxTtlMs, 900_000);
    assert.equal(loadConfig({ ...env, PT_JWT_MAX_TTL: '15m' }, ['--jwt-max-ttl', '2h']).jwtMaxTtlMs, 7_200_000);
    for (const bad of ['0', '500ms', 'forever']) {
      assert.throws(
        () => loadConfig({ ...env, PT_JWT_MAX_TTL: bad }),
        (err: unknown) => err instanceof ConfigError && /PT_JWT_MAX_TTL \(--jwt-max-ttl\)/.test(err.message),
        bad,
      );
    }
  });
});

describe('token expiry on a live connection', () => {
  test('the socket is closed with 4001 when its token expires', async () => {
    const server = await startServerProcess();
    try {
      // jose allows 30 s of clock skew on exp; the live connection is closed at exp itself.
      const ws = await connectWs(server, await server.token({ scope: 'progress:read', jobs: ['*'], expiresIn: 1 }));
      const { code, reason } = await ws.closed;
      assert.equal(code, 4001);
      assert.match(reason, /expired/);
    } finally {
      await server.stop();
      server.cleanup();
    }
  });
});

const now = () => Math.floor(Date.now() / 1000);

/** An HS256 token with these claims over the defaults (read+write on every job, audience, iat now, exp in 5 min); undefined removes a claim. */
function signed(secret: string, claims: Record<string, unknown>): Promise<string> {
  const payload: Record<string, unknown> = { scope: 'progress:read progress:write', jobs: ['*'], aud: 'progress-tracker', iat: now(), exp: now() + 300, ...claims };
  for (const [k, v] of Object.entries(payload)) if (v === undefined) delete payload[k];
  return new SignJWT(payload).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(new TextEncoder().encode(secret));
}
