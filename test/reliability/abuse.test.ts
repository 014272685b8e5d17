// Abuse limits, each with a well-behaved client (its own address) served throughout. Proves:
// a connection flood from one address stops at PT_MAX_CONNECTIONS_PER_IP (HTTP 429, no socket)
// while another address still connects; a subscription flood gets too_many_subscriptions past
// 100 per socket; a message flood gets rate_limited then close 4008; oversized frames close with
// 1009 and oversized HTTP bodies get 413; after each attack the well-behaved client still gets a
// pong and a live update, and the matching /metrics counter has risen.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { LIMITS, type ServerMessage } from '../../protocol/index.js';
import { api, connectWs, metric, startServerProcess, UpgradeRefused, within, type ServerProcess, type WsClient } from '../fixtures/reliability.js';

const MAX_PER_IP = 40;

/** A `ws` connection that claims a client address through X-Forwarded-For (PT_TRUST_PROXY=1). */
function connectFrom(server: ServerProcess, token: string, address: string): Promise<WebSocket> {
  const ws = new WebSocket(`${server.wsUrl}?access_token=${encodeURIComponent(token)}`, { headers: { 'x-forwarded-for': address } });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => {
      res.resume();
      reject(new UpgradeRefused(res.statusCode ?? 0, ''));
    });
    ws.once('error', reject);
  });
}

describe('abuse limits', () => {
  let server: ServerProcess;
  let write: string;
  let read: string;
  let good: WsClient;
  let progress = 0;

  before(async () => {
    server = await startServerProcess({
      env: { PT_TRUST_PROXY: '1', PT_MAX_CONNECTIONS_PER_IP: String(MAX_PER_IP), PT_ETA_TICK: '0', PT_DB_SYNC: 'normal', LOG_LEVEL: 'warn' },
    });
    write = await server.token({ scope: 'progress:write', jobs: ['*'], expiresIn: 900 });
    read = await server.token({ scope: 'progress:read', jobs: ['*'], expiresIn: 900 });
    const ids = ['abuse-live', ...Array.from({ length: LIMITS.maxSubscriptionsPerSocket + 1 }, (_, i) => `abuse-${i}`)];
    const created = await api(server, 'POST', '/v1/jobs', write, { id: 'abuse-live', kind: 'x', steps: [{ id: 'one' }] });
    assert.equal(created.status, 201);
    await Promise.all(ids.slice(1).map((id) => api(server, 'POST', '/v1/jobs', write, { id, kind: 'x', steps: [{ id: 'one' }] })));
    await api(server, 'POST', '/v1/jobs/abuse-live/events', write, { type: 'step_start', step: 'one' });
    // The well-behaved client (no X-Forwarded-For: its own address, 127.0.0.1).
    good = await connectWs(server, read);
    good.send({ type: 'subscribe', jobId: 'abuse-live' });
    await good.next('snapshot');
  });
  after(async () => {
    await good?.close();
    await server.stop();
    server.cleanup();
  });

  async function stillServed(after: string) {
    good.send({ type: 'ping' });
    await within(good.next('pong', 10_000), 11_000, `the well-behaved client's pong after ${after}`);
    progress = Math.min(0.99, progress + 0.01);
    const res = await api(server, 'POST', '/v1/jobs/abuse-live/events', write, { type: 'progress', step: 'one', progress });
    assert.equal(res.status, 202, `producer after ${after}`);
    await good.next((m) => m.type === 'update' && m.job.seq === (res.body as { seq: number }).seq, 10_000);
    good.queue.length = 0;
    assert.equal(await metric(server, 'pt_ws_connections') >= 1, true);
  }

  test(`connection flood from one address stops at ${MAX_PER_IP} (429), others still connect`, async () => {
    const before = await metric(server, 'pt_ws_connection_limited_total');
    const attempts = await Promise.allSettled(Array.from({ length: MAX_PER_IP * 2 }, () => connectFrom(server, read, '10.6.6.6')));
    const open = attempts.filter((a): a is PromiseFulfilledResult<WebSocket> => a.status === 'fulfilled').map((a) => a.value);
    const refused = attempts.filter((a): a is PromiseRejectedResult => a.status === 'rejected').map((a) => a.reason as Error);
    assert.equal(open.length, MAX_PER_IP, `${open.length} sockets opened from one address`);
    assert.ok(refused.every((e) => e instanceof UpgradeRefused && e.status === 429), `refusals: ${refused.map(String).slice(0, 3)}`);
    // Another address is not affected.
    const other = await connectFrom(server, read, '10.7.7.7');
    other.close();
    assert.equal(await metric(server, 'pt_ws_connection_limited_total'), before + MAX_PER_IP);
    await stillServed('a connection flood');
    // Closing frees the slots.
    await Promise.all(open.map((ws) => new Promise((r) => (ws.once('close', r), ws.close()))));
    const again = await connectFrom(server, read, '10.6.6.6');
    again.close();
  });

  test(`subscription flood: a subscribe past ${LIMITS.maxSubscriptionsPerSocket} gets too_many_subscriptions`, async () => {
    const before = await metric(server, 'pt_ws_subscriptions_refused_total');
    const ws = await connectWs(server, read);
    // Under the rate limit's burst: 100 at once, then one more after a pause.
    for (let i = 0; i < LIMITS.maxSubscriptionsPerSocket; i++) ws.send({ type: 'subscribe', jobId: `abuse-${i}` });
    for (let i = 0; i < LIMITS.maxSubscriptionsPerSocket; i++) await ws.next('snapshot');
    await new Promise((r) => setTimeout(r, 200));
    ws.send({ type: 'subscribe', jobId: `abuse-${LIMITS.maxSubscriptionsPerSocket}` });
    const refused = await ws.next('error');
    assert.equal(refused.code, 'too_many_subscriptions');
    assert.equal(refused.jobId, `abuse-${LIMITS.maxSubscriptionsPerSocket}`);
    assert.equal(await metric(server, 'pt_ws_subscriptions_refused_total'), before + 1);
    await stillServed('a subscription flood');
    await ws.close();
  });

  test('message flood: rate_limited, then closed with 4008; the counter rises', async () => {
    const before = await metric(server, 'pt_rate_limited_total');
    const ws = await connectWs(server, read);
    for (let i = 0; i < LIMITS.messagesPerSecond * 6; i++) ws.send({ type: 'ping' });
    const got: ServerMessage[] = [];
    const closed = await within(ws.closed, 10_000, 'the flooding socket to be closed');
    got.push(...ws.queue);
    assert.equal(closed.code, 4008);
    assert.ok(got.some((m) => m.type === 'error' && m.code === 'rate_limited'), 'a rate_limited error came before the close');
    // The burst allowance was answered normally before the limit kicked in.
    assert.ok(got.filter((m) => m.type === 'pong').length >= LIMITS.messagesPerSecond, 'the burst was served');
    assert.ok((await metric(server, 'pt_rate_limited_total')) > before + LIMITS.messagesPerSecond);
    await stillServed('a message flood');
  });

  test('oversized frames close with 1009, oversized HTTP bodies get 413; counters rise', async () => {
    const before = await metric(server, 'pt_ws_oversized_frames_total');
    for (const size of [LIMITS.maxMessageBytes + 1, 100_000, 900_000, 2_000_000]) {
      const ws = await connectWs(server, read);
      ws.sendRaw(JSON.stringify({ type: 'ping', pad: 'x'.repeat(size) }));
      const closed = await within(ws.closed, 10_000, `the socket that sent ${size} bytes to be closed`);
      // Up to uWS's transport cap (1 MiB) the server answers 1009 with a reason; beyond it uWS
      // itself drops the connection (1006) before the server sees the frame. Either way: closed.
      if (size <= 1024 * 1024) assert.equal(closed.code, 1009, `${size} bytes`);
      else assert.ok(closed.code === 1009 || closed.code === 1006, `${size} bytes: close ${closed.code}`);
    }
    assert.ok((await metric(server, 'pt_ws_oversized_frames_total')) >= before + 3, 'each 1009 is counted');
    const errorsBefore = await metric(server, 'pt_http_errors_total');
    const big = await api(server, 'POST', '/v1/jobs/abuse-live/events', write, JSON.stringify({ type: 'progress', step: 'one', progress: 0.5, message: 'm'.repeat(LIMITS.maxBodyBytes) }));
    assert.equal(big.status, 413);
    assert.equal((big.body as { error: { code: string } }).error.code, 'payload_too_large');
    assert.ok((await metric(server, 'pt_http_errors_total')) > errorsBefore);
    await stillServed('oversized frames and bodies');
  });
});
