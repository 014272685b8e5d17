/**
 * `npm run bench:poll`: thousands of concurrently polled jobs against the fake upstream, adaptive
 * polling side by side with a fixed 1 s interval. Measures, per mode: server CPU and memory (the
 * server runs in its own process), upstream polls per job-minute, and the delay from an upstream
 * step change to the WebSocket update (p50/p99), as seen by real WebSocket subscribers.
 *
 * Env: POLL_JOBS (5000), POLL_STEPS (3), POLL_STEP_MIN_S (8), POLL_STEP_MAX_S (30),
 * POLL_MODES (adaptive,fixed), POLL_SEED (1). Bounded: each mode stops when its jobs are done or
 * after the longest job plus 30 s.
 */
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import type { ServerMessage } from '../../server/protocol.js';
import { FakeUpstream, MAPS, type UpstreamShape } from '../../test/fixtures/fake-upstream.js';

const JOBS = Number(process.env.POLL_JOBS ?? 5000);
const STEPS = Number(process.env.POLL_STEPS ?? 3);
const STEP_MIN = Number(process.env.POLL_STEP_MIN_S ?? 8) * 1000;
const STEP_MAX = Number(process.env.POLL_STEP_MAX_S ?? 30) * 1000;
const MODES = (process.env.POLL_MODES ?? 'adaptive,fixed').split(',');
const STAGGER_MS = 10_000;
const SUBS_PER_SOCKET = 100;

let seed = Number(process.env.POLL_SEED ?? 1);
const random = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);

interface ModeResult {
  mode: string;
  jobs: number;
  completed: number;
  pollsPerJobMinute: number;
  cpuPercent: number;
  peakRssMb: number;
  heapMb: number;
  p50: number;
  p99: number;
  changes: number;
  wallS: number;
}

const quantile = (sorted: number[], q: number): number => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! : NaN);

async function runMode(mode: string): Promise<ModeResult> {
  const secret = randomBytes(32).toString('base64url');
  const dir = mkdtempSync(join(tmpdir(), 'pt-bench-poll-'));
  const polling = mode === 'fixed'
    ? { minIntervalMs: 1000, maxIntervalMs: 1000, maxConcurrentPerHost: 64 }
    : { minIntervalMs: 1000, maxIntervalMs: 30_000, maxConcurrentPerHost: 64 };
  const child = fork(fileURLToPath(new URL('./server.ts', import.meta.url)), [JSON.stringify({ secret, db: join(dir, 'bench.db'), polling })], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const ask = <T>(type: string): Promise<T> =>
    new Promise((resolve) => {
      const on = (m: { type: string }) => {
        if (m.type === type) {
          child.off('message', on);
          resolve(m as T);
        }
      };
      child.on('message', on);
      child.send({ type });
    });
  const url = await new Promise<string>((resolve) => child.once('message', (m: { url: string }) => resolve(m.url)));
  const upstream = new FakeUpstream();
  upstream.keepRequestLog = false;
  await upstream.start();
  const key = new TextEncoder().encode(secret);
  const token = await new SignJWT({ scope: 'progress:read progress:write', jobs: ['*'] }).setProtectedHeader({ alg: 'HS256' }).setAudience('progress-tracker').setExpirationTime('1h').sign(key);

  // One socket per 100 jobs (the per-socket subscription limit).
  const ids = Array.from({ length: JOBS }, (_, i) => `bench-${mode}-${i}`);
  const lastIndex = new Map<string, number>();
  const delays: number[] = [];
  const completed = new Set<string>();
  const sockets: WebSocket[] = [];
  let errors = 0;
  for (let i = 0; i < ids.length; i += SUBS_PER_SOCKET) {
    const ws = new WebSocket(`${url.replace('http', 'ws')}/v1/ws?access_token=${token}`);
    await new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject)));
    ws.on('message', (data) => {
      const msg = JSON.parse(String(data)) as ServerMessage;
      if (msg.type === 'error' && errors++ < 3) console.error(`  ws error: ${msg.code} ${msg.message}`);
      if (msg.type !== 'update' && msg.type !== 'snapshot') return;
      const job = msg.job;
      if (!upstream.jobs.has(job.id)) return;
      const running = job.steps.findIndex((s) => s.status === 'running');
      const index = job.status === 'completed' ? job.steps.length : running;
      const last = lastIndex.get(job.id) ?? 0;
      const now = Date.now();
      for (let k = last + 1; k <= index; k++) delays.push(now - upstream.stepChangeAt(job.id, k));
      if (index > last) lastIndex.set(job.id, index);
      if (job.status === 'completed') completed.add(job.id);
    });
    sockets.push(ws);
  }

  await ask('reset');
  const started = Date.now();
  let longest = 0;
  let jobMinutes = 0;
  // Create jobs spread over STAGGER_MS, 32 requests at a time.
  const shapes: UpstreamShape[] = ['flat', 'stages', 'queue'];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < ids.length) {
      const i = next++;
      const id = ids[i]!;
      const wait = started + (i / ids.length) * STAGGER_MS - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const steps = Array.from({ length: STEPS }, (_, k) => ({ name: `s${k}`, durationMs: Math.round(STEP_MIN + random() * (STEP_MAX - STEP_MIN)) }));
      const shape = shapes[i % 3]!;
      upstream.addJob({ id, steps, shape });
      const total = steps.reduce((a, s) => a + s.durationMs, 0);
      longest = Math.max(longest, Date.now() - started + total);
      jobMinutes += total / 60_000;
      const res = await fetch(`${url}/v1/jobs`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ id, kind: 'bench', steps: steps.map((s) => ({ id: s.name })), source: { type: 'http', url: upstream.statusUrl(id), map: MAPS[shape] } }),
      });
      if (res.status !== 201) throw new Error(`create ${id}: ${res.status} ${await res.text()}`);
      // Subscribed right after creation: the snapshot covers anything that happened in between.
      sockets[Math.floor(i / SUBS_PER_SOCKET)]!.send(JSON.stringify({ type: 'subscribe', jobId: id }));
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker));

  const deadline = started + longest + 30_000;
  let lastPrint = 0;
  while (completed.size < ids.length && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 500));
    if (Date.now() - lastPrint >= 10_000) {
      lastPrint = Date.now();
      const polls = [...upstream.jobs.values()].reduce((a, j) => a + j.polls, 0);
      process.stdout.write(`  [${mode}] ${Math.round((Date.now() - started) / 1000)} s: ${completed.size}/${ids.length} completed, ${polls} upstream polls\n`);
    }
  }
  const stats = await ask<{ cpuPercent: number; peakRssMb: number; heapMb: number }>('stats');
  const wallS = (Date.now() - started) / 1000;
  const polls = [...upstream.jobs.values()].reduce((a, j) => a + j.polls, 0);
  for (const ws of sockets) ws.close();
  child.send({ type: 'close' });
  await new Promise((r) => child.once('exit', r));
  await upstream.close();
  rmSync(dir, { recursive: true, force: true });
  delays.sort((a, b) => a - b);
  return {
    mode,
    jobs: ids.length,
    completed: completed.size,
    pollsPerJobMinute: polls / jobMinutes,
    cpuPercent: stats.cpuPercent,
    peakRssMb: stats.peakRssMb,
    heapMb: stats.heapMb,
    p50: quantile(delays, 0.5),
    p99: quantile(delays, 0.99),
    changes: delays.length,
    wallS,
  };
}

const results: ModeResult[] = [];
console.log(`bench:poll — ${JOBS} polled jobs, ${STEPS} steps of ${STEP_MIN / 1000}–${STEP_MAX / 1000} s, three response shapes, modes: ${MODES.join(', ')}`);
for (const mode of MODES) results.push(await runMode(mode));

const rows = [
  '| mode | jobs | completed | polls / job-minute | server CPU (% of a core) | server RSS peak (MB) | heap (MB) | step change → WS p50 (ms) | p99 (ms) | changes seen | wall (s) |',
  '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ...results.map((r) => `| ${r.mode} | ${r.jobs} | ${r.completed} | ${r.pollsPerJobMinute.toFixed(1)} | ${r.cpuPercent.toFixed(0)} | ${r.peakRssMb.toFixed(0)} | ${r.heapMb.toFixed(0)} | ${r.p50} | ${r.p99} | ${r.changes} | ${r.wallS.toFixed(0)} |`),
];
console.log('\n' + rows.join('\n'));
const a = results.find((r) => r.mode === 'adaptive');
const f = results.find((r) => r.mode === 'fixed');
if (a && f) {
  console.log(`\nadaptive / fixed 1 s: polls ×${(a.pollsPerJobMinute / f.pollsPerJobMinute).toFixed(2)}, server CPU ×${(a.cpuPercent / f.cpuPercent).toFixed(2)}, p50 delay ×${(a.p50 / f.p50).toFixed(2)}, p99 delay ×${(a.p99 / f.p99).toFixed(2)}`);
}
process.exit(0);
