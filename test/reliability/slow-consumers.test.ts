// Slow consumers: ten clients stop reading (their TCP sockets paused) while three ~33 KB jobs get
// 400 updates each — unbounded buffering would be ~10 × 3 × 400 × 33 KB ≈ 400 MB (the payload is
// large so the kernel's socket buffers cannot hide the backlog). Proves:
// the server's queued bytes stay within maxBackpressure per socket (pt_ws_buffered_bytes and
// its max) and its RSS does not grow with the backlog; two healthy subscribers of the same jobs
// get every update in order, and pongs, while the slow ones are stalled; when the slow ones read
// again each converges on the latest state (the final status included) of every job it follows,
// and pt_ws_dropped_backpressure_total counts every update a slow client never got.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Job } from '../../protocol/index.js';
import { api, connectWs, eventually, metric, startServerProcess, within, type ServerProcess, type WsClient } from '../fixtures/reliability.js';

const JOBS = ['slow-a', 'slow-b', 'slow-c'];
const SLOW = 10;
const FAST = 2;
const UPDATES_PER_JOB = 400;
/** 100 steps with 200-character labels and 8 KB of meta: ~33 KB per update. */
const STEPS = [{ id: 'work' }, ...Array.from({ length: 99 }, (_, i) => ({ id: `s${i}`, label: `${i} `.padEnd(200, 'l') }))];
/** Server default (config.ts DEFAULT_LIMITS.maxBackpressureBytes). */
const MAX_BACKPRESSURE = 256 * 1024;
/** uWS may overshoot the limit by one message and its frame header. */
const SLACK = 64 * 1024;

interface Tracked {
  client: WsClient;
  latest: Map<string, Job>;
  seqs: Map<string, number[]>;
  socket: { pause(): void; resume(): void };
}

describe('slow consumers', () => {
  let server: ServerProcess;

  before(async () => {
    // Durability is not what this checks: NORMAL sync keeps the many writes quick.
    server = await startServerProcess({ env: { PT_DB_SYNC: 'normal', PT_ETA_TICK: '0', LOG_LEVEL: 'warn' } });
  });
  after(async () => {
    await server.stop();
    server.cleanup();
  });

  test('memory stays bounded, others are not held up, the slow ones end on the latest state', { timeout: 150_000 }, async () => {
    const write = await server.token({ scope: 'progress:write', jobs: ['slow-*'], expiresIn: 900 });
    const read = await server.token({ scope: 'progress:read', jobs: ['slow-*'], expiresIn: 900 });
    for (const id of JOBS) {
      const res = await api(server, 'POST', '/v1/jobs', write, { id, kind: 'slow', steps: STEPS, meta: { pad: 'p'.repeat(8000) } });
      assert.equal(res.status, 201, JSON.stringify(res.body));
    }
    const bytesPerUpdate = JSON.stringify((await api(server, 'GET', `/v1/jobs/${JOBS[0]}`, read)).body).length;
    const track = async (): Promise<Tracked> => {
      const client = await connectWs(server, read);
      const t: Tracked = { client, latest: new Map(), seqs: new Map(JOBS.map((id) => [id, []])), socket: (client.ws as unknown as { _socket: Tracked['socket'] })._socket };
      client.ws.on('message', (data) => {
        const msg = JSON.parse(data.toString()) as { type: string; job?: Job };
        if (!msg.job) return;
        t.seqs.get(msg.job.id)!.push(msg.job.seq);
        const have = t.latest.get(msg.job.id);
        if (!have || msg.job.seq > have.seq) t.latest.set(msg.job.id, msg.job);
      });
      for (const id of JOBS) client.send({ type: 'subscribe', jobId: id });
      await eventually(() => t.latest.size === JOBS.length, 10_000, 'snapshots of every job');
      return t;
    };
    const slow = await Promise.all(Array.from({ length: SLOW }, track));
    const fast = await Promise.all(Array.from({ length: FAST }, track));
    const rssBefore = await metric(server, 'pt_process_resident_memory_bytes');
    for (const s of slow) s.socket.pause();

    // Producers: every job gets UPDATES_PER_JOB events, in batches, interleaved across jobs.
    for (const id of JOBS) assert.equal((await api(server, 'POST', `/v1/jobs/${id}/events`, write, { type: 'step_start', step: 'work' })).status, 202);
    let maxBuffered = 0;
    let maxTotal = 0;
    let maxRss = rssBefore;
    // One event per request: each is published as its own update (a batch is published as one).
    for (let i = 1; i < UPDATES_PER_JOB; i++) {
      await Promise.all(
        JOBS.map(async (id) => {
          const res = await api(server, 'POST', `/v1/jobs/${id}/events`, write, { type: 'progress', step: 'work', progress: i / UPDATES_PER_JOB });
          assert.equal(res.status, 202, JSON.stringify(res.body));
        }),
      );
      if (i % 25 === 0) {
        maxBuffered = Math.max(maxBuffered, await metric(server, 'pt_ws_buffered_bytes_max'));
        maxTotal = Math.max(maxTotal, await metric(server, 'pt_ws_buffered_bytes'));
        maxRss = Math.max(maxRss, await metric(server, 'pt_process_resident_memory_bytes'));
      }
      if (i % 100 === 0) {
        // A healthy client is answered while the slow ones are stalled.
        fast[0]!.client.send({ type: 'ping' });
        await within(fast[0]!.client.next('pong', 10_000), 11_000, 'a pong to a healthy client during the stall');
      }
    }
    const finalSeq = new Map<string, number>();
    for (const id of JOBS) {
      const end = await api(server, 'POST', `/v1/jobs/${id}/events`, write, { type: 'job_end', status: 'completed' });
      finalSeq.set(id, (end.body as { seq: number }).seq);
    }
    maxBuffered = Math.max(maxBuffered, await metric(server, 'pt_ws_buffered_bytes_max'));
    maxTotal = Math.max(maxTotal, await metric(server, 'pt_ws_buffered_bytes'));

    // Congested, and bounded: per socket by maxBackpressure, in total by the number of sockets.
    assert.ok(maxBuffered > MAX_BACKPRESSURE / 2, `expected congestion; the most backed-up socket held ${maxBuffered} bytes`);
    assert.ok(maxBuffered <= MAX_BACKPRESSURE + SLACK, `one socket held ${maxBuffered} bytes`);
    assert.ok(maxTotal <= (SLOW + FAST) * (MAX_BACKPRESSURE + SLACK), `the server held ${maxTotal} bytes for ${SLOW + FAST} sockets`);
    // The backlog (~400 MB unbounded) does not show in the process size.
    const backlog = SLOW * JOBS.length * UPDATES_PER_JOB * bytesPerUpdate;
    assert.ok(maxRss - rssBefore < 96 * 1024 * 1024, `RSS grew by ${Math.round((maxRss - rssBefore) / 1e6)} MB for a ${Math.round(backlog / 1e6)} MB backlog`);

    console.log(`# slow consumers: ${bytesPerUpdate} B per update, ${Math.round(backlog / 1e6)} MB unbounded backlog; max ${maxBuffered} B queued for one socket, ${maxTotal} B in all, RSS +${Math.round((maxRss - rssBefore) / 1e6)} MB`);

    // The healthy clients got every update of every job, in order, before the slow ones resumed.
    await eventually(
      () => fast.every((f) => JOBS.every((id) => f.latest.get(id)?.seq === finalSeq.get(id))),
      30_000,
      'the healthy clients to reach the final seqs while the slow ones are still stalled',
    );
    for (const f of fast) {
      for (const id of JOBS) {
        const seqs = f.seqs.get(id)!;
        assert.deepEqual(seqs, Array.from({ length: finalSeq.get(id)! }, (_, k) => k + 1), `${id}: a healthy client missed or reordered updates`);
      }
    }

    // Reading again, every slow client converges on the final state of every job.
    for (const s of slow) s.socket.resume();
    await eventually(
      () => slow.every((s) => JOBS.every((id) => s.latest.get(id)?.seq === finalSeq.get(id) && s.latest.get(id)?.status === 'completed')),
      60_000,
      'every slow client to converge on the final states',
      () => slow.map((s) => JOBS.map((id) => s.latest.get(id)?.seq).join('/')).join(' '),
    );
    for (const s of slow) {
      for (const id of JOBS) {
        const seqs = s.seqs.get(id)!;
        assert.ok(seqs.length < finalSeq.get(id)!, `${id}: a stalled client got all ${seqs.length} updates; intermediate ones should have been skipped`);
        assert.ok(seqs.every((q, k) => k === 0 || q >= seqs[k - 1]!), `${id}: seq went back`);
      }
    }
    assert.ok((await metric(server, 'pt_ws_resyncs_total')) >= SLOW, 'drained sockets were resynced');

    // Every update a slow client never got is counted. The count may also hold, per time a
    // socket went over its limit, updates delivered just before (at most two congestion checks:
    // 2 × 32 publishes here), and the last seq of each job (skipped as an update, resent as the resync).
    let missed = 0;
    for (const s of slow) {
      for (const id of JOBS) {
        const got = new Set(s.seqs.get(id)!);
        const snapshot = s.seqs.get(id)![0]!;
        for (let q = snapshot + 1; q <= finalSeq.get(id)!; q++) if (!got.has(q)) missed++;
      }
    }
    const dropped = await eventually(
      async () => {
        const n = await metric(server, 'pt_ws_dropped_backpressure_total');
        return n >= missed ? n : 0;
      },
      10_000,
      `pt_ws_dropped_backpressure_total to count the ${missed} updates the slow clients missed`,
    );
    console.log(`# slow consumers: the slow clients missed ${missed} updates; pt_ws_dropped_backpressure_total = ${dropped}`);
    assert.ok(dropped <= missed + SLOW * (JOBS.length + 4 * 32), `counted ${dropped} skipped updates for ${missed} missed`);
    await Promise.all([...slow, ...fast].map((t) => t.client.close()));
  });
});
