/**
 * One fake upstream for `npm run bench:poll`, in its own process so its CPU never caps the poll
 * rate of the server under test. Listens on the host given (127.0.0.2, 127.0.0.3, …: each is a
 * distinct host for the server's per-host concurrency limit). IPC: `add` (job specs with an
 * absolute `startAt`, so the parent knows every step change time), `stats`, `reset`, `close`.
 */
import { FakeUpstream, type FakeJobSpec } from '../../test/fixtures/fake-upstream.js';

const upstream = new FakeUpstream();
upstream.keepRequestLog = false;
await upstream.start(0, process.argv[2] ?? '127.0.0.1');

let cpuAt = process.cpuUsage();
let wallAt = performance.now();
const polls = (): number => {
  let n = 0;
  for (const j of upstream.jobs.values()) n += j.polls;
  return n;
};
process.on('message', (msg: { type: string; specs?: FakeJobSpec[] }) => {
  if (msg.type === 'add') for (const spec of msg.specs!) upstream.addJob(spec);
  else if (msg.type === 'reset') {
    cpuAt = process.cpuUsage();
    wallAt = performance.now();
  } else if (msg.type === 'stats') {
    const cpu = process.cpuUsage(cpuAt);
    process.send!({ type: 'stats', polls: polls(), cpuPercent: ((cpu.user + cpu.system) / 1000 / (performance.now() - wallAt)) * 100 });
  } else if (msg.type === 'close') void upstream.close().then(() => process.exit(0));
});
process.send!({ type: 'ready', url: upstream.url });
