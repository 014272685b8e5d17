/**
 * `npm run bench:poll`: thousands of concurrently polled jobs against fake upstreams, adaptive
 * polling side by side with a fixed 1 s interval. Measures, per mode: server CPU and memory,
 * upstream polls per job-minute (and polls/s sustained), and the delay from an upstream step
 * change to the WebSocket update (p50/p99), as seen by real WebSocket subscribers.
 *
 * So that the harness measures the scheduler and not its own bottleneck, every part has its own
 * process: the server (server.ts), each fake upstream (upstream.ts, on 127.0.0.2, 127.0.0.3, …:
 * distinct hosts, since the server's concurrency limit is per host) and the WebSocket watchers
 * (watchers.ts). The per-host limit is explicit (POLL_HOST_CONCURRENCY) and reported.
 *
 * Env: POLL_JOBS (5000), POLL_STEPS (3), POLL_STEP_MIN_S (8), POLL_STEP_MAX_S (30),
 * POLL_MODES (adaptive,fixed), POLL_UPSTREAMS (2), POLL_HOST_CONCURRENCY (256), POLL_SEED (1).
 * Bounded: each mode stops when its jobs are done or after the longest job plus 30 s.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SignJWT } from 'jose';
import { MAPS, type FakeJobSpec, type UpstreamShape } from '../../test/fixtures/fake-upstream.js';

const JOBS = Number(process.env.POLL_JOBS ?? 5000);
const STEPS = Number(process.env.POLL_STEPS ?? 3);
const STEP_MIN = Number(process.env.POLL_STEP_MIN_S ?? 8) * 1000;
const STEP_MAX = Number(process.env.POLL_STEP_MAX_S ?? 30) * 1000;
const MODES = (process.env.POLL_MODES ?? 'adaptive,fixed').split(',');
const UPSTREAMS = Number(process.env.POLL_UPSTREAMS ?? 2);
const HOST_CONCURRENCY = Number(process.env.POLL_HOST_CONCURRENCY ?? 256);
const STAGGER_MS = 10_000;
const SUBS_PER_SOCKET = 100;

let seed = Number(process.env.POLL_SEED ?? 1);
const random = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);

interface ModeResult {
  mode: string;
  jobs: number;
  completed: number;
  pollsPerJobMinute: number;
  peakPollsPerS: number;
  peakCpu: number;
  createdS: number;
  cpuPercent: number;
  upstreamCpuPercent: number;
  watcherCpuPercent: number;
  peakRssMb: number;
  heapMb: number;
  failures: number;
  p50: number;
  p99: number;
  changes: number;
  wallS: number;
}

const quantile = (sorted: number[], q: number): number => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! : NaN);

const script = (name: string): string => fileURLToPath(new URL(name, import.meta.url));
const start = (name: string, arg: string): ChildProcess =>
  fork(script(name), [arg], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
/** Sends `type` and resolves with the child's answer of the same type. */
const ask = <T>(child: ChildProcess, type: string): Promise<T> =>
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
const ready = <T>(child: ChildProcess): Promise<T> => new Promise((resolve) => child.once('message', (m: T) => resolve(m)));
const exited = (child: ChildProcess): Promise<unknown> => new Promise((r) => child.once('exit', r));

async function runMode(mode: string): Promise<ModeResult> {
  const secret = randomBytes(32).toString('base64url');
  const dir = mkdtempSync(join(tmpdir(), 'pt-bench-poll-'));
  const interval = mode === 'fixed' ? { minIntervalMs: 1000, maxIntervalMs: 1000 } : { minIntervalMs: 1000, maxIntervalMs: 30_000 };
  const polling = { ...interval, maxConcurrentPerHost: HOST_CONCURRENCY };
  const server = start('./server.ts', JSON.stringify({ secret, db: join(dir, 'bench.db'), polling }));
  const upstreams = Array.from({ length: UPSTREAMS }, (_, k) => start('./upstream.ts', `127.0.0.${2 + k}`));
  const { url } = await ready<{ url: string }>(server);
  const upstreamUrls = await Promise.all(upstreams.map((u) => ready<{ url: string }>(u).then((m) => m.url)));
  const key = new TextEncoder().encode(secret);
  const token = await new SignJWT({ scope: 'progress:read progress:write', jobs: ['*'] }).setProtectedHeader({ alg: 'HS256' }).setAudience('progress-tracker').setExpirationTime('1h').sign(key);
  const watchers = start('./watchers.ts', JSON.stringify({ url, token, sockets: Math.ceil(JOBS / SUBS_PER_SOCKET) }));
  await ready(watchers);

  const ids = Array.from({ length: JOBS }, (_, i) => `bench-${mode}-${i}`);
  const all = [server, ...upstreams, watchers];
  for (const c of all) c.send({ type: 'reset' });
  await ask(server, 'reset');
  const started = Date.now();
  let longest = 0;
  let jobMinutes = 0;
  // Create jobs spread over STAGGER_MS, 32 requests at a time, round-robin over the upstreams.
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
      const startAt = Date.now();
      const spec: FakeJobSpec = { id, steps, shape, startAt };
      upstreams[i % UPSTREAMS]!.send({ type: 'add', specs: [spec] });
      const changes: number[] = [];
      let t = startAt;
      for (const s of steps) changes.push((t += s.durationMs));
      const total = t - startAt;
      longest = Math.max(longest, startAt - started + total);
      jobMinutes += total / 60_000;
      const res = await fetch(`${url}/v1/jobs`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ id, kind: 'bench', steps: steps.map((s) => ({ id: s.name })), source: { type: 'http', url: `${upstreamUrls[i % UPSTREAMS]}/jobs/${id}`, map: MAPS[shape] } }),
      });
      if (res.status !== 201) throw new Error(`create ${id}: ${res.status} ${await res.text()}`);
      // Subscribed right after creation: the snapshot covers anything that happened in between.
      watchers.send({ type: 'watch', id, changes });
    }
  };
  const upstreamPolls = async (): Promise<number> => (await Promise.all(upstreams.map((u) => ask<{ polls: number }>(u, 'stats')))).reduce((a, s) => a + s.polls, 0);
  const serverCpuMs = async (): Promise<number> => (await ask<{ cpuMs: number }>(server, 'stats')).cpuMs;
  // Progress every 5 s from the start (job creation included): polls/s and server CPU over the
  // last 5 s, so a saturated server shows as ~100 % of its one core.
  let creating = true;
  let deadline = Infinity;
  let peakPollsPerS = 0;
  let peakCpu = 0;
  const watch = async (): Promise<void> => {
    let prev = { at: Date.now(), polls: 0, cpuMs: await serverCpuMs() };
    for (;;) {
      await new Promise((r) => setTimeout(r, 5000));
      const p = await ask<{ completed: number; changes: number }>(watchers, 'progress');
      const now = { at: Date.now(), polls: await upstreamPolls(), cpuMs: await serverCpuMs() };
      const rate = ((now.polls - prev.polls) / (now.at - prev.at)) * 1000;
      const cpu = ((now.cpuMs - prev.cpuMs) / (now.at - prev.at)) * 100;
      peakPollsPerS = Math.max(peakPollsPerS, rate);
      peakCpu = Math.max(peakCpu, cpu);
      prev = now;
      process.stdout.write(`  [${mode}] ${Math.round((now.at - started) / 1000)} s: ${creating ? `creating ${next}/${ids.length}, ` : ''}${p.completed}/${ids.length} completed, ${rate.toFixed(0)} polls/s, server CPU ${cpu.toFixed(0)} %, load ${loadavg()[0]!.toFixed(1)}\n`);
      if (p.completed >= ids.length || Date.now() >= deadline) return;
    }
  };
  const watching = watch();
  await Promise.all(Array.from({ length: 32 }, worker));
  creating = false;
  const createdS = (Date.now() - started) / 1000;
  deadline = started + longest + 30_000;
  await watching;
  const stats = await ask<{ cpuPercent: number; cpuMs: number; peakRssMb: number; heapMb: number; polling: { failures: number } }>(server, 'stats');
  const upstreamStats = await Promise.all(upstreams.map((u) => ask<{ polls: number; cpuPercent: number }>(u, 'stats')));
  const w = await ask<{ completed: number; delays: number[]; cpuPercent: number }>(watchers, 'stats');
  const wallS = (Date.now() - started) / 1000;
  const polls = upstreamStats.reduce((a, s) => a + s.polls, 0);
  for (const c of all) c.send({ type: 'close' });
  await Promise.all(all.map(exited));
  rmSync(dir, { recursive: true, force: true });
  const delays = w.delays.sort((a, b) => a - b);
  return {
    mode,
    jobs: ids.length,
    completed: w.completed,
    pollsPerJobMinute: polls / jobMinutes,
    peakPollsPerS,
    peakCpu,
    createdS,
    cpuPercent: stats.cpuPercent,
    upstreamCpuPercent: upstreamStats.reduce((a, s) => a + s.cpuPercent, 0),
    watcherCpuPercent: w.cpuPercent,
    peakRssMb: stats.peakRssMb,
    heapMb: stats.heapMb,
    failures: stats.polling.failures,
    p50: quantile(delays, 0.5),
    p99: quantile(delays, 0.99),
    changes: delays.length,
    wallS,
  };
}

const results: ModeResult[] = [];
console.log(`bench:poll — ${JOBS} polled jobs, ${STEPS} steps of ${STEP_MIN / 1000}–${STEP_MAX / 1000} s, three response shapes, modes: ${MODES.join(', ')}; ${UPSTREAMS} upstream process(es), ${HOST_CONCURRENCY} polls in flight per host; load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
for (const mode of MODES) results.push(await runMode(mode));

const rows = [
  '| mode | jobs | completed | polls / job-minute | peak polls/s | server CPU avg / peak 5 s (% of a core) | server RSS peak (MB) | heap (MB) | upstream / watcher CPU (%) | poll failures | step change → WS p50 (ms) | p99 (ms) | changes seen | jobs created in (s) | wall (s) |',
  '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ...results.map((r) => `| ${r.mode === 'fixed' ? 'fixed 1 s' : r.mode} | ${r.jobs} | ${r.completed} | ${r.pollsPerJobMinute.toFixed(1)} | ${r.peakPollsPerS.toFixed(0)} | ${r.cpuPercent.toFixed(0)} / ${r.peakCpu.toFixed(0)} | ${r.peakRssMb.toFixed(0)} | ${r.heapMb.toFixed(0)} | ${r.upstreamCpuPercent.toFixed(0)} / ${r.watcherCpuPercent.toFixed(0)} | ${r.failures} | ${r.p50} | ${r.p99} | ${r.changes} | ${r.createdS.toFixed(0)} | ${r.wallS.toFixed(0)} |`),
];
console.log('\n' + rows.join('\n'));
const a = results.find((r) => r.mode === 'adaptive');
const f = results.find((r) => r.mode === 'fixed');
if (a && f) {
  console.log(`\nadaptive / fixed 1 s: polls ×${(a.pollsPerJobMinute / f.pollsPerJobMinute).toFixed(2)}, server CPU ×${(a.cpuPercent / f.cpuPercent).toFixed(2)}, RSS ×${(a.peakRssMb / f.peakRssMb).toFixed(2)}, p50 delay ×${(a.p50 / f.p50).toFixed(2)}, p99 delay ×${(a.p99 / f.p99).toFixed(2)}`);
  console.log(`fixed 1 s reached ${f.pollsPerJobMinute.toFixed(1)} of 60 polls/job-minute (${((f.pollsPerJobMinute / 60) * 100).toFixed(0)} %)`);
}
console.log(`load average at the end: ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
process.exit(0);
