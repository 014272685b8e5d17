/**
 * A synthetic trace for timing `progress-tracker eta-replay`: about 20 jobs running at once, 5 steps
 * each with complexities, progress reports every few events. Seeded, so every run writes the same file.
 *
 *   node --import tsx bench/eta/replay-trace.ts 1000000 > /tmp/trace.jsonl
 *   /usr/bin/time -v npx progress-tracker eta-replay < /tmp/trace.jsonl > /dev/null
 */
let seed = 7;
const rnd = (): number => (seed = (seed * 1103515245 + 12345) >>> 0) / 4294967296;

interface LiveJob {
  id: string;
  steps: Array<{ id: string; complexity: number }>;
  index: number;
  progress: number;
  started: boolean;
}

const total = Number(process.argv[2] ?? 1_000_000);
const kinds = ['a', 'b', 'c', 'd'];
const live: LiveJob[] = [];
const buffer: string[] = [];
let count = 0;
let t = 0;
let jobs = 0;
const emit = (ev: object): void => {
  buffer.push(JSON.stringify(ev));
  count++;
  if (buffer.length >= 5000) process.stdout.write(buffer.splice(0).join('\n') + '\n');
};

while (count < total) {
  while (live.length < 20) {
    const id = `j${++jobs}`;
    const steps = Array.from({ length: 5 }, (_, i) => ({ id: `s${i}`, complexity: +(1 + 4 * rnd()).toFixed(2) }));
    emit({ t, type: 'job', jobId: id, kind: kinds[jobs % kinds.length], steps });
    live.push({ id, steps, index: 0, progress: 0, started: false });
  }
  t += 10 + Math.floor(rnd() * 20);
  const job = live[Math.floor(rnd() * live.length)]!;
  const step = job.steps[job.index]!;
  if (!job.started) {
    emit({ t, type: 'step_start', jobId: job.id, step: step.id });
    job.started = true;
    job.progress = 0;
    continue;
  }
  job.progress += 0.05 + 0.1 * rnd();
  if (job.progress < 1) {
    emit({ t, type: 'progress', jobId: job.id, step: step.id, progress: +job.progress.toFixed(3) });
    continue;
  }
  emit({ t, type: 'step_end', jobId: job.id, step: step.id });
  job.index++;
  job.started = false;
  if (job.index === job.steps.length) {
    emit({ t, type: 'job_end', jobId: job.id, status: 'completed' });
    live.splice(live.indexOf(job), 1);
  }
}
process.stdout.write(buffer.join('\n') + '\n');
