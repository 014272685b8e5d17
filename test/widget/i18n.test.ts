// Languages and direction, in real Chromium against the real server's job states: every sentence
// follows `lang` (the element's, an ancestor's, the page's — and a change of <html lang>), with a
// fallback chain (de-CH → de → en); each language is a lazily imported module; right-to-left
// languages mirror the step arrows and the steps' order; producer labels are bidi-isolated.
import { expect, fixture, fixtureCleanup, html } from '@open-wc/testing';
import '../../widget/define.js';
import type { Job } from '../../protocol/index.js';
import { resolveLocale } from '../../widget/i18n/locale-controller.js';
import type { NotificationBadge } from '../../widget/notification-badge.js';
import type { ProgressTracker } from '../../widget/progress-tracker.js';
import { createJob, getJob, part, parts, send, uniqueId, visibleText, waitFor } from '../fixtures/widget-page.js';

const STEPS = [
  { id: 'upload', label: 'Upload' },
  { id: 'encode', label: 'Encode' },
  { id: 'publish', label: 'Publish' },
];
const NOW = 1_700_000_000_000;

/** A job from the real server, running its first step, with a 3-minute ETA. */
async function runningJob(): Promise<Job> {
  const job = await createJob(STEPS, uniqueId('i18n'));
  await send(job.id, { type: 'step_start', step: 'upload' }, { type: 'progress', step: 'upload', progress: 0.5 });
  return { ...(await getJob(job.id)), eta: { remainingMs: 3 * 60_000 } };
}

/** A job from the real server that failed at "Encode". */
async function failedJob(): Promise<Job> {
  const job = await createJob(STEPS, uniqueId('i18n'));
  await send(
    job.id,
    { type: 'step_start', step: 'upload' },
    { type: 'step_end', step: 'upload' },
    { type: 'step_start', step: 'encode' },
    { type: 'step_failed', step: 'encode', error: { code: 'codec', message: 'Unsupported codec' } },
  );
  return getJob(job.id);
}

async function tracker(job: Job, lang: string, wrap = false): Promise<ProgressTracker> {
  const el = wrap
    ? (await fixture<HTMLElement>(html`<div lang=${lang}><progress-tracker .clock=${() => NOW} .steps=${STEPS}></progress-tracker></div>`)).querySelector('progress-tracker')!
    : await fixture<ProgressTracker>(html`<progress-tracker lang=${lang} .clock=${() => NOW} .steps=${STEPS}></progress-tracker>`);
  el.snapshot = job;
  await el.updateComplete;
  return el;
}

const eta = (el: ProgressTracker) => visibleText(el, '[part~="eta"]');
const valueText = (el: ProgressTracker) => part(el, 'bar')!.getAttribute('aria-valuetext')!;

describe('i18n and direction', () => {
  afterEach(() => {
    fixtureCleanup();
    document.documentElement.lang = 'en';
  });

  it('the fallback chain: de-CH → de, pt-BR → pt, zh-Hans-CN → zh, unknown → en', () => {
    expect(resolveLocale('de-CH')).to.equal('de');
    expect(resolveLocale('pt_BR')).to.equal('pt');
    expect(resolveLocale('zh-Hans-CN')).to.equal('zh');
    expect(resolveLocale('ar-EG')).to.equal('ar');
    expect(resolveLocale('sw')).to.equal('en');
    expect(resolveLocale(undefined)).to.equal('en');
  });

  it('German (de-CH on an ancestor): the ETA, the bar\'s value text, the connection, and a separate module for the sentences', async () => {
    const el = await tracker(await runningJob(), 'de-CH', true);
    await waitFor(() => eta(el) === 'noch etwa 3 Min.', `the German ETA (got "${eta(el)}")`);
    // (Swiss German writes "16%", German "16 %": Intl in the element's own tag.)
    expect(valueText(el)).to.match(/^Schritt 1 von 3, \d+\s?%, noch etwa 3 Min\.$/);
    expect(visibleText(el, '[part~="step-status"]')).to.match(/^\d+\s?%/);
    // The German table came as its own module, on first use.
    const modules = performance.getEntriesByType('resource').map((e) => new URL(e.name).pathname);
    expect(modules.some((p) => /\/widget\/i18n\/locales\/de\.(ts|js)$/.test(p)), modules.join(' ')).to.equal(true);
    await expect(el).to.be.accessible();
  });

  it('Japanese: a failed job — failure, the failed step and Retry in Japanese, the producer label isolated', async () => {
    const el = await tracker(await failedJob(), 'ja');
    await waitFor(() => part(el, 'retry')?.textContent?.includes('再試行'), 'the Japanese Retry');
    expect(visibleText(el, '[part~="retry"]')).to.equal('「Encode」から再試行');
    expect(part(el, 'retry')!.textContent!.trim()).to.equal('「\u2068Encode\u2069」から再試行');
    expect(visibleText(el, '.error-step')).to.equal('「Encode」で失敗');
    expect(eta(el)).to.equal('失敗');
    expect(part(el, 'error')!.getAttribute('aria-label')).to.equal('失敗');
    await expect(el).to.be.accessible();
  });

  it('Arabic (right to left): Arabic text, the steps run right to left and the arrows point that way', async () => {
    const el = await tracker(await runningJob(), 'ar');
    await waitFor(() => eta(el).startsWith('يتبقى حوالي'), `the Arabic ETA (got "${eta(el)}")`);
    expect(valueText(el)).to.contain('الخطوة 1 من 3');
    expect(part(el, 'card')!.getAttribute('dir')).to.equal('rtl');
    const [first, second] = parts(el, 'step').map((s) => s.getBoundingClientRect());
    const layoutIsRow = Math.abs(first!.top - second!.top) < 2;
    if (layoutIsRow) expect(first!.left, 'step 1 to the right of step 2').to.be.greaterThan(second!.left);
    else expect(first!.top).to.be.lessThan(second!.top);
    // The arrow glyph ▶ points right; in RTL it is mirrored to point from step 1 to step 2 (leftwards).
    const separator = part(el, 'separator')!;
    expect(getComputedStyle(separator).direction).to.equal('rtl');
    if (getComputedStyle(separator).display !== 'none') expect(getComputedStyle(separator).transform).to.equal('matrix(-1, 0, 0, 1, 0, 0)');
    // The same arrow in a left-to-right language is not mirrored.
    const en = await tracker(await runningJob(), 'en');
    const enSep = part(en, 'separator')!;
    expect(getComputedStyle(enSep).transform).to.not.equal('matrix(-1, 0, 0, 1, 0, 0)');
    await expect(el).to.be.accessible();
  });

  it('Hebrew: the step announcement keeps a Latin label isolated inside the Hebrew sentence', async () => {
    const job = await runningJob();
    const el = await tracker({ ...job, status: 'queued', steps: job.steps.map((s) => ({ ...s, status: 'pending' as const })) }, 'he');
    await waitFor(() => eta(el) === 'ממתין להתקדמות…', `the Hebrew waiting text (got "${eta(el)}")`);
    el.snapshot = { ...job, seq: job.seq + 1 };
    await waitFor(() => el.shadowRoot!.querySelector('[role="status"]')!.textContent === 'שלב 1 מתוך 3: \u2068Upload\u2069', 'the Hebrew step announcement');
    expect(part(el, 'card')!.getAttribute('dir')).to.equal('rtl');
    expect(getComputedStyle(el.shadowRoot!.querySelector('.step-label')!).unicodeBidi).to.equal('isolate');
  });

  it('switching <html lang> re-renders every element in the new language, and back', async () => {
    document.documentElement.lang = 'en';
    const el = await tracker(await runningJob(), '', true);
    // (No lang on the wrapper: the page's applies.)
    el.parentElement!.removeAttribute('lang');
    el.requestUpdate();
    await waitFor(() => eta(el) === 'about 3 min left', 'English first');
    const badge = await fixture<NotificationBadge>(html`<notification-badge></notification-badge>`);
    const label = () => badge.shadowRoot!.querySelector('button')!.getAttribute('aria-label');
    expect(label()).to.equal('0 jobs finished');
    document.documentElement.lang = 'fr';
    await waitFor(() => eta(el) === 'environ 3 min restantes', `French after the switch (got "${eta(el)}")`);
    await waitFor(() => label() === '0 tâche terminée', `the badge in French too (got "${label()}")`);
    document.documentElement.lang = 'ko';
    await waitFor(() => eta(el) === '약 3분 남음', `Korean (got "${eta(el)}")`);
    await waitFor(() => label() === '작업 0개 종료', 'the badge in Korean');
    document.documentElement.lang = 'en';
    await waitFor(() => eta(el) === 'about 3 min left', 'English again');
  });

  it('a queued job: its place in line and a wait that counts down, in English (ordinal) and Chinese', async () => {
    const job = await createJob(STEPS, uniqueId('queued'));
    await send(job.id, { type: 'queued', position: 2 } as never);
    const real = await getJob(job.id);
    expect(real.status).to.equal('queued');
    let now = NOW;
    const el = await fixture<ProgressTracker>(html`<progress-tracker lang="en" .clock=${() => now}></progress-tracker>`);
    el.snapshot = { ...real, eta: { remainingMs: 5 * 60_000, waitMs: 2 * 60_000 } };
    await el.updateComplete;
    expect(eta(el)).to.equal('3rd in line · starts in about 2 min');
    now += 70_000;
    el.requestUpdate();
    await el.updateComplete;
    expect(eta(el)).to.equal('3rd in line · starts in less than a minute');
    el.snapshot = { ...real, seq: real.seq + 1, queue: { ...real.queue!, position: 0 }, eta: { remainingMs: 4 * 60_000, waitMs: 3 * 60_000 } };
    await el.updateComplete;
    expect(eta(el)).to.equal('Next in line · starts in about 3 min');
    el.snapshot = { ...real, seq: real.seq + 2, queue: { ...real.queue!, position: 21 }, eta: null };
    await el.updateComplete;
    expect(eta(el)).to.equal('22nd in line');
    el.setAttribute('lang', 'zh');
    el.snapshot = { ...real, seq: real.seq + 3, eta: { remainingMs: 5 * 60_000, waitMs: 2 * 60_000 } };
    await waitFor(() => eta(el) === '排队第 3 位 · 大约 2分钟 后开始', `Chinese (got "${eta(el)}")`);
  });
});
