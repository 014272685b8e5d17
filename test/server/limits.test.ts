// WebSocket limits are explicit and enforced: 16 KiB per message (close 1009 with a reason, not a
// bare 1006), 100 subscriptions per socket, messages per second, JSON text only.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { LIMITS } from '../../protocol/index.js';
import { connectWs, createJob, startServerProcess, type ServerProcess } from '../fixtures/server-process.js';

describe('WebSocket limits', () => {
  let server: ServerProcess;
  let read: string;

  before(async () => {
    server = await startServerProcess();
    read = await server.token({ scope: 'progress:read', jobs: ['*'] });
  });
  after(async () => {
    await server.stop();
    server.cleanup();
  });

  test(`a message over ${LIMITS.maxMessageBytes} bytes closes the socket with 1009 and a reason`, async () => {
    const ws = await connectWs(server, read);
    // Just under the limit is fine (an unknown type gets an error message, the socket stays).
    ws.send({ type: 'x', pad: 'a'.repeat(LIMITS.maxMessageBytes - 100) });
    assert.equal((await ws.next('error')).code, 'bad_request');
    ws.send({ type: 'ping', pad: 'a'.repeat(LIMITS.maxMessageBytes + 1) });
    const { code, reason } = await ws.closed;
    assert.equal(code, 1009);
    assert.match(reason, /16384/);
  });

  test('much larger frames also get 1009, not a dropped connection', async () => {
    const ws = await connectWs(server, read);
    ws.sendRaw('x'.repeat(200 * 1024));
    assert.equal((await ws.closed).code, 1009);
  });

  test('binary frames close with 1003; malformed JSON gets bad_request and the socket stays', async () => {
    const ws = await connectWs(server, read);
    ws.sendRaw('{oops');
    assert.equal((await ws.next('error')).code, 'bad_request');
    ws.send({ type: 'ping' });
    await ws.next('pong');
    ws.sendRaw(Buffer.from([1, 2, 3]));
    assert.equal((await ws.closed).code, 1003);
  });

  test(`at most ${LIMITS.maxSubscriptionsPerSocket} subscriptions per socket`, async () => {
    const write = await server.token({ scope: 'progress:write', jobs: ['*'] });
    const ids = Array.from({ length: LIMITS.maxSubscriptionsPerSocket + 1 }, (_, i) => `lim-sub-${i}`);
    await Promise.all(
      ids.map((id) =>
        fetch(`${server.url}/v1/jobs`, {
          method: 'POST',
          headers: { authorization: `Bearer ${write}`, 'content-type': 'application/json' },
          body: JSON.stringify({ id, kind: 'x', steps: [{ id: 'a' }] }),
        }),
      ),
    );
    const ws = await connectWs(server, read);
    // Paced under the rate limit.
    for (const [i, id] of ids.slice(0, -1).entries()) {
      ws.send({ type: 'subscribe', jobId: id });
      if (i % 40 === 39) await new Promise((r) => setTimeout(r, 1000));
    }
    for (let i = 0; i < LIMITS.maxSubscriptionsPerSocket; i++) await ws.next('snapshot');
    ws.send({ type: 'subscribe', jobId: ids.at(-1) });
    const refused = await ws.next('error');
    assert.equal(refused.code, 'too_many_subscriptions');
    // Freeing one makes room.
    ws.send({ type: 'unsubscribe', jobId: ids[0] });
    ws.send({ type: 'subscribe', jobId: ids.at(-1) });
    assert.equal((await ws.next('snapshot')).job.id, ids.at(-1));
    await ws.close();
  });

  test('a message flood is rate limited, then cut off with 4008', async () => {
    await createJob(server, { id: 'lim-rate' });
    const ws = await connectWs(server, read);
    for (let i = 0; i < LIMITS.messagesPerSecond * 5; i++) ws.send({ type: 'ping' });
    const limited = await ws.next('error');
    assert.equal(limited.code, 'rate_limited');
    assert.equal((await ws.closed).code, 4008);
  });
});
