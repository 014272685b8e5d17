// The ETA: Intl text in `lang`, the local countdown between updates, and a shown finish time
// that does not jitter — with a controllable clock (the element's `clock` property).
import { expect, fixture, html } from '@open-wc/testing';
import '../../widget/define.js';
import type { Eta, Job } from '../../protocol/index.js';
import { FinishTimeSmoother } from '../../widget/estimate.js';
import { defaultMessages, formatRemaining } from '../../widget/format.js';
import type { ProgressTracker } from '../../widget/progress-tracker.js';
import { createJob, getJob, part, send, uniqueId, visibleText, waitFor } from '../fixtures/widget-page.js';

/** A running job from the real server (one step in progress), with `eta` set as the server would. */
async function runningJob(eta: Eta | null): Promise<Job> {
  const job = await createJob([{ id: 'work', label: 'Work' }], uniqueId('eta'));
  await send(job.id, { type: 'step_start', step: 'work' }, { type: 'progress', step: 'work', progress: 0.2 });
  const real = await getJob(job.id);
  return { ...real, eta };
}

class FakeClock {
  constructor(public now = 1_700_000_000_000) {}
  read = () => this.now;
  advance(ms: number) {
    this.now += ms;
  }
}

async function mountWith(job: Job, clock: FakeClock, lang = 'en'): Promise<ProgressTracker> {
  const el = await fixture<ProgressTracker>(html`<progress-tracker lang=${lang} .clock=${clock.read} label="Export"></progress-tracker>`);
  expect(el.getAttribute('lang')).to.equal(lang);
  el.snapshot = job;
  await el.updateComplete;
  return el;
}

async function tick(el: ProgressTracker) {
  el.requestUpdate();
  await el.updateComplete;
}

describe('ETA text, countdown and smoothing', () => {
  it('says it the way people do, in English by default', () => {
    const m = defaultMessages;
    expect(formatRemaining(3 * 60_000, 'en', m)).to.equal('about 3 min left');
    expect(formatRemaining(45_000, 'en', m)).to.equal('less than a minute left');
    expect(formatRemaining(500, 'en', m)).to.equal('finishing…');
    expect(formatRemaining(5 * 60_000, 'en', m, { low: 3 * 60_000, high: 8 * 60_000 })).to.equal('about 5 min left (3–8 min)');
    // A narrow range adds nothing and is left out.
    expect(formatRemaining(5 * 60_000, 'en', m, { low: 4.5 * 60_000, high: 5.5 * 60_000 })).to.equal('about 5 min left');
    expect(formatRemaining(95 * 60_000, 'en', m)).to.match(/^about 1 hr,? 35 min left$/);
  });

  it('formats numbers and units with Intl in `lang`, set on the element or inherited from the page', async () => {
    const clock = new FakeClock();
    const job = await runningJob({ remainingMs: 3 * 60_000 });
    const el = await mountWith(job, clock, 'de');
    // The sentence too, once German has loaded (i18n.test.ts has the languages).
    await waitFor(() => visibleText(el, '[part~="eta"]') === 'noch etwa 3 Min.', 'the German sentence');
    expect(visibleText(el, '[part~="percentage"]')).to.match(/^\d+ %$/); // German: "20 %"
    el.setAttribute('lang', 'en');
    await el.updateComplete;
    expect(visibleText(el, '[part~="percentage"]')).to.match(/^\d+%$/);

    const wrapper = await fixture<HTMLElement>(html`<div lang="fr"><progress-tracker .clock=${clock.read}></progress-tracker></div>`);
    const inner = wrapper.querySelector('progress-tracker')!;
    inner.snapshot = job;
    await inner.updateComplete;
    // The element adds no lang attribute of its own (that would cut the page's language off).
    expect(inner.hasAttribute('lang')).to.equal(false);
    await waitFor(() => visibleText(inner, '[part~="eta"]') === 'environ 3 min restantes', 'the French sentence, from the ancestor');
    expect(inner.shadowRoot!.querySelector('[part~="percentage"]')!.textContent).to.match(/^\d+[\u00a0\u202f]%$/); // French: a no-break space before %
  });

  it('counts down locally between server updates and advances the bar', async () => {
    const clock = new FakeClock();
    const el = await mountWith(await runningJob({ remainingMs: 3 * 60_000 }), clock);
    expect(visibleText(el, '[part~="eta"]')).to.equal('about 3 min left');
    const bar = part(el, 'bar')!;
    const p0 = Number(bar.getAttribute('aria-valuenow'));
    expect(bar.getAttribute('aria-valuetext')).to.equal(`Step 1 of 1, ${p0}%, about 3 min left`);
    clock.advance(60_000);
    await tick(el);
    expect(visibleText(el, '[part~="eta"]')).to.equal('about 2 min left');
    const p1 = Number(bar.getAttribute('aria-valuenow'));
    expect(p1).to.be.greaterThan(p0);
    clock.advance(90_000);
    await tick(el);
    expect(visibleText(el, '[part~="eta"]')).to.equal('less than a minute left');
    clock.advance(60_000);
    await tick(el);
    expect(visibleText(el, '[part~="eta"]')).to.equal('finishing…');
    // The estimate never claims completion.
    expect(Number(bar.getAttribute('aria-valuenow'))).to.be.lessThan(100);
  });

  it('does not jitter when server estimates wobble, but follows a real trend', async () => {
    const clock = new FakeClock();
    let job = await runningJob({ remainingMs: 10 * 60_000, low: 8 * 60_000, high: 13 * 60_000 });
    const el = await mountWith(job, clock);
    const shown: string[] = [visibleText(el, '[part~="eta"]')];
    // Every 10 s the server's estimate wobbles ±20% around the truth (which counts down).
    const wobble = [1.2, 0.8, 1.15, 0.85, 1.2, 0.8];
    for (let i = 0; i < wobble.length; i++) {
      clock.advance(10_000);
      const truth = 10 * 60_000 - (i + 1) * 10_000;
      job = { ...job, seq: job.seq + 1, updatedAt: job.updatedAt + 1, eta: { remainingMs: truth * wobble[i]!, low: truth * 0.8, high: truth * 1.3 } };
      el.snapshot = job;
      await el.updateComplete;
      shown.push(visibleText(el, '[part~="eta"]').replace(/ \(.*\)$/, ''));
    }
    // Shown minutes never go up while time passes, and never jump by more than a minute.
    const minutes = shown.map((s) => Number(/about (\d+) min/.exec(s)![1]));
    for (let i = 1; i < minutes.length; i++) {
      expect(minutes[i]!, `shown: ${shown.join(' | ')}`).to.be.at.most(minutes[i - 1]!);
      expect(minutes[i - 1]! - minutes[i]!).to.be.at.most(1);
    }
    // A real trend (the job got much slower) is followed.
    for (let i = 0; i < 4; i++) {
      clock.advance(10_000);
      job = { ...job, seq: job.seq + 1, updatedAt: job.updatedAt + 1, eta: { remainingMs: 20 * 60_000, low: 18 * 60_000, high: 24 * 60_000 } };
      el.snapshot = job;
      await el.updateComplete;
    }
    const after = Number(/about (\d+) min/.exec(visibleText(el, '[part~="eta"]'))![1]);
    expect(after).to.be.within(17, 21);
  });

  it('the smoother keeps a finish time inside the server range and converges outside it', () => {
    const s = new FinishTimeSmoother();
    const t0 = 1000;
    expect(s.update({ remainingMs: 100_000 }, t0)).to.equal(t0 + 100_000);
    // Inside the range: unchanged.
    expect(s.update({ remainingMs: 110_000, low: 80_000, high: 130_000 }, t0 + 5000)).to.equal(t0 + 100_000);
    // Far outside: moves most of the way at once, then converges.
    const f1 = s.update({ remainingMs: 300_000 }, t0 + 10_000)!;
    expect(f1).to.be.greaterThan(t0 + 200_000);
    const f2 = s.update({ remainingMs: 290_000 }, t0 + 20_000)!;
    expect(Math.abs(f2 - (t0 + 310_000))).to.be.lessThan(Math.abs(f1 - (t0 + 310_000)));
    expect(s.update(null, t0)).to.equal(null);
  });
});
