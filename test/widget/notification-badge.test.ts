// <notification-badge>: counts finished jobs (real server), accessible name, clears on activation.
import { expect, fixture, fixtureCleanup, html } from '@open-wc/testing';
import { sendKeys } from '@web/test-runner-commands';
import '../../widget/define.js';
import type { NotificationBadge } from '../../widget/notification-badge.js';
import type { ProgressTracker } from '../../widget/progress-tracker.js';
import { createJob, send, serverUrl, token, waitFor, wsUrl } from '../fixtures/widget-page.js';

async function tracker(container: HTMLElement, cls: string): Promise<{ el: ProgressTracker; jobId: string }> {
  const job = await createJob([{ id: 's', label: 'Step' }]);
  const el = document.createElement('progress-tracker');
  el.className = cls;
  el.token = await token();
  el.src = wsUrl(await serverUrl());
  el.job = job.id;
  container.append(el);
  await waitFor(() => el.connectionState === 'live', 'live');
  return { el, jobId: job.id };
}

const finish = (jobId: string) => send(jobId, { type: 'step_start', step: 's' }, { type: 'step_end', step: 's' }, { type: 'job_end', status: 'completed' });
const fail = (jobId: string) => send(jobId, { type: 'step_start', step: 's' }, { type: 'step_failed', step: 's', error: { code: 'x', message: 'Broke' } });
const button = (b: NotificationBadge) => b.shadowRoot!.querySelector('button')!;

describe('<notification-badge>', () => {
  afterEach(() => fixtureCleanup());

  it('counts completed and failed jobs, with an accessible name, and clears on activation', async () => {
    const root = await fixture<HTMLElement>(html`<div><notification-badge></notification-badge></div>`);
    const badge = root.querySelector('notification-badge')!;
    expect(button(badge).getAttribute('aria-label')).to.equal('0 jobs finished');
    await expect(badge).to.be.accessible();

    const a = await tracker(root, 'a');
    const b = await tracker(root, 'b');
    const c = await tracker(root, 'c');
    await finish(a.jobId);
    await fail(b.jobId);
    await finish(c.jobId);
    await waitFor(() => badge.count === 3, 'three finished');
    await badge.updateComplete;
    expect(button(badge).getAttribute('aria-label')).to.equal('3 jobs finished');
    expect(badge.shadowRoot!.querySelector('[part="count"]')!.textContent).to.equal('3');
    await expect(badge).to.be.accessible();

    // Activation by keyboard clears it (a real button).
    button(badge).focus();
    const cleared = new Promise((r) => badge.addEventListener('notification-badge-clear', r, { once: true }));
    await sendKeys({ press: 'Enter' });
    await cleared;
    expect(badge.count).to.equal(0);
  });

  it('counts only trackers matching `for`, says "1 job finished", and clears with clear()', async () => {
    const root = await fixture<HTMLElement>(html`<div><notification-badge for=".mine"></notification-badge></div>`);
    const badge = root.querySelector('notification-badge')!;
    const mine = await tracker(root, 'mine');
    const other = await tracker(root, 'other');
    await finish(other.jobId);
    await finish(mine.jobId);
    await waitFor(() => mine.el.snapshot?.status === 'completed' && other.el.snapshot?.status === 'completed', 'both done');
    await badge.updateComplete;
    expect(badge.count).to.equal(1);
    expect(button(badge).getAttribute('aria-label')).to.equal('1 job finished');
    badge.clear();
    await badge.updateComplete;
    expect(button(badge).getAttribute('aria-label')).to.equal('0 jobs finished');
  });
});
