// Network trouble against the real server, through a chaos proxy: dropped sockets, refused
// WebSocket upgrades and event streams (polling fallback and the switch back), the server gone
// (local estimate), and `seq` never going backwards through all of it. The SSE level of the
// chain has its own tests in transports.test.ts.
import { expect, fixture, fixtureCleanup, html } from '@open-wc/testing';
import '../../widget/define.js';
import type { Job } from '../../protocol/index.js';
import { ProgressClient, type ConnectionState } from '../../widget/progress-client.js';
import type { ProgressTracker } from '../../widget/progress-tracker.js';
import { FAST, STEPS, chaosProxy, createJob, getJob, part, send, sleep, token, visibleText, waitFor, type ChaosProxy } from '../fixtures/widget-page.js';

interface Watched {
  el: ProgressTracker;
  seqs: number[];
  states: ConnectionState[];
  tokensAsked: number;
}

async function mountThrough(proxy: ChaosProxy, jobId: string): Promise<Watched> {
  const tok = await token();
  const w: Watched = { el: undefined as unknown as ProgressTracker, seqs: [], states: [], tokensAsked: 0 };
  const el = await fixture<ProgressTracker>(html`
    <progress-tracker
      .connectionOptions=${FAST}
      .tokenProvider=${async () => {
        w.tokensAsked++;
        return tok;
      }}
      .steps=${STEPS}
      label="Export"
      src=${proxy.src}
      job=${jobId}
      @progress-update=${(e: CustomEvent<Job>) => w.seqs.push(e.detail.seq)}
      @progress-connection=${(e: CustomEvent<ConnectionState>) => w.states.push(e.detail)}
    ></progress-tracker>
  `);
  w.el = el;
  return w;
}

const increasing = (seqs: number[]) => seqs.every((s, i) => i === 0 || s > seqs[i - 1]!);

describe('connection: reconnection, polling fallback, local estimate', () => {
  let proxy: ChaosProxy;
  beforeEach(async () => {
    proxy = await chaosProxy();
  });
  afterEach(async () => {
    fixtureCleanup();
    await proxy.close();
  });

  it('reconnects after the server drops all sockets, resubscribes with `since`, and ends on the right final state', async () => {
    const job = await createJob();
    const w = await mountThrough(proxy, job.id);
    await waitFor(() => w.el.connectionState === 'live' && w.el.snapshot, 'live');
    await send(job.id, { type: 'step_start', step: 'upload' });
    await waitFor(() => w.el.snapshot?.status === 'running', 'running');

    await proxy.set('down');
    await waitFor(() => w.el.connectionState !== 'live', 'the loss noticed');
    expect(visibleText(w.el, '[part~="connection"]')).to.match(/reconnecting|Connecting|Offline|checking/i);
    // The job moves on while the client is cut off.
    await send(job.id, { type: 'step_end', step: 'upload' }, { type: 'step_start', step: 'encode' }, { type: 'progress', step: 'encode', progress: 0.6 });
    await sleep(300);
    const asked = w.tokensAsked;
    await proxy.set('up');
    await waitFor(() => w.el.connectionState === 'live', 'live again', 20_000);
    expect(w.tokensAsked).to.be.greaterThan(asked - 1);
    await waitFor(() => w.el.snapshot?.steps[1]?.progress === 0.6, 'the missed progress');

    // A second blip: a plain drop of every socket while the proxy stays up.
    await proxy.drop();
    await send(job.id, { type: 'step_end', step: 'encode' }, { type: 'step_start', step: 'publish' }, { type: 'step_end', step: 'publish' }, { type: 'job_end', status: 'completed' });
    await waitFor(() => w.el.snapshot?.status === 'completed', 'the final state after reconnecting', 20_000);
    await w.el.updateComplete;
    expect(part(w.el, 'bar')!.getAttribute('aria-valuenow')).to.equal('100');
    expect(w.states).to.include('reconnecting');
    expect(increasing(w.seqs), `seqs ${w.seqs.join(',')}`).to.equal(true);
    // Every connect asked the provider for a fresh token.
    expect(w.tokensAsked).to.be.at.least(3);
  });

  it('falls back to polling when WebSocket upgrades and event streams are refused, and switches back when they work again', async () => {
    const job = await createJob();
    await proxy.set('no-stream');
    const w = await mountThrough(proxy, job.id);
    await waitFor(() => w.el.connectionState === 'polling', 'polling');
    await waitFor(() => w.el.snapshot?.id === job.id, 'the job over HTTP');
    expect(visibleText(w.el, '[part~="connection"]')).to.contain('checking periodically');
    await send(job.id, { type: 'step_start', step: 'upload' }, { type: 'progress', step: 'upload', progress: 0.4 });
    await waitFor(() => w.el.snapshot?.steps[0]?.progress === 0.4, 'progress by polling');
    const counts = await proxy.counts();
    expect(counts.refusedUpgrades).to.be.at.least(2);
    expect(counts.refusedStreams).to.be.at.least(2);
    expect(w.el.transport).to.equal('polling');

    // Unchanged job: conditional requests (If-None-Match → 304), the shown state stays the
    // server's. (The server's ETA engine may publish a re-estimate, with a new seq, at any tick:
    // compare with the server rather than with the seq shown before the pause.)
    await sleep(1500);
    await waitFor(async () => w.el.snapshot!.seq === (await getJob(job.id)).seq, 'the shown state equal to the server state');
    const polls = performance
      .getEntriesByType('resource')
      .filter((e) => e.name.includes(`/v1/jobs/${job.id}`)) as PerformanceResourceTiming[];
    expect(polls.some((e) => e.responseStatus === 304), `statuses ${polls.map((e) => e.responseStatus).join(',')}`).to.equal(true);

    await proxy.set('up');
    // The stream, retrying in the background too, may come back first: wait for the top of the chain.
    await waitFor(() => w.el.connectionState === 'live' && w.el.transport === 'websocket', 'back on the WebSocket', 20_000);
    await send(job.id, { type: 'step_end', step: 'upload' }, { type: 'step_start', step: 'encode' });
    await waitFor(() => w.el.snapshot?.steps[1]?.status === 'running', 'live update after switching back');
    // Polling stopped: no more HTTP requests while live.
    const c1 = await proxy.counts();
    await sleep(1200);
    const c2 = await proxy.counts();
    expect(c2.connections - c1.connections).to.equal(0);
    expect(increasing(w.seqs), `seqs ${w.seqs.join(',')}`).to.equal(true);
  });

  it('says in words when the server cannot be reached at all before any state arrived', async () => {
    const job = await createJob();
    await proxy.set('down');
    const w = await mountThrough(proxy, job.id);
    await waitFor(() => w.el.connectionState === 'offline', 'offline', 20_000);
    await w.el.updateComplete;
    expect(visibleText(w.el, '[part~="connection"]')).to.equal('Cannot reach the progress server, retrying…');
    expect(part(w.el, 'bar')!.hasAttribute('aria-valuenow')).to.equal(false);
    await expect(w.el).to.be.accessible();
    await proxy.set('up');
    await waitFor(() => w.el.connectionState === 'live' && w.el.snapshot, 'live once the server is back', 20_000);
  });

  it('polls when the browser has neither WebSocket nor EventSource', async () => {
    const job = await createJob();
    const client = new ProgressClient({ ...FAST, jobId: job.id, src: proxy.src, token: await token(), WebSocket: null, EventSource: null });
    const states: ConnectionState[] = [];
    client.on('connection', (s) => states.push(s));
    client.open();
    await waitFor(() => client.job?.id === job.id, 'the job by polling');
    expect(states).to.include('polling');
    expect((await proxy.counts()).upgrades).to.equal(0);
    expect((await proxy.counts()).streams).to.equal(0);
    client.close();
  });

  it('keeps advancing from the last ETA as a labelled estimate when the server is gone, and corrects on return', async () => {
    const job = await createJob();
    const w = await mountThrough(proxy, job.id);
    await send(job.id, { type: 'step_start', step: 'upload' }, { type: 'progress', step: 'upload', progress: 0.5 });
    await waitFor(() => w.el.snapshot?.steps[0]?.progress === 0.5, 'progress');
    // Give the element a known ETA as it would have from the server, so the estimate is deterministic.
    const base = w.el.snapshot!;
    w.el.snapshot = { ...base, eta: { remainingMs: 20_000 }, updatedAt: base.updatedAt + 1 };
    await w.el.updateComplete;
    const before = Number(part(w.el, 'bar')!.getAttribute('aria-valuenow'));

    await proxy.set('down');
    await waitFor(() => w.el.connectionState === 'offline', 'offline', 20_000);
    await w.el.updateComplete;
    expect(visibleText(w.el, '[part~="connection"]')).to.contain('Offline');
    expect(part(w.el, 'estimate')!.textContent).to.equal('estimate');
    await sleep(2200);
    await w.el.updateComplete;
    const during = Number(part(w.el, 'bar')!.getAttribute('aria-valuenow'));
    expect(during, 'the bar keeps advancing from the last ETA').to.be.greaterThan(before);
    expect(during).to.be.lessThan(100);
    await waitFor(() => w.el.shadowRoot!.querySelector('[role="status"]')!.textContent!.includes('estimate'), 'offline announced');

    await send(job.id, { type: 'step_end', step: 'upload' }, { type: 'step_start', step: 'encode' });
    await proxy.set('up');
    await waitFor(() => w.el.connectionState === 'live', 'live again', 20_000);
    await waitFor(() => w.el.snapshot?.steps[1]?.status === 'running', 'real data replaced the estimate');
    await w.el.updateComplete;
    expect(part(w.el, 'estimate')).to.equal(null);
  });

  it('Retry while only HTTP works goes through POST /v1/jobs/{id}/retry, and polling follows the resumed job', async () => {
    const job = await createJob();
    await proxy.set('no-stream');
    const w = await mountThrough(proxy, job.id);
    await waitFor(() => w.el.connectionState === 'polling', 'polling');
    await send(job.id, { type: 'step_start', step: 'upload' }, { type: 'step_failed', step: 'upload', error: { code: 'net', message: 'Upload interrupted' } });
    await waitFor(() => w.el.snapshot?.status === 'failed', 'failed, seen by polling');
    await w.el.updateComplete;
    expect(w.el.connectionState).to.equal('closed');
    part(w.el, 'retry')!.click();
    await waitFor(() => w.el.snapshot?.status === 'queued', 'queued again, seen by polling', 20_000);
    expect((await getJob(job.id)).attempts).to.equal(1);
    expect(w.el.connectionState).to.equal('polling');
    expect((await proxy.counts()).upgrades).to.be.greaterThan(0);
  });

  it('never shows a state older than one already shown', async () => {
    const job = await createJob();
    const w = await mountThrough(proxy, job.id);
    await send(job.id, { type: 'step_start', step: 'upload' }, { type: 'progress', step: 'upload', progress: 0.7 });
    await waitFor(() => w.el.snapshot?.steps[0]?.progress === 0.7, 'progress');
    const current = w.el.snapshot!;
    // A stale state arriving late (older seq) from any source is ignored.
    w.el.snapshot = { ...current, seq: current.seq - 1, progress: 0.01, steps: current.steps.map((s) => ({ ...s, progress: 0.01 })) };
    await w.el.updateComplete;
    expect(w.el.snapshot!.seq).to.equal(current.seq);
    expect(w.el.snapshot!.steps[0]!.progress).to.equal(0.7);
    expect(w.el.client!.ingest({ ...current, seq: current.seq - 2 })).to.equal(false);
    expect(increasing(w.seqs)).to.equal(true);
  });

  it('stops all network activity when removed from the DOM, and when the job has ended', async () => {
    const job = await createJob();
    const w = await mountThrough(proxy, job.id);
    await waitFor(() => w.el.connectionState === 'live', 'live');
    w.el.remove();
    await waitFor(() => w.el.connectionState === 'closed', 'closed on disconnect');
    const c1 = await proxy.counts();
    await sleep(1000);
    expect((await proxy.counts()).connections).to.equal(c1.connections);

    document.body.append(w.el);
    await waitFor(() => w.el.connectionState === 'live', 'reopened on reconnect to the DOM');
    await send(job.id, { type: 'step_start', step: 'upload' }, { type: 'job_end', status: 'canceled' });
    await waitFor(() => w.el.connectionState === 'closed', 'closed once ended');
    const c2 = await proxy.counts();
    await sleep(1000);
    expect((await proxy.counts()).connections).to.equal(c2.connections);
    w.el.remove();
  });
});
