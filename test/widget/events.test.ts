// DOM events (bubbling, composed, typed details) and the cancelable retry, against the real server.
import { expect, fixture, html } from '@open-wc/testing';
import '../../widget/define.js';
import type { Job } from '../../protocol/index.js';
import type { ProgressRetryDetail } from '../../widget/events.js';
import type { ProgressTracker } from '../../widget/progress-tracker.js';
import { STEPS, createJob, getJob, part, recordEvents, send, serverUrl, sleep, token, waitFor, wsUrl } from '../fixtures/widget-page.js';

async function failedJob(): Promise<{ job: Job; el: ProgressTracker; events: CustomEvent[]; host: HTMLElement }> {
  const job = await createJob();
  const src = wsUrl(await serverUrl());
  const tok = await token();
  // Inside another component's shadow root, to prove the events are composed.
  const host = await fixture<HTMLElement>(html`<div></div>`);
  const shadow = host.attachShadow({ mode: 'open' });
  const el = document.createElement('progress-tracker');
  el.token = tok;
  el.steps = STEPS;
  el.src = src;
  el.job = job.id;
  shadow.append(el);
  const events = recordEvents(host, ['progress-update', 'progress-complete', 'progress-error', 'progress-retry', 'progress-connection']);
  await waitFor(() => el.connectionState === 'live', 'live');
  await send(
    job.id,
    { type: 'step_start', step: 'upload' },
    { type: 'step_end', step: 'upload' },
    { type: 'step_start', step: 'encode' },
    { type: 'step_failed', step: 'encode', error: { code: 'disk_full', message: 'Disk full' } },
  );
  await waitFor(() => el.snapshot?.status === 'failed', 'failed');
  await el.updateComplete;
  return { job, el, events, host };
}

describe('events', () => {
  it('progress-update, progress-error and progress-connection bubble out of shadow roots with typed details', async () => {
    const { job, events } = await failedJob();
    const updates = events.filter((e) => e.type === 'progress-update');
    expect(updates.length).to.be.at.least(1);
    for (const e of events) {
      expect(e.bubbles).to.equal(true);
      expect(e.composed).to.equal(true);
    }
    expect((updates.at(-1)!.detail as Job).id).to.equal(job.id);
    const connection = events.filter((e) => e.type === 'progress-connection').map((e) => e.detail);
    expect(connection).to.include('live');
    const error = events.find((e) => e.type === 'progress-error')!;
    expect(error.detail).to.include({ code: 'disk_full', message: 'Disk full', step: 'encode' });
    expect(error.detail.job.id).to.equal(job.id);
    expect(error.cancelable).to.equal(false);
  });

  it('progress-complete fires once with the finished job', async () => {
    const job = await createJob([{ id: 'a', label: 'A' }]);
    const el = await fixture<ProgressTracker>(html`<progress-tracker .token=${await token()} src=${wsUrl(await serverUrl())} job=${job.id}></progress-tracker>`);
    const events = recordEvents(document, ['progress-complete']);
    await send(job.id, { type: 'step_start', step: 'a' }, { type: 'step_end', step: 'a' }, { type: 'job_end', status: 'completed' });
    await waitFor(() => events.length > 0, 'progress-complete');
    await sleep(300);
    expect(events.length).to.equal(1);
    expect((events[0]!.detail as Job).status).to.equal('completed');
    expect(events[0]!.target).to.equal(el);
  });

  it('Retry first fires a cancelable progress-retry; when canceled the host app handles it and nothing is sent', async () => {
    const { job, el, host } = await failedJob();
    let detail: ProgressRetryDetail | undefined;
    host.addEventListener('progress-retry', (e) => {
      detail = (e as CustomEvent<ProgressRetryDetail>).detail;
      e.preventDefault();
    });
    part(el, 'retry')!.click();
    expect(detail).to.deep.include({ jobId: job.id, step: 'encode' });
    await sleep(800);
    expect((await getJob(job.id)).status).to.equal('failed');
    expect(el.snapshot!.status).to.equal('failed');
  });

  it('Retry (not canceled) resumes the job from the failed step over the socket; a second press while it is under way sends nothing', async () => {
    const { job, el, events } = await failedJob();
    part(el, 'retry')!.click();
    await el.updateComplete;
    // Until the server answers (a network round trip, after this render), the button says so,
    // keeps focus (aria-disabled) and ignores presses.
    const button = part(el, 'retry')!;
    expect(button.getAttribute('aria-disabled')).to.equal('true');
    expect(button.textContent!.trim()).to.equal('Retrying…');
    button.click();
    expect(events.filter((e) => e.type === 'progress-retry').length).to.equal(1);
    expect(events.some((e) => e.type === 'progress-retry' && e.cancelable)).to.equal(true);
    // The server re-queues the job from the failed step and tells the producer.
    await waitFor(() => el.snapshot?.status === 'queued', 'queued again after retry', 15_000);
    const server = await getJob(job.id);
    expect(server.status).to.equal('queued');
    expect(server.attempts).to.equal(1);
    // Resumed from the failed step: the completed one stays completed.
    expect(server.steps.map((s) => s.status)).to.deep.equal(['completed', 'pending', 'pending']);
    await el.updateComplete;
    expect(part(el, 'retry')).to.equal(null);
    expect(el.connectionState).to.equal('live');
    // And the element keeps following it to the end.
    await send(job.id, { type: 'step_start', step: 'encode' }, { type: 'step_end', step: 'encode' }, { type: 'step_start', step: 'publish' }, { type: 'step_end', step: 'publish' }, { type: 'job_end', status: 'completed' });
    await waitFor(() => el.snapshot?.status === 'completed', 'completed after retry');
  });
});
