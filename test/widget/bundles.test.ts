// The shipped forms of the widget, each in its own plain page (an iframe, so nothing from the
// test page leaks in): the one-file script-tag bundle, the React 19 and the Vue 3 examples.
// Properties go in (steps array, tokenProvider function), events come out, against the real server.
import { expect } from '@open-wc/testing';
import type { ProgressTracker } from '../../widget/progress-tracker.js';
import { createJob, getJob, send, serverUrl, token, uniqueId, waitFor, wsUrl } from '../fixtures/widget-page.js';

const STEPS3 = [
  { id: 'fetch', label: 'Fetch' },
  { id: 'transform', label: 'Transform' },
  { id: 'upload', label: 'Upload' },
];

async function openPage(path: string, jobId: string): Promise<{ frame: HTMLIFrameElement; win: Window; doc: Document }> {
  const query = new URLSearchParams({ src: wsUrl(await serverUrl()), job: jobId, token: await token() });
  const frame = document.createElement('iframe');
  frame.style.cssText = 'width: 800px; height: 600px';
  frame.src = `${path}?${query}`;
  document.body.append(frame);
  await new Promise((r) => frame.addEventListener('load', r, { once: true }));
  return { frame, win: frame.contentWindow!, doc: frame.contentDocument! };
}

async function trackerIn(doc: Document): Promise<ProgressTracker> {
  return waitFor(() => {
    const el = doc.querySelector('progress-tracker') as ProgressTracker | null;
    return el && el.shadowRoot && el.snapshot ? el : null;
  }, 'a connected <progress-tracker> in the page');
}

/** Finishes the job; the first step is already running. */
async function runToCompletion(jobId: string) {
  await send(jobId, { type: 'step_end', step: STEPS3[0]!.id });
  for (const s of STEPS3.slice(1)) await send(jobId, { type: 'step_start', step: s.id }, { type: 'step_end', step: s.id });
  await send(jobId, { type: 'job_end', status: 'completed' });
}

describe('bundles and framework examples', () => {
  let frame: HTMLIFrameElement | undefined;
  afterEach(() => {
    frame?.remove();
    frame = undefined;
  });

  it('the script-tag bundle defines both elements in a plain HTML page and follows a job', async () => {
    const job = await createJob(STEPS3);
    const page = await openPage('/demo/examples/script-tag.html', job.id);
    frame = page.frame;
    const el = await trackerIn(page.doc);
    expect(page.win.customElements.get('progress-tracker')).to.exist;
    expect(page.win.customElements.get('notification-badge')).to.exist;
    // The bundle is self-contained: the page loaded no other module than it.
    const scripts = page.win.performance.getEntriesByType('resource').map((e) => new URL(e.name).pathname).filter((p) => p.endsWith('.js') && !p.startsWith('/__web-dev-server'));
    expect(scripts).to.deep.equal(['/dist/progress-tracker.js']);
    await send(job.id, { type: 'step_start', step: 'fetch' });
    await waitFor(() => el.shadowRoot!.querySelector('[aria-current="step"]'), 'the current step');
    await runToCompletion(job.id);
    await waitFor(() => el.snapshot?.status === 'completed', 'completion');
    const badge = page.doc.querySelector('notification-badge')!;
    await waitFor(() => (badge as unknown as { count: number }).count === 1, 'the badge counted it');
  });

  // (The 25 KB gzip budget of the bundle is enforced by rollup.config.mjs: the build these tests run on fails over it.)
  it('loads a language only when the page uses it: a separate chunk next to the bundle', async () => {
    const job = await createJob(STEPS3);
    const page = await openPage('/demo/examples/script-tag.html', job.id);
    frame = page.frame;
    const el = await trackerIn(page.doc);
    const scripts = () => page.win.performance.getEntriesByType('resource').map((e) => new URL(e.name).pathname).filter((p) => p.endsWith('.js') && !p.startsWith('/__web-dev-server'));
    // English is built in: nothing else was loaded.
    expect(scripts()).to.deep.equal(['/dist/progress-tracker.js']);
    // The page switches to Japanese: the Japanese sentences arrive as their own chunk, and the element re-renders.
    page.doc.documentElement.lang = 'ja';
    const eta = () => el.shadowRoot!.querySelector('[part~="eta"]')!.textContent!.trim();
    await waitFor(() => eta() === '進捗を待っています…', `the Japanese text (got "${eta()}")`);
    expect(scripts()).to.deep.equal(['/dist/progress-tracker.js', '/dist/progress-tracker-ja.js']);
    const chunk = await (await fetch('/dist/progress-tracker-ja.js')).text();
    expect(chunk, 'the chunk imports nothing (no second copy of the bundle)').to.not.match(/\bimport\b/);
  });

  it("the badge popover's inside (its list, \"Mark all as seen\") is a chunk loaded only when used, that imports nothing", async () => {
    const job = await createJob(STEPS3);
    const page = await openPage('/demo/examples/script-tag.html', job.id);
    frame = page.frame;
    await trackerIn(page.doc);
    const scripts = () => page.win.performance.getEntriesByType('resource').map((e) => new URL(e.name).pathname).filter((p) => p.endsWith('.js') && !p.startsWith('/__web-dev-server'));
    // A feed badge in the page, connected and counting: still only the bundle.
    const tag = `user:${uniqueId('u')}`;
    const badge = page.doc.createElement('notification-badge') as HTMLElement & { src: string; token: string; updateComplete: Promise<boolean> };
    badge.setAttribute('tag', tag);
    badge.token = await token({ jobs: [`tag:${tag}`], scopes: ['progress:read'] });
    badge.src = wsUrl(await serverUrl());
    page.doc.body.append(badge);
    await waitFor(() => page.win.localStorage.getItem(`notification-badge:${tag}`), 'the feed\'s first list');
    await badge.updateComplete;
    const root = badge.shadowRoot!;
    expect(root.querySelector('[part="list"]'), 'no list before the popover is used').to.equal(null);
    expect(scripts()).to.deep.equal(['/dist/progress-tracker.js']);
    // Opened: the chunk arrives and the list renders.
    root.querySelector<HTMLButtonElement>('[part="base"]')!.click();
    await waitFor(() => root.querySelector('[part="popover"]')!.matches(':popover-open'), 'the popover open');
    await badge.updateComplete;
    expect(root.querySelector('[part="list"]')!.textContent).to.equal('No jobs yet');
    expect(root.querySelector('[part="mark-seen"]')).to.exist;
    expect(scripts()).to.deep.equal(['/dist/progress-tracker.js', '/dist/progress-tracker-badge-popover.js']);
    const chunk = await (await fetch('/dist/progress-tracker-badge-popover.js')).text();
    expect(chunk, 'the chunk imports nothing (no second copy of the bundle)').to.not.match(/\bimport\b/);
  });

  it('loading the bundle twice does not throw (guarded definition)', async () => {
    const job = await createJob(STEPS3);
    const page = await openPage('/demo/examples/script-tag.html', job.id);
    frame = page.frame;
    await trackerIn(page.doc);
    const errors: string[] = [];
    page.win.addEventListener('error', (e) => errors.push(e.message));
    const s = page.doc.createElement('script');
    s.type = 'module';
    s.textContent = `import('/dist/progress-tracker.js?copy=2').then(() => { window.__secondCopy = 'ok'; }, (e) => { window.__secondCopy = String(e); });`;
    page.doc.body.append(s);
    await waitFor(() => (page.win as unknown as { __secondCopy?: string }).__secondCopy, 'the second copy evaluated');
    expect((page.win as unknown as { __secondCopy: string }).__secondCopy).to.equal('ok');
    expect(errors).to.deep.equal([]);
  });

  for (const [name, path] of [
    ['React 19', '/demo/examples/react/index.html'],
    ['Vue 3', '/demo/examples/vue/index.html'],
  ] as const) {
    it(`the ${name} example: properties in, events out`, async () => {
      const job = await createJob(STEPS3);
      const page = await openPage(path, job.id);
      frame = page.frame;
      const el = await trackerIn(page.doc);
      // Properties, not attributes: an array and a function arrived intact.
      expect(el.steps).to.deep.equal(STEPS3);
      expect(typeof el.tokenProvider).to.equal('function');
      expect(el.label).to.equal(`${name.split(' ')[0]} export`);
      expect(el.connectionState).to.equal('live');
      const status = () => page.doc.getElementById('status')!;
      await send(job.id, { type: 'step_start', step: 'fetch' }, { type: 'progress', step: 'fetch', progress: 0.5 });
      // The update's seq, not its progress: with history for these steps the server's progress is
      // time-based, and a step started and half done in one request has taken no time yet (0%).
      const { seq } = await getJob(job.id);
      await waitFor(() => Number(status().dataset.seq) >= seq, 'progress-update handled by the framework');
      expect(Number(status().dataset.progress)).to.be.within(0, 1);
      await runToCompletion(job.id);
      await waitFor(() => status().textContent!.trim() === `completed ${job.id}`, 'progress-complete handled by the framework');
    });
  }
});
