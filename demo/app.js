// The demo page: starts demo jobs (POST /demo/jobs) and shows each with <progress-tracker>.
// Plain JS, no build step. Until the widget bundle exists it falls back to a small live view
// fed by the WebSocket, so the page is useful either way.

/** Same ids and labels as demo/pipeline.ts, so step cards render before the first snapshot. */
const STAGES = [
  { id: 'initialization', label: 'Initialization' },
  { id: 'analysis', label: 'Analysis' },
  { id: 'planning', label: 'Planning' },
  { id: 'implementation', label: 'Implementation' },
  { id: 'finalization', label: 'Finalization' },
];
const STORAGE_KEY = 'pt-demo-jobs';
/** The demo user's feed: jobs started from this page carry this tag when the server tags them. */
const DEMO_TAG = 'user:demo';
const WS_URL = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1/ws`;

const $ = (id) => document.getElementById(id);
const ui = {
  form: $('controls'),
  start: $('start'),
  fail: $('fail'),
  notify: $('notify'),
  message: $('message'),
  jobs: $('jobs'),
  empty: $('empty'),
  clear: $('clear'),
  mode: $('mode'),
  badge: $('badge'),
  template: $('job-template'),
};

/** The widget bundle's exports, or null when it is not built yet. */
let widget = null;
let jobCount = 0;

async function loadWidget() {
  try {
    widget = await import('/dist/progress-tracker.js');
    await customElements.whenDefined('progress-tracker');
    setMode('live', 'Widget loaded');
  } catch {
    widget = null;
    setMode('fallback', 'Raw view (widget bundle not built)');
  }
}

function setMode(kind, text) {
  ui.mode.textContent = text;
  ui.mode.dataset.kind = kind;
}

function showMessage(text) {
  ui.message.textContent = text;
  ui.message.hidden = !text;
}

/** A fresh read+retry token for one job (demo-only endpoint). */
async function freshToken(jobId) {
  const res = await fetch(`/demo/token?job=${encodeURIComponent(jobId)}`, { cache: 'no-store' });
  if (!res.ok) throw new Error(`token request failed: HTTP ${res.status}`);
  const body = await res.json();
  return typeof body === 'string' ? body : body.token;
}

// ---------------------------------------------------------------------------------------------
// Starting jobs
// ---------------------------------------------------------------------------------------------

ui.form.addEventListener('submit', async (event) => {
  event.preventDefault();
  ui.start.disabled = true;
  showMessage('');
  const fail = ui.fail.checked;
  try {
    const res = await fetch('/demo/jobs', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ fail }),
    });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(body?.error?.message ?? `HTTP ${res.status}`);
    remember({ jobId: body.jobId, fail, startedAt: Date.now() });
    addJob({ jobId: body.jobId, token: body.token, fail, startedAt: Date.now() }, true);
  } catch (err) {
    showMessage(
      `Could not start a job: ${err.message}. Is the server running in demo mode (npm start)?`,
    );
  } finally {
    ui.start.disabled = false;
  }
});

function addJob({ jobId, token, fail, startedAt }, isNew) {
  jobCount++;
  const item = ui.template.content.firstElementChild.cloneNode(true);
  item.dataset.job = jobId;
  item.querySelector('.job-title').textContent = `Generation #${jobCount}`;
  const tags = item.querySelector('.job-tags');
  tags.append(tag(new Date(startedAt).toLocaleTimeString(), 'time'));
  if (fail) tags.append(tag('failure injected', 'warn'));
  item.querySelector('.remove').addEventListener('click', () => {
    forget(jobId);
    item.remove(); // disconnecting the tracker closes its connection
    refreshEmpty();
  });
  const body = item.querySelector('.job-body');
  if (widget) body.append(createTracker(jobId, token, item, jobCount));
  else body.append(createRawView(jobId, token, item));
  ui.jobs.prepend(item);
  refreshEmpty();
  if (isNew) item.scrollIntoView({ behavior: 'smooth', block: 'nearest' });
}

function tag(text, kind) {
  const span = document.createElement('span');
  span.className = `tag ${kind}`;
  span.textContent = text;
  return span;
}

function createTracker(jobId, token, item, number) {
  const el = document.createElement('progress-tracker');
  el.setAttribute('job', jobId);
  el.setAttribute('src', WS_URL);
  if (token) el.setAttribute('token', token);
  el.setAttribute('label', `Generation #${number}`);
  el.setAttribute('lang', navigator.language || 'en');
  el.toggleAttribute('notify', true);
  // A Cancel button while the job runs (demo tokens carry progress:cancel), with an inline confirmation.
  el.toggleAttribute('cancelable', true);
  el.steps = STAGES;
  el.tokenProvider = () => freshToken(jobId);
  const log = item.querySelector('.job-log');
  el.addEventListener('progress-complete', (e) => {
    const job = e.detail;
    const seconds = job ? Math.round((job.updatedAt - job.createdAt) / 1000) : undefined;
    setState(item, 'completed', log, seconds ? `Completed in ${seconds} s.` : 'Completed.');
  });
  el.addEventListener('progress-error', (e) => {
    // The tracker shows the error itself; say what the demo producer is doing meanwhile.
    const job = e.detail?.job;
    if (job?.status === 'canceled') {
      setState(
        item,
        'canceled',
        log,
        job.error?.code === 'cancel_timeout'
          ? 'Canceled: the producer did not stop within the grace period, so the server ended the job.'
          : 'Canceled: the producer stopped and ended the job.',
      );
    }
    if (job?.status !== 'failed') return;
    setState(item, 'failed', log, 'The producer is waiting for a retry (it listens for the server’s control message).');
  });
  el.addEventListener('progress-retry', () =>
    setState(item, 'running', log, 'Retry sent: the producer resumes from the failed stage; completed stages stay done.'),
  );
  el.addEventListener('progress-update', (e) => {
    const job = e.detail;
    if (job?.status !== 'running' && job?.status !== 'queued') return;
    item.dataset.state = 'running';
    if (job.cancelRequested && !log.dataset.cancel) {
      log.dataset.cancel = 'sent';
      log.textContent =
        'Cancel sent: the server marks the job and tells the producer (a control message); the job ends as canceled once the producer stops, or after the server’s grace period.';
    }
  });
  return el;
}

function setState(item, state, log, text) {
  item.dataset.state = state;
  log.textContent = text;
  refreshClear();
}

// ---------------------------------------------------------------------------------------------
// Fallback: a small live view straight from the WebSocket, used until the widget is built.
// ---------------------------------------------------------------------------------------------

function createRawView(jobId, token, item) {
  const root = document.createElement('div');
  root.className = 'raw';
  root.innerHTML = `
    <div class="raw-bar" role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-label="Overall progress">
      <span class="raw-fill"></span>
    </div>
    <div class="raw-status"><span class="raw-text">Connecting…</span><button type="button" class="secondary raw-retry" hidden>Retry</button></div>
    <ol class="raw-steps"></ol>
    <details><summary>Raw job JSON</summary><pre class="raw-json"></pre></details>`;
  const bar = root.querySelector('.raw-bar');
  const fill = root.querySelector('.raw-fill');
  const text = root.querySelector('.raw-text');
  const steps = root.querySelector('.raw-steps');
  const json = root.querySelector('.raw-json');
  const retry = root.querySelector('.raw-retry');
  let ws;
  let lastSeq = 0;
  let attempt = 0;
  let ended = false;

  const render = (job) => {
    if (job.seq < lastSeq) return; // never show an older state
    lastSeq = job.seq;
    const pct = Math.round(job.progress * 100);
    fill.style.width = `${pct}%`;
    bar.setAttribute('aria-valuenow', String(pct));
    const current = job.steps.find((s) => s.status === 'running' || s.status === 'failed');
    const eta = job.eta ? ` · about ${Math.max(1, Math.round(job.eta.remainingMs / 1000))} s left` : '';
    text.textContent =
      job.status === 'failed'
        ? `Failed: ${job.error?.message ?? 'unknown error'}`
        : `${job.status} · ${pct}%${current ? ` · ${current.label}${current.message ? `: ${current.message}` : ''}` : ''}${eta}`;
    steps.replaceChildren(
      ...job.steps.map((s) => {
        const li = document.createElement('li');
        li.dataset.status = s.status;
        li.textContent = `${s.label} — ${s.status}${s.status === 'running' ? ` ${Math.round(s.progress * 100)}%` : ''}`;
        return li;
      }),
    );
    json.textContent = JSON.stringify(job, null, 2);
    retry.hidden = job.status !== 'failed';
    item.dataset.state = job.status === 'queued' ? 'running' : job.status;
    if (job.status === 'completed' || job.status === 'canceled') {
      ended = true;
      ws?.close(1000);
      refreshClear();
    }
  };

  const connect = async () => {
    if (ended || !root.isConnected) return;
    let t = token;
    token = undefined; // only the first connect may use the token from /demo/jobs
    try {
      t ??= await freshToken(jobId);
    } catch {
      return retryLater();
    }
    ws = new WebSocket(`${WS_URL}?access_token=${encodeURIComponent(t)}`);
    ws.onopen = () => {
      attempt = 0;
      ws.send(JSON.stringify({ type: 'subscribe', jobId, since: lastSeq }));
    };
    ws.onmessage = (e) => {
      const msg = JSON.parse(e.data);
      if (msg.type === 'snapshot' || msg.type === 'update') render(msg.job);
      else if (msg.type === 'error') text.textContent = `Server error: ${msg.message}`;
    };
    ws.onclose = () => {
      if (!ended) {
        text.textContent = 'Connection lost, reconnecting…';
        retryLater();
      }
    };
  };
  const retryLater = () => setTimeout(connect, Math.min(10_000, 500 * 2 ** attempt++) * (0.5 + Math.random() / 2));

  retry.addEventListener('click', () => {
    ws?.send(JSON.stringify({ type: 'retry', jobId }));
    retry.hidden = true;
    text.textContent = 'Retry requested: resuming…';
  });
  queueMicrotask(connect);
  return root;
}

// ---------------------------------------------------------------------------------------------
// Notifications, persistence across reloads, housekeeping
// ---------------------------------------------------------------------------------------------

ui.notify.addEventListener('click', async () => {
  if (!('Notification' in window)) return showMessage('This browser has no system notifications.');
  const permission = widget?.requestNotificationPermission
    ? await widget.requestNotificationPermission()
    : await Notification.requestPermission();
  refreshNotifyButton(permission);
});

function refreshNotifyButton(permission = window.Notification?.permission) {
  const label = ui.notify.querySelector('.text');
  ui.notify.disabled = permission === 'granted' || permission === 'denied' || !window.Notification;
  label.textContent =
    permission === 'granted'
      ? 'Notifications on'
      : permission === 'denied'
        ? 'Notifications blocked'
        : 'Enable notifications';
}

function saved() {
  try {
    return JSON.parse(sessionStorage.getItem(STORAGE_KEY) ?? '[]');
  } catch {
    return [];
  }
}
function remember(job) {
  sessionStorage.setItem(STORAGE_KEY, JSON.stringify([...saved(), job].slice(-20)));
}
function forget(jobId) {
  sessionStorage.setItem(STORAGE_KEY, JSON.stringify(saved().filter((j) => j.jobId !== jobId)));
}

function refreshEmpty() {
  ui.empty.hidden = ui.jobs.children.length > 0;
  refreshClear();
}
function refreshClear() {
  ui.clear.hidden = !ui.jobs.querySelector('[data-state="completed"], [data-state="canceled"]');
}
ui.clear.addEventListener('click', () => {
  for (const item of ui.jobs.querySelectorAll('[data-state="completed"], [data-state="canceled"]')) {
    forget(item.dataset.job);
    item.remove();
  }
  refreshEmpty();
});

// ---------------------------------------------------------------------------------------------
// The header badge: the demo user's feed, when the server offers it
// ---------------------------------------------------------------------------------------------

/** A read token for the demo user's feed (grant `tag:user:demo`), or null when this server has none. */
async function feedToken() {
  const res = await fetch(`/demo/token?tag=${encodeURIComponent(DEMO_TAG)}`, { cache: 'no-store' });
  if (!res.ok) return null;
  const body = await res.json().catch(() => null);
  return (typeof body === 'string' ? body : body?.token) || null;
}

/**
 * Feature check: a server that hands out feed tokens (and tags its demo jobs) drives the badge
 * from the feed — jobs finished in any tab count, across reloads, and its popover links back to
 * each job. Otherwise the badge counts the trackers on this page, as before.
 */
async function connectBadge() {
  if (!widget) return;
  const token = await feedToken().catch(() => null);
  if (!token) return;
  ui.badge.tokenProvider = feedToken;
  ui.badge.setAttribute('tag', DEMO_TAG);
  ui.badge.setAttribute('href-template', '#job={id}');
  ui.badge.toggleAttribute('notify', true);
  ui.badge.setAttribute('src', WS_URL);
  ui.badge.title = 'Finished jobs you have not seen, in every tab';
}

/**
 * `#job=<id>` (the badge's links): show that job here — started in another tab or before a
 * reload — and move to it.
 */
function showLinkedJob() {
  const jobId = new URLSearchParams(location.hash.slice(1)).get('job');
  if (!jobId || !jobId.startsWith('demo-')) return;
  let item = [...ui.jobs.children].find((li) => li.dataset.job === jobId);
  if (!item) {
    const job = { jobId, fail: false, startedAt: Date.now() };
    remember(job);
    addJob(job, true);
    item = ui.jobs.firstElementChild;
  }
  item.scrollIntoView({ behavior: 'smooth', block: 'nearest' });
  const title = item.querySelector('.job-title');
  title.tabIndex = -1;
  title.focus({ preventScroll: true });
}
window.addEventListener('hashchange', showLinkedJob);

await loadWidget();
refreshNotifyButton();
// Jobs started earlier in this tab come back after a reload, caught up from a snapshot.
for (const job of saved()) addJob({ ...job, token: undefined }, false);
refreshEmpty();
showLinkedJob();
await connectBadge();
