// The fallback chain WebSocket → SSE → HTTP polling → local estimate and back up, wake-up
// reconnects, and credentials on the socket (first-message auth, token refresh in place), against
// the real server through a chaos proxy: 'no-ws' refuses WebSocket upgrades but passes HTTP
// (streaming responses included), 'no-stream' refuses event streams too.
import { expect, fixture, fixtureCleanup, html } from '@open-wc/testing';
import { executeServerCommand } from '@web/test-runner-commands';
import '../../widget/define.js';
import type { Job } from '../../protocol/index.js';
import type { ProgressConnectionEvent } from '../../widget/events.js';
import { ProgressClient, type ConnectionState, type ProgressClientOptions } from '../../widget/progress-client.js';
import type { ProgressTracker } from '../../widget/progress-tracker.js';
import { jwtTimes, refreshDelayMs } from '../../widget/token-refresh.js';
import { FAST, STEPS, chaosProxy, createJob, metric, part, send, sleep, token, waitFor, type ChaosProxy } from '../fixtures/widget-page.js';

const increasing = (seqs: number[]) => seqs.every((s, i) => i === 0 || s > seqs[i - 1]!);

interface Mounted {
  el: ProgressTracker;
  seqs: number[];
  connection: ProgressConnectionEvent[];
}

async function mount(proxy: ChaosProxy, jobId: string, connectionOptions: Partial<ProgressClientOptions>, tokenProvider: () => Promise<string>): Promise<Mounted> {
  const m: Mounted = { el: undefined as unknown as ProgressTracker, seqs: [], connection: [] };
  m.el = await fixture<ProgressTracker>(html`
    <progress-tracker
      .connectionOptions=${connectionOptions}
      .tokenProvider=${tokenProvider}
      .steps=${STEPS}
      label="Export"
      src=${proxy.src}
      job=${jobId}
      @progress-update=${(e: CustomEvent<Job>) => m.seqs.push(e.detail.seq)}
      @progress-connection=${(e: ProgressConnectionEvent) => m.connection.push(e)}
    ></progress-tracker>
  `);
  return m;
}

const states = (m: Mounted): ConnectionState[] => m.connection.map((e) => e.detail);

describe('transports: WebSocket → SSE → polling → estimate, wake-up, token refresh', () => {
  let proxy: ChaosProxy;
  beforeEach(async () => {
    proxy = await chaosProxy();
  });
  afterEach(async () => {
    fixtureCleanup();
    await proxy.close();
  });

  it('SSE through a proxy that refuses WebSocket upgrades: live over the stream, reopened with a fresh token when it expires, to the final state', async () => {
    const job = await createJob();
    await proxy.set('no-ws');
    const streams: string[] = [];
    class SpyEventSource extends EventSource {
      constructor(url: string | URL, init?: EventSourceInit) {
        streams.push(String(url));
        super(url, init);
      }
    }
    // 3-second tokens: the server ends each stream when its token expires.
    const m = await mount(proxy, job.id, { ...FAST, EventSource: SpyEventSource }, () => token({ ttlSeconds: 3 }));
    const { el } = m;
    await waitFor(() => el.connectionState === 'live' && el.transport === 'sse' && el.snapshot, 'live over SSE', 20_000);
    expect((await proxy.counts()).refusedUpgrades).to.be.at.least(2);
    expect(await metric('pt_sse_streams')).to.be.at.least(1);
    await el.updateComplete;
    expect(part(el, 'connection')!.dataset.transport).to.equal('sse');
    // The detail stays the state string (listeners comparing `e.detail === 'live'` keep working); the event says the transport.
    const live = m.connection.find((e) => e.detail === 'live')!;
    expect(live.transport).to.equal('sse');
    expect(streams[0]).to.contain(`/v1/jobs/${job.id}/stream?access_token=`);

    await send(job.id, { type: 'step_start', step: 'upload' }, { type: 'progress', step: 'upload', progress: 0.4 });
    await waitFor(() => el.snapshot?.steps[0]?.progress === 0.4, 'an update pushed over SSE');

    // Past the first token's expiry: the server ended that stream, a new one (new token) follows the job.
    const opened = streams.length;
    await sleep(3500);
    await send(job.id, { type: 'step_end', step: 'upload' }, { type: 'step_start', step: 'encode' }, { type: 'progress', step: 'encode', progress: 0.5 });
    await waitFor(() => el.snapshot?.steps[1]?.progress === 0.5, 'an update after the token expired');
    expect(streams.length).to.be.greaterThan(opened);
    expect(new URL(streams.at(-1)!).searchParams.get('access_token')).to.not.equal(new URL(streams[0]!).searchParams.get('access_token'));
    // A routine expiry is not a lost connection: still live over SSE, never polling.
    expect(el.transport).to.equal('sse');
    expect(states(m).filter((s) => s !== 'connecting' && s !== 'live'), `states ${states(m).join(',')}`).to.deep.equal([]);

    await send(job.id, { type: 'step_end', step: 'encode' }, { type: 'step_start', step: 'publish' }, { type: 'step_end', step: 'publish' }, { type: 'job_end', status: 'completed' });
    await waitFor(() => el.snapshot?.status === 'completed', 'the final state over SSE', 20_000);
    await el.updateComplete;
    expect(part(el, 'bar')!.getAttribute('aria-valuenow')).to.equal('100');
    expect(el.snapshot!.steps.map((s) => s.status)).to.deep.equal(['completed', 'completed', 'completed']);
    expect(el.connectionState).to.equal('closed');
    expect(el.transport).to.equal('none');
    expect(increasing(m.seqs), `seqs ${m.seqs.join(',')}`).to.equal(true);
    await waitFor(async () => (await metric('pt_sse_streams')) === 0, 'the stream closed once the job ended');
  });

  it('headless client: down the chain and back up — WebSocket → SSE → polling → estimate → polling → SSE → WebSocket', async function (this: { timeout(ms: number): void }) {
    this.timeout(90_000);
    const job = await createJob();
    const client = new ProgressClient({ ...FAST, jobId: job.id, src: proxy.src, tokenProvider: () => token() });
    const seen: string[] = [];
    client.on('connection', (state, transport) => seen.push(`${state}/${transport}`));
    const at = (state: ConnectionState, transport: string) =>
      waitFor(() => client.state === state && client.transport === transport, `${state}/${transport} (seen ${seen.join(' ')})`, 20_000);
    client.open();
    try {
      await at('live', 'websocket');
      await proxy.set('no-ws');
      await at('live', 'sse');
      await send(job.id, { type: 'step_start', step: 'upload' }, { type: 'progress', step: 'upload', progress: 0.2 });
      await waitFor(() => client.job?.steps[0]?.progress === 0.2, 'progress over SSE');
      await proxy.set('no-stream');
      await at('polling', 'polling');
      await send(job.id, { type: 'progress', step: 'upload', progress: 0.4 });
      await waitFor(() => client.job?.steps[0]?.progress === 0.4, 'progress by polling');
      await proxy.set('down');
      await at('offline', 'none');
      // And back up, one level at a time, as each transport works again.
      await proxy.set('no-stream');
      await at('polling', 'polling');
      await proxy.set('no-ws');
      await at('live', 'sse');
      await send(job.id, { type: 'progress', step: 'upload', progress: 0.6 });
      await waitFor(() => client.job?.steps[0]?.progress === 0.6, 'progress over SSE again');
      await proxy.set('up');
      await at('live', 'websocket');
      await send(job.id, { type: 'progress', step: 'upload', progress: 0.8 });
      await waitFor(() => client.job?.steps[0]?.progress === 0.8, 'progress over the socket again');
      // Nothing below the socket keeps running once it is back.
      await waitFor(async () => (await metric('pt_sse_streams')) === 0, 'no stream left open');
      const before = await proxy.counts();
      await sleep(1000);
      expect((await proxy.counts()).connections - before.connections).to.equal(0);
      const order = ['live/websocket', 'live/sse', 'polling/polling', 'offline/none', 'polling/polling', 'live/sse', 'live/websocket'];
      let i = 0;
      for (const s of seen) if (s === order[i]) i++;
      expect(i, `seen ${seen.join(' ')}`).to.equal(order.length);
    } finally {
      client.close();
    }
    expect(client.transport).to.equal('none');
  });

  it('wake-up: a socket waiting in backoff reconnects at once when the page becomes visible again, and on `online`', async () => {
    const job = await createJob();
    // A 20 s backoff, and no fallback: only a wake-up can bring the socket back quickly.
    const m = await mount(proxy, job.id, { ...FAST, minReconnectDelayMs: 20_000, maxReconnectDelayMs: 30_000, socketAttemptsBeforePolling: 100 }, () => token());
    const { el } = m;
    await waitFor(() => el.connectionState === 'live' && el.transport === 'websocket', 'live');

    const waitingOutBackoff = async () => {
      const upgrades = (await proxy.counts()).upgrades;
      await proxy.drop();
      await waitFor(() => el.connectionState === 'reconnecting', 'the drop noticed');
      await sleep(1500);
      expect(el.connectionState, 'still waiting out the backoff').to.equal('reconnecting');
      expect((await proxy.counts()).upgrades, 'no attempt during the backoff').to.equal(upgrades);
    };

    await waitingOutBackoff();
    expect(await executeServerCommand('pt:visibility', { hidden: true })).to.equal('hidden');
    expect(await executeServerCommand('pt:visibility', { hidden: false })).to.equal('visible');
    let woke = Date.now();
    await waitFor(() => el.connectionState === 'live', 'live again after the page became visible', 5000);
    expect(Date.now() - woke).to.be.lessThan(5000);

    await send(job.id, { type: 'step_start', step: 'upload' });
    await waitFor(() => el.snapshot?.status === 'running', 'an update on the new socket');

    await waitingOutBackoff();
    woke = Date.now();
    window.dispatchEvent(new Event('online'));
    await waitFor(() => el.connectionState === 'live', 'live again after `online`', 5000);
    expect(Date.now() - woke).to.be.lessThan(5000);
    await send(job.id, { type: 'progress', step: 'upload', progress: 0.5 });
    await waitFor(() => el.snapshot?.steps[0]?.progress === 0.5, 'an update after `online`');
    expect(increasing(m.seqs), `seqs ${m.seqs.join(',')}`).to.equal(true);
  });

  it('refreshes the token in place before it expires: one socket across two expiries, no second upgrade seen by the server, the token never in a URL', async () => {
    const job = await createJob();
    const urls: string[] = [];
    class SpyWebSocket extends WebSocket {
      constructor(url: string | URL, protocols?: string | string[]) {
        urls.push(String(url));
        super(url, protocols);
      }
    }
    let tokensAsked = 0;
    const m = await mount(proxy, job.id, { ...FAST, WebSocket: SpyWebSocket }, () => {
      tokensAsked++;
      return token({ ttlSeconds: 4 });
    });
    const { el } = m;
    await waitFor(() => el.connectionState === 'live' && el.transport === 'websocket' && el.snapshot, 'live');
    const accepted = await metric('pt_ws_connections_total');
    const asked = tokensAsked;
    await send(job.id, { type: 'step_start', step: 'upload' });
    await waitFor(() => el.snapshot?.status === 'running', 'running');

    await sleep(9000); // past two 4-second lifetimes
    await send(job.id, { type: 'progress', step: 'upload', progress: 0.5 });
    await waitFor(() => el.snapshot?.steps[0]?.progress === 0.5, 'an update on the same socket after both expiries');

    expect(tokensAsked - asked, 'refreshed at least twice').to.be.at.least(2);
    expect(await metric('pt_ws_connections_total'), 'no second upgrade accepted by the server').to.equal(accepted);
    expect((await proxy.counts()).upgrades).to.equal(1);
    expect(urls).to.have.length(1);
    expect(urls[0], 'first-message auth: no token in the socket URL').to.not.contain('access_token');
    expect(states(m), 'never closed (4001) nor reconnecting').to.deep.equal(['connecting', 'live']);
    expect(increasing(m.seqs)).to.equal(true);
  });

  it('reads exp/iat from a JWT unverified and plans the refresh at 80% of the lifetime, whatever the browser clock says', async () => {
    const t = jwtTimes(await token({ ttlSeconds: 600 }));
    expect(t.exp! - t.iat!).to.equal(600);
    expect(jwtTimes('not-a-jwt')).to.deep.equal({});
    expect(jwtTimes('a.%%%.c')).to.deep.equal({});
    const iat = 1_000_000;
    // Fresh token: 80% of 100 s.
    expect(refreshDelayMs(iat + 100, iat, iat * 1000)).to.equal(80_000);
    // 30 s old: 50 s left to the refresh point.
    expect(refreshDelayMs(iat + 100, iat, iat * 1000 + 30_000)).to.equal(50_000);
    // A browser clock behind the issuer's reads as a fresh token, never as a later refresh.
    expect(refreshDelayMs(iat + 100, iat, iat * 1000 - 3_600_000)).to.equal(80_000);
    // Past the refresh point (or a clock far ahead): soon, but not in a loop.
    expect(refreshDelayMs(iat + 100, iat, iat * 1000 + 95_000)).to.equal(1000);
    // No iat: the lifetime left by the local clock.
    expect(refreshDelayMs(iat + 100, undefined, iat * 1000)).to.equal(80_000);
  });
});
