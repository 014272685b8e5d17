// Theming: light or dark follows the page's color-scheme (inherited by the host), or the `theme`
// attribute; not the OS preference alone. The badge follows too. And the indeterminate bar shows a
// visible segment all along (a static striped pattern with reduced motion).
import { expect, fixture, fixtureCleanup, html } from '@open-wc/testing';
import { emulateMedia } from '@web/test-runner-commands';
import '../../widget/define.js';
import type { NotificationBadge } from '../../widget/notification-badge.js';
import type { ProgressTracker } from '../../widget/progress-tracker.js';
import { STEPS, createJob, part, send, serverUrl, token, waitFor, wsUrl } from '../fixtures/widget-page.js';

const LIGHT = 'rgb(255, 255, 255)';
const DARK = 'rgb(17, 24, 39)';
const cardBg = (el: ProgressTracker) => getComputedStyle(part(el, 'card')!).backgroundColor;
const page = document.documentElement;

async function liveTracker(attrs = ''): Promise<ProgressTracker> {
  const job = await createJob();
  const root = await fixture<HTMLElement>(html`<div></div>`);
  root.innerHTML = `<progress-tracker label="Export" ${attrs}></progress-tracker>`;
  const el = root.querySelector('progress-tracker')!;
  Object.assign(el, { steps: STEPS, token: await token(), src: wsUrl(await serverUrl()), job: job.id });
  await send(job.id, { type: 'step_start', step: 'upload' }, { type: 'progress', step: 'upload', progress: 0.5 });
  await waitFor(() => el.snapshot?.status === 'running', 'running');
  await el.updateComplete;
  return el;
}

/** A badge counting one finished tracker job (no src: it counts the page's `progress-complete`). */
async function badgeWithCount(attrs = ''): Promise<NotificationBadge> {
  const root = await fixture<HTMLElement>(html`<div></div>`);
  root.innerHTML = `<notification-badge ${attrs}></notification-badge>`;
  const badge = root.querySelector('notification-badge')!;
  const el = document.createElement('progress-tracker');
  Object.assign(el, { token: await token(), src: wsUrl(await serverUrl()) });
  const job = await createJob([{ id: 's', label: 'Step' }]);
  el.job = job.id;
  root.append(el);
  await waitFor(() => el.connectionState === 'live', 'live');
  await send(job.id, { type: 'step_start', step: 's' }, { type: 'step_end', step: 's' }, { type: 'job_end', status: 'completed' });
  await waitFor(() => badge.count === 1, 'counted');
  await badge.updateComplete;
  return badge;
}
const pillBg = (b: NotificationBadge) => getComputedStyle(b.shadowRoot!.querySelector('[part="count"]')!).backgroundColor;

describe('theming', () => {
  afterEach(async () => {
    page.style.colorScheme = '';
    fixtureCleanup();
    await emulateMedia({ colorScheme: 'light', reducedMotion: 'no-preference' });
  });

  it('a page without color-scheme is light even when the OS is dark (the tracker and the badge)', async () => {
    await emulateMedia({ colorScheme: 'dark' });
    const el = await liveTracker();
    expect(cardBg(el)).to.equal(LIGHT);
    page.style.colorScheme = 'light';
    expect(cardBg(el)).to.equal(LIGHT);
    const badge = await badgeWithCount();
    expect(pillBg(badge)).to.equal('rgb(185, 28, 28)');
    await expect(el).to.be.accessible();
  });

  it("a dark page (color-scheme: dark) gets a dark card and badge, axe-clean; a panel's own color-scheme wins", async () => {
    page.style.colorScheme = 'dark';
    const el = await liveTracker();
    expect(cardBg(el)).to.equal(DARK);
    expect(getComputedStyle(part(el, 'card')!).color).to.equal('rgb(243, 244, 246)');
    await expect(el).to.be.accessible();
    const badge = await badgeWithCount();
    expect(pillBg(badge)).to.equal('rgb(252, 165, 165)');
    await expect(badge).to.be.accessible();
    // A light panel inside the dark page.
    const panel = el.parentElement!;
    panel.style.colorScheme = 'light';
    expect(cardBg(el)).to.equal(LIGHT);
  });

  it('a page supporting both (color-scheme: light dark) follows the OS', async () => {
    page.style.colorScheme = 'light dark';
    const el = await liveTracker();
    expect(cardBg(el)).to.equal(LIGHT);
    await emulateMedia({ colorScheme: 'dark' });
    expect(cardBg(el)).to.equal(DARK);
    await expect(el).to.be.accessible();
  });

  it('the theme attribute (or property) wins over the page: light, dark, auto', async () => {
    const el = await liveTracker('theme="dark"');
    expect(cardBg(el), 'dark on a light page').to.equal(DARK);
    await expect(el).to.be.accessible();
    page.style.colorScheme = 'dark';
    el.theme = 'light';
    await el.updateComplete;
    expect(el.getAttribute('theme'), 'the property reflects').to.equal('light');
    expect(cardBg(el), 'light on a dark page').to.equal(LIGHT);
    page.style.colorScheme = 'light';
    el.theme = 'auto';
    await el.updateComplete;
    expect(cardBg(el), 'auto, OS light').to.equal(LIGHT);
    await emulateMedia({ colorScheme: 'dark' });
    expect(cardBg(el), 'auto, OS dark').to.equal(DARK);
    el.theme = undefined;
    await el.updateComplete;
    expect(el.hasAttribute('theme')).to.equal(false);
    expect(cardBg(el), 'back to the light page').to.equal(LIGHT);

    const badge = await badgeWithCount('theme="dark"');
    expect(pillBg(badge)).to.equal('rgb(252, 165, 165)');
    badge.theme = 'light';
    page.style.colorScheme = 'dark';
    await badge.updateComplete;
    expect(pillBg(badge)).to.equal('rgb(185, 28, 28)');
  });

  it('custom properties still theme it (one value for both schemes, or light-dark())', async () => {
    const el = await liveTracker();
    el.style.setProperty('--progress-tracker-background', 'light-dark(rgb(1, 2, 3), rgb(4, 5, 6))');
    expect(cardBg(el)).to.equal('rgb(1, 2, 3)');
    el.theme = 'dark';
    await el.updateComplete;
    expect(cardBg(el)).to.equal('rgb(4, 5, 6)');
  });
});

describe('the indeterminate bar (before the first state)', () => {
  afterEach(async () => {
    fixtureCleanup();
    await emulateMedia({ reducedMotion: 'no-preference' });
  });

  const loading = () => fixture<ProgressTracker>(html`<progress-tracker label="Export" .steps=${STEPS} job="not-yet"></progress-tracker>`);

  it('shows a visible segment at every point of its animation, LTR and RTL', async () => {
    for (const dir of ['ltr', 'rtl']) {
      const el = await loading();
      el.dir = dir;
      await el.updateComplete;
      const bar = part(el, 'bar')!;
      const indicator = part(el, 'bar-indicator')!;
      const [animation] = indicator.getAnimations();
      expect(animation, 'an animation').to.exist;
      animation!.pause();
      const duration = Number(animation!.effect!.getComputedTiming().duration);
      const track = bar.getBoundingClientRect();
      const lefts: number[] = [];
      for (let i = 0; i <= 20; i++) {
        animation!.currentTime = (duration * 2 * i) / 20;
        const seg = indicator.getBoundingClientRect();
        const visible = Math.min(seg.right, track.right) - Math.max(seg.left, track.left);
        expect(visible, `${dir}: visible width at ${i}/20`).to.be.at.least(track.width * 0.2);
        lefts.push(seg.left);
      }
      // It moves, and starts at the inline start.
      expect(Math.max(...lefts) - Math.min(...lefts)).to.be.greaterThan(track.width * 0.4);
      const first = (animation!.currentTime = 0, indicator.getBoundingClientRect());
      if (dir === 'ltr') expect(first.left).to.be.closeTo(track.left, 1);
      else expect(first.right).to.be.closeTo(track.right, 1);
      fixtureCleanup();
    }
  });

  it('with reduced motion: no animation, a static striped pattern across the track', async () => {
    await emulateMedia({ reducedMotion: 'reduce' });
    const el = await loading();
    const indicator = part(el, 'bar-indicator')!;
    const style = getComputedStyle(indicator);
    expect(style.animationName).to.equal('none');
    expect(style.backgroundImage).to.contain('repeating-linear-gradient');
    expect(indicator.getBoundingClientRect().width).to.be.closeTo(part(el, 'bar')!.getBoundingClientRect().width, 1);
    await expect(el).to.be.accessible();
  });
});
