// System notifications: only with `notify`, only while the page is hidden, only when granted;
// permission asked only from a user gesture.
import { expect, fixture, html } from '@open-wc/testing';
import { executeServerCommand, sendMouse } from '@web/test-runner-commands';
import '../../widget/define.js';
import { requestNotificationPermission } from '../../widget/notifications.js';
import type { ProgressTracker } from '../../widget/progress-tracker.js';
import { createJob, send, serverUrl, sleep, token, waitFor, wsUrl } from '../fixtures/widget-page.js';

const RealNotification = window.Notification;
let shown: { title: string; body?: string; tag?: string }[] = [];
let permissionRequests = 0;

/** The real Notification API, recording what is shown and every permission request. */
class RecordingNotification extends RealNotification {
  constructor(title: string, options?: NotificationOptions) {
    super(title, options);
    shown.push({ title, body: options?.body, tag: options?.tag });
  }
  static override requestPermission(cb?: NotificationPermissionCallback): Promise<NotificationPermission> {
    permissionRequests++;
    return RealNotification.requestPermission(cb);
  }
}

const setPermission = (state: 'granted' | 'denied' | 'prompt') => executeServerCommand('pt:permission', { name: 'notifications', state });
const setHidden = (hidden: boolean) => executeServerCommand('pt:visibility', { hidden });

async function runJobToEnd(notify: boolean, fail = false): Promise<ProgressTracker> {
  const job = await createJob([{ id: 'render', label: 'Render' }]);
  const el = await fixture<ProgressTracker>(html`
    <progress-tracker ?notify=${notify} label="Report export" .token=${await token()} src=${wsUrl(await serverUrl())} job=${job.id}></progress-tracker>
  `);
  await waitFor(() => el.connectionState === 'live', 'live');
  await setHidden(true);
  await waitFor(() => document.visibilityState === 'hidden', 'page hidden');
  await send(job.id, { type: 'step_start', step: 'render' });
  if (fail) await send(job.id, { type: 'step_failed', step: 'render', error: { code: 'oom', message: 'Out of memory' } });
  else await send(job.id, { type: 'step_end', step: 'render' }, { type: 'job_end', status: 'completed' });
  await waitFor(() => el.snapshot && ['completed', 'failed'].includes(el.snapshot.status), 'the end of the job');
  await sleep(100);
  return el;
}

describe('notifications', () => {
  beforeEach(() => {
    shown = [];
    permissionRequests = 0;
    window.Notification = RecordingNotification as unknown as typeof Notification;
  });
  afterEach(async () => {
    window.Notification = RealNotification;
    await setHidden(false);
    await setPermission('prompt');
  });

  it('granted + page hidden: one notification when the job completes, and one when it fails', async () => {
    await setPermission('granted');
    await runJobToEnd(true);
    expect(shown).to.have.length(1);
    expect(shown[0]!.title).to.equal('Report export: done');
    await setHidden(false);
    await runJobToEnd(true, true);
    expect(shown).to.have.length(2);
    expect(shown[1]).to.include({ title: 'Report export: failed', body: 'Out of memory' });
    expect(permissionRequests, 'the element never asks on its own').to.equal(0);
  });

  it('granted + page visible: nothing (the user is looking)', async () => {
    await setPermission('granted');
    const job = await createJob([{ id: 'render', label: 'Render' }]);
    const el = await fixture<ProgressTracker>(html`
      <progress-tracker notify .token=${await token()} src=${wsUrl(await serverUrl())} job=${job.id}></progress-tracker>
    `);
    await send(job.id, { type: 'step_start', step: 'render' }, { type: 'step_end', step: 'render' }, { type: 'job_end', status: 'completed' });
    await waitFor(() => el.snapshot?.status === 'completed', 'completed');
    expect(document.visibilityState).to.equal('visible');
    expect(shown).to.have.length(0);
  });

  it('denied: nothing happens, and no error', async () => {
    await setPermission('denied');
    await runJobToEnd(true);
    expect(shown).to.have.length(0);
    expect(await requestNotificationPermission()).to.equal('denied');
    expect(permissionRequests, 'a denied permission is not asked again').to.equal(0);
  });

  it('without `notify`: nothing, even when granted and hidden', async () => {
    await setPermission('granted');
    await runJobToEnd(false);
    expect(shown).to.have.length(0);
  });

  it('requestNotificationPermission() asks from a user gesture and returns the answer', async () => {
    await setPermission('granted');
    const button = await fixture<HTMLButtonElement>(html`<button style="position:fixed;left:0;top:0;width:100px;height:40px">Notify me</button>`);
    const answer = new Promise<NotificationPermission>((resolve) => button.addEventListener('click', () => resolve(requestNotificationPermission())));
    await sendMouse({ type: 'click', position: [20, 20] });
    expect(await answer).to.equal('granted');
  });
});
