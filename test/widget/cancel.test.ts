// Cancel from the page, against the real server: <progress-tracker cancelable>'s button, inline
// confirmation and states ("Canceling…" while the producer stops, then "Canceled"), the cancelable
// progress-cancel event with el.cancel(), a token without progress:cancel, and
// ProgressClient.cancel() over HTTP when only polling works.
import { expect, fixture, html } from '@open-wc/testing';
import { sendKeys } from '@web/test-runner-commands';
import '../../widget/define.js';
import type { Job } from '../../protocol/index.js';
import type { ProgressCancelDetail } from '../../widget/events.js';
import { ProgressClient, type ProgressErrorInfo } from '../../widget/progress-client.js';
import type { ProgressTracker } from '../../widget/progress-tracker.js';
import { STEPS, createJob, getJob, part, parts, recordEvents, send, serverUrl, sleep, token, visibleText, waitFor, wsUrl } from '../fixtures/widget-page.js';

const CANCEL_SCOPES = ['progress:read', 'progress:cancel'];

/** A running job (encode at 40%) followed by a `cancelable` tracker, live. */
async function runningTracker(scopes = CANCEL_SCOPES): Promise<{ job: Job; el: ProgressTracker }> {
  const job = await createJob();
  await send(job.id, { type: 'step_start', step: 'upload' }, { type: 'step_end', step: 'upload' }, { type: 'step_start', step: 'encode' });
  await send(job.id, { type: 'progress', step: 'encode', progress: 0.4 });
  const el = await fixture<ProgressTracker>(html`
    <progress-tracker cancelable .token=${await token({ scopes })} .steps=${STEPS} label="Video export" src=${wsUrl(await serverUrl())} job=${job.id}></progress-tracker>
  `);
  await waitFor(() => el.connectionState === 'live' && el.snapshot?.steps[1]?.progress === 0.4, 'live and running');
  await el.updateComplete;
  return { job, el };
}

const focused = (el: ProgressTracker) => el.shadowRoot!.activeElement;
const announced = (el: ProgressTracker) => el.shadowRoot!.querySelector('[role="status"]')!.textContent ?? '';
const stepStatus = (el: ProgressTracker, i: number) => parts(el, 'step')[i]!.querySelector('[part="step-status"]')!.textContent!.trim();

async function expectNoCancelSent(jobId: string, seq: number): Promise<void> {
  await sleep(600);
  const server = await getJob(jobId);
  expect(server.cancelRequested, 'no cancel reached the server').to.equal(undefined);
  expect(server.seq).to.equal(seq);
}

describe('cancel', () => {
  it('without `cancelable` there is no Cancel button; with it, one while the job runs', async () => {
    const { el } = await runningTracker();
    expect(part(el, 'cancel')!.localName).to.equal('button');
    expect(part(el, 'cancel')!.textContent!.trim()).to.equal('Cancel');
    el.cancelable = false;
    await el.updateComplete;
    expect(part(el, 'cancel')).to.equal(null);
  });

  it('Cancel → inline confirmation → Confirm: Canceling… on the bar and the running step, then Canceled when the producer ends the job', async () => {
    const { job, el } = await runningTracker();
    const events = recordEvents(document, ['progress-cancel', 'progress-error']);
    part(el, 'cancel')!.click();
    await el.updateComplete;
    const cancelEvent = events.find((e) => e.type === 'progress-cancel')!;
    expect(cancelEvent).to.exist;
    expect([cancelEvent.bubbles, cancelEvent.composed, cancelEvent.cancelable]).to.deep.equal([true, true, true]);
    expect((cancelEvent.detail as ProgressCancelDetail).jobId).to.equal(job.id);
    expect((cancelEvent.detail as ProgressCancelDetail).job!.id).to.equal(job.id);

    // The confirmation replaces the button; focus moves into it, on the safe choice.
    expect(part(el, 'cancel')).to.equal(null);
    const confirmation = part(el, 'cancel-confirmation')!;
    expect(confirmation.getAttribute('role')).to.equal('group');
    expect(el.shadowRoot!.getElementById(confirmation.getAttribute('aria-labelledby')!)!.textContent).to.equal('Cancel this job?');
    expect(part(el, 'cancel-confirm')!.textContent!.trim()).to.equal('Cancel job');
    expect(focused(el)).to.equal(part(el, 'cancel-keep'));
    await expect(el).to.be.accessible();
    expect((await getJob(job.id)).cancelRequested, 'nothing is sent before Confirm').to.equal(undefined);

    part(el, 'cancel-confirm')!.click();
    await waitFor(() => el.snapshot?.cancelRequested, 'cancelRequested reaches the element');
    await el.updateComplete;
    const server = await getJob(job.id);
    expect(server.cancelRequested?.by).to.equal('widget-tests');
    expect(server.status).to.equal('running');
    // Still running, being stopped: said on the bar and on the running step; no Cancel button.
    expect(visibleText(el, '[part~="eta"]')).to.equal('Canceling…');
    expect(part(el, 'bar')!.getAttribute('aria-valuetext')).to.match(/^Step 2 of 3, \d+%, Canceling…$/);
    const encode = parts(el, 'step')[1]!;
    expect(encode.getAttribute('part')).to.equal('step step-running step-canceling');
    expect(stepStatus(el, 1)).to.equal('Canceling…');
    expect(encode.querySelector('.visually-hidden')!.textContent).to.contain('in progress, 40%, Canceling…');
    expect(part(el, 'cancel')).to.equal(null);
    expect(part(el, 'cancel-confirmation')).to.equal(null);
    // Focus went with the button: it is on the bar, whose value says what happens.
    expect(focused(el)).to.equal(part(el, 'bar'));
    await waitFor(() => announced(el) === 'Canceling…', 'Canceling… announced');
    await expect(el).to.be.accessible();

    // The producer stops and ends the job canceled.
    await send(job.id, { type: 'job_end', status: 'canceled' });
    await waitFor(() => el.snapshot?.status === 'canceled', 'canceled');
    await el.updateComplete;
    expect(visibleText(el, '[part~="eta"]')).to.equal('Canceled');
    expect(part(el, 'bar')!.getAttribute('aria-valuetext')).to.match(/^\d+%, Canceled$/);
    expect(parts(el, 'step')[1]!.getAttribute('part')).to.equal('step step-canceled');
    expect(stepStatus(el, 1)).to.equal('Canceled');
    expect(parts(el, 'step')[0]!.getAttribute('part')).to.equal('step step-completed');
    expect(parts(el, 'step')[2]!.getAttribute('part')).to.equal('step step-pending');
    expect(part(el, 'error-message')!.textContent).to.equal('Canceled');
    expect(part(el, 'retry')).to.equal(null);
    expect(part(el, 'cancel')).to.equal(null);
    await waitFor(() => announced(el) === 'Job canceled', 'Job canceled announced');
    expect(el.connectionState).to.equal('closed');
    expect(events.filter((e) => e.type === 'progress-error').map((e) => (e.detail as ProgressErrorInfo).job?.status)).to.deep.equal(['canceled']);
    await expect(el).to.be.accessible();
  });

  it('"Keep running" and Escape send nothing and give focus back to the Cancel button (keyboard only)', async () => {
    const { job, el } = await runningTracker();
    const seq = (await getJob(job.id)).seq;
    part(el, 'cancel')!.focus();
    await sendKeys({ press: 'Enter' });
    await waitFor(() => part(el, 'cancel-confirmation'), 'the confirmation');
    await el.updateComplete;
    expect(focused(el)).to.equal(part(el, 'cancel-keep'));
    await sendKeys({ press: 'Enter' }); // Keep running
    await el.updateComplete;
    expect(part(el, 'cancel-confirmation')).to.equal(null);
    expect(focused(el)).to.equal(part(el, 'cancel'));

    await sendKeys({ press: 'Space' });
    await waitFor(() => part(el, 'cancel-confirmation'), 'the confirmation again');
    await el.updateComplete;
    // Back onto "Cancel job": Escape still keeps running.
    await sendKeys({ down: 'Shift' });
    await sendKeys({ press: 'Tab' });
    await sendKeys({ up: 'Shift' });
    expect(focused(el)).to.equal(part(el, 'cancel-confirm'));
    await sendKeys({ press: 'Escape' });
    await el.updateComplete;
    expect(part(el, 'cancel-confirmation')).to.equal(null);
    expect(focused(el)).to.equal(part(el, 'cancel'));
    await expectNoCancelSent(job.id, seq);
    expect(el.snapshot!.cancelRequested).to.equal(undefined);
    expect(visibleText(el, '[part~="eta"]')).to.not.contain('Cancel');
  });

  it('a prevented progress-cancel sends nothing and opens nothing; el.cancel() then cancels without asking', async () => {
    const { job, el } = await runningTracker();
    const seq = (await getJob(job.id)).seq;
    let asked = 0;
    document.addEventListener(
      'progress-cancel',
      (e) => {
        asked++;
        e.preventDefault(); // the app confirms in its own dialog
      },
      { once: true },
    );
    part(el, 'cancel')!.click();
    await el.updateComplete;
    expect(asked).to.equal(1);
    expect(part(el, 'cancel-confirmation')).to.equal(null);
    await expectNoCancelSent(job.id, seq);

    const events = recordEvents(document, ['progress-cancel']);
    await el.cancel('changed my mind');
    expect(events.length, 'cancel() does not ask again').to.equal(0);
    const server = await getJob(job.id);
    expect(server.cancelRequested?.reason).to.equal('changed my mind');
    await waitFor(() => el.snapshot?.cancelRequested, 'cancelRequested shown');
    await el.updateComplete;
    expect(visibleText(el, '[part~="eta"]')).to.equal('Canceling…');
    expect(part(el, 'cancel')).to.equal(null);
    await send(job.id, { type: 'job_end', status: 'canceled' });
    await waitFor(() => el.snapshot?.status === 'canceled', 'canceled');
  });

  it('a token without progress:cancel: the refusal is shown next to the button, and the element keeps following the job', async () => {
    const { job, el } = await runningTracker(['progress:read']);
    const events = recordEvents(document, ['progress-error']);
    part(el, 'cancel')!.click();
    await el.updateComplete;
    part(el, 'cancel-confirm')!.click();
    await el.updateComplete;
    // Until the server answers, the button says so and ignores presses.
    expect(part(el, 'cancel')!.getAttribute('aria-disabled')).to.equal('true');
    expect(part(el, 'cancel')!.textContent!.trim()).to.equal('Canceling…');
    part(el, 'cancel')!.click();
    expect(part(el, 'cancel-confirmation')).to.equal(null);

    await waitFor(() => part(el, 'cancel-error'), 'the refusal');
    await el.updateComplete;
    const error = events.find((e) => !(e.detail as ProgressErrorInfo).job)!;
    expect((error.detail as ProgressErrorInfo).code).to.equal('forbidden');
    // In words for the user; the server's own text only in the event's detail.
    expect((error.detail as ProgressErrorInfo).kind).to.equal('request');
    expect((error.detail as ProgressErrorInfo).message).to.contain('does not grant');
    expect(part(el, 'cancel-error')!.textContent).to.equal('Could not cancel: Not allowed');
    const button = part(el, 'cancel')!;
    expect(button.getAttribute('aria-disabled')).to.equal('false');
    expect(button.textContent!.trim()).to.equal('Cancel');
    expect(button.getAttribute('aria-describedby')).to.equal(part(el, 'cancel-error')!.id);
    expect(focused(el)).to.equal(button);
    await waitFor(() => announced(el).startsWith('Could not cancel:'), 'the refusal announced');
    expect((await getJob(job.id)).cancelRequested).to.equal(undefined);
    expect(part(el, 'error'), 'a cancel refusal is not a job failure').to.equal(null);
    await expect(el).to.be.accessible();

    // The job goes on and so does the element; the refusal stays until the user tries again.
    await send(job.id, { type: 'progress', step: 'encode', progress: 0.7 });
    await waitFor(() => el.snapshot?.steps[1]?.progress === 0.7, 'the next update');
    await el.updateComplete;
    expect(el.connectionState).to.equal('live');
    expect(part(el, 'cancel-error')).to.exist;
    part(el, 'cancel')!.click();
    await el.updateComplete;
    expect(part(el, 'cancel-error')).to.equal(null);
    expect(part(el, 'cancel-confirmation')).to.exist;
    await send(job.id, { type: 'step_end', step: 'encode' }, { type: 'step_start', step: 'publish' }, { type: 'step_end', step: 'publish' }, { type: 'job_end', status: 'completed' });
    await waitFor(() => el.snapshot?.status === 'completed', 'completed');
    await el.updateComplete;
    expect(part(el, 'cancel-confirmation')).to.equal(null);
    expect(part(el, 'cancel')).to.equal(null);
  });

  it('a job already asked to cancel (e.g. after a reload) shows Canceling… and no button', async () => {
    const job = await createJob();
    await send(job.id, { type: 'step_start', step: 'upload' });
    const res = await fetch(`${await serverUrl()}/v1/jobs/${job.id}/cancel`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${await token({ scopes: CANCEL_SCOPES })}`, 'Content-Type': 'application/json' },
      body: '{}',
    });
    expect(res.status).to.equal(202);
    const el = await fixture<ProgressTracker>(html`
      <progress-tracker cancelable .token=${await token()} .steps=${STEPS} src=${wsUrl(await serverUrl())} job=${job.id}></progress-tracker>
    `);
    await waitFor(() => el.snapshot?.cancelRequested, 'snapshot');
    await el.updateComplete;
    expect(part(el, 'cancel')).to.equal(null);
    expect(visibleText(el, '[part~="eta"]')).to.equal('Canceling…');
    expect(stepStatus(el, 0)).to.equal('Canceling…');
    await send(job.id, { type: 'job_end', status: 'canceled' });
    await waitFor(() => el.snapshot?.status === 'canceled', 'canceled');
  });

  it('the server ending a canceled job (cancel_timeout) reads "Canceled", not the server\'s sentence', async () => {
    const el = await fixture<ProgressTracker>(html`<progress-tracker cancelable label="Export"></progress-tracker>`);
    const now = Date.now();
    el.snapshot = {
      id: 'snap-1',
      kind: 'x',
      status: 'canceled',
      progress: 0.5,
      seq: 9,
      eta: null,
      steps: [
        { id: 'a', label: 'A', status: 'completed', progress: 1 },
        { id: 'b', label: 'B', status: 'running', progress: 0.2, endedAt: now },
      ],
      error: { code: 'cancel_timeout', message: "the job's producer did not stop within 30 s of the cancel; the server ended it", retryable: false },
      cancelRequested: { at: now - 30_000 },
      createdAt: now - 60_000,
      updatedAt: now,
    };
    await el.updateComplete;
    expect(part(el, 'error-message')!.textContent).to.equal('Canceled');
    expect(stepStatus(el, 1)).to.equal('Canceled');
    expect(part(el, 'step-progress')).to.equal(null);
    await expect(el).to.be.accessible();
  });

  it('ProgressClient.cancel() over HTTP when only polling works; a refusal comes back as an error event', async () => {
    const job = await createJob();
    await send(job.id, { type: 'step_start', step: 'upload' });
    const polling = { WebSocket: null, EventSource: null, minPollIntervalMs: 200, maxPollIntervalMs: 400 } as const;
    const src = wsUrl(await serverUrl());

    const reader = new ProgressClient({ ...polling, jobId: job.id, src, token: await token({ scopes: ['progress:read'] }) });
    const errors: ProgressErrorInfo[] = [];
    reader.on('error', (e) => errors.push(e));
    reader.open();
    await waitFor(() => reader.state === 'polling' && reader.job, 'polling');
    await reader.cancel();
    expect(errors.map((e) => e.code)).to.deep.equal(['forbidden']);
    expect((await getJob(job.id)).cancelRequested).to.equal(undefined);
    reader.close();

    const client = new ProgressClient({ ...polling, jobId: job.id, src, token: await token({ scopes: CANCEL_SCOPES }) });
    client.open();
    await waitFor(() => client.state === 'polling' && client.job, 'polling');
    await client.cancel('from a polling page');
    expect((await getJob(job.id)).cancelRequested?.reason).to.equal('from a polling page');
    await waitFor(() => client.job?.cancelRequested, 'the poll sees cancelRequested');
    await send(job.id, { type: 'job_end', status: 'canceled' });
    await waitFor(() => client.job?.status === 'canceled', 'canceled');
    expect(client.state).to.equal('closed');
    const late: ProgressErrorInfo[] = [];
    client.on('error', (e) => late.push(e));
    await client.cancel();
    expect(late.map((e) => e.code)).to.deep.equal(['already_finished']);
  });
});
