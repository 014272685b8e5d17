/**
 * Turns results into the console table, the JSON file and docs/benchmarks.md. Every figure that
 * comes from a measurement carries that measurement's client-core busy time; a ratio whose either
 * side had the client core at CONFIG.clientCoreLimit or more is marked "limited by the load
 * generator" (†). Reads results of earlier versions of the harness too (`--report`).
 */
import { CONFIG } from './config.js';
import { LIMITED } from './core-meter.js';
import type { IngestBatch, IngestResult } from './ingest.js';
import type { DeliveryStep, FanoutResult, IdleResult, ManyJobsResult } from './scenarios.js';
import { TARGET_LABELS, type TargetName } from './targets.js';

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

/** The configuration a run used (older results lack newer fields: the current defaults fill in). */
type RunConfig = typeof CONFIG;
function runConfig(results: BenchResults): RunConfig {
  const given = (results.config ?? {}) as Partial<RunConfig>;
  return {
    ...CONFIG,
    ...given,
    fanout: { ...CONFIG.fanout, ...given.fanout },
    manyJobs: { ...CONFIG.manyJobs, ...given.manyJobs },
    idle: { ...CONFIG.idle, ...given.idle },
    ingest: { ...CONFIG.ingest, ...given.ingest },
  };
}

const NAMES: TargetName[] = ['ours', 'ours-redis', 'raw-uws', 'socket.io'];
/** The ratio columns: numerator, denominator. */
const RATIOS: Array<[TargetName, TargetName]> = [
  ['ours', 'raw-uws'],
  ['ours-redis', 'raw-uws'],
  ['ours', 'socket.io'],
];
const SHORT: Record<TargetName, string> = { ours: 'ours', 'ours-redis': '+Redis', 'raw-uws': 'raw', 'socket.io': 'S.IO' };

const fixed = (digits: number) => (value: number) => (Number.isFinite(value) ? value.toFixed(digits) : '–');
const thousands = (value: number) => (Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : '–');
const percent = (value: number) => `${(value * 100).toFixed(0)}%`;
const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);

/** A measurement's client core, and whether it limited the figure. */
interface Load {
  clientCoreBusy: number;
  loadGeneratorBusy?: number;
  limitedByLoadGenerator?: boolean;
}
const limited = (load: Load | undefined, limit: number) => load !== undefined && (load.limitedByLoadGenerator ?? load.clientCoreBusy >= limit);

/** Ingest batches; results before the batch sizes had one ingest figure at 1 event per request. */
export function ingestBatches(ingest: IngestResult | undefined): IngestBatch[] {
  if (!ingest) return [];
  if (Array.isArray(ingest.batches)) return ingest.batches;
  const old = ingest as unknown as { eventsPerSecond: number; accepted: number; seconds: number; p50Ms: number; p99Ms: number; errors: Record<number, number>; serverCoreBusy: number };
  return [
    {
      eventsPerRequest: 1,
      seconds: old.seconds,
      requests: old.accepted,
      events: old.accepted,
      eventsPerSecond: old.eventsPerSecond,
      requestsPerSecond: old.eventsPerSecond,
      p50Ms: old.p50Ms,
      p99Ms: old.p99Ms,
      errors: old.errors,
      serverCoreBusy: old.serverCoreBusy,
      clientCoreBusy: NaN,
      loadGeneratorBusy: NaN,
      limitedByLoadGenerator: false,
      serverCpuMicrosPerEvent: NaN,
      serverLoopCpuMicrosPerEvent: NaN,
      storeCpuMicrosPerEvent: NaN,
      producerCpuMicrosPerRequest: NaN,
    },
  ];
}

interface Row {
  label: string;
  values: Partial<Record<TargetName, number>>;
  format: (value: number) => string;
  /** Cells shown instead of the formatted value (e.g. "p50 / p99"; the ratio uses `values`). */
  text?: Partial<Record<TargetName, string>>;
  /** The measurement behind each value, for the client core column and the mark. */
  load?: Partial<Record<TargetName, Load>>;
  /**
   * The target (the wording, and one check per server it applies to: ours, ours + Redis), from
   * the issue that set it. A check answers undefined when a value it needs was not measured.
   */
  target?: { text: string; checks: Array<{ of: TargetName; met: (v: Values) => boolean | undefined }> };
}

type Values = Partial<Record<TargetName, number>>;

/** `of` ≤ `times` × raw uWS. */
const atMostTimesRaw = (of: TargetName, times: number) => ({
  of,
  met: (v: Values) => (v[of] === undefined || v['raw-uws'] === undefined ? undefined : v[of]! <= times * v['raw-uws']!),
});
/** `of` ≥ `times` × raw uWS (and ≥ `floor` when given). */
const atLeast = (of: TargetName, times: number, floor = 0) => ({
  of,
  met: (v: Values) => (v[of] === undefined || (times > 0 && !(v['raw-uws']! > 0)) ? undefined : v[of]! >= times * (v['raw-uws'] ?? 0) && v[of]! >= floor),
});

function pick<T>(results: BenchResults, get: (r: TargetResults) => T | undefined): Partial<Record<TargetName, T>> {
  const out: Partial<Record<TargetName, T>> = {};
  for (const name of NAMES) {
    const value = results.targets[name] && get(results.targets[name]!);
    if (value !== undefined && value !== null) out[name] = value;
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

const p50p99 = (step: { p50Ms: number; p99Ms: number } | null | undefined) => (step ? `${fixed(1)(step.p50Ms)} / ${fixed(1)(step.p99Ms)}` : undefined);
const manyJobsCpu = (mj: ManyJobsResult) => mj.cpuMicrosPerDelivery ?? mj.step.serverCpuMicros / Math.max(1, mj.step.delivered);

function rows(results: BenchResults): Row[] {
  const cfg = runConfig(results);
  const f = cfg.fanout;
  const mj = cfg.manyJobs;
  const best = (r: TargetResults) => r.fanout?.best ?? undefined;
  const batchSizes = [...new Set(NAMES.flatMap((name) => ingestBatches(results.targets[name]?.ingest).map((b) => b.eventsPerRequest)))].sort((a, b) => a - b);
  const batch = (r: TargetResults, size: number) => ingestBatches(r.ingest).find((b) => b.eventsPerRequest === size);
  const fanoutLoad = pick(results, best);
  return [
    {
      label: `Fan-out: deliveries/s held (1 job, ${thousands(f.subscribers)} subscribers, p99 < ${f.p99LimitMs} ms)`,
      values: pick(results, (r) => r.fanout?.best?.deliveredPerSecond ?? (r.fanout ? 0 : undefined)),
      format: thousands,
      load: fanoutLoad,
      // A comparison that held nothing measured nothing: no verdict then.
      target: {
        text: '≥ 0.85× raw uWS and ≥ 5× Socket.IO',
        checks: [{ of: 'ours', met: (v) => (v['raw-uws']! > 0 && v['socket.io']! > 0 ? v.ours! >= 0.85 * v['raw-uws']! && v.ours! >= 5 * v['socket.io']! : undefined) }],
      },
    },
    { label: 'Fan-out: updates/s offered at that step', values: pick(results, (r) => r.fanout?.best?.rate), format: thousands, load: fanoutLoad },
    {
      label: 'Fan-out: p50 / p99 latency at that step (ms)',
      values: pick(results, (r) => r.fanout?.best?.p99Ms),
      text: pick(results, (r) => p50p99(r.fanout?.best)),
      format: fixed(1),
      load: fanoutLoad,
    },
    {
      label: 'Fan-out: peak deliveries/s, nothing lost, any latency',
      values: pick(results, (r) => r.fanout?.peak?.deliveredPerSecond),
      format: thousands,
      load: pick(results, (r) => r.fanout?.peak ?? undefined),
    },
    {
      label: `Fan-out: server CPU per delivery at ${thousands(f.moderateRate * f.subscribers)} deliveries/s (µs)`,
      values: pick(results, (r) => r.fanout?.moderate.cpuMicrosPerDelivery),
      format: fixed(2),
      load: pick(results, (r) => r.fanout?.moderate),
      target: { text: '≤ 1.2× raw uWS', checks: [atMostTimesRaw('ours', 1.2)] },
    },
    {
      label: `Many jobs: deliveries/s of ${thousands(mj.jobs * mj.updatesPerJobPerSecond)} offered (${thousands(mj.jobs)} connections × own job × ${mj.updatesPerJobPerSecond} upd/s)`,
      values: pick(results, (r) => r.manyJobs?.step.deliveredPerSecond),
      format: thousands,
      load: pick(results, (r) => r.manyJobs?.step),
      target: {
        text: `≥ 0.97× offered (${thousands(0.97 * mj.jobs * mj.updatesPerJobPerSecond)}/s)`,
        checks: (['ours', 'ours-redis'] as const).map((of) => ({ of, met: (v: Values) => (v[of] === undefined ? undefined : v[of]! >= 0.97 * mj.jobs * mj.updatesPerJobPerSecond) })),
      },
    },
    {
      label: 'Many jobs: p50 / p99 latency (ms)',
      values: pick(results, (r) => r.manyJobs?.step.p99Ms),
      text: pick(results, (r) => p50p99(r.manyJobs?.step)),
      format: fixed(1),
      load: pick(results, (r) => r.manyJobs?.step),
      target: { text: 'p99 < 100 ms', checks: (['ours', 'ours-redis'] as const).map((of) => ({ of, met: (v: Values) => (v[of] === undefined ? undefined : v[of]! < 100) })) },
    },
    {
      label: 'Many jobs: server CPU per delivery (µs; server process, Redis apart)',
      values: pick(results, (r) => (r.manyJobs ? manyJobsCpu(r.manyJobs) : undefined)),
      format: fixed(2),
      load: pick(results, (r) => r.manyJobs?.step),
      target: { text: 'ours ≤ 1.5×, ours + Redis ≤ 2× raw uWS', checks: [atMostTimesRaw('ours', 1.5), atMostTimesRaw('ours-redis', 2)] },
    },
    {
      label: `Many jobs: server RSS with ${thousands(mj.jobs)} connections (MiB)`,
      values: pick(results, (r) => r.manyJobs?.serverRssBytes),
      format: mib,
    },
    {
      label: `Idle: server RSS per connection (KiB, ${thousands(cfg.idle.connections)} connections)`,
      values: pick(results, (r) => (r.idle ? r.idle.bytesPerConnection / 1024 : undefined)),
      format: fixed(2),
      target: { text: '≤ 1.2× raw uWS', checks: [atMostTimesRaw('ours', 1.2)] },
    },
    ...batchSizes.flatMap((size): Row[] => {
      const name = `Ingest, ${size} event${size === 1 ? '' : 's'}/request`;
      const load = pick(results, (r) => batch(r, size));
      return [
        {
          label: `${name}: events/s accepted (ours: durable)`,
          values: pick(results, (r) => batch(r, size)?.eventsPerSecond),
          format: thousands,
          load,
          ...(size === 1 && { target: { text: '≥ 20,000 and ≥ 0.8× raw uWS', checks: [atLeast('ours', 0.8, 20_000)] } }),
          ...(size === 100 && { target: { text: '≥ 400,000', checks: [atLeast('ours', 0, 400_000)] } }),
        },
        { label: `${name}: request p99, write → 202 (ms; ours: commit)`, values: pick(results, (r) => batch(r, size)?.p99Ms), format: fixed(1), load },
      ];
    }),
    { label: 'Skipped intermediate updates, all steps (seq gaps; ours: coalesced for congested clients)', values: pick(results, totalGaps), format: thousands },
    {
      label: 'Clients not on the final state after the run (latest update lost)',
      values: pick(results, notConverged),
      format: thousands,
      target: { text: 'none', checks: (['ours', 'ours-redis'] as const).map((of) => ({ of, met: (v: Values) => (v[of] === undefined ? undefined : v[of] === 0) })) },
    },
    { label: 'Message size (bytes, average update)', values: pick(results, (r) => r.fanout?.moderate.avgBytes ?? r.manyJobs?.step.avgBytes), format: fixed(0) },
  ];
}

/** Targets with a result (or an error) in this run, in column order. */
function present(results: BenchResults): TargetName[] {
  return NAMES.filter((name) => {
    const r = results.targets[name];
    return r && (r.fanout || r.manyJobs || r.idle || r.ingest || Object.keys(r.errors).length > 0);
  });
}

function ratio(row: Row, a: TargetName, b: TargetName, limit: number): string {
  const x = row.values[a];
  const y = row.values[b];
  if (x === undefined || y === undefined || !Number.isFinite(x) || !Number.isFinite(y) || y === 0) return '–';
  const mark = limited(row.load?.[a], limit) || limited(row.load?.[b], limit) ? ' †' : '';
  return `${(x / y).toFixed(2)}×${mark}`;
}

/** "95 · 97 · 81%" in the column order of the present targets; "" for rows without a measurement. */
function clientCoreCell(row: Row, names: TargetName[], limit: number): string {
  if (!row.load || Object.keys(row.load).length === 0) return '';
  const cells = names.map((name) => {
    const load = row.load![name];
    return load && Number.isFinite(load.clientCoreBusy) ? (load.clientCoreBusy * 100).toFixed(0) : '–';
  });
  if (cells.every((cell) => cell === '–')) return '';
  const any = names.some((name) => limited(row.load![name], limit));
  return `${cells.join(' · ')}${any ? ' †' : ''}`;
}

/** Header and body cells of the summary table. */
function tableCells(results: BenchResults): string[][] {
  const limit = runConfig(results).clientCoreLimit;
  const names = present(results);
  const ratios = RATIOS.filter(([a, b]) => names.includes(a) && names.includes(b));
  const header = [
    'metric',
    ...names.map((name) => TARGET_LABELS[name]),
    ...ratios.map(([a, b]) => `${TARGET_LABELS[a]} / ${TARGET_LABELS[b]}`),
    `client core % (${names.map((name) => SHORT[name]).join(' · ')})`,
    'target',
    'met',
  ];
  // Rows no target has a figure for (scenarios not run) are left out.
  const body = rows(results).filter((row) => Object.keys(row.values).length > 0).map((row) => {
    const cell = (name: TargetName) => {
      const value = row.values[name];
      const error = results.targets[name]?.errors;
      if (value === undefined) return error && Object.keys(error).length ? 'error' : '–';
      return row.text?.[name] ?? row.format(value);
    };
    // One verdict per server the target applies to ("yes", or "ours yes · + Redis NO").
    const verdicts = (row.target?.checks ?? [])
      .map((check) => ({ of: check.of, verdict: row.values[check.of] === undefined ? undefined : check.met(row.values) }))
      .filter((c) => c.verdict !== undefined || names.includes(c.of));
    const word = (v: boolean | undefined) => (v === undefined ? 'n/a' : v ? 'yes' : 'NO');
    const met = verdicts.length === 0 ? '' : verdicts.length === 1 ? word(verdicts[0]!.verdict) : verdicts.map((c) => `${SHORT[c.of]} ${word(c.verdict)}`).join(' · ');
    return [row.label, ...names.map(cell), ...ratios.map(([a, b]) => ratio(row, a, b, limit)), clientCoreCell(row, names, limit), row.target?.text ?? '', met];
  });
  return [header, ...body];
}

/** What † means, when a cell carries it. */
function legend(results: BenchResults, cells: string[][]): string {
  if (!cells.some((row) => row.some((cell) => cell.endsWith('†')))) return '';
  const limit = runConfig(results).clientCoreLimit;
  return (
    `† ${LIMITED}: the client core (load generator, producer${results.targets['ours-redis'] ? ', Redis of "ours + Redis" when it shares the core' : ''} and anything else on it) ` +
    `was ${percent(limit)} busy or more in the measurement of at least one side, so the comparison may be the client's, not the servers'. ` +
    'Ratios of latencies compare p99.'
  );
}

export function consoleTable(results: BenchResults): string {
  const cells = tableCells(results);
  const widths = cells[0]!.map((_, column) => Math.max(...cells.map((row) => row[column]!.length)));
  const line = (row: string[]) => row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
  const note = legend(results, cells);
  return [line(cells[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line), ...(note ? ['', note] : [])].join('\n');
}

function markdownTable(cells: string[][]): string {
  const [header, ...body] = cells;
  return [`| ${header!.join(' | ')} |`, `|${header!.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`, ...body.map((row) => `| ${row.join(' | ')} |`)].join('\n');
}

/** "96% (81%) †": client core, the load generator's own share, the mark. */
function loadCell(load: Load, limit: number): string {
  if (!Number.isFinite(load.clientCoreBusy)) return '–';
  const own = load.loadGeneratorBusy !== undefined && Number.isFinite(load.loadGeneratorBusy) ? ` (${percent(load.loadGeneratorBusy)})` : '';
  return `${percent(load.clientCoreBusy)}${own}${limited(load, limit) ? ' †' : ''}`;
}

function stepTable(steps: DeliveryStep[], limit: number): string {
  const cells = [
    ['upd/s offered', 'accepted/s', 'deliveries/s', 'p50 ms', 'p99 ms', 'gaps (skipped)', 'resent', 'server revisions', 'undelivered', 'server core', 'server µs/delivery', 'client core (load gen.)', 'client µs/msg', 'result'],
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
      percent(s.serverCoreBusy),
      fixed(2)(s.serverCpuMicros / Math.max(1, s.delivered)),
      loadCell(s, limit),
      fixed(2)(s.clientCpuMicrosPerMessage),
      s.passed ? 'held' : (s.why ?? 'failed'),
    ]),
  ];
  return markdownTable(cells);
}

const LONG_LABELS: Record<TargetName, string> = { ours: 'ours', 'ours-redis': 'ours + Redis', 'raw-uws': 'raw uWebSockets.js', 'socket.io': 'Socket.IO 4' };

function manyJobsTable(results: BenchResults, limit: number): string {
  const cells = [['target', 'offered upd/s', 'accepted upd/s', 'deliveries/s', 'delivered / offered', 'p50 / p99 ms', 'gaps', 'converged', 'server µs/delivery', 'of it, event loop', 'Redis µs/delivery', 'server RSS MiB', 'Redis RSS MiB', 'server core', 'client core (load gen.)']];
  for (const name of NAMES) {
    const mj = results.targets[name]?.manyJobs;
    if (!mj) continue;
    const offered = mj.offeredPerSecond ?? mj.step.rate;
    cells.push([
      LONG_LABELS[name],
      thousands(offered),
      thousands(mj.step.acceptedRate),
      thousands(mj.step.deliveredPerSecond),
      percent(mj.step.deliveredPerSecond / offered),
      `${fixed(1)(mj.step.p50Ms)} / ${fixed(1)(mj.step.p99Ms)}`,
      thousands(mj.step.gaps),
      `${mj.converged}/${mj.jobs}`,
      fixed(2)(manyJobsCpu(mj)),
      fixed(2)(mj.loopCpuMicrosPerDelivery ?? NaN), // NaN: a result file from before the split
      mj.storeRssBytes !== undefined ? fixed(2)(mj.storeCpuMicrosPerDelivery) : '–',
      mj.serverRssBytes !== undefined ? mib(mj.serverRssBytes) : '–',
      mj.storeRssBytes !== undefined ? mib(mj.storeRssBytes) : '–',
      percent(mj.step.serverCoreBusy),
      loadCell(mj.step, limit),
    ]);
  }
  return markdownTable(cells);
}

function idleTable(results: BenchResults): string {
  const cells = [['target', 'connections', 'connect s', 'RSS before → after (MiB)', 'KiB/connection']];
  for (const name of NAMES) {
    const idle = results.targets[name]?.idle;
    if (!idle) continue;
    cells.push([LONG_LABELS[name], thousands(idle.connections), fixed(1)(idle.connectSeconds), `${mib(idle.rssBeforeBytes)} → ${mib(idle.rssAfterBytes)}`, fixed(2)(idle.bytesPerConnection / 1024)]);
  }
  return markdownTable(cells);
}

function ingestTable(results: BenchResults, limit: number): string {
  const cells = [['target', 'events/request', 'events/s', 'requests/s', 'vs raw uWS', 'request p50 / p99 ms', 'server core', 'server µs/event', 'of it, event loop', 'Redis µs/event', 'client core (load gen.)', 'errors']];
  const raw = ingestBatches(results.targets['raw-uws']?.ingest);
  for (const name of NAMES) {
    for (const b of ingestBatches(results.targets[name]?.ingest)) {
      const ceiling = raw.find((r) => r.eventsPerRequest === b.eventsPerRequest);
      const errors = Object.values(b.errors).reduce((sum, n) => sum + n, 0);
      cells.push([
        LONG_LABELS[name],
        String(b.eventsPerRequest),
        thousands(b.eventsPerSecond),
        thousands(b.requestsPerSecond),
        ceiling && ceiling.eventsPerSecond > 0 ? `${(b.eventsPerSecond / ceiling.eventsPerSecond).toFixed(2)}×${limited(b, limit) || limited(ceiling, limit) ? ' †' : ''}` : '–',
        `${fixed(2)(b.p50Ms)} / ${fixed(2)(b.p99Ms)}`,
        percent(b.serverCoreBusy),
        fixed(2)(b.serverCpuMicrosPerEvent),
        fixed(2)(b.serverLoopCpuMicrosPerEvent ?? NaN),
        b.storeCpuMicrosPerEvent > 0 ? fixed(2)(b.storeCpuMicrosPerEvent) : '–',
        loadCell(b, limit),
        errors ? `${thousands(errors)} (${b.firstError ?? ''})` : '0',
      ]);
    }
  }
  return markdownTable(cells);
}

function runLine(results: BenchResults): string {
  const m = results.machine;
  return (
    `Load average (1/5/15 min) before the run: ${m.loadBefore}; after: ${m.loadAfter}. Suite time: ${Math.round(results.durationSeconds)} s.` +
    (m.build ? ` Our server built from \`${m.build}\`.` : '')
  );
}

export function markdown(results: BenchResults, prose: { intro: string; notes: string }, others: Array<{ file: string; results: BenchResults }> = []): string {
  const m = results.machine;
  const cfg = runConfig(results);
  const limit = cfg.clientCoreLimit;
  const redis = results.targets['ours-redis']
    ? ` Redis of "ours + Redis" on core ${cfg.redisCore}${cfg.redisCore === cfg.clientCore ? ' (shared with the load generator: its CPU counts in the client core)' : ''}.`
    : '';
  // Before BENCH_CLIENT, only the fan-out ramp used the lean client.
  const client = (results.config as { client?: string } | undefined)?.client;
  const clients = client ? `${client} client` : 'lean client in fan-out, `ws` / `socket.io-client` elsewhere';
  const summary = tableCells(results);
  const note = legend(results, summary);
  const parts = [
    '# Benchmarks',
    '',
    prose.intro,
    '',
    `## Results (${results.startedAt.slice(0, 10)})`,
    '',
    `Machine: ${m.cpuModel}, ${m.cores} cores, ${m.memoryGiB.toFixed(0)} GiB RAM, Node ${m.node}, ${m.os}. ` +
      `Server pinned to core ${cfg.serverCore} (\`taskset -c ${cfg.serverCore}\`); runner, producer and the ${cfg.workers} load-generator processes (${clients}) share core ${cfg.clientCore} (\`taskset -c ${cfg.clientCore}\`).${redis} ` +
      runLine(results),
    '',
    markdownTable(summary),
    ...(note ? ['', note] : []),
  ];
  if (NAMES.some((name) => results.targets[name]?.fanout)) parts.push('', '### Fan-out steps');
  for (const name of NAMES) {
    const fanout = results.targets[name]?.fanout;
    if (!fanout) continue;
    parts.push(
      '',
      `**${LONG_LABELS[name]}** — ${fanout.subscribers} subscribers; CPU reading at ${fanout.moderate.rate} upd/s: ${fanout.moderate.cpuMicrosPerDelivery.toFixed(2)} µs/delivery; ${fanout.converged}/${fanout.subscribers} clients ended on the final seq.`,
      '',
      stepTable([fanout.moderate, ...fanout.steps], limit),
    );
  }
  if (NAMES.some((name) => results.targets[name]?.manyJobs)) parts.push('', '### Many jobs', '', manyJobsTable(results, limit));
  if (NAMES.some((name) => results.targets[name]?.idle)) parts.push('', '### Idle connections', '', idleTable(results));
  if (NAMES.some((name) => results.targets[name]?.ingest)) parts.push('', '### Producer ingest', '', ingestTable(results, limit));
  const errors = NAMES.flatMap((name) => Object.entries(results.targets[name]?.errors ?? {}).map(([scenario, message]) => `- ${LONG_LABELS[name]}, ${scenario}: ${message}`));
  if (errors.length) parts.push('', 'Errors during the run:', '', ...errors);
  for (const other of others) {
    parts.push('', `### Earlier run: ${other.results.startedAt.slice(0, 16).replace('T', ' ')} UTC (\`${other.file}\`)`, '', runLine(other.results), '', markdownTable(tableCells(other.results)));
  }
  parts.push('', prose.notes, '');
  return parts.join('\n');
}
