// Details, against the real server: focus after Retry lands on the tracker's progress (not <body>);
// each step is named by its label and state, the producer's message is its description (no
// title); the badge shows no pill at zero and counts a failed-then-retried job once.
import { expect, fixture, fixtureCleanup, html } from '@open-wc/testing';
import { sendKeys } from '@web/test-runner-commands';
import 'axe-core/axe.min.js';
import '../../widget/define.js';
import type { NotificationBadge } from '../../widget/notification-badge.js';
import type { ProgressTracker } from '../../widget/progress-tracker.js';
import { STEPS, createJob, part, parts, send, serverUrl, token, waitFor, wsUrl } from '../fixtures/widget-page.js';

async function mount(jobId: string): Promise<ProgressTracker> {
  const el = await fixture<ProgressTracker>(html`<progress-tracker label="Video export" .steps=${STEPS}></progress-tracker>`);
  Object.assign(el, { token: await token({ scopes: ['progress:read', 'progress:retry'] }), src: wsUrl(await serverUrl()), job: jobId });
  await waitFor(() => el.snapshot?.id === jobId, 'the first snapshot');
  return el;
}

const failEncode = (jobId: string) =>
  send(
    jobId,
    { type: 'step_start', step: 'upload' },
    { type: 'step_end', step: 'upload' },
    { type: 'step_start', step: 'encode' },
    { type: 'step_failed', step: 'encode', error: { code: 'codec', message: 'Unsupported codec' } },
  );

/** Accessible name (axe-core's accname implementation, shadow DOM included) and description (its aria-describedby). */
function nameAndDescription(node: Element): { name: string; description: string } {
  const axe = (window as unknown as { axe: { setup(n: Node): void; teardown(): void; utils: { getNodeFromTree(n: Node): unknown }; commons: { text: { accessibleTextVirtual(v: unknown): string } } } }).axe;
  axe.setup(document);
  try {
    const name = axe.commons.text.accessibleTextVirtual(axe.utils.getNodeFromTree(node));
    const root = node.getRootNode() as ShadowRoot;
    const ids = (node.getAttribute('aria-describedby') ?? '').split(/\s+/).filter(Boolean);
    const description = ids.map((id) => root.getElementById(id)?.textContent?.trim() ?? '').join(' ');
    return { name, description };
  } finally {
    axe.teardown();
  }
}

describe('details', () => {
  afterEach(() => fixtureCleanup());

  it('after Retry (keyboard) focus goes to the progress bar, which says the job runs again — not <body>', async () => {
    const job = await createJob();
    const el = await mount(job.id);
    await failEncode(job.id);
    await waitFor(() => el.snapshot?.status === 'failed', 'failed');
    await el.updateComplete;
    part(el, 'retry')!.focus();
    await sendKeys({ press: 'Enter' });
    await waitFor(() => el.snapshot?.status !== 'failed', 'retried');
    // The producer picks the retry up: the failed step runs again.
    await send(job.id, { type: 'step_start', step: 'encode' });
    await waitFor(() => el.snapshot?.status === 'running', 'running again');
    await el.updateComplete;
    await el.updateComplete;
    expect(part(el, 'retry')).to.equal(null);
    expect(document.activeElement, 'focus stays in the tracker').to.equal(el);
    const focused = el.shadowRoot!.activeElement as HTMLElement;
    expect(focused).to.equal(part(el, 'bar'));
    expect(focused.getAttribute('role')).to.equal('progressbar');
    expect(focused.getAttribute('aria-valuetext')).to.match(/^Step 2 of 3/);
    // The step that now runs is the current one.
    expect(parts(el, 'step')[1]!.getAttribute('aria-current')).to.equal('step');
    await expect(el).to.be.accessible();
  });

  it("each step is named by its label and state; the producer's message is its description, not a title", async () => {
    const job = await createJob();
    const el = await mount(job.id);
    await send(job.id, { type: 'step_start', step: 'upload' }, { type: 'step_end', step: 'upload' }, { type: 'step_start', step: 'encode' });
    await send(job.id, { type: 'progress', step: 'encode', progress: 0.5, message: 'Frame 1200 of 2400' });
    await waitFor(() => el.snapshot?.steps[1]?.message === 'Frame 1200 of 2400', 'the message');
    await el.updateComplete;
    const steps = parts(el, 'step');
    for (const s of steps) expect(s.hasAttribute('title'), 'no title').to.equal(false);
    expect(steps[1]!.getAttribute('aria-describedby')).to.be.a('string');
    expect(steps[0]!.hasAttribute('aria-describedby'), 'no message, no description').to.equal(false);

    const named = steps.map(nameAndDescription);
    expect(named.map((n) => n.name)).to.deep.equal(['Upload, completed', 'Encode, in progress, 50%', 'Publish, not started']);
    expect(named.map((n) => n.description)).to.deep.equal(['', 'Frame 1200 of 2400', '']);
    await expect(el).to.be.accessible();
  });

  it('the badge: no pill at zero (a bell instead), a failed-then-retried job counts once, axe-clean', async () => {
    const root = await fixture<HTMLElement>(html`<div><notification-badge></notification-badge></div>`);
    const badge = root.querySelector<NotificationBadge>('notification-badge')!;
    const count = () => badge.shadowRoot!.querySelector<HTMLElement>('[part="count"]');
    expect(count(), 'no pill at zero').to.equal(null);
    const button = badge.shadowRoot!.querySelector('button')!;
    expect(button.getAttribute('aria-label')).to.equal('0 jobs finished');
    // Something visible to press: the default bell.
    expect(button.getBoundingClientRect().width).to.be.greaterThan(15);
    expect(badge.shadowRoot!.querySelector('slot svg')).to.exist;
    await expect(badge).to.be.accessible();

    const job = await createJob();
    const el = await mount(job.id);
    root.append(el);
    await failEncode(job.id);
    await waitFor(() => badge.count === 1, 'the failure counted');
    await badge.updateComplete;
    expect(count()!.textContent).to.equal('1');

    // Retried (Retry button), then it completes: still one job.
    part(el, 'retry')!.click();
    await waitFor(() => el.snapshot?.status !== 'failed', 'retried');
    await send(job.id, { type: 'step_start', step: 'encode' }, { type: 'step_end', step: 'encode' }, { type: 'step_start', step: 'publish' }, { type: 'step_end', step: 'publish' });
    await send(job.id, { type: 'job_end', status: 'completed' });
    await waitFor(() => el.snapshot?.status === 'completed', 'completed');
    await badge.updateComplete;
    expect(badge.count).to.equal(1);
    expect(button.getAttribute('aria-label')).to.equal('1 job finished');
    await expect(badge).to.be.accessible();

    // Seen (cleared): back to no pill; the same end heard again does not count.
    badge.clear();
    await badge.updateComplete;
    expect(count()).to.equal(null);
    el.dispatchEvent(new CustomEvent('progress-complete', { detail: el.snapshot, bubbles: true, composed: true }));
    await badge.updateComplete;
    expect(badge.count).to.equal(0);
  });
});
