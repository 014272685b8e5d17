/**
 * The server under test for `npm run bench:poll`, in its own process so its CPU and memory are
 * measured apart from the fake upstream and the WebSocket clients. Answers `stats` over IPC.
 */
import { startServer } from '../../server/app/start-server.js';
import { createLogger } from '../../server/app/log.js';

const opts = JSON.parse(process.argv[2] ?? '{}') as { secret: string; db: string; polling: Record<string, number> };
const server = await startServer({
  port: 0,
  jwtSecret: opts.secret,
  jwtAlgorithms: ['HS256'],
  db: opts.db,
  dbSync: 'normal',
  logger: createLogger('error'),
  limits: { maxConnectionsPerIp: 10_000 },
  polling: opts.polling,
});
let cpuAt = process.cpuUsage();
let wallAt = performance.now();
let peakRss = 0;
setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 500).unref();
process.on('message', (msg: { type: string }) => {
  if (msg.type === 'reset') {
    cpuAt = process.cpuUsage();
    wallAt = performance.now();
    peakRss = process.memoryUsage().rss;
    process.send!({ type: 'reset' });
  } else if (msg.type === 'stats') {
    const cpu = process.cpuUsage(cpuAt);
    const wall = performance.now() - wallAt;
    const mem = process.memoryUsage();
    process.send!({
      type: 'stats',
      cpuPercent: ((cpu.user + cpu.system) / 1000 / wall) * 100,
      cpuMs: (cpu.user + cpu.system) / 1000,
      rssMb: mem.rss / 2 ** 20,
      peakRssMb: Math.max(peakRss, mem.rss) / 2 ** 20,
      heapMb: mem.heapUsed / 2 ** 20,
      polling: server.polling.stats,
    });
  } else if (msg.type === 'close') {
    void server.close().then(() => process.exit(0));
  }
});
process.send!({ type: 'ready', url: server.url });
