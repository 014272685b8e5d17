/**
 * `npm run bench:cluster`: what the Redis hop costs. One run, three set-ups side by side, each
 * with real server processes (`node bin/progress-tracker.js serve`, built first):
 *
 *   sqlite-1   one node, embedded SQLite (the default; the baseline)
 *   redis-1    one node on Redis: producer and subscribers on the same node
 *   redis-2    two nodes on Redis: producer on node B, every subscriber on node A (every update
 *              crosses Redis pub/sub)
 *
 * Load: JOBS jobs, SUBS WebSocket subscribers per job, one producer loop per job posting progress
 * events back to back for DURATION seconds. Latency = producer's POST sent → update received by
 * a subscriber (same clock: the send time rides in the event's `message`). Delivered = updates
 * received by all subscribers per second. Redis runs with appendonly yes + appendfsync always
 * (acknowledged = on disk), as docs/cluster.md recommends.
 *
 * Prints a Markdown table; `--write` also replaces the table in docs/cluster.md.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { startRedis, type RedisServer } from '../../test/fixtures/redis-server.js';
import { api, connectWs, ROOT, startServerProcess, type ServerProcess, type WsClient } from '../../test/fixtures/server-process.js';

const JOBS = Number(process.env.BENCH_JOBS ?? 20);
const SUBS = Number(process.env.BENCH_SUBS ?? 5);
const DURATION_S = Number(process.env.BENCH_DURATION ?? 6);
const WARMUP_S = 1;
const LATENCY_SAMPLES = Number(process.env.BENCH_LATENCY_SAMPLES ?? 200);

interface Result {
  setup: string;
  events: number;
  delivered: number;
  seconds: number;
  /** Unloaded end-to-end latencies (ms). */
  latencies: number[];
  /** Latencies under the throughput load (queueing included). */
  loaded: number[];
}

const pct = (sorted: number[], p: number) => (sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!);

/** Subscribers on `subscriberNode` for `ids`; counts updates and times those carrying `t=`. */
async function subscribe(subscriberNode: ServerProcess, ids: string[], perJob: number, sink: { on: boolean; delivered: number; latencies: number[] }) {
  const read = await subscriberNode.token({ scope: 'progress:read', jobs: ['*'], expiresIn: 3600 });
  const sockets: WsClient[] = [];
  for (const id of ids) {
    for (let s = 0; s < perJob; s++) {
      let ws: WsClient | undefined;
      for (let attempt = 1; !ws; attempt++) {
        const candidate = await connectWs(subscriberNode, read);
        candidate.send({ type: 'subscribe', jobId: id });
        try {
          await candidate.next('snapshot');
          ws = candidate;
        } catch (err) {
          // Seen now and then on this shared machine: a socket closed (1006) right after its upgrade.
          const { code } = await candidate.closed;
          reconnects.push(code);
          if (attempt >= 3) throw err;
        }
      }
      // Count and time updates as they arrive; do not queue them.
      ws.ws.removeAllListeners('message');
      let lastT = '';
      ws.ws.on('message', (data) => {
        if (!sink.on) return;
        const text = data.toString();
        if (!text.startsWith('{"type":"update"')) return;
        sink.delivered++;
        // Time each event once per socket (ETA re-estimates repeat the last event's message).
        const m = /"message":"t=([0-9.]+)"/.exec(text);
        if (m && m[1] !== lastT) {
          lastT = m[1]!;
          sink.latencies.push(performance.now() - Number(m[1]));
        }
      });
      sockets.push(ws);
    }
  }
  return sockets;
}

async function createJobs(producerNode: ServerProcess, write: string, prefix: string, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let j = 0; j < n; j++) {
    const id = `${prefix}-${j}`;
    const res = await api(producerNode, 'POST', '/v1/jobs', write, { id, kind: 'bench', steps: [{ id: 'work' }] });
    if (res.status !== 201) throw new Error(`create failed: ${res.status}`);
    await api(producerNode, 'POST', `/v1/jobs/${id}/events`, write, { type: 'step_start', step: 'work' });
    ids.push(id);
  }
  return ids;
}

let counter = 0;
/** Close codes of subscriber sockets that died before their snapshot and were opened again. */
const reconnects: number[] = [];
const progressEvent = () => ({ type: 'progress', step: 'work', progress: ((counter++ % 999) + 1) / 1000, message: `t=${performance.now().toFixed(3)}` });

async function runSetup(name: string, producerNode: ServerProcess, subscriberNode: ServerProcess): Promise<Result> {
  const write = await producerNode.token({ scope: 'progress:write', jobs: ['*'], expiresIn: 3600 });

  // Latency, unloaded: one job, SUBS subscribers, one event every 25 ms (nothing queues).
  const [probe] = await createJobs(producerNode, write, `lat-${name}`, 1);
  const lat = { on: true, delivered: 0, latencies: [] as number[] };
  const probeSockets = await subscribe(subscriberNode, [probe!], SUBS, lat);
  for (let i = 0; i < LATENCY_SAMPLES; i++) {
    const res = await api(producerNode, 'POST', `/v1/jobs/${probe}/events`, write, progressEvent());
    if (res.status !== 202) throw new Error(`event refused: ${res.status}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  await new Promise((r) => setTimeout(r, 200));
  await Promise.all(probeSockets.map((s) => s.close()));

  // Throughput, loaded: JOBS jobs × SUBS subscribers, one producer loop per job, back to back.
  const ids = await createJobs(producerNode, write, `tp-${name}`, JOBS);
  const tp = { on: false, delivered: 0, latencies: [] as number[] };
  const sockets = await subscribe(subscriberNode, ids, SUBS, tp);
  let events = 0;
  let stop = false;
  const loops = ids.map(async (id) => {
    while (!stop) {
      const res = await api(producerNode, 'POST', `/v1/jobs/${id}/events`, write, progressEvent());
      if (res.status !== 202) throw new Error(`event refused: ${res.status} ${JSON.stringify(res.body)}`);
      if (tp.on) events++;
    }
  });
  await new Promise((r) => setTimeout(r, WARMUP_S * 1000));
  tp.on = true;
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, DURATION_S * 1000));
  tp.on = false;
  const seconds = (performance.now() - t0) / 1000;
  stop = true;
  await Promise.all(loops);
  await Promise.all(sockets.map((s) => s.close()));
  return { setup: name, events, delivered: tp.delivered, seconds, latencies: lat.latencies.sort((a, b) => a - b), loaded: tp.latencies.sort((a, b) => a - b) };
}

async function main() {
  const write = process.argv.includes('--write');
  const results: Result[] = [];
  let redis: RedisServer | undefined;
  const servers: ServerProcess[] = [];
  const quiet = { LOG_LEVEL: 'info', PT_MAX_CONNECTIONS_PER_IP: '100000' };
  try {
    {
      const one = await startServerProcess({ env: quiet });
      servers.push(one);
      results.push(await runSetup('sqlite-1', one, one));
      await one.stop();
    }
    redis = await startRedis({ appendonly: true });
    const secret = 'bench-secret-bench-secret-bench-secret-0123';
    {
      const one = await startServerProcess({ secret, env: { ...quiet, PT_REDIS_URL: redis.url, PT_REDIS_PREFIX: 'b1:' } });
      servers.push(one);
      results.push(await runSetup('redis-1', one, one));
      await one.stop();
    }
    {
      const a = await startServerProcess({ secret, env: { ...quiet, PT_REDIS_URL: redis.url, PT_REDIS_PREFIX: 'b2:', PT_NODE_ID: 'bench-a' } });
      const b = await startServerProcess({ secret, env: { ...quiet, PT_REDIS_URL: redis.url, PT_REDIS_PREFIX: 'b2:', PT_NODE_ID: 'bench-b' } });
      servers.push(a, b);
      results.push(await runSetup('redis-2', b, a));
    }
  } catch (err) {
    // Say which server complained, not only that a socket closed.
    for (const s of servers) console.error(`--- ${s.url} (last log lines)\n${s.output().trim().split('\n').filter((l) => !/"level":30/.test(l)).slice(-8).join('\n')}`);
    throw err;
  } finally {
    await Promise.all(servers.map(async (s) => (await s.stop(), s.cleanup())));
    await redis?.stop();
  }

  const base = results[0]!;
  const rate = (r: Result) => r.delivered / r.seconds;
  const ms = (n: number) => n.toFixed(2);
  const rows = results.map((r) =>
    `| ${r.setup} | ${ms(pct(r.latencies, 50))} | ${ms(pct(r.latencies, 99))} | ${ms(pct(r.latencies, 50) - pct(base.latencies, 50))} | ${ms(pct(r.latencies, 99) - pct(base.latencies, 99))} | ${(r.events / r.seconds).toFixed(0)} | ${rate(r).toFixed(0)} | ${(rate(r) / rate(base)).toFixed(2)}× | ${ms(pct(r.loaded, 50))} | ${ms(pct(r.loaded, 99))} |`,
  );
  const table = [
    `Run ${new Date().toISOString().slice(0, 16)}Z · ${cpus().length} cores (${cpus()[0]?.model.trim() ?? 'cpu'}, shared) · Node ${process.version} · latency: ${LATENCY_SAMPLES} events, one every 25 ms, ${SUBS} subscribers · throughput: ${JOBS} jobs × ${SUBS} subscribers, one producer loop per job, ${DURATION_S} s after ${WARMUP_S} s warm-up · Redis with appendfsync always, SQLite with synchronous=FULL`,
    '',
    '| setup | latency p50 (ms) | latency p99 (ms) | added p50 vs sqlite-1 | added p99 vs sqlite-1 | events/s accepted | updates/s delivered | delivered vs sqlite-1 | loaded latency p50 (ms) | loaded latency p99 (ms) |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows,
  ].join('\n');
  console.log(table);
  if (reconnects.length > 0) console.log(`\nnote: ${reconnects.length} subscriber socket(s) closed before their snapshot (codes ${[...new Set(reconnects)].join(', ')}) and were reopened`);
  const hop = results.find((r) => r.setup === 'redis-2');
  const local = results.find((r) => r.setup === 'redis-1');
  if (hop && local) {
    console.log(`\nRedis pub/sub hop (redis-2 vs redis-1): p50 +${ms(pct(hop.latencies, 50) - pct(local.latencies, 50))} ms, p99 +${ms(pct(hop.latencies, 99) - pct(local.latencies, 99))} ms, delivered ${(rate(hop) / rate(local)).toFixed(2)}×`);
  }
  if (write) {
    const path = join(ROOT, 'docs', 'cluster.md');
    const doc = readFileSync(path, 'utf8');
    const start = doc.indexOf('<!-- bench:cluster -->');
    const end = doc.indexOf('<!-- /bench:cluster -->');
    if (start < 0 || end < 0) throw new Error('docs/cluster.md lacks the <!-- bench:cluster --> markers');
    writeFileSync(path, `${doc.slice(0, start)}<!-- bench:cluster -->\n${table}\n${doc.slice(end)}`);
    console.log(`\nwrote the table to ${path}`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
