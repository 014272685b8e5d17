// One "is this state newer" rule for the element and the headless client (widget/job-order.ts),
// and the connection controller driven by the element's lifecycle alone. No server needed:
// the endpoints below refuse connections, and the states are fed in directly.
import { expect, fixture, fixtureCleanup, html } from '@open-wc/testing';
import '../../widget/define.js';
import type { Job } from '../../protocol/index.js';
import { isNewer } from '../../widget/job-order.js';
import { ProgressClient } from '../../widget/progress-client.js';
import type { ProgressTracker } from '../../widget/progress-tracker.js';

const base: Job = {
  id: 'order-1',
  kind: 'test',
  status: 'running',
  progress: 0.2,
  seq: 5,
  steps: [{ id: 'work', label: 'Work', status: 'running', progress: 0.2 }],
  eta: { remainingMs: 60_000 },
  createdAt: 1_000,
  updatedAt: 2_000,
};

/** The states offered in turn, and whether each is newer than everything accepted before it. */
const sequence: Array<[Job, boolean]> = [
  [base, true],
  // The same state again (a resend, a resubscribe's snapshot): not news.
  [{ ...base }, false],
  [{ ...base, seq: 4, updatedAt: 9_000 }, false],
  // Same seq, later updatedAt: a fresher copy of the shown state.
  [{ ...base, updatedAt: 2_001, eta: { remainingMs: 50_000 } }, true],
  // Same seq and updatedAt, another ETA: not news (the client used to take it, the element not).
  [{ ...base, updatedAt: 2_001, eta: { remainingMs: 10_000 } }, false],
  [{ ...base, seq: 5, updatedAt: 1_999 }, false],
  // A higher seq wins whatever its updatedAt.
  [{ ...base, seq: 6, updatedAt: 1_500 }, true],
  [{ ...base, seq: 5, updatedAt: 99_999 }, false],
];

/** Unreachable on purpose, with no WebSocket and slow polls: only the lifecycle is under test. */
const NOWHERE = 'ws://127.0.0.1:1/v1/ws';
const QUIET = { WebSocket: null, minPollIntervalMs: 60_000, maxPollIntervalMs: 60_000 };

describe('job order: one rule for the element and the client', () => {
  afterEach(() => fixtureCleanup());

  it('isNewer: a higher seq, or the same seq with a later updatedAt; anything is newer than nothing', () => {
    expect(isNewer(base, undefined)).to.equal(true);
    expect(isNewer({ seq: 6, updatedAt: 0 }, base)).to.equal(true);
    expect(isNewer({ seq: 5, updatedAt: 2_001 }, base)).to.equal(true);
    expect(isNewer({ seq: 5, updatedAt: 2_000 }, base)).to.equal(false);
    expect(isNewer({ seq: 5, updatedAt: 1_999 }, base)).to.equal(false);
    expect(isNewer({ seq: 4, updatedAt: 3_000 }, base)).to.equal(false);
  });

  it('the element without a client and ProgressClient.ingest accept and drop the same states', async () => {
    const el = await fixture<ProgressTracker>(html`<progress-tracker label="Order"></progress-tracker>`);
    expect(el.client).to.equal(undefined);
    const shownByElement: number[] = [];
    el.addEventListener('progress-update', (e) => shownByElement.push(e.detail.updatedAt * 100 + e.detail.seq));
    const client = new ProgressClient({ jobId: base.id, src: NOWHERE, WebSocket: null });
    const shownByClient: number[] = [];
    client.on('update', (job) => shownByClient.push(job.updatedAt * 100 + job.seq));

    sequence.forEach(([job, expected], i) => {
      const before = el.snapshot;
      el.snapshot = job;
      expect(el.snapshot === job, `element, state ${i}`).to.equal(expected);
      if (!expected) expect(el.snapshot).to.equal(before);
      expect(client.ingest(job), `client, state ${i}`).to.equal(expected);
    });
    expect(shownByElement).to.deep.equal(shownByClient);
    expect(shownByElement.length).to.equal(sequence.filter(([, newer]) => newer).length);
    expect(client.state).to.equal('closed');
  });

  it('the element with a client for the job lets the client decide, by the same rule', async () => {
    const el = await fixture<ProgressTracker>(html`<progress-tracker job=${base.id} src=${NOWHERE} .connectionOptions=${QUIET}></progress-tracker>`);
    const client = el.client!;
    expect(client.jobId).to.equal(base.id);
    sequence.forEach(([job, expected], i) => {
      el.snapshot = job;
      expect(el.snapshot === job, `state ${i}`).to.equal(expected);
      expect(client.job).to.equal(el.snapshot);
    });
  });
});

describe('connection controller: driven by the host lifecycle', () => {
  afterEach(() => fixtureCleanup());

  it('opens on connect, replaces the client when the job changes, leaves it alone on other updates, closes on disconnect', async () => {
    const el = await fixture<ProgressTracker>(html`<progress-tracker job="ctl-a" src=${NOWHERE} .connectionOptions=${QUIET}></progress-tracker>`);
    const first = el.client!;
    expect(first.jobId).to.equal('ctl-a');
    expect(first.state).to.not.equal('closed');

    // The job ends: the client closes itself, and a host update for anything else does not reopen it.
    el.snapshot = { ...base, id: 'ctl-a', status: 'completed', progress: 1, eta: null };
    expect(first.state).to.equal('closed');
    el.label = 'Something else';
    await el.updateComplete;
    el.requestUpdate();
    await el.updateComplete;
    expect(el.client).to.equal(first);
    expect(first.state).to.equal('closed');

    // A new job: a new client, opened; the old one stays closed and no longer reaches the element.
    el.job = 'ctl-b';
    await el.updateComplete;
    const second = el.client!;
    expect(second).to.not.equal(first);
    expect(second.jobId).to.equal('ctl-b');
    expect(second.state).to.not.equal('closed');
    expect(el.snapshot).to.equal(undefined);

    // Removed from the page: closed; put back: open again, the same client.
    el.remove();
    expect(second.state).to.equal('closed');
    document.body.append(el);
    await el.updateComplete;
    expect(el.client).to.equal(second);
    expect(second.state).to.not.equal('closed');
    el.remove();
    expect(second.state).to.equal('closed');
  });
});
