// <notification-badge src tag>: counts the finished jobs of a tag's feed on a page without any
// tracker, against the real server — what finished before the browser first saw the feed does not
// count; the count survives reloads and is shared by tabs (localStorage + storage events); the
// popover by keyboard only, axe in each state; RTL, dark scheme; the feed over SSE and polling;
// notifications while hidden.
import { expect, fixture, fixtureCleanup, html } from '@open-wc/testing';
import { executeServerCommand, sendKeys } from '@web/test-runner-commands';
import '../../widget/define.js';
import { FeedClient } from '../../widget/feed-client.js';
import type { NotificationBadge } from '../../widget/notification-badge.js';
import { chaosProxy, createJob, FAST, send, serverUrl, sleep, token, uniqueId, waitFor, wsUrl, type ChaosProxy } from '../fixtures/widget-page.js';

const STEP = [{ id: 's', label: 'Step' }];
const newTag = () => `user:${uniqueId('u')}`;
const tagToken = (tag: string) => token({ jobs: [`tag:${tag}`], scopes: ['progress:read'] });

/** A job carrying `tag` (and a title), its one step running. */
async function startJob(tag: string, title?: string): Promise<string> {
  const job = await createJob(STEP, uniqueId(), { tags: [tag], ...(title && { meta: { title } }) });
  await send(job.id, { type: 'step_start', step: 's' });
  return job.id;
}
const complete = (id: string) => send(id, { type: 'step_end', step: 's' }, { type: 'job_end', status: 'completed' });
const fail = (id: string) => send(id, { type: 'step_failed', step: 's', error: { code: 'x', message: 'Out of paper' } });
const cancel = (id: string) => send(id, { type: 'job_end', status: 'canceled' });

const base = (b: NotificationBadge) => b.shadowRoot!.querySelector<HTMLButtonElement>('[part="base"]')!;
const popover = (b: NotificationBadge) => b.shadowRoot!.querySelector<HTMLElement>('[popover]')!;
const items = (b: NotificationBadge) => [...b.shadowRoot!.querySelectorAll<HTMLElement>('[part~="item"]')];
const active = (b: NotificationBadge) => b.shadowRoot!.activeElement;
const text = (el: Element) => ((el as HTMLElement).innerText ?? '').replace(/\s+/g, ' ').trim();

async function badgeFor(tag: string, attrs = '', props: Partial<NotificationBadge> = {}): Promise<NotificationBadge> {
  const root = await fixture<HTMLElement>(html`<div></div>`);
  root.innerHTML = `<notification-badge tag="${tag}" href-template="#job-{id}" ${attrs}><span aria-hidden="true">🔔</span></notification-badge>`;
  const badge = root.querySelector('notification-badge')!;
  Object.assign(badge, { token: await tagToken(tag), ...props });
  badge.src ||= wsUrl(await serverUrl());
  await badge.updateComplete;
  return badge;
}

/** The first list has arrived (the seen state exists). */
const loaded = (b: NotificationBadge) => waitFor(() => localStorage.getItem(`notification-badge:${b.tag}`), 'the first feed');

describe('<notification-badge src tag>', () => {
  afterEach(() => fixtureCleanup());

  it('counts the jobs of its tag that finish elsewhere (not those that finished before), with an accessible name, axe-clean', async () => {
    const tag = newTag();
    // History: finished before this browser ever saw the feed.
    const old = await startJob(tag, 'Old report');
    await complete(old);

    const badge = await badgeFor(tag);
    await loaded(badge);
    expect(badge.count).to.equal(0);
    expect(base(badge).getAttribute('aria-label')).to.equal('0 jobs finished');
    expect(base(badge).getAttribute('aria-expanded')).to.equal('false');
    await expect(badge).to.be.accessible();

    const a = await startJob(tag, 'Quarterly report');
    const b = await startJob(tag);
    const c = await startJob(tag);
    const running = await startJob(tag, 'Still running');
    const other = await startJob(newTag());
    await waitFor(() => (badge as unknown as { jobs: unknown[] }).jobs.length === 5, 'the four new jobs and the old one in the feed');
    await complete(a);
    await fail(b);
    await cancel(c);
    await complete(other);
    await waitFor(() => badge.count === 3, 'completed, failed and canceled counted');
    await badge.updateComplete;
    expect(base(badge).getAttribute('aria-label')).to.equal('3 jobs finished');
    expect(text(badge.shadowRoot!.querySelector('[part="count"]')!)).to.equal('3');
    await expect(badge).to.be.accessible();
    await sleep(300);
    expect(badge.count, 'the running job and the other tag do not count').to.equal(3);
    expect(running).to.be.a('string');
  });

  it('the popover by keyboard only: open, links, mark all as seen, Escape returns focus; axe in each state', async () => {
    const tag = newTag();
    const badge = await badgeFor(tag);
    await loaded(badge);
    const first = await startJob(tag, 'Invoice batch');
    const second = await startJob(tag, 'Video export');
    await complete(first);
    await fail(second);
    await waitFor(() => badge.count === 2, 'two finished');

    base(badge).focus();
    await sendKeys({ press: 'Enter' });
    await waitFor(() => popover(badge).matches(':popover-open'), 'the popover open');
    await badge.updateComplete;
    expect(base(badge).getAttribute('aria-expanded')).to.equal('true');
    expect(active(badge) === base(badge), 'opening leaves focus on the button (disclosure)').to.equal(true);
    const rows = items(badge);
    expect(rows.map(text)).to.deep.equal([
      // Newest first: label, state in words, "new", relative time.
      '✕ Video export Failed · now · new',
      '✓ Invoice batch Done · now · new',
    ]);
    expect(rows[0]!.querySelector('a')!.getAttribute('href')).to.equal(`#job-${second}`);
    await expect(badge).to.be.accessible();

    // Tab walks the list, then "Mark all as seen".
    await sendKeys({ press: 'Tab' });
    expect(text(active(badge)!)).to.equal('Video export');
    await sendKeys({ press: 'Tab' });
    expect(text(active(badge)!)).to.equal('Invoice batch');
    await sendKeys({ press: 'Tab' });
    expect(active(badge)!.getAttribute('part')).to.equal('mark-seen');
    const cleared = new Promise((r) => badge.addEventListener('notification-badge-clear', r, { once: true }));
    await sendKeys({ press: 'Enter' });
    await cleared;
    await badge.updateComplete;
    expect(badge.count).to.equal(0);
    expect(base(badge).getAttribute('aria-label')).to.equal('0 jobs finished');
    expect(items(badge).map(text)).to.deep.equal(['✕ Video export Failed · now', '✓ Invoice batch Done · now']);
    expect(active(badge)!.getAttribute('part'), 'focus stays on the button').to.equal('mark-seen');
    await expect(badge).to.be.accessible();

    // Escape closes it and focus goes back to the badge.
    await sendKeys({ press: 'Escape' });
    await waitFor(() => !popover(badge).matches(':popover-open'), 'the popover closed');
    await badge.updateComplete;
    expect(active(badge) === base(badge), 'focus back on the badge').to.equal(true);
    expect(base(badge).getAttribute('aria-expanded')).to.equal('false');
    await expect(badge).to.be.accessible();

    // A new end counts; following its link (Enter) marks it seen, closes the popover, focus back.
    const third = await startJob(tag, 'Backup');
    await complete(third);
    await waitFor(() => badge.count === 1, 'the third job counted');
    await sendKeys({ press: ' ' });
    await waitFor(() => popover(badge).matches(':popover-open'), 'open again (Space)');
    await sendKeys({ press: 'Tab' });
    expect(text(active(badge)!)).to.equal('Backup');
    await sendKeys({ press: 'Enter' });
    await waitFor(() => !popover(badge).matches(':popover-open'), 'closed by following the link');
    expect(location.hash).to.equal(`#job-${third}`);
    expect(badge.count).to.equal(0);
    expect(active(badge) === base(badge), 'focus back on the badge').to.equal(true);
    history.replaceState(null, '', location.pathname + location.search);
  });

  it('persists across reloads and is shared between tabs (two pages with the bundle, one reloaded)', async () => {
    const tag = newTag();
    const src = wsUrl(await serverUrl());
    const tok = await tagToken(tag);
    const page = `<!doctype html><html lang="en"><body><notification-badge src="${src}" tag="${tag}" token="${tok}"></notification-badge><script type="module" src="/dist/progress-tracker.js"></script></body></html>`;
    const frames: HTMLIFrameElement[] = [];
    const open = async () => {
      const frame = document.createElement('iframe');
      frame.srcdoc = page;
      document.body.append(frame);
      frames.push(frame);
      await new Promise((r) => frame.addEventListener('load', r, { once: true }));
      return frame;
    };
    const badgeIn = (f: HTMLIFrameElement) => f.contentDocument!.querySelector('notification-badge') as NotificationBadge;
    const countIn = (f: HTMLIFrameElement) => (f.contentWindow as Window & { customElements: CustomElementRegistry }).customElements.get('notification-badge') && badgeIn(f).count;
    try {
      const old = await startJob(tag);
      await complete(old);
      const [a, b] = [await open(), await open()];
      await waitFor(() => localStorage.getItem(`notification-badge:${tag}`), 'the first feed');
      const j1 = await startJob(tag);
      const j2 = await startJob(tag);
      await complete(j1);
      await complete(j2);
      await waitFor(() => countIn(a) === 2 && countIn(b) === 2, 'both tabs count both');

      // Reload one tab: same count, not zero and not the old job too.
      await new Promise((r) => {
        a.addEventListener('load', r, { once: true });
        a.contentWindow!.location.reload();
      });
      await waitFor(() => countIn(a) === 2, 'the reloaded tab counts 2 again');
      await sleep(300);
      expect(countIn(a)).to.equal(2);

      // Mark all as seen in one tab: the other follows.
      badgeIn(b).clear();
      await waitFor(() => countIn(a) === 0, 'the other tab heard it');
      expect(countIn(b)).to.equal(0);

      // A job finishing now counts in both, also after a reload.
      const j3 = await startJob(tag);
      await fail(j3);
      await waitFor(() => countIn(a) === 1 && countIn(b) === 1, 'both count the new end');
      await new Promise((r) => {
        b.addEventListener('load', r, { once: true });
        b.contentWindow!.location.reload();
      });
      await waitFor(() => countIn(b) === 1, 'after reload');

      // A browser that has never seen the feed starts at zero.
      localStorage.removeItem(`notification-badge:${tag}`);
      await new Promise((r) => {
        b.addEventListener('load', r, { once: true });
        b.contentWindow!.location.reload();
      });
      await waitFor(() => localStorage.getItem(`notification-badge:${tag}`) && countIn(b) === 0, 'a fresh start at zero');
    } finally {
      for (const f of frames) f.remove();
    }
  });

  it('right-to-left and a dark page: the popover sits under the badge at its inline end, in dark colors, axe-clean', async () => {
    const tag = newTag();
    const root = await fixture<HTMLElement>(html`<div dir="rtl" lang="ar" style="color-scheme: dark; background: #111; color: #eee; padding: 1rem 4rem; text-align: end"></div>`);
    root.innerHTML = `<notification-badge tag="${tag}" href-template="/jobs/{id}"></notification-badge>`;
    const badge = root.querySelector('notification-badge')!;
    badge.token = await tagToken(tag);
    badge.src = wsUrl(await serverUrl());
    await loaded(badge);
    const id = await startJob(tag, 'تقرير');
    await complete(id);
    await waitFor(() => badge.count === 1, 'counted');
    await badge.updateComplete;
    base(badge).click();
    await waitFor(() => popover(badge).matches(':popover-open'), 'open');
    await badge.updateComplete;
    const b = base(badge).getBoundingClientRect();
    const p = popover(badge).getBoundingClientRect();
    expect(Math.abs(p.left - b.left), 'inline end = left in RTL').to.be.below(2);
    expect(Math.abs(p.top - b.bottom), 'right below the badge').to.be.below(2);
    expect(getComputedStyle(popover(badge)).backgroundColor, 'dark Canvas').to.not.equal('rgb(255, 255, 255)');
    expect(items(badge)[0]!.querySelector('a')!.getAttribute('href')).to.equal(`/jobs/${id}`);
    await expect(badge).to.be.accessible();
    popover(badge).hidePopover();

    // Left-to-right: the right edges line up.
    root.dir = 'ltr';
    base(badge).click();
    await waitFor(() => popover(badge).matches(':popover-open'), 'open');
    const b2 = base(badge).getBoundingClientRect();
    const p2 = popover(badge).getBoundingClientRect();
    expect(Math.abs(p2.right - b2.right)).to.be.below(2);
    expect(Math.abs(p2.top - b2.bottom)).to.be.below(2);
    popover(badge).hidePopover();
  });

  describe('down the transport chain', () => {
    let proxy: ChaosProxy | undefined;
    afterEach(async () => {
      await proxy?.close();
      proxy = undefined;
    });

    for (const mode of ['no-ws', 'no-stream'] as const) {
      it(`${mode === 'no-ws' ? 'over SSE (GET /v1/feed)' : 'by polling (GET /v1/jobs?tag=)'} when the proxy refuses ${mode === 'no-ws' ? 'WebSockets' : 'WebSockets and streams'}`, async function (this: { timeout(ms: number): void }) {
        this.timeout(60_000);
        proxy = await chaosProxy();
        await proxy.set(mode);
        const tag = newTag();
        const old = await startJob(tag);
        await complete(old);
        const feed = new FeedClient({ src: proxy.src, tag, token: await tagToken(tag), ...FAST });
        const states: string[] = [];
        feed.on('connection', (_s, t) => states.push(t));
        feed.open();
        try {
          // The element with its default timing: three socket failures, two stream failures, then polling.
          const badge = await badgeFor(tag, '', { src: proxy.src });
          await waitFor(() => localStorage.getItem(`notification-badge:${tag}`), 'the first list', 25_000);
          const id = await startJob(tag);
          await complete(id);
          await waitFor(() => badge.count === 1, 'counted', 25_000);
          await waitFor(() => feed.transport === (mode === 'no-ws' ? 'sse' : 'polling'), `the feed client on ${mode === 'no-ws' ? 'sse' : 'polling'}`);
          await waitFor(() => feed.jobs.find((j) => j.id === id)?.status === 'completed', 'the client has the end');
          expect(feed.jobs.map((j) => j.id)).to.include(old);
          expect(states).to.include(mode === 'no-ws' ? 'sse' : 'polling');
        } finally {
          feed.close();
        }
      });
    }
  });

  describe('notify', () => {
    const RealNotification = window.Notification;
    let shown: { title: string; body?: string; tag?: string }[] = [];
    class RecordingNotification extends RealNotification {
      constructor(title: string, options?: NotificationOptions) {
        super(title, options);
        shown.push({ title, body: options?.body, tag: options?.tag });
      }
    }
    const setHidden = (hidden: boolean) => executeServerCommand('pt:visibility', { hidden });
    beforeEach(() => {
      shown = [];
      window.Notification = RecordingNotification as unknown as typeof Notification;
    });
    afterEach(async () => {
      window.Notification = RealNotification;
      await setHidden(false);
      await executeServerCommand('pt:permission', { name: 'notifications', state: 'prompt' });
    });

    it('a feed job that finishes while the page is hidden: one notification (granted; never asked)', async () => {
      await executeServerCommand('pt:permission', { name: 'notifications', state: 'granted' });
      const tag = newTag();
      const badge = await badgeFor(tag, 'notify');
      await loaded(badge);
      const visible = await startJob(tag, 'Seen live');
      await complete(visible);
      await waitFor(() => badge.count === 1, 'the first end');
      expect(shown, 'nothing while the page is visible').to.have.length(0);
      const id = await startJob(tag, 'Nightly import');
      await waitFor(() => (badge as unknown as { jobs: { id: string }[] }).jobs.some((j) => j.id === id), 'the job in the feed');
      await setHidden(true);
      await waitFor(() => document.visibilityState === 'hidden', 'hidden');
      await fail(id);
      await waitFor(() => badge.count === 2, 'the second end');
      await sleep(100);
      expect(shown).to.deep.equal([{ title: 'Nightly import: failed', body: 'Out of paper', tag: id }]);
    });
  });
});
