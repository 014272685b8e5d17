// Rendering and accessibility of every state, driven by the real server.
import { expect, fixture, html } from '@open-wc/testing';
import { emulateMedia, executeServerCommand } from '@web/test-runner-commands';
import '../../widget/define.js';
import type { ProgressTracker } from '../../widget/progress-tracker.js';
import { STEPS, createJob, part, parts, send, serverUrl, token, visibleText, waitFor, wsUrl } from '../fixtures/widget-page.js';

async function mount(jobId: string, extra?: (el: ProgressTracker) => void): Promise<ProgressTracker> {
  const src = wsUrl(await serverUrl());
  const tok = await token();
  const el = await fixture<ProgressTracker>(html`
    <progress-tracker .token=${tok} .steps=${STEPS} label="Video export" src=${src} job=${jobId}>
      <p>Your video is ready: <a href="#video">open it</a></p>
    </progress-tracker>
  `);
  extra?.(el);
  return el;
}

const bar = (el: ProgressTracker) => part(el, 'bar')!;

describe('<progress-tracker> rendering and accessibility', () => {
  afterEach(async () => {
    await emulateMedia({ reducedMotion: 'no-preference', colorScheme: 'light' });
  });

  it('the page\'s step labels stay once the job is there, whether `steps` came before or after the first snapshot', async () => {
    // The producer gave no labels: the server's are the ids.
    const job = await createJob([{ id: 'upload' }, { id: 'encode' }, { id: 'publish' }]);
    const el = await fixture<ProgressTracker>(html`<progress-tracker .token=${await token()} src=${wsUrl(await serverUrl())} job=${job.id}></progress-tracker>`);
    const labels = () => parts(el, 'step').map((s) => s.querySelector('.step-label')!.textContent);
    await waitFor(() => el.snapshot, 'the first snapshot');
    await el.updateComplete;
    expect(labels()).to.deep.equal(['upload', 'encode', 'publish']);
    // The app's labels (e.g. translated) arrive after the snapshot: they win.
    el.steps = [{ id: 'upload', label: 'Hochladen' }, { id: 'encode', label: 'Kodieren' }];
    await el.updateComplete;
    expect(labels()).to.deep.equal(['Hochladen', 'Kodieren', 'publish']);
    await send(job.id, { type: 'step_start', step: 'encode' });
    await waitFor(() => el.snapshot?.status === 'running', 'running');
    await el.updateComplete;
    expect(labels()).to.deep.equal(['Hochladen', 'Kodieren', 'publish']);
    expect(el.shadowRoot!.querySelector('[role="status"]')!.textContent).to.contain('Kodieren');
  });

  it('before the first snapshot: step cards from `steps`, an indeterminate bar, accessible', async () => {
    const el = await fixture<ProgressTracker>(html`<progress-tracker label="Video export" .steps=${STEPS}></progress-tracker>`);
    const bar = part(el, 'bar')!;
    expect(bar.getAttribute('role')).to.equal('progressbar');
    expect(bar.hasAttribute('aria-valuenow')).to.equal(false);
    expect(bar.getAttribute('aria-label')).to.equal('Video export');
    const steps = parts(el, 'step');
    expect(steps.map((s) => s.querySelector('.step-label')!.textContent)).to.deep.equal([
      'Upload',
      'Encode',
      'Publish',
    ]);
    expect(el.shadowRoot!.querySelector('ol')).to.exist;
    expect(steps[0]!.textContent).to.contain('not started');
    await expect(el).to.be.accessible();
  });

  it('queued, running with a current step, and its own progress — each accessible', async () => {
    const job = await createJob();
    const el = await mount(job.id);
    await waitFor(() => el.snapshot?.id === job.id, 'the first snapshot');
    await el.updateComplete;
    expect(bar(el).getAttribute('aria-valuenow')).to.equal('0');
    expect(el.connectionState).to.equal('live');
    expect(visibleText(el, '[part~="connection"]')).to.equal('Live');
    await expect(el).to.be.accessible();

    await send(job.id, { type: 'step_start', step: 'upload' }, { type: 'step_end', step: 'upload' }, { type: 'step_start', step: 'encode' });
    await send(job.id, { type: 'progress', step: 'encode', progress: 0.5 });
    await waitFor(() => el.snapshot?.steps[1]?.progress === 0.5, 'encode at 50%');
    await el.updateComplete;

    const steps = parts(el, 'step');
    expect(steps[0]!.getAttribute('part')).to.contain('step-completed');
    expect(steps[1]!.getAttribute('aria-current')).to.equal('step');
    expect(steps[0]!.hasAttribute('aria-current')).to.equal(false);
    // State in words (visually hidden) and by icon, not by color alone.
    expect(steps[0]!.querySelector('.visually-hidden')!.textContent).to.contain('completed');
    expect(steps[1]!.querySelector('.visually-hidden')!.textContent).to.contain('in progress, 50%');
    expect(steps[2]!.querySelector('.visually-hidden')!.textContent).to.contain('not started');
    expect(steps[1]!.querySelector('[part="step-progress"]')).to.exist;
    for (const s of steps) expect(s.querySelector('[part="step-icon"]')!.getAttribute('aria-hidden')).to.equal('true');
    for (const sep of parts(el, 'separator')) expect(sep.getAttribute('aria-hidden')).to.equal('true');

    const now = Number(bar(el).getAttribute('aria-valuenow'));
    expect(now).to.be.greaterThan(0).and.lessThan(100);
    expect(bar(el).getAttribute('aria-valuetext')).to.match(/^Step 2 of 3, \d+%/);
    // The skeleton region: busy, placeholder hidden from assistive technology, content not yet shown.
    const body = part(el, 'body')!;
    expect(body.getAttribute('aria-busy')).to.equal('true');
    expect(part(el, 'skeleton')!.getAttribute('aria-hidden')).to.equal('true');
    expect(getComputedStyle(part(el, 'content')!).visibility).to.equal('hidden');
    await expect(el).to.be.accessible();
  });

  it('failed: the server message, the failed step and a real Retry button — accessible', async () => {
    const job = await createJob();
    const el = await mount(job.id);
    await send(
      job.id,
      { type: 'step_start', step: 'upload' },
      { type: 'step_end', step: 'upload' },
      { type: 'step_start', step: 'encode' },
      { type: 'step_failed', step: 'encode', error: { code: 'codec', message: 'Unsupported codec: h265' } },
    );
    await waitFor(() => el.snapshot?.status === 'failed', 'the failed state');
    await el.updateComplete;
    const error = part(el, 'error')!;
    expect(error.textContent).to.contain('Unsupported codec: h265');
    expect(error.textContent).to.contain('Encode');
    const retry = part(el, 'retry')!;
    expect(retry.localName).to.equal('button');
    // The producer's label is bidi-isolated (U+2068 … U+2069) inside the sentence.
    expect(retry.textContent!.trim()).to.equal('Retry from “\u2068Encode\u2069”');
    expect(parts(el, 'step')[1]!.querySelector('.visually-hidden')!.textContent).to.contain('failed');
    expect(part(el, 'body')!.getAttribute('aria-busy')).to.equal('false');
    await waitFor(() => el.shadowRoot!.querySelector('[role="status"]')!.textContent!.includes('Unsupported codec'), 'the failure announced');
    await expect(el).to.be.accessible();
  });

  it('completed: 100%, total time, content revealed, busy cleared — accessible in light and dark', async () => {
    const job = await createJob();
    const el = await mount(job.id);
    for (const s of STEPS) await send(job.id, { type: 'step_start', step: s.id }, { type: 'step_end', step: s.id });
    await send(job.id, { type: 'job_end', status: 'completed' });
    await waitFor(() => el.snapshot?.status === 'completed', 'completion');
    await el.updateComplete;
    expect(bar(el).getAttribute('aria-valuenow')).to.equal('100');
    expect(visibleText(el, '[part~="eta"]')).to.match(/^Done( in \d.*)?$/);
    expect(part(el, 'body')!.getAttribute('aria-busy')).to.equal('false');
    await waitFor(() => getComputedStyle(part(el, 'content')!).visibility === 'visible', 'content revealed');
    expect(part(el, 'content')!.hasAttribute('inert')).to.equal(false);
    // Network activity stops once the job has ended.
    expect(el.connectionState).to.equal('closed');
    await expect(el).to.be.accessible();
    await emulateMedia({ colorScheme: 'dark' });
    await expect(el).to.be.accessible();
  });

  it('canceled: says so, offers no retry — accessible', async () => {
    const job = await createJob();
    const el = await mount(job.id);
    await send(job.id, { type: 'step_start', step: 'upload' }, { type: 'job_end', status: 'canceled' });
    await waitFor(() => el.snapshot?.status === 'canceled', 'canceled');
    await el.updateComplete;
    expect(part(el, 'error')!.textContent).to.contain('Canceled');
    expect(part(el, 'retry')).to.equal(null);
    await expect(el).to.be.accessible();
  });

  it('a connection error is told in words (unknown job), not an endless spinner', async () => {
    const src = wsUrl(await serverUrl());
    const el = await fixture<ProgressTracker>(html`<progress-tracker .token=${await token()} src=${src} job="no-such-job-xyz"></progress-tracker>`);
    await waitFor(() => part(el, 'error')?.textContent?.trim(), 'an error message');
    await expect(el).to.be.accessible();
  });

  it('prefers-reduced-motion turns off transitions and shimmer', async () => {
    const job = await createJob();
    const el = await mount(job.id);
    await send(job.id, { type: 'step_start', step: 'upload' });
    await waitFor(() => el.snapshot?.status === 'running', 'running');
    await el.updateComplete;
    const indicator = part(el, 'bar-indicator')!;
    const skeleton = part(el, 'skeleton')!;
    expect(getComputedStyle(indicator).transitionDuration).to.not.equal('0s');
    expect(getComputedStyle(skeleton).animationName).to.equal('shimmer');
    await emulateMedia({ reducedMotion: 'reduce' });
    expect(getComputedStyle(indicator).transitionDuration).to.equal('0s');
    expect(getComputedStyle(skeleton).animationName).to.equal('none');
    expect(getComputedStyle(parts(el, 'step')[0]!.querySelector('svg')!).animationName).to.equal('none');
    await expect(el).to.be.accessible();
  });

  it('forced colors: the bar stays visible against its track, the retry button uses system colors', async () => {
    const job = await createJob();
    const el = await mount(job.id);
    await send(job.id, { type: 'step_start', step: 'upload' }, { type: 'progress', step: 'upload', progress: 0.5 });
    await send(job.id, { type: 'step_failed', step: 'upload', error: { code: 'x', message: 'Broken pipe' } });
    await waitFor(() => el.snapshot?.status === 'failed', 'failed');
    await el.updateComplete;
    await executeServerCommand('pt:forced-colors', { active: true });
    try {
      expect(matchMedia('(forced-colors: active)').matches).to.equal(true);
      const track = getComputedStyle(part(el, 'bar')!).backgroundColor;
      const fill = getComputedStyle(part(el, 'bar-indicator')!).backgroundColor;
      expect(fill).to.not.equal(track);
      const retry = getComputedStyle(part(el, 'retry')!);
      expect(retry.color).to.not.equal(retry.backgroundColor);
      await expect(el).to.be.accessible();
    } finally {
      await executeServerCommand('pt:forced-colors', { active: false });
    }
  });

  it('a slotted skeleton replaces the built-in one and is revealed away on completion', async () => {
    const job = await createJob([{ id: 'only', label: 'Only step' }]);
    const src = wsUrl(await serverUrl());
    const el = await fixture<ProgressTracker>(html`
      <progress-tracker .token=${await token()} src=${src} job=${job.id}>
        <div slot="skeleton" style="height: 120px">loading placeholder</div>
        <div style="height: 80px">final content</div>
      </progress-tracker>
    `);
    await waitFor(() => el.snapshot, 'snapshot');
    const body = part(el, 'body')!;
    const heightBefore = body.getBoundingClientRect().height;
    expect(heightBefore).to.be.at.least(120);
    await send(job.id, { type: 'step_start', step: 'only' }, { type: 'step_end', step: 'only' }, { type: 'job_end', status: 'completed' });
    await waitFor(() => el.snapshot?.status === 'completed', 'completion');
    await el.updateComplete;
    // The layout was reserved: revealing the content shifts nothing.
    expect(body.getBoundingClientRect().height).to.equal(heightBefore);
    await waitFor(() => getComputedStyle(part(el, 'skeleton')!).visibility === 'hidden', 'skeleton hidden');
    await expect(el).to.be.accessible();
  });
});
