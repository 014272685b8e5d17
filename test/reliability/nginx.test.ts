// Behind a real reverse proxy: Debian's nginx, configured with the block docs/deployment.md prints,
// terminating TLS with a self-signed certificate in front of the real server. The HTTP API,
// polling, HTTP/1.0 clients, wss://, SSE and a page in Chromium that trusts only this certificate,
// all through nginx; plus what the proxy must not let through (a client's X-Forwarded-For, tokens
// into the access log).
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium, type Browser } from 'playwright-core';
import WebSocket from 'ws';
import type { Job, ServerMessage } from '../../protocol/index.js';
import {
  freePort,
  httpsRequest,
  makeSelfSignedCert,
  openHttpsSse,
  rawExchange,
  startNginx,
  type Nginx,
  type TestCert,
} from '../fixtures/nginx.js';
import { CHROMIUM_ARGS, CHROMIUM_PATH, eventually, startServerProcess, type ServerProcess } from '../fixtures/reliability.js';

const STEPS = ['fetch', 'build', 'ship'];
/** The producer's events for a job, start to completed. */
const SCRIPT = [
  ...STEPS.flatMap((step) => [
    { type: 'step_start', step },
    { type: 'progress', step, progress: 0.5 },
    { type: 'step_end', step },
  ]),
  { type: 'job_end', status: 'completed' },
];

describe('behind nginx (TLS, docs/deployment.md configuration)', () => {
  let dir: string;
  let cert: TestCert;
  let server: ServerProcess;
  let proxy: Nginx;
  let browser: Browser | undefined;
  let write: string;
  let read: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pt-nginx-'));
    cert = makeSelfSignedCert(dir);
    // nginx's port first: the server allows exactly the page's origin.
    const httpsPort = await freePort();
    server = await startServerProcess({
      env: { PT_TRUST_PROXY: '1', PT_ALLOWED_ORIGINS: `https://127.0.0.1:${httpsPort}`, PT_ETA_TICK: '0', LOG_LEVEL: 'debug' },
    });
    mkdirSync(join(dir, 'www'));
    proxy = await startNginx({
      dir,
      upstreamPort: server.port,
      cert,
      httpsPort,
      // The test page, served by nginx itself on the same https origin.
      extraTlsServer: `    location = /__test/page.html { alias ${join(dir, 'www', 'page.html')}; }`,
    });
    write = await server.token({ scope: 'progress:write', jobs: ['*'], expiresIn: 600 });
    read = await server.token({ scope: 'progress:read', jobs: ['*'], expiresIn: 600 });
  });

  after(async () => {
    await browser?.close();
    await proxy?.stop();
    await server?.stop();
    server?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Says where a failure came from: nginx's error log and the server's output, trimmed. */
  const context = () => `\n--- nginx ---\n${proxy.output().slice(-2000)}\n--- server ---\n${server.output().slice(-2000)}`;

  const call = (method: string, path: string, token?: string, body?: unknown, headers: Record<string, string> = {}) =>
    httpsRequest(proxy.origin + path, {
      method,
      ca: cert.pem,
      body,
      headers: { ...(token && { authorization: `Bearer ${token}` }), ...headers },
      timeoutMs: 5000,
    }).catch((err: Error) => {
      // The classic cause: a location without proxy_http_version 1.1 (uWS never answers HTTP/1.0).
      throw new Error(`${method} ${path} through nginx: ${err.message} (is proxy_http_version 1.1 set in every location?)${context()}`);
    });

  async function createJob(id: string): Promise<Job> {
    const res = await call('POST', '/v1/jobs', write, { id, kind: 'nginx', steps: STEPS.map((s) => ({ id: s })) });
    assert.equal(res.status, 201, `POST /v1/jobs through nginx: ${res.status} ${res.text}${context()}`);
    return res.json as Job;
  }

  async function postEvent(id: string, event: unknown): Promise<number> {
    const res = await call('POST', `/v1/jobs/${id}/events`, write, event);
    assert.equal(res.status, 202, `POST /v1/jobs/${id}/events through nginx: ${res.status} ${res.text}${context()}`);
    return (res.json as { seq: number }).seq;
  }

  test('HTTP API over https: create, events, polling with ETag → 304', async () => {
    const job = await createJob('ng-api');
    assert.equal(job.seq, 1);
    const first = await call('GET', '/v1/jobs/ng-api', read);
    assert.equal(first.status, 200, `poll: ${first.status} ${first.text}`);
    const etag = first.headers.etag as string;
    assert.ok(etag, `poll: no ETag came through nginx (headers ${JSON.stringify(first.headers)})`);
    const same = await call('GET', '/v1/jobs/ng-api', read, undefined, { 'if-none-match': etag });
    assert.equal(same.status, 304, `an unchanged job polled with If-None-Match: ${same.status} ${same.text}`);
    const seq = await postEvent('ng-api', SCRIPT[0]);
    assert.equal(seq, 2);
    const changed = await call('GET', '/v1/jobs/ng-api', read, undefined, { 'if-none-match': etag });
    assert.equal(changed.status, 200, 'a changed job polled with the old ETag');
    assert.equal((changed.json as Job).status, 'running');
    assert.notEqual(changed.headers.etag, etag);
    // Errors keep the server's JSON bodies through nginx.
    const denied = await call('GET', '/v1/jobs/ng-api');
    assert.equal(denied.status, 401);
    assert.equal((denied.json as { error: { code: string } } | undefined)?.error.code, 'unauthorized', `401 body through nginx: ${denied.text}`);
  });

  test('HTTP/1.0 clients are answered by nginx (the server alone never answers them); http:// redirects; /metrics stays private', async () => {
    await createJob('ng-10');
    const health = await rawExchange(proxy.httpsPort, 'GET /healthz HTTP/1.0\r\n\r\n', { ca: cert.pem });
    assert.ok(health.closed, `GET /healthz HTTP/1.0 through nginx: the connection stayed open; received ${JSON.stringify(health.received)}${context()}`);
    assert.match(health.received, /^HTTP\/1\.[01] 200 /, `GET /healthz HTTP/1.0 through nginx: ${JSON.stringify(health.received.slice(0, 300))}${context()}`);
    assert.match(health.received, /\r\n\r\n\{"status":"ok"/, 'the health body');

    const body = JSON.stringify(SCRIPT[0]);
    const post = await rawExchange(
      proxy.httpsPort,
      `POST /v1/jobs/ng-10/events HTTP/1.0\r\nHost: localhost\r\nAuthorization: Bearer ${write}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      { ca: cert.pem },
    );
    assert.match(post.received, /^HTTP\/1\.[01] 202 /, `POST events over HTTP/1.0 through nginx: ${JSON.stringify(post.received.slice(0, 300))}`);
    assert.match(post.received, /"seq":2/);

    // The limitation the proxy works around (docs/deployment.md, "The server does not answer HTTP/1.0").
    const direct = await rawExchange(server.port, 'GET /healthz HTTP/1.0\r\n\r\n', { timeoutMs: 1000 });
    assert.equal(
      direct.received,
      '',
      'the server answered HTTP/1.0 directly: uWebSockets.js changed, so update "The server does not answer HTTP/1.0" in docs/deployment.md',
    );

    const plain = await rawExchange(proxy.httpPort, 'GET /v1/jobs/ng-10 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    assert.match(plain.received, /^HTTP\/1\.1 301 /, `plain http://: ${plain.received.slice(0, 200)}`);
    assert.match(plain.received, /\r\nLocation: https:\/\/127\.0\.0\.1\/v1\/jobs\/ng-10\r\n/);

    const metrics = await call('GET', '/metrics');
    assert.equal(metrics.status, 404, '/metrics through nginx');
    assert.doesNotMatch(metrics.text, /pt_/);
  });

  test('wss:// and SSE from Node: each update comes through promptly (nothing buffered)', async () => {
    await createJob('ng-live');
    const streamUrl = `${proxy.origin}/v1/jobs/ng-live/stream?access_token=${encodeURIComponent(read)}`;
    const sse = await openHttpsSse(streamUrl, { ca: cert.pem });
    assert.equal(sse.status, 200, `SSE through nginx: ${sse.status}${context()}`);
    assert.match(String(sse.headers['content-type']), /^text\/event-stream/);
    assert.equal((await sse.next('snapshot')).data.type, 'snapshot');

    const ws = new WebSocket(`wss://127.0.0.1:${proxy.httpsPort}/v1/ws?access_token=${encodeURIComponent(read)}`, { ca: cert.pem });
    const wsMessages: Array<{ msg: ServerMessage; at: number }> = [];
    const wsWaiters = new Set<() => void>();
    ws.on('message', (data) => {
      wsMessages.push({ msg: JSON.parse(data.toString()) as ServerMessage, at: Date.now() });
      wsWaiters.forEach((w) => w());
    });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`wss:// upgrade through nginx refused: HTTP ${res.statusCode}${context()}`)));
      ws.once('error', (err) => reject(new Error(`wss:// through nginx: ${err.message}${context()}`)));
    });
    const wsNext = (type: ServerMessage['type'], timeoutMs = 3000) =>
      new Promise<{ msg: ServerMessage; at: number }>((resolve, reject) => {
        const check = () => {
          const i = wsMessages.findIndex((m) => m.msg.type === type);
          if (i < 0) return;
          wsWaiters.delete(check);
          clearTimeout(timer);
          resolve(wsMessages.splice(i, 1)[0]!);
        };
        const timer = setTimeout(() => {
          wsWaiters.delete(check);
          reject(new Error(`wss:// through nginx: no ${type} within ${timeoutMs} ms`));
        }, timeoutMs);
        wsWaiters.add(check);
        check();
      });
    ws.send(JSON.stringify({ type: 'subscribe', jobId: 'ng-live' }));
    await wsNext('snapshot');

    // One event at a time: each must arrive on both before the next is sent. A buffering proxy
    // holds small SSE writes back until its buffer fills or the stream ends.
    for (const event of SCRIPT) {
      const sent = Date.now();
      const seq = await postEvent('ng-live', event);
      const [viaSse, viaWs] = await Promise.all([sse.next('update', 3000), wsNext('update')]);
      for (const [name, got] of [['SSE', viaSse.data], ['wss://', viaWs.msg]] as const) {
        assert.equal(got.type === 'update' && got.job.seq, seq, `${name}: the update for ${JSON.stringify(event)}`);
      }
      const slowest = Math.max(viaSse.at, viaWs.at) - sent;
      assert.ok(slowest < 1500, `${JSON.stringify(event)} took ${slowest} ms to come through nginx`);
    }
    sse.close();
    ws.close();
  });

  test('Chromium trusting only this certificate: an https:// page gets the job to its final state over wss://, EventSource and polling', async () => {
    await createJob('ng-page');
    writeFileSync(join(dir, 'www', 'page.html'), pageHtml('ng-page', read));
    browser = await chromium.launch({
      executablePath: CHROMIUM_PATH,
      // Trusts this one certificate (by its public key) and nothing else the system store lacks.
      args: [...CHROMIUM_ARGS, `--ignore-certificate-errors-spki-list=${cert.spkiSha256}`],
    });
    const tab = await browser.newPage();
    const pageErrors: string[] = [];
    tab.on('pageerror', (err) => pageErrors.push(err.message));
    const response = await tab.goto(`${proxy.origin}/__test/page.html`).catch((err: Error) => {
      throw new Error(`Chromium could not load the page from nginx over https (certificate not trusted?): ${err.message}`);
    });
    assert.equal(response?.status(), 200, `the test page from nginx${context()}`);
    type PageState = {
      secure: boolean;
      protocol: string;
      ws: { status?: string; seq: number; errors: string[]; closed?: number };
      sse: { status?: string; seq: number; errors: string[] };
      poll: { status?: string; seq: number; ok: number; notModified: number; errors: string[] };
    };
    const state = () => tab.evaluate(() => (window as unknown as { pt: PageState }).pt);
    const show = async () => `${JSON.stringify(await state())}; page errors ${JSON.stringify(pageErrors)}${context()}`;
    let detail = '';
    await eventually(
      async () => {
        const s = await state();
        detail = JSON.stringify(s);
        return s.ws.seq >= 1 && s.sse.seq >= 1 && s.poll.seq >= 1;
      },
      10_000,
      'the page to see the job over wss://, EventSource and polling',
      () => `${detail}; page errors ${JSON.stringify(pageErrors)}${context()}`,
    );
    const initial = await state();
    assert.equal(initial.secure, true, 'the page is a secure context');
    assert.equal(initial.protocol, 'h2', 'the page came over HTTP/2 (listen … ssl http2)');

    let finalSeq = 0;
    for (const event of SCRIPT) {
      finalSeq = await postEvent('ng-page', event);
      await new Promise((r) => setTimeout(r, 40));
    }
    await eventually(
      async () => {
        const s = await state();
        detail = JSON.stringify(s);
        return [s.ws, s.sse, s.poll].every((t) => t.status === 'completed' && t.seq === finalSeq) && s.poll.notModified > 0;
      },
      10_000,
      `all three transports in the page to reach completed at seq ${finalSeq} (and polling to see a 304)`,
      () => `${detail}; page errors ${JSON.stringify(pageErrors)}${context()}`,
    );
    const end = await state();
    assert.deepEqual([end.ws.errors, end.sse.errors, end.poll.errors], [[], [], []], await show());
    await tab.close();
  });

  test("a client's own X-Forwarded-For does not reach the server: it sees the address nginx saw", async () => {
    await createJob('ng-xff');
    // The client connects from 127.0.0.2; nginx connects to the server from 127.0.0.1. The server
    // (PT_TRUST_PROXY=1) logs the first X-Forwarded-For address: it must be 127.0.0.2.
    const spoof = { 'x-forwarded-for': '203.0.113.7' };
    const from = '127.0.0.2';
    const before = server.output().length;
    const ws = new WebSocket(`wss://127.0.0.1:${proxy.httpsPort}/v1/ws?access_token=${encodeURIComponent(read)}`, {
      ca: cert.pem,
      headers: spoof,
      localAddress: from,
    });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    ws.close();
    const sse = await openHttpsSse(`${proxy.origin}/v1/jobs/ng-xff/stream?access_token=not-a-token`, { ca: cert.pem, headers: spoof, localAddress: from });
    assert.equal(sse.status, 401);
    sse.close();
    const apiRes = await httpsRequest(`${proxy.origin}/v1/jobs/ng-xff`, { ca: cert.pem, headers: { ...spoof, authorization: 'Bearer not-a-token' }, localAddress: from });
    assert.equal(apiRes.status, 401);

    const logged = () =>
      server
        .output()
        .slice(before)
        .split('\n')
        .filter((l) => /"msg":"(websocket connected|sse auth failure|auth failure)"/.test(l));
    await eventually(() => logged().length >= 3, 3000, 'the server to log the three requests', () => logged().join('\n'));
    const remotes = logged().map((l) => [/"msg":"([^"]+)"/.exec(l)![1], /"remote":"([^"]*)"/.exec(l)?.[1]]);
    assert.deepEqual(
      remotes.sort(),
      [
        ['auth failure', from],
        ['sse auth failure', from],
        ['websocket connected', from],
      ],
      `the address the server saw per location, ${JSON.stringify(remotes)} (203.0.113.7: the client's own X-Forwarded-For came first; 127.0.0.1: nginx did not set it)`,
    );
  });

  test('no token in the access log', async () => {
    // nginx logs a WebSocket or a stream when it ends; the earlier tests closed theirs.
    await eventually(() => /\/v1\/ws[ ?]/.test(proxy.accessLog()) && /\/stream[ ?]/.test(proxy.accessLog()), 5000, 'the access log to list /v1/ws and the stream');
    const log = proxy.accessLog();
    const leaks = log.split('\n').filter((line) => /access_token|eyJ/.test(line));
    assert.equal(leaks.length, 0, `${leaks.length} access-log lines carry a token, e.g. ${leaks[0]?.slice(0, 160)}…`);
    assert.match(log, /"GET \/v1\/jobs\/ng-live\/stream HTTP\/1\.1" 200 /);
  });
});

/** A plain page (no widget): WebSocket with first-message auth, EventSource, a polling loop. */
function pageHtml(jobId: string, token: string): string {
  return `<!doctype html><meta charset="utf-8"><title>behind nginx</title>
<script>
const JOB = ${JSON.stringify(jobId)}, TOKEN = ${JSON.stringify(token)};
const nav = performance.getEntriesByType('navigation')[0];
const pt = (window.pt = {
  secure: window.isSecureContext,
  protocol: nav ? nav.nextHopProtocol : '',
  ws: { seq: 0, errors: [] },
  sse: { seq: 0, errors: [] },
  poll: { seq: 0, ok: 0, notModified: 0, errors: [] },
});
const keep = (t, job) => { if (job.seq > t.seq) { t.seq = job.seq; t.status = job.status; } };

const ws = new WebSocket('wss://' + location.host + '/v1/ws');
ws.onopen = () => ws.send(JSON.stringify({ type: 'auth', token: TOKEN }));
ws.onmessage = (e) => {
  const m = JSON.parse(e.data);
  if (m.type === 'auth_ok') ws.send(JSON.stringify({ type: 'subscribe', jobId: JOB }));
  else if (m.type === 'snapshot' || m.type === 'update') keep(pt.ws, m.job);
  else if (m.type === 'error') pt.ws.errors.push(m.code + ': ' + m.message);
};
ws.onerror = () => pt.ws.errors.push('error event');
ws.onclose = (e) => { pt.ws.closed = e.code; };

const es = new EventSource('/v1/jobs/' + JOB + '/stream?access_token=' + encodeURIComponent(TOKEN));
es.onmessage = (e) => {
  const m = JSON.parse(e.data);
  if (m.type === 'snapshot' || m.type === 'update') keep(pt.sse, m.job);
};
es.onerror = () => pt.sse.errors.push('error event, readyState ' + es.readyState);

let etag;
async function poll() {
  try {
    const res = await fetch('/v1/jobs/' + JOB, { headers: { authorization: 'Bearer ' + TOKEN, ...(etag && { 'if-none-match': etag }) }, cache: 'no-store' });
    if (res.status === 304) pt.poll.notModified++;
    else if (res.ok) { pt.poll.ok++; etag = res.headers.get('etag'); keep(pt.poll, await res.json()); }
    else pt.poll.errors.push('HTTP ' + res.status);
  } catch (err) { pt.poll.errors.push(String(err)); }
  setTimeout(poll, 150);
}
poll();
</script>`;
}
