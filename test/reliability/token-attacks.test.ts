// Token attacks, against a server that accepts both HS256 (shared secret) and RS256 (a JWKS served
// by a local HTTP server), with an issuer configured. Proves: alg none, HS/RS confusion (the
// JWKS's public key used as an HMAC secret), a foreign RSA key claiming the JWKS's kid, a `jku`
// pointing at an attacker's key set, expired, not yet valid, wrong issuer, wrong audience,
// tampered payload, oversized, never-expiring (`exp: 1e308`) or too long-lived tokens (over
// PT_JWT_MAX_TTL, 24 h) and scopes given as an array or an `scp` claim are refused with 401 on HTTP and on the WebSocket
// upgrade (no socket); a valid token for another job gets 403 on HTTP and `forbidden` on
// subscribe; the attacker's JWKS is never fetched; and no token appears in the server's output.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { createPublicKey, createSign } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { exportJWK, exportPKCS8, exportSPKI, generateKeyPair, SignJWT, type JWK } from 'jose';
import { api, connectWs, mintTestToken, startServerProcess, UpgradeRefused, unsignedToken, type ServerProcess } from '../fixtures/reliability.js';

const ISSUER = 'https://issuer.test';
const AUD = 'progress-tracker';

async function serveJson(body: () => unknown): Promise<{ url: string; hits: () => number; close(): Promise<void> }> {
  let hits = 0;
  const server: Server = createServer((_req, res) => {
    hits++;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body()));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}/jwks.json`,
    hits: () => hits,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);
/** A JWS signed by hand (jose refuses to sign with a key whose algorithm differs). */
function signRaw(header: Record<string, unknown>, payload: Record<string, unknown>, digest: string, pkcs8: string): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${createSign(digest).update(input).sign(pkcs8).toString('base64url')}`;
}

describe('token attacks (HS256 secret + RS256 JWKS, issuer set)', () => {
  let server: ServerProcess;
  let jwks: Awaited<ReturnType<typeof serveJson>>;
  let attackerJwks: Awaited<ReturnType<typeof serveJson>>;
  let rsa: Awaited<ReturnType<typeof generateKeyPair>>;
  let publicJwk: JWK;
  const claims = () => ({ scope: 'progress:read progress:write', jobs: ['tok-a'] });

  /** Signs RS256 with the trusted key (kid "k1") unless told otherwise. */
  const rs256 = async (payload: Record<string, unknown>, opts: { key?: CryptoKey; header?: Record<string, unknown>; exp?: number; nbf?: number; iat?: number; iss?: string; aud?: string } = {}) => {
    let jwt = new SignJWT(payload)
      .setProtectedHeader({ alg: 'RS256', kid: 'k1', ...opts.header })
      .setIssuedAt(opts.iat)
      .setIssuer(opts.iss ?? ISSUER)
      .setAudience(opts.aud ?? AUD)
      .setExpirationTime(opts.exp ?? now() + 300);
    if (opts.nbf !== undefined) jwt = jwt.setNotBefore(opts.nbf);
    return jwt.sign(opts.key ?? rsa.privateKey);
  };
  const hs256 = (secret: string | Uint8Array, payload: Record<string, unknown>, header: Record<string, unknown> = {}) =>
    new SignJWT(payload)
      .setProtectedHeader({ alg: 'HS256', ...header })
      .setIssuedAt()
      .setIssuer(ISSUER)
      .setAudience(AUD)
      .setExpirationTime(now() + 300)
      .sign(typeof secret === 'string' ? new TextEncoder().encode(secret) : secret);

  before(async () => {
    rsa = await generateKeyPair('RS256', { extractable: true });
    publicJwk = { ...(await exportJWK(rsa.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
    jwks = await serveJson(() => ({ keys: [publicJwk] }));
    const attacker = await generateKeyPair('RS256', { extractable: true });
    const attackerJwk = { ...(await exportJWK(attacker.publicKey)), kid: 'evil', alg: 'RS256' };
    attackerJwks = await serveJson(() => ({ keys: [attackerJwk] }));
    (globalThis as { attackerKey?: CryptoKey }).attackerKey = attacker.privateKey;
    server = await startServerProcess({
      env: { PT_JWKS_URL: jwks.url, PT_JWT_ALGORITHMS: 'HS256,RS256', PT_JWT_ISSUER: ISSUER, PT_JWT_AUDIENCE: AUD, LOG_LEVEL: 'debug' },
    });
    const producer = await mintTestToken(server.secret, { scope: 'progress:write', jobs: ['*'], iss: ISSUER });
    for (const id of ['tok-a', 'tok-b']) {
      const res = await api(server, 'POST', '/v1/jobs', producer, { id, kind: 'tok', steps: [{ id: 'one' }] });
      assert.equal(res.status, 201, JSON.stringify(res.body));
    }
  });
  after(async () => {
    await server.stop();
    server.cleanup();
    await jwks.close();
    await attackerJwks.close();
  });

  test('valid tokens of both kinds are accepted (the control case)', async () => {
    for (const token of [await rs256(claims()), await mintTestToken(server.secret, { ...claims(), iss: ISSUER })]) {
      assert.equal((await api(server, 'GET', '/v1/jobs/tok-a', token)).status, 200);
      const ws = await connectWs(server, token);
      ws.send({ type: 'subscribe', jobId: 'tok-a' });
      assert.equal((await ws.next('snapshot')).job.id, 'tok-a');
      await ws.close();
    }
  });

  test('every forged, stale, misdirected or oversized token is refused on HTTP and on the upgrade; none is logged', async () => {
    const attackerKey = (globalThis as { attackerKey?: CryptoKey }).attackerKey!;
    const pem = await exportSPKI(rsa.publicKey);
    const der = createPublicKey(pem).export({ type: 'spki', format: 'der' });
    const valid = await rs256(claims());
    const [h, p, s] = valid.split('.');
    const tampered = `${h}.${b64({ ...JSON.parse(Buffer.from(p!, 'base64url').toString()), jobs: ['*'], scope: 'progress:read progress:write progress:retry' })}.${s}`;
    const attacks: Array<[string, string]> = [
      ['alg none', unsignedToken({ ...claims(), iss: ISSUER, aud: AUD, exp: now() + 300 })],
      ['alg none (upper case, empty signature)', `${b64({ alg: 'NONE' })}.${b64({ ...claims(), iss: ISSUER, aud: AUD, exp: now() + 300 })}.`],
      ['HS/RS confusion: HS256 keyed with the JWKS public key (PEM)', await hs256(pem, claims(), { kid: 'k1' })],
      ['HS/RS confusion: HS256 keyed with the JWKS public key (DER)', await hs256(new Uint8Array(der), claims(), { kid: 'k1' })],
      ['HS/RS confusion: HS256 keyed with the JWK modulus', await hs256(publicJwk.n!, claims(), { kid: 'k1' })],
      ['foreign RSA key claiming the trusted kid', await rs256(claims(), { key: attackerKey })],
      ['jku pointing at an attacker key set', await rs256(claims(), { key: attackerKey, header: { kid: 'evil', jku: attackerJwks.url } })],
      ['RS384 with the trusted key (not in the allow-list)', await signRaw({ alg: 'RS384', kid: 'k1' }, { ...claims(), iss: ISSUER, aud: AUD, exp: now() + 300 }, 'RSA-SHA384', await exportPKCS8(rsa.privateKey))],
      ['expired (beyond the 30 s tolerance)', await rs256(claims(), { exp: now() - 120 })],
      ['expired HS256', await mintTestToken(server.secret, { ...claims(), iss: ISSUER, expiresIn: -120 })],
      ['no exp', await mintTestToken(server.secret, { ...claims(), iss: ISSUER, expiresIn: null })],
      ['not yet valid (nbf in 10 minutes)', await rs256(claims(), { nbf: now() + 600 })],
      ['wrong issuer', await rs256(claims(), { iss: 'https://evil.test' })],
      ['no issuer', await mintTestToken(server.secret, claims())],
      ['wrong audience', await rs256(claims(), { aud: 'someone-else' })],
      ['HS256 with another secret', await mintTestToken('x'.repeat(48), { ...claims(), iss: ISSUER })],
      ['tampered payload (jobs widened, signature kept)', tampered],
      ['truncated signature', valid.slice(0, -5)],
      ['oversized (> 8 KiB)', await rs256({ ...claims(), pad: 'p'.repeat(9 * 1024) })],
      ['never expires (exp 1e308)', await rs256(claims(), { exp: 1e308 })],
      ['lives 30 days', await rs256(claims(), { exp: now() + 30 * 86_400 })],
      ['lives 30 days, HS256', await mintTestToken(server.secret, { ...claims(), iss: ISSUER, expiresIn: 30 * 86_400 })],
      ['issued 30 days ago, valid 5 more minutes', await rs256(claims(), { iat: now() - 30 * 86_400 })],
      ['scope as an array', await rs256({ ...claims(), scope: ['progress:read', 'progress:write'] })],
      ['scp claim instead of scope', await rs256({ jobs: ['tok-a'], scp: 'progress:read progress:write' })],
      ['scp array instead of scope', await rs256({ jobs: ['tok-a'], scp: ['progress:read', 'progress:write'] })],
      ['garbage', 'not.a.jwt'],
    ];
    for (const [name, token] of attacks) {
      const res = await api(server, 'GET', '/v1/jobs/tok-a', token);
      assert.equal(res.status, 401, `${name}: HTTP ${res.status} ${JSON.stringify(res.body)}`);
      assert.equal((res.body as { error: { code: string } }).error.code, 'unauthorized', name);
      const write = await api(server, 'POST', '/v1/jobs/tok-a/events', token, { type: 'step_start', step: 'one' });
      assert.equal(write.status, 401, `${name}: producer HTTP ${write.status}`);
      const refused = await connectWs(server, token).then(
        async (ws) => {
          await ws.close();
          return undefined;
        },
        (err: unknown) => err,
      );
      assert.ok(refused instanceof UpgradeRefused, `${name}: the WebSocket upgrade was accepted (${String(refused)})`);
      assert.equal(refused.status, 401, `${name}: upgrade answered ${refused.status}`);
    }
    // The job is untouched by all of it.
    const read = await mintTestToken(server.secret, { scope: 'progress:read', jobs: ['tok-a'], iss: ISSUER });
    assert.equal((await api(server, 'GET', '/v1/jobs/tok-a', read)).body.seq, 1);
    // The key set named by `jku` was never fetched (keys come from config only).
    assert.equal(attackerJwks.hits(), 0, 'the server fetched an attacker-supplied jku');
    assertNoTokenInOutput(server.output(), attacks.map(([, t]) => t));
  });

  test('a valid token for another job: 403 on HTTP, forbidden on subscribe and retry', async () => {
    const forB = await rs256({ scope: 'progress:read progress:write progress:retry', jobs: ['tok-b'] });
    const get = await api(server, 'GET', '/v1/jobs/tok-a', forB);
    assert.equal(get.status, 403);
    assert.equal((get.body as { error: { code: string } }).error.code, 'forbidden');
    assert.equal((await api(server, 'POST', '/v1/jobs/tok-a/events', forB, { type: 'step_start', step: 'one' })).status, 403);
    assert.equal((await api(server, 'POST', '/v1/jobs/tok-a/retry', forB, {})).status, 403);
    // Prefix grants do not leak to a longer id either.
    const prefix = await rs256({ scope: 'progress:read', jobs: ['tok-b*'] });
    assert.equal((await api(server, 'GET', '/v1/jobs/tok-a', prefix)).status, 403);
    const ws = await connectWs(server, forB);
    ws.send({ type: 'subscribe', jobId: 'tok-a' });
    const refused = await ws.next('error');
    assert.equal(refused.code, 'forbidden');
    ws.send({ type: 'retry', jobId: 'tok-a' });
    assert.equal((await ws.next('error')).code, 'forbidden');
    ws.send({ type: 'subscribe', jobId: 'tok-b' });
    assert.equal((await ws.next('snapshot')).job.id, 'tok-b');
    await ws.close();
    assertNoTokenInOutput(server.output(), [forB, prefix]);
  });
});

/** Neither a whole token nor its signature (the part that makes it usable) is in the logs. */
function assertNoTokenInOutput(output: string, tokens: string[]): void {
  assert.ok(output.length > 0, 'the server logged something');
  for (const token of tokens) {
    assert.ok(!output.includes(token), `a token appears in the server output: ${token.slice(0, 40)}…`);
    const signature = token.split('.')[2];
    if (signature && signature.length > 16) assert.ok(!output.includes(signature), 'a token signature appears in the server output');
    const payload = token.split('.')[1];
    if (payload && payload.length > 16) assert.ok(!output.includes(payload), 'a token payload appears in the server output');
  }
}
