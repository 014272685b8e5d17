// Honest connection states, against the real server through a chaos proxy that answers every
// request with 502 Bad Gateway (a reverse proxy whose upstream is gone): a transport problem is
// never announced or evented as a job failure, users see no raw error text, `progress-error`
// fires once per incident with the raw cause in its detail, the shown progress is labelled an
// estimate while no server answers, and on reconnect the bar goes back to the server's value.
import { expect, fixture, fixtureCleanup, html } from '@open-wc/testing';
import '../../widget/define.js';
import type { ProgressErrorInfo } from '../../widget/progress-client.js';
import type { ProgressTracker } from '../../widget/progress-tracker.js';
import { FAST, STEPS, chaosProxy, createJob, getJob, part, recordEvents, send, sleep, token, waitFor, type ChaosProxy } from '../fixtures/widget-page.js';

describe('honest connection states: a 502 outage is not a job failure', () => {
  let proxy: ChaosProxy;
  beforeEach(async () => {
    proxy = await chaosProxy();
  });
  afterEach(async () => {
    fixtureCleanup();
    await proxy.close();
  });

  it('behind a proxy answering 502: labelled estimate, one progress-error per incident with the raw cause, no "failed" said, back to the server\'s lower value on reconnect — axe-clean', async function (this: { timeout(ms: number): void }) {
    this.timeout(90_000);
    const job = await createJob();
    const tok = await token();
    const el = await fixture<ProgressTracker>(html`
      <progress-tracker .connectionOptions=${FAST} .tokenProvider=${async () => tok} .steps=${STEPS} label="Export" src=${proxy.src} job=${job.id}></progress-tracker>
    `);
    const errors = recordEvents(el, ['progress-error']);
    // Everything the live region ever says.
    const region = el.shadowRoot!.querySelector('[role="status"]')!;
    const said: string[] = [];
    new MutationObserver(() => said.push(region.textContent ?? '')).observe(region, { childList: true, characterData: true, subtree: true });

    await waitFor(() => el.connectionState === 'live' && el.snapshot, 'live');
    await send(job.id, { type: 'step_start', step: 'upload' }, { type: 'progress', step: 'upload', progress: 0.9 });
    await waitFor(() => el.snapshot?.steps[0]?.progress === 0.9, 'progress');
    const bar = part(el, 'bar')!;
    const server = Math.floor((await getJob(job.id)).progress * 100);

    // Incident 1: every request (socket upgrade, event stream, poll) answered 502.
    await proxy.set('bad-gateway');
    await waitFor(() => el.connectionState === 'offline', `offline behind the 502s (state ${el.connectionState})`, 30_000);
    // The last state with a known ETA, as the server would have sent it (nothing from the server can
    // replace it now), so the estimate moves on deterministically while the server is away.
    const base = el.snapshot!;
    el.snapshot = { ...base, eta: { remainingMs: 10_000 }, updatedAt: base.updatedAt + 1 };
    await el.updateComplete;
    const before = Number(bar.getAttribute('aria-valuenow'));
    expect((await proxy.counts()).badGateway).to.be.at.least(3);
    expect(part(el, 'estimate'), 'the estimate label').to.exist;
    expect(bar.getAttribute('aria-valuetext')).to.contain('estimate');
    await sleep(2500);
    await el.updateComplete;
    const during = Number(bar.getAttribute('aria-valuenow'));
    expect(during, 'the estimate moved on').to.be.greaterThan(before);
    // No raw error text, no failure panel, no alert notice: the indicator says it.
    const shown = el.shadowRoot!.textContent!;
    for (const raw of ['502', 'Bad Gateway', 'Failed to fetch', 'JSON']) expect(shown, raw).to.not.contain(raw);
    expect(part(el, 'error')).to.equal(null);
    await expect(el).to.be.accessible();

    // Exactly one progress-error for the incident, a connection problem with the raw cause in its detail.
    await sleep(1500);
    expect(errors.length, JSON.stringify(errors.map((e) => e.detail))).to.equal(1);
    const detail = errors[0]!.detail as ProgressErrorInfo;
    expect(detail.kind).to.equal('connection');
    expect(detail.job).to.equal(undefined);
    expect(`${detail.code} ${detail.message} ${detail.status ?? ''}`).to.contain('502');

    // The server is behind what the estimate claims.
    expect(server, 'the server is behind the estimate').to.be.lessThan(during);
    // Reconnect: the first render once a server answers shows the server's value, not the estimate.
    let after = -1;
    el.addEventListener('progress-connection', (e) => {
      if (e.detail === 'live' && after < 0) void el.updateComplete.then(() => (after = Number(bar.getAttribute('aria-valuenow'))));
    });
    await proxy.set('up');
    await waitFor(() => el.connectionState === 'live' && after >= 0, 'live again', 30_000);
    await el.updateComplete;
    expect(part(el, 'estimate'), 'no estimate label once the server answers').to.equal(null);
    // The server's own value may have grown meanwhile: once it has history its progress is
    // time-based and its ETA tick re-estimates while the page is cut off (5 points of room for
    // the element's own count-up between two updates, as before the outage).
    const serverNow = Math.ceil((await getJob(job.id)).progress * 100);
    expect(after, `back to the server's ${server}–${serverNow}% (the estimate was ${during}%)`).to.be.lessThan(during);
    expect(after).to.be.at.least(server).and.at.most(serverNow + 5);

    // Incident 2: a new outage after the reconnect is a new incident — one more progress-error.
    await proxy.set('bad-gateway');
    await waitFor(() => el.connectionState === 'offline', 'offline again', 30_000);
    await sleep(1500);
    expect(errors.length).to.equal(2);
    expect((errors[1]!.detail as ProgressErrorInfo).kind).to.equal('connection');
    await proxy.set('up');
    await waitFor(() => el.connectionState === 'live', 'live again', 30_000);

    // Through all of it the live region never called it a failure of the job.
    await el.updateComplete;
    expect(said.length, 'the live region spoke').to.be.greaterThan(0);
    for (const s of said) expect(s.toLowerCase(), s).to.not.match(/fail/);
    expect(said.some((s) => s.includes('estimate')), said.join(' | ')).to.equal(true);
  });

  it('a token provider failing during an outage (the "Unexpected end of JSON input" case): no job failure, one progress-error', async function (this: { timeout(ms: number): void }) {
    this.timeout(60_000);
    const job = await createJob();
    const tok = await token();
    let broken = false;
    const el = await fixture<ProgressTracker>(html`
      <progress-tracker .connectionOptions=${FAST} .tokenProvider=${async () => {
        if (broken) return (await new Response('').json()) as string; // what r.json() of an empty 502 body throws
        return tok;
      }} .steps=${STEPS} label="Export" src=${proxy.src} job=${job.id}></progress-tracker>
    `);
    const errors = recordEvents(el, ['progress-error']);
    await waitFor(() => el.connectionState === 'live' && el.snapshot, 'live');
    await send(job.id, { type: 'step_start', step: 'upload' });
    await waitFor(() => el.snapshot?.status === 'running', 'running');
    broken = true;
    await proxy.set('bad-gateway');
    await waitFor(() => el.connectionState === 'offline', 'offline', 30_000);
    await sleep(2000);
    await el.updateComplete;
    expect(errors.length, JSON.stringify(errors.map((e) => e.detail))).to.equal(1);
    expect((errors[0]!.detail as ProgressErrorInfo).kind).to.equal('connection');
    const shown = el.shadowRoot!.textContent!;
    expect(shown).to.not.contain('JSON');
    expect(el.shadowRoot!.querySelector('[role="status"]')!.textContent!.toLowerCase()).to.not.contain('fail');
    broken = false;
    await proxy.set('up');
    await waitFor(() => el.connectionState === 'live', 'live again', 30_000);
  });
});
