// Crash: `kill -9` while 200 jobs are active and their producers keep sending, then restart on
// the same database and port. Proves: every event answered 202 is in the store (per job, the
// stored seq and state are exactly those after the last acknowledged event, or after the one in
// flight at the kill — never less); an in-flight event resent with its eventId is applied once;
// and every connected client — reconnecting `ws` followers and a Chromium page of
// <progress-tracker> widgets — converges on each job's final state without being told to.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { chromium, type Browser } from 'playwright-core';
import type { Job, JobEvent } from '../../protocol/index.js';
import {
  CHROMIUM_ARGS,
  CHROMIUM_PATH,
  Follower,
  api,
  eventually,
  servePage,
  sleep,
  stablePort,
  within,
  startServerProcess,
  type ServerProcess,
} from '../fixtures/reliability.js';

const JOBS = 200;
const STEPS = ['plan', 'build', 'ship'];
const WIDGET_JOBS = 6;

/** The same script for every job: per step start, three progress events, end; then job_end. */
const SCRIPT: JobEvent[] = [
  ...STEPS.flatMap((step): JobEvent[] => [
    { type: 'step_start', step },
    { type: 'progress', step, progress: 0.25 },
    { type: 'progress', step, progress: 0.5 },
    { type: 'progress', step, progress: 0.75 },
    { type: 'step_end', step },
  ]),
  { type: 'job_end', status: 'completed' },
];

/** Step statuses and progress expected once the first `n` script events were applied. */
function expectedAfter(n: number): { status: Job['status']; steps: Array<[string, number]> } {
  const steps = new Map(STEPS.map((s) => [s, ['pending', 0] as [string, number]]));
  let status: Job['status'] = 'queued';
  for (const ev of SCRIPT.slice(0, n)) {
    if (ev.type === 'step_start') {
      steps.set(ev.step!, ['running', 0]);
      status = 'running';
    } else if (ev.type === 'progress') steps.set(ev.step!, ['running', ev.progress!]);
    else if (ev.type === 'step_end') steps.set(ev.step!, ['completed', 1]);
    else if (ev.type === 'job_end') status = ev.status!;
  }
  return { status, steps: [...steps.values()] };
}

const describeJob = (job: Job) => ({ status: job.status, steps: job.steps.map((s) => [s.status, s.progress] as [string, number]) });

describe('crash: kill -9 under load, restart on the same database', () => {
  let first: ServerProcess;
  let second: ServerProcess | undefined;
  let browser: Browser | undefined;
  let page: Awaited<ReturnType<typeof servePage>> | undefined;
  const followers: Follower[] = [];

  before(async () => {
    // No ETA-only revisions: then seq = 1 + events applied, which pins the state exactly.
    // A port outside the ephemeral range: the restart must get it back while clients reconnect.
    first = await startServerProcess({ port: await stablePort(), env: { PT_ETA_TICK: '0', LOG_LEVEL: 'warn' } });
  });
  after(async () => {
    for (const f of followers) f.stop();
    await browser?.close();
    await page?.close();
    await second?.stop();
    await first.stop();
    first.cleanup();
  });

  test('every 202 survives, and every client converges on the final state', { timeout: 120_000 }, async () => {
    const write = await first.token({ scope: 'progress:write', jobs: ['*'], expiresIn: 600 });
    const read = await first.token({ scope: 'progress:read', jobs: ['*'], expiresIn: 600 });
    const ids = Array.from({ length: JOBS }, (_, i) => `crash-${i}`);
    for (const id of ids) {
      const res = await api(first, 'POST', '/v1/jobs', write, { id, kind: 'crash', steps: STEPS.map((s) => ({ id: s })) });
      assert.equal(res.status, 201, `create ${id}: ${JSON.stringify(res.body)}`);
    }

    // Clients: four `ws` followers of 50 jobs each, one page with widgets for a few jobs.
    for (let i = 0; i < JOBS; i += 50) followers.push(new Follower(first.wsUrl, read, ids.slice(i, i + 50)));
    await Promise.all(followers.map((f) => f.start()));
    const widgetIds = ids.slice(0, WIDGET_JOBS);
    page = await servePage(`<!doctype html><script type="module" src="/progress-tracker.js"></script>
      ${widgetIds.map((id) => `<progress-tracker job="${id}" src="${first.wsUrl}" token="${read}"></progress-tracker>`).join('\n')}`);
    browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
    const tab = await browser.newPage();
    await tab.goto(page.url);
    const widgetStates = () =>
      tab.evaluate(() =>
        [...document.querySelectorAll('progress-tracker')].map((el) => {
          const t = el as HTMLElement & { snapshot?: { id: string; seq: number; status: string }; connectionState: string };
          return { id: t.snapshot?.id, seq: t.snapshot?.seq ?? 0, status: t.snapshot?.status, connection: t.connectionState };
        }),
      );
    await eventually(async () => (await widgetStates()).every((w) => w.connection === 'live' && w.seq >= 1), 20_000, 'the widgets to be live', () => 'see widget states');

    // Producers: one per job, sending its script in order with an eventId per event. A failed
    // send is retried with the same eventId (idempotent) once the gate is open again.
    const acked = new Array<number>(JOBS).fill(0); // events answered 202, per job
    const ackedSeq = new Array<number>(JOBS).fill(1);
    let gate: Promise<void> | undefined;
    let openGate = () => {};
    let unexpected: string | undefined;
    let server: ServerProcess = first;
    const produce = async (j: number) => {
      for (let k = 0; k < SCRIPT.length; ) {
        if (gate) await gate;
        try {
          const res = await fetch(`${server.url}/v1/jobs/${ids[j]}/events`, {
            method: 'POST',
            headers: { authorization: `Bearer ${write}`, 'content-type': 'application/json' },
            body: JSON.stringify({ ...SCRIPT[k], eventId: `${ids[j]}-e${k}` }),
          });
          const body = (await res.json()) as { seq: number };
          if (res.status !== 202) {
            unexpected ??= `${ids[j]} event ${k}: ${res.status} ${JSON.stringify(body)}`;
            return;
          }
          acked[j] = k + 1;
          ackedSeq[j] = body.seq;
          k++;
          await sleep(5 + ((j * 7 + k * 13) % 20));
        } catch {
          // The server is gone (killed mid-request): wait for the gate, resend the same event.
          await sleep(20);
        }
      }
    };
    const producers = ids.map((_, j) => produce(j));

    // Kill while roughly a third of all events are acknowledged: every job is mid-flight.
    const total = JOBS * SCRIPT.length;
    await eventually(() => acked.reduce((a, b) => a + b, 0) >= total / 3 || unexpected, 60_000, 'a third of the events to be acknowledged');
    assert.equal(unexpected, undefined);
    gate = new Promise<void>((r) => (openGate = r));
    await first.kill9();
    const ackedAtKill = [...acked];
    const seqAtKill = [...ackedSeq];
    assert.ok(ackedAtKill.some((n) => n > 0 && n < SCRIPT.length), 'jobs were mid-flight at the kill');

    second = await startServerProcess({ db: first.db, secret: first.secret, port: first.port, env: { PT_ETA_TICK: '0', LOG_LEVEL: 'warn' } });
    server = second;

    // Before any producer resends: every acknowledged event is there, and nothing else but
    // (possibly) the one request that was in flight at the kill.
    let inFlightCommitted = 0;
    for (const [j, id] of ids.entries()) {
      const res = await api<Job>(second, 'GET', `/v1/jobs/${id}`, read);
      assert.equal(res.status, 200, `${id} after restart: ${JSON.stringify(res.body)}`);
      const job = res.body;
      const applied = job.seq - 1;
      assert.ok(job.seq >= seqAtKill[j]!, `${id}: stored seq ${job.seq} < acknowledged seq ${seqAtKill[j]}`);
      assert.ok(applied === ackedAtKill[j] || applied === ackedAtKill[j]! + 1, `${id}: ${applied} events stored, ${ackedAtKill[j]} acknowledged`);
      if (applied > ackedAtKill[j]!) inFlightCommitted++;
      assert.deepEqual(describeJob(job), expectedAfter(applied), `${id}: stored state is not the state after ${applied} events`);
    }

    // Producers resume (resending the in-flight event with its eventId) and finish every job.
    gate = undefined;
    openGate();
    await within(Promise.all(producers), 60_000, 'producers finishing every job after the restart');
    assert.equal(unexpected, undefined);
    const finalSeq = new Map<string, number>();
    for (const id of ids) {
      const job = (await api<Job>(second, 'GET', `/v1/jobs/${id}`, read)).body;
      // Applied exactly once each: an in-flight event that had been committed was not repeated.
      assert.equal(job.seq, 1 + SCRIPT.length, `${id}: seq ${job.seq}, each of ${SCRIPT.length} events must count once`);
      assert.deepEqual(describeJob(job), expectedAfter(SCRIPT.length));
      finalSeq.set(id, job.seq);
    }

    // Every follower reconnected by itself and holds the final state of each of its jobs.
    await eventually(
      () => followers.every((f) => f.jobIds.every((id) => f.latest.get(id)?.seq === finalSeq.get(id) && f.latest.get(id)?.status === 'completed')),
      30_000,
      'every ws follower to converge on the final states',
      () => followers.map((f) => `${f.jobIds.filter((id) => f.latest.get(id)?.seq !== finalSeq.get(id)).length} behind, ${f.reconnects} reconnects`).join('; '),
    );
    assert.ok(followers.every((f) => f.reconnects >= 1), 'followers saw the crash');
    // The widgets too (they reconnect or poll on their own; nothing here touches them).
    let last: Awaited<ReturnType<typeof widgetStates>> = [];
    await eventually(
      async () => (last = await widgetStates()).every((w) => w.seq === finalSeq.get(w.id!) && w.status === 'completed'),
      45_000,
      'the widgets to show the final states',
      () => JSON.stringify(last),
    );
    console.log(`# crash: ${ackedAtKill.reduce((a, b) => a + b, 0)} events acknowledged before the kill, ${inFlightCommitted} in-flight events committed`);
  });
});
