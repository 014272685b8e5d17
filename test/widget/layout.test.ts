// Layout: an intrinsic width that never collapses (flex, grid, inline, a stock Vite page) and stays
// the same in every state; a compact, vertical list of steps below 30rem with the current or failed
// step in view and nothing scrolling sideways; axe-clean at 375 px and at desktop width. States are
// real server states (created and advanced through the server's API), shown through `snapshot`.
import { expect, fixture, fixtureCleanup, html } from '@open-wc/testing';
import { setViewport } from '@web/test-runner-commands';
import type { Job } from '../../protocol/index.js';
import '../../widget/define.js';
import type { ProgressTracker } from '../../widget/progress-tracker.js';
import { createJob, getJob, part, parts, send } from '../fixtures/widget-page.js';

const STEPS5 = [
  { id: 'fetch', label: 'Fetch sources' },
  { id: 'upload', label: 'Upload' },
  { id: 'encode', label: 'Encode video' },
  { id: 'thumbs', label: 'Thumbnails' },
  { id: 'publish', label: 'Publish' },
];
const LONG = 'The encoder gave up on frame 4312 of the second audio-video track because the container declares an unsupported codec profile (h265 main 10, 4:2:2), which this worker pool cannot decode';

type State = 'loading' | 'queued' | 'running' | 'failed' | 'completed';
const STATES: State[] = ['loading', 'queued', 'running', 'failed', 'completed'];

/** Real server states: a job queued, the same job running step 3 of 5 and then failed at step 4; another completed. */
async function serverStates(): Promise<Record<Exclude<State, 'loading'>, Job>> {
  const a = await createJob(STEPS5);
  await send(a.id, { type: 'queued', position: 2 });
  const queued = await getJob(a.id);
  await send(a.id, ...STEPS5.slice(0, 2).flatMap((s) => [{ type: 'step_start' as const, step: s.id }, { type: 'step_end' as const, step: s.id }]));
  await send(a.id, { type: 'step_start', step: 'encode' }, { type: 'progress', step: 'encode', progress: 0.4, message: 'Frame 1200 of 3000' });
  const running = await getJob(a.id);
  await send(a.id, { type: 'step_end', step: 'encode' }, { type: 'step_start', step: 'thumbs' });
  await send(a.id, { type: 'step_failed', step: 'thumbs', error: { code: 'codec', message: LONG } });
  const failed = await getJob(a.id);
  const b = await createJob(STEPS5);
  await send(b.id, ...STEPS5.flatMap((s) => [{ type: 'step_start' as const, step: s.id }, { type: 'step_end' as const, step: s.id }]), { type: 'job_end', status: 'completed' });
  const completed = await getJob(b.id);
  expect([queued.status, running.status, failed.status, completed.status]).to.deep.equal(['queued', 'running', 'failed', 'completed']);
  return { queued, running, failed, completed };
}

let states: Awaited<ReturnType<typeof serverStates>>;

/** Shows `state` on `el` (no connection: `snapshot` only), waiting for the render. */
async function show(el: ProgressTracker, state: State): Promise<void> {
  const job = state === 'loading' ? undefined : states[state];
  el.job = job?.id ?? 'not-yet';
  await el.updateComplete;
  if (job) el.snapshot = job;
  await el.updateComplete;
  expect(el.snapshot?.status ?? 'loading').to.equal(state);
}

function tracker(): ProgressTracker {
  const el = document.createElement('progress-tracker');
  el.steps = STEPS5;
  el.label = 'Video export';
  return el;
}

const width = (e: Element) => e.getBoundingClientRect().width;

/** Nothing in the element sticks out sideways, and nothing in it scrolls sideways. */
function assertNoSidewaysOverflow(el: ProgressTracker): void {
  const box = el.getBoundingClientRect();
  expect(el.scrollWidth, 'host scrollWidth').to.be.at.most(el.clientWidth + 1);
  for (const node of el.shadowRoot!.querySelectorAll<HTMLElement>('*')) {
    if (node.closest('.visually-hidden') || node.localName === 'style') continue;
    const r = node.getBoundingClientRect();
    if (!r.width) continue;
    expect(r.left, `${node.className} left`).to.be.at.least(box.left - 1);
    expect(r.right, `${node.className} right`).to.be.at.most(box.right + 1);
    if (/auto|scroll/.test(getComputedStyle(node).overflowX)) expect(node.scrollWidth, `${node.className} scrolls sideways`).to.be.at.most(node.clientWidth + 1);
  }
}

/** The step that matters (current, failed; the last when completed) is inside the element and the viewport. */
function assertKeyStepVisible(el: ProgressTracker, state: State): void {
  const steps = parts(el, 'step');
  const key =
    state === 'running' ? steps.find((s) => s.getAttribute('aria-current') === 'step') : state === 'failed' ? parts(el, 'step-failed')[0] : steps.at(-1);
  expect(key, `the ${state} step`).to.exist;
  const r = key!.getBoundingClientRect();
  const box = el.getBoundingClientRect();
  expect(r.left).to.be.at.least(Math.max(0, box.left) - 1);
  expect(r.right).to.be.at.most(Math.min(innerWidth, box.right) + 1);
}

const CONTEXTS: Record<string, (el: ProgressTracker) => HTMLElement> = {
  'a centred flex column': (el) => wrap('display:flex;flex-direction:column;align-items:center', el),
  'a flex row beside a label': (el) => wrap('display:flex;align-items:flex-start;gap:1rem', document.createTextNode('Export'), el),
  'a flex row beside a long paragraph': (el) => {
    const p = document.createElement('p');
    p.textContent = 'Lorem ipsum dolor sit amet, '.repeat(40);
    return wrap('display:flex;align-items:flex-start;gap:1rem', p, el);
  },
  'a grid auto column': (el) => wrap('display:grid;grid-template-columns:auto 1fr;gap:1rem', el, document.createTextNode('Aside')),
  'an inline-block': (el) => {
    const span = document.createElement('span');
    span.style.display = 'inline-block';
    span.append(el);
    return wrap('', document.createTextNode('Status: '), span);
  },
  // The stock Vite + React template: body a centred flex row, #root centred with centred text.
  'a stock Vite React page': (el) => {
    const root = document.createElement('div');
    root.style.cssText = 'max-width:1280px;margin:0 auto;padding:2rem;text-align:center';
    const h1 = document.createElement('h1');
    h1.textContent = 'Vite + React';
    const p = document.createElement('p');
    p.textContent = 'Click on the Vite and React logos to learn more';
    root.append(h1, el, p);
    return wrap('display:flex;place-items:center;min-width:320px', root);
  },
};

function wrap(style: string, ...children: Node[]): HTMLElement {
  const div = document.createElement('div');
  div.style.cssText = `${style};width:1000px`;
  div.append(...children);
  return div;
}

describe('<progress-tracker> layout', () => {
  before(async () => {
    states = await serverStates();
  });
  afterEach(async () => {
    fixtureCleanup();
    await setViewport({ width: 1280, height: 800 });
  });

  for (const [name, make] of Object.entries(CONTEXTS)) {
    it(`in ${name}: a sensible width, the same in every state`, async () => {
      await setViewport({ width: 1280, height: 800 });
      const el = tracker();
      const container = make(el);
      await fixture(html`<div>${container}</div>`);
      const widths: Record<string, number> = {};
      for (const state of STATES) {
        await show(el, state);
        widths[state] = width(el);
        expect(width(part(el, 'card')!), 'the card fills the element').to.be.closeTo(widths[state]!, 0.5);
        assertNoSidewaysOverflow(el);
      }
      console.log(`width in ${name}: ${JSON.stringify(widths)}`);
      for (const state of STATES) expect(widths[state], `${state} vs loading`).to.be.closeTo(widths.loading!, 0.5);
      expect(widths.loading).to.be.at.least(280);
      // The full layout (steps in a row) from 30rem, the compact list below.
      expect(getComputedStyle(part(el, 'steps')!).flexDirection).to.equal(widths.loading! >= 480 ? 'row' : 'column');
      // The Vite template centres text; the card's text starts at the start edge.
      expect(getComputedStyle(part(el, 'card')!).textAlign).to.equal('start');
    });
  }

  it('in a block container it fills the line, at any width', async () => {
    for (const w of [900, 300]) {
      const el = tracker();
      await fixture(html`<div style="width:${w}px">${el}</div>`);
      await show(el, 'failed');
      expect(width(el)).to.equal(w);
      fixtureCleanup();
    }
  });

  it('--progress-tracker-width sets the intrinsic width', async () => {
    const el = tracker();
    el.style.setProperty('--progress-tracker-width', '30rem');
    await fixture(html`<div style="display:flex;flex-direction:column;align-items:center;width:1000px">${el}</div>`);
    await show(el, 'running');
    expect(width(el)).to.equal(480);
  });

  for (const [viewport, compact] of [
    [375, true],
    [1280, false],
  ] as const) {
    it(`at ${viewport} px: ${compact ? 'a vertical list of steps' : 'steps in a row'}, the current or failed step in view, nothing scrolls sideways, axe-clean in every state`, async () => {
      await setViewport({ width: viewport, height: 900 });
      const el = tracker();
      await fixture(html`<main>${el}</main>`);
      for (const state of STATES) {
        await show(el, state);
        expect(width(el)).to.be.at.most(viewport);
        expect(getComputedStyle(part(el, 'steps')!).flexDirection).to.equal(compact ? 'column' : 'row');
        if (compact) for (const sep of parts(el, 'separator')) expect(getComputedStyle(sep).display).to.equal('none');
        assertNoSidewaysOverflow(el);
        if (state !== 'loading' && state !== 'queued') assertKeyStepVisible(el, state);
        expect(document.documentElement.scrollWidth, 'the page does not scroll sideways').to.be.at.most(viewport);
        await expect(el, `axe in ${state}`).to.be.accessible();
      }
    });
  }

  it('RTL: the compact and the full layout mirror (logical properties)', async () => {
    await setViewport({ width: 1280, height: 800 });
    const el = tracker();
    await fixture(html`<div dir="rtl" style="width:700px">${el}</div>`);
    await show(el, 'running');
    const box = el.getBoundingClientRect();
    const [first, second] = parts(el, 'step');
    // The first step starts at the right edge, the next one is to its left.
    expect(box.right - first!.getBoundingClientRect().right).to.be.lessThan(40);
    expect(second!.getBoundingClientRect().right).to.be.lessThan(first!.getBoundingClientRect().left);
    expect(getComputedStyle(part(el, 'bar-indicator')!).transformOrigin.startsWith(`${width(part(el, 'bar')!)}px`)).to.equal(true);
    assertNoSidewaysOverflow(el);
  });
});
