/**
 * The WebSocket watchers of `npm run bench:poll`, in their own process so parsing every update
 * competes with neither the server nor the upstream. One socket per 100 jobs (the per-socket
 * subscription limit). IPC `watch` {id, changes} subscribes to a job whose upstream step changes
 * happen at the given times (changes[k-1]: entering step k; the last one: completion); each
 * update that shows step k records `now - changes[k-1]`. `stats` returns the delays.
 */
import WebSocket from 'ws';
import type { ServerMessage } from '../../protocol/index.js';

const { url, token, sockets: count } = JSON.parse(process.argv[2]!) as { url: string; token: string; sockets: number };
const SUBS_PER_SOCKET = 100;

const changes = new Map<string, number[]>();
const lastIndex = new Map<string, number>();
const completed = new Set<string>();
const delays: number[] = [];
let errors = 0;
let cpuAt = process.cpuUsage();
let wallAt = performance.now();

const sockets: WebSocket[] = [];
for (let i = 0; i < count; i++) {
  const ws = new WebSocket(`${url.replace('http', 'ws')}/v1/ws?access_token=${token}`);
  await new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject)));
  ws.on('message', (data) => {
    const msg = JSON.parse(String(data)) as ServerMessage;
    if (msg.type === 'error' && errors++ < 3) console.error(`  ws error: ${msg.code} ${msg.message}`);
    if (msg.type !== 'update' && msg.type !== 'snapshot') return;
    const job = msg.job;
    const times = changes.get(job.id);
    if (!times) return;
    const running = job.steps.findIndex((s) => s.status === 'running');
    const index = job.status === 'completed' ? job.steps.length : running;
    const last = lastIndex.get(job.id) ?? 0;
    const now = Date.now();
    for (let k = last + 1; k <= index; k++) delays.push(now - times[k - 1]!);
    if (index > last) lastIndex.set(job.id, index);
    if (job.status === 'completed') completed.add(job.id);
  });
  sockets.push(ws);
}

let subscribed = 0;
process.on('message', (msg: { type: string; id?: string; changes?: number[] }) => {
  if (msg.type === 'watch') {
    changes.set(msg.id!, msg.changes!);
    sockets[Math.floor(subscribed++ / SUBS_PER_SOCKET) % sockets.length]!.send(JSON.stringify({ type: 'subscribe', jobId: msg.id }));
  } else if (msg.type === 'progress') {
    process.send!({ type: 'progress', completed: completed.size, changes: delays.length });
  } else if (msg.type === 'reset') {
    cpuAt = process.cpuUsage();
    wallAt = performance.now();
  } else if (msg.type === 'stats') {
    const cpu = process.cpuUsage(cpuAt);
    process.send!({ type: 'stats', completed: completed.size, delays, cpuPercent: ((cpu.user + cpu.system) / 1000 / (performance.now() - wallAt)) * 100 });
  } else if (msg.type === 'close') {
    for (const ws of sockets) ws.close();
    process.exit(0);
  }
});
process.send!({ type: 'ready' });
