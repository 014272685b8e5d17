/** Turns results into the console table, the JSON file and docs/benchmarks.md. */
import type { TargetName } from './targets.js';
import type { DeliveryStep, FanoutResult, IdleResult, IngestResult, ManyJobsResult } from './scenarios.js';

export interface TargetResults {
  fanout?: FanoutResult;
  manyJobs?: ManyJobsResult;
  idle?: IdleResult;
  ingest?: IngestResult;
  errors: Record<string, string>;
}

export interface Machine {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  node: string;
  os: string;
  loadBefore: string;
  loadAfter: string;
  /** `git describe` of the tree the run used (our server is built from it), `-dirty` if edited. */
  build?: string;
}

export interface BenchResults {
  startedAt: string;
  durationSeconds: number;
  quick: boolean;
  machine: Machine;
  config: unknown;
  targets: Partial<Record<TargetName, TargetResults>>;
}

interface Row {
  label: string;
  values: Partial<Record<TargetName, number>>;
  format: (value: number) => string;
  /** Target check on ours, with its wording. */
  target?: { text: string; met: (ours: number, raw: number, sio: number) => boolean | undefined };
}

const fixed = (digits: number) => (value: number) => (Number.isFinite(value) ? value.toFixed(digits) : '–');
const thousands = (value: number) => (Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : '–');
const NAMES: TargetName[] = ['ours', 'raw-uws', 'socket.io'];

function pick<T>(results: BenchResults, get: (r: TargetResults) => T | undefined): Partial<Record<TargetName, T>> {
  const out: Partial<Record<TargetName, T>> = {};
  for (const name of NAMES) {
    const value = results.targets[name] && get(results.targets[name]!);
    if (value !== undefined) out[name] = value;
  }
  return out;
}

function allSteps(r: TargetResults): DeliveryStep[] {
  return [...(r.fanout ? [r.fanout.moderate, ...r.fanout.steps] : []), ...(r.manyJobs ? [r.manyJobs.step] : [])];
}

function totalGaps(r: TargetResults): number | undefined {
  if (!r.fanout && !r.manyJobs) return undefined;
  return allSteps(r).reduce((sum, s) => sum + s.gaps, 0);
}

/** Clients that did not end on their job's final seq: the latest update never reached them. */
function notConverged(r: TargetResults): number | undefined {
  if (!r.fanout && !r.manyJobs) return undefined;
  return (r.fanout ? r.fanout.subscribers - r.fanout.converged : 0) + (r.manyJobs ? r.manyJobs.step.subscribers - r.manyJobs.converged : 0);
}

function rows(results: BenchResults): Row[] {
  return [
    {
      label: 'Fan-out: deliveries/s held (1 job, 2,000 subscribers, p99 < 100 ms)',
      values: pick(results, (r) => r.fanout?.best?.deliveredPerSecond ?? (r.fanout ? 0 : undefined)),
      format: thousands,
      // A comparison that held nothing measured nothing: no verdict then.
      target: { text: '≥ 0.8× raw uWS and ≥ 5× Socket.IO', met: (o, raw, sio) => (raw > 0 && sio > 0 ? o >= 0.8 * raw && o >= 5 * sio : undefined) },
    },
    { label: 'Fan-out: updates/s offered at that step', values: pick(results, (r) => r.fanout?.best?.rate), format: thousands },
    { label: 'Fan-out: peak deliveries/s, nothing lost, any latency', values: pick(results, (r) => r.fanout?.peak?.deliveredPerSecond), format: thousands },
    { label: 'Fan-out: p50 / p99 latency at that step (ms)', values: pick(results, (r) => r.fanout?.best?.p99Ms), format: fixed(1) },
    {
      label: 'Server CPU per delivery at 50k deliveries/s (µs)',
      values: pick(results, (r) => r.fanout?.moderate.cpuMicrosPerDelivery),
      format: fixed(2),
      target: { text: '≤ 1.25× raw uWS', met: (o, raw) => o <= 1.25 * raw },
    },
    { label: 'Many jobs: deliveries/s (5,000 jobs × 1 subscriber, 2 upd/s each)', values: pick(results, (r) => r.manyJobs?.step.deliveredPerSecond), format: thousands },
    { label: 'Many jobs: p99 latency (ms)', values: pick(results, (r) => r.manyJobs?.step.p99Ms), format: fixed(1) },
    {
      label: 'Idle: server RSS per connection (KiB, 10,000 connections)',
      values: pick(results, (r) => (r.idle ? r.idle.bytesPerConnection / 1024 : undefined)),
      format: fixed(2),
      target: { text: '≤ 1.5× raw uWS', met: (o, raw) => o <= 1.5 * raw },
    },
    { label: 'Producer ingest: HTTP events/s accepted (ours: durable in SQLite)', values: pick(results, (r) => r.ingest?.eventsPerSecond), format: thousands },
    { label: 'Skipped intermediate updates, all steps (seq gaps; ours: coalesced for congested clients)', values: pick(results, totalGaps), format: thousands },
    {
      label: 'Clients not on the final state after the run (latest update lost)',
      values: pick(results, notConverged),
      format: thousands,
      target: { text: 'none', met: (o) => o === 0 },
    },
    { label: 'Message size (bytes, average update)', values: pick(results, (r) => r.fanout?.moderate.avgBytes), format: fixed(0) },
  ];
}

function ratio(ours: number | undefined, other: number | undefined): string {
  if (ours === undefined || other === undefined || !Number.isFinite(ours) || !Number.isFinite(other) || other === 0) return '–';
  return `${(ours / other).toFixed(2)}×`;
}

function p50p99(results: BenchResults, name: TargetName): string {
  const best = results.targets[name]?.fanout?.best;
  return best ? `${best.p50Ms.toFixed(1)} / ${best.p99Ms.toFixed(1)}` : '–';
}

/** Header and body cells of the summary table. */
function tableCells(results: BenchResults): string[][] {
  const header = ['metric', 'ours', 'raw uWS', 'Socket.IO', 'ours / raw', 'ours / Socket.IO', 'target', 'met'];
  const body = rows(results).map((row) => {
    const { ours, 'raw-uws': raw, 'socket.io': sio } = row.values;
    const cell = (name: TargetName) => {
      if (row.label.startsWith('Fan-out: p50')) return p50p99(results, name);
      const value = row.values[name];
      const error = results.targets[name]?.errors;
      return value === undefined ? (error && Object.keys(error).length ? 'error' : '–') : row.format(value);
    };
    let met = '';
    if (row.target) {
      const verdict = ours === undefined || raw === undefined || sio === undefined ? undefined : row.target.met(ours, raw, sio);
      met = verdict === undefined ? 'n/a' : verdict ? 'yes' : 'NO';
    }
    const isLatency = row.label.startsWith('Fan-out: p50');
    return [row.label, cell('ours'), cell('raw-uws'), cell('socket.io'), isLatency ? '' : ratio(ours, raw), isLatency ? '' : ratio(ours, sio), row.target?.text ?? '', met];
  });
  return [header, ...body];
}

export function consoleTable(results: BenchResults): string {
  const cells = tableCells(results);
  const widths = cells[0]!.map((_, column) => Math.max(...cells.map((row) => row[column]!.length)));
  const line = (row: string[]) => row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
  return [line(cells[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

function markdownTable(cells: string[][]): string {
  const [header, ...body] = cells;
  return [`| ${header!.join(' | ')} |`, `|${header!.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`, ...body.map((row) => `| ${row.join(' | ')} |`)].join('\n');
}

function stepTable(steps: DeliveryStep[]): string {
  const cells = [
    ['upd/s offered', 'accepted/s', 'deliveries/s', 'p50 ms', 'p99 ms', 'gaps (skipped)', 'resent', 'server revisions', 'undelivered', 'server core', 'server µs/delivery', 'client core', 'client µs/msg', 'result'],
    ...[...steps].sort((a, b) => a.rate - b.rate).map((s) => [
      thousands(s.rate),
      thousands(s.acceptedRate),
      thousands(s.deliveredPerSecond),
      fixed(1)(s.p50Ms),
      fixed(1)(s.p99Ms),
      thousands(s.gaps),
      thousands(s.duplicates),
      thousands(s.revisions ?? 0),
      thousands(s.undelivered),
      `${(s.serverCoreBusy * 100).toFixed(0)}%`,
      fixed(2)(s.serverCpuMicros / Math.max(1, s.delivered)),
      `${(s.clientCoreBusy * 100).toFixed(0)}%`,
      fixed(2)(s.clientCpuMicrosPerMessage),
      s.passed ? 'held' : (s.why ?? 'failed'),
    ]),
  ];
  return markdownTable(cells);
}

const LABELS: Record<TargetName, string> = { ours: 'ours', 'raw-uws': 'raw uWebSockets.js', 'socket.io': 'Socket.IO 4' };

function runLine(results: BenchResults): string {
  const m = results.machine;
  return (
    `Load average (1/5/15 min) before the run: ${m.loadBefore}; after: ${m.loadAfter}. Suite time: ${Math.round(results.durationSeconds)} s.` +
    (m.build ? ` Our server built from \`${m.build}\`.` : '')
  );
}

export function markdown(results: BenchResults, prose: { intro: string; notes: string }, others: Array<{ file: string; results: BenchResults }> = []): string {
  const m = results.machine;
  const parts = [
    '# Benchmarks',
    '',
    prose.intro,
    '',
    `## Results (${results.startedAt.slice(0, 10)})`,
    '',
    `Machine: ${m.cpuModel}, ${m.cores} cores, ${m.memoryGiB.toFixed(0)} GiB RAM, Node ${m.node}, ${m.os}. ` +
      `Server pinned to core 0 (\`taskset -c 0\`); runner, producer and the 4 load-generator processes share core 1 (\`taskset -c 1\`). ` +
      runLine(results),
    '',
    markdownTable(tableCells(results)),
    '',
    '### Fan-out steps',
  ];
  for (const name of NAMES) {
    const fanout = results.targets[name]?.fanout;
    if (!fanout) continue;
    parts.push(
      '',
      `**${LABELS[name]}** — ${fanout.subscribers} subscribers; CPU reading at ${fanout.moderate.rate} upd/s: ${fanout.moderate.cpuMicrosPerDelivery.toFixed(2)} µs/delivery; ${fanout.converged}/${fanout.subscribers} clients ended on the final seq.`,
      '',
      stepTable([fanout.moderate, ...fanout.steps]),
    );
  }
  parts.push('', '### Other scenarios', '');
  const other = [['target', 'many jobs: accepted upd/s', 'deliveries/s', 'p50 / p99 ms', 'gaps', 'converged', 'idle: RSS before → after (MiB)', 'KiB/conn', 'ingest events/s', 'ingest p50 / p99 ms', 'ingest server core']];
  for (const name of NAMES) {
    const r = results.targets[name];
    if (!r) continue;
    const mj = r.manyJobs;
    other.push([
      LABELS[name],
      mj ? thousands(mj.step.acceptedRate) : '–',
      mj ? thousands(mj.step.deliveredPerSecond) : '–',
      mj ? `${fixed(1)(mj.step.p50Ms)} / ${fixed(1)(mj.step.p99Ms)}` : '–',
      mj ? thousands(mj.step.gaps) : '–',
      mj ? `${mj.converged}/${mj.jobs}` : '–',
      r.idle ? `${(r.idle.rssBeforeBytes / 2 ** 20).toFixed(1)} → ${(r.idle.rssAfterBytes / 2 ** 20).toFixed(1)}` : '–',
      r.idle ? fixed(2)(r.idle.bytesPerConnection / 1024) : '–',
      r.ingest ? thousands(r.ingest.eventsPerSecond) : '–',
      r.ingest ? `${fixed(2)(r.ingest.p50Ms)} / ${fixed(2)(r.ingest.p99Ms)}` : '–',
      r.ingest ? `${(r.ingest.serverCoreBusy * 100).toFixed(0)}%` : '–',
    ]);
  }
  parts.push(markdownTable(other));
  const errors = NAMES.flatMap((name) => Object.entries(results.targets[name]?.errors ?? {}).map(([scenario, message]) => `- ${LABELS[name]}, ${scenario}: ${message}`));
  if (errors.length) parts.push('', 'Errors during the run:', '', ...errors);
  for (const other of others) {
    parts.push('', `### Earlier run: ${other.results.startedAt.slice(0, 16).replace('T', ' ')} UTC (\`${other.file}\`)`, '', runLine(other.results), '', markdownTable(tableCells(other.results)));
  }
  parts.push('', prose.notes, '');
  return parts.join('\n');
}
