// A stalled job (`job.stalled`, the server heard nothing from its producer): the element says so
// in words ("No update for 5 min") instead of an ETA, counts the silence up, and shows the ETA
// again once an event clears it. The job comes from the real server; `stalled` is set on its
// snapshot as the server sets it.
import { expect, fixture, html } from '@open-wc/testing';
import '../../widget/define.js';
import type { Job } from '../../protocol/index.js';
import type { ProgressTracker } from '../../widget/progress-tracker.js';
import { createJob, getJob, send, uniqueId, visibleText } from '../fixtures/widget-page.js';

describe('stalled job', () => {
  it('shows "No update for …" while stalled and the ETA again once an event clears it', async () => {
    const created = await createJob([{ id: 'work', label: 'Work' }], uniqueId('stall'));
    await send(created.id, { type: 'step_start', step: 'work' }, { type: 'progress', step: 'work', progress: 0.3 });
    const real = await getJob(created.id);
    let now = Date.now();
    const el = await fixture<ProgressTracker>(html`<progress-tracker lang="en" .clock=${() => now} label="Export"></progress-tracker>`);

    const stalled: Job = { ...real, seq: real.seq + 1, eta: null, stalled: { since: now - 5 * 60_000 } };
    el.snapshot = stalled;
    await el.updateComplete;
    expect(visibleText(el, '[part~="eta"]')).to.equal('No update for 5 min');

    now += 2 * 60_000;
    el.requestUpdate();
    await el.updateComplete;
    expect(visibleText(el, '[part~="eta"]')).to.equal('No update for 7 min');

    // Under a minute it counts seconds.
    el.snapshot = { ...stalled, seq: stalled.seq + 1, stalled: { since: now - 30_000 } };
    await el.updateComplete;
    expect(visibleText(el, '[part~="eta"]')).to.match(/^No update for 30 sec/);

    // The next event clears it: an ETA again.
    const resumed: Job = { ...real, seq: stalled.seq + 2, eta: { remainingMs: 3 * 60_000 } };
    delete resumed.stalled;
    el.snapshot = resumed;
    await el.updateComplete;
    expect(visibleText(el, '[part~="eta"]')).to.equal('about 3 min left');
  });
});
