/**
 * The four scenarios, each run against one target at a time on a fresh server process:
 * fan-out (with the CPU-per-delivery reading), many jobs, idle capacity, producer ingest.
 */
import { CONFIG } from './config.js';
import { quantileMs, total } from './histogram.js';
import { HttpPool } from './http-client.js';
import type { TagStats } from './ipc.js';
import { LoadGenerator } from './load-generator.js';
import { coreBusy, coreTimes, processCpuMicros, processRssBytes } from './proc.js';
import { createJobs, sendFlat, sendPaced, type ProducerResult } from './producer.js';
import { startTarget, type RunningTarget, type TargetName, type TargetOptions } from './targets.js';

export type Log = (line: string) => void;

export interface DeliveryStep {
  /** Offered updates per second (producer schedule). */
  rate: number;
  /** Updates per second the server accepted (202). */
  acceptedRate: number;
  subscribers: number;
  expected: number;
  delivered: number;
  deliveredPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /**
   * Seq numbers skipped at clients: updates not sent to a congested socket. Ours does it on
   * purpose (coalescing: the socket gets the latest state when it drains); raw uWS drops them.
   */
  gaps: number;
  /** Updates received again (ours: latest-state resyncs after congestion); not in `delivered`. */
  duplicates: number;
  /** Updates the server made on its own (ours: ETA revisions, PT_ETA_TICK); not in `delivered`. */
  revisions: number;
  /** Expected updates neither delivered nor skipped by the end of the drain wait. */
  undelivered: number;
  /** Our server's pt_ws_resyncs_total over the step. */
  resyncs: number;
  avgBytes: number;
  producerErrors: Record<number, number>;
  firstError?: string;
  serverCoreBusy: number;
  clientCoreBusy: number;
  serverCpuMicros: number;
  /** Load-generator CPU (all worker processes) per delivered message, µs. */
  clientCpuMicrosPerMessage: number;
  /** Runner CPU (producer, pacing, statistics) per request sent, µs. */
  producerCpuMicrosPerRequest: number;
  passed: boolean;
  why?: string;
}

export interface FanoutResult {
  subscribers: number;
  connectFailures: number;
  moderate: DeliveryStep & { cpuMicrosPerDelivery: number };
  steps: DeliveryStep[];
  /** Highest step that passed (p99 < limit, rate accepted, nothing lost). */
  best: DeliveryStep | null;
  /** Most deliveries per second in any step where nothing was lost, whatever the latency. */
  peak: DeliveryStep | null;
  /** Connections whose last seq is the job's final seq after the run. */
  converged: number;
}

export interface ManyJobsResult {
  jobs: number;
  setupSeconds: number;
  connectFailures: number;
  step: DeliveryStep;
  converged: number;
}

export interface IdleResult {
  connections: number;
  connectFailures: number;
  connectSeconds: number;
  rssBeforeBytes: number;
  rssAfterBytes: number;
  bytesPerConnection: number;
}

export interface IngestResult {
  connections: number;
  seconds: number;
  accepted: number;
  eventsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  errors: Record<number, number>;
  firstError?: string;
  serverCoreBusy: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function targetOptions(name: TargetName): TargetOptions {
  const options: TargetOptions = { core: CONFIG.serverCore, fdLimit: CONFIG.fdLimit };
  if (process.env.BENCH_CPU_PROF_DIR) options.cpuProfDir = `${process.env.BENCH_CPU_PROF_DIR}/${name}`;
  const extra = process.env.BENCH_OURS_ENV;
  if (name === 'ours' && extra) options.env = Object.fromEntries(extra.split(',').map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]));
  return options;
}

/** A counter of our server's /metrics (0 for targets without one). */
async function counter(target: RunningTarget, name: string): Promise<number> {
  const text = await target.metrics().catch(() => null);
  const match = text ? new RegExp(`^${name} (\\S+)$`, 'm').exec(text) : null;
  return match ? Number(match[1]) : 0;
}

/** What our server counts of sockets, to tell where a failed connection stopped. */
async function socketCounters(target: RunningTarget): Promise<string> {
  const names = ['pt_ws_connections', 'pt_ws_subscriptions', 'pt_ws_messages_in_total', 'pt_ws_messages_out_total', 'pt_auth_failures_total', 'pt_rate_limited_total'];
  const text = await target.metrics().catch(() => null);
  if (!text) return '';
  const values = names.map((name) => `${name}=${new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? '?'}`);
  return `; server: ${values.join(' ')}`;
}

/** Waits until the clients received `expected` messages of `tag`, or nothing arrives for a while. */
async function drain(generator: LoadGenerator, tag: number, expected: number): Promise<TagStats | undefined> {
  const started = performance.now();
  let last = -1;
  let stableSince = performance.now();
  for (;;) {
    const stats = (await generator.stats([tag])).tags[tag];
    const count = stats?.count ?? 0;
    if (count >= expected) return stats;
    if (count !== last) {
      last = count;
      stableSince = performance.now();
    } else if (performance.now() - stableSince > 750) return stats;
    if (performance.now() - started > CONFIG.drainTimeoutMs) return stats;
    await sleep(100);
  }
}

async function measureStep(
  target: RunningTarget,
  pool: HttpPool,
  generator: LoadGenerator,
  jobIds: string[],
  subscribersPerJob: number,
  rate: number,
  seconds: number,
  tag: number,
  finalSeq: Map<string, number>,
): Promise<DeliveryStep> {
  const resyncsBefore = await counter(target, 'pt_ws_resyncs_total');
  const clientCpuBefore = (await generator.stats([])).cpuMicros;
  const runnerCpuBefore = process.cpuUsage();
  const cpuBefore = processCpuMicros(target.pid);
  const coresBefore = coreTimes();
  const produced: ProducerResult = await sendPaced(pool, jobIds, rate, seconds * 1000, tag);
  const expected = produced.accepted * subscribersPerJob;
  const stats = await drain(generator, tag, expected);
  const cpuAfter = processCpuMicros(target.pid);
  const clientCpuAfter = (await generator.stats([])).cpuMicros;
  const runnerCpu = process.cpuUsage(runnerCpuBefore);
  const coresAfter = coreTimes();
  const resyncs = (await counter(target, 'pt_ws_resyncs_total')) - resyncsBefore;
  for (const [job, seq] of produced.finalSeq) if (seq > (finalSeq.get(job) ?? 0)) finalSeq.set(job, seq);
  const busy = coreBusy(coresBefore, coresAfter);
  const delivered = stats?.count ?? 0;
  const windowSeconds = Math.max(seconds, stats ? (stats.lastAt - stats.firstAt) / 1e6 : 0);
  const gaps = stats?.gaps ?? 0;
  const step: DeliveryStep = {
    rate,
    acceptedRate: produced.accepted / (produced.elapsedMs / 1000),
    subscribers: subscribersPerJob * jobIds.length,
    expected,
    delivered,
    deliveredPerSecond: delivered / windowSeconds,
    p50Ms: stats ? quantileMs(stats.histogram, 0.5) : NaN,
    p99Ms: stats ? quantileMs(stats.histogram, 0.99) : NaN,
    gaps,
    duplicates: stats?.duplicates ?? 0,
    revisions: stats?.revisions ?? 0,
    undelivered: Math.max(0, expected - delivered - gaps),
    resyncs,
    avgBytes: stats && stats.count + stats.duplicates + stats.revisions > 0 ? stats.bytes / (stats.count + stats.duplicates + stats.revisions) : 0,
    producerErrors: produced.errors,
    serverCoreBusy: busy[CONFIG.serverCore] ?? 0,
    clientCoreBusy: busy[CONFIG.clientCore] ?? 0,
    serverCpuMicros: cpuAfter - cpuBefore,
    clientCpuMicrosPerMessage: (clientCpuAfter - clientCpuBefore) / Math.max(1, delivered),
    producerCpuMicrosPerRequest: (runnerCpu.user + runnerCpu.system) / Math.max(1, produced.sent),
    passed: false,
  };
  if (produced.firstError) step.firstError = produced.firstError;
  const reasons: string[] = [];
  if (!(step.p99Ms < CONFIG.fanout.p99LimitMs)) reasons.push(`p99 ${step.p99Ms.toFixed(1)} ms`);
  if (step.acceptedRate < 0.95 * rate) reasons.push(`producer got only ${step.acceptedRate.toFixed(0)}/s accepted`);
  if (step.gaps + step.undelivered > 0.001 * expected) reasons.push(`${step.gaps + step.undelivered} of ${expected} not delivered`);
  step.passed = reasons.length === 0;
  if (!step.passed) step.why = reasons.join(', ');
  return step;
}

async function convergedCount(generator: LoadGenerator, jobIdsPerConnection: string[], finalSeq: Map<string, number>): Promise<number> {
  const deadline = performance.now() + CONFIG.drainTimeoutMs;
  for (;;) {
    const { lastSeqs } = await generator.stats([]);
    // At or past the producer's last seq: later seqs are server-made revisions (ours: ETA), which
    // carry the full state too.
    const converged = lastSeqs.filter((seq, i) => seq >= (finalSeq.get(jobIdsPerConnection[i]!) ?? Infinity)).length;
    if (converged === jobIdsPerConnection.length || performance.now() > deadline) return converged;
    await sleep(200);
  }
}

export function describeStep(step: DeliveryStep): string {
  const k = (n: number) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : `${(n / 1e3).toFixed(1)}k`);
  return `${step.rate} upd/s → ${k(step.deliveredPerSecond)} deliveries/s, p50 ${step.p50Ms.toFixed(1)} ms, p99 ${step.p99Ms.toFixed(1)} ms, server core ${(step.serverCoreBusy * 100).toFixed(0)}%, client core ${(step.clientCoreBusy * 100).toFixed(0)}% (clients ${step.clientCpuMicrosPerMessage.toFixed(2)} µs/msg, producer ${step.producerCpuMicrosPerRequest.toFixed(0)} µs/req)${step.gaps ? `, gaps ${step.gaps}` : ''}${step.undelivered ? `, undelivered ${step.undelivered}` : ''}${step.duplicates ? `, resent ${step.duplicates}` : ''}${step.revisions ? `, server revisions ${step.revisions}` : ''} ${step.passed ? 'ok' : `FAIL (${step.why})`}`;
}

async function withTarget<T>(name: TargetName, body: (target: RunningTarget, pool: HttpPool, generator: LoadGenerator) => Promise<T>, poolSize = CONFIG.producerConnections): Promise<T> {
  const target = await startTarget(name, targetOptions(name));
  const pool = new HttpPool('127.0.0.1', target.port, poolSize, target.producerHeaders);
  const generator = new LoadGenerator(CONFIG.workers, CONFIG.clientCore, CONFIG.fdLimit);
  try {
    return await body(target, pool, generator);
  } finally {
    await generator.close();
    pool.close();
    await target.stop();
  }
}

export function runFanout(name: TargetName, log: Log): Promise<FanoutResult> {
  return withTarget(name, async (target, pool, generator) => {
    const config = CONFIG.fanout;
    const setup = await createJobs(pool, ['fan']);
    if (setup.accepted !== 1) throw new Error(`cannot create the job: ${setup.firstError}`);
    const jobIds = ['fan'];
    const perConnection = Array<string>(config.subscribers).fill('fan');
    const kind = config.client === 'lean' ? target.leanKind : target.clientKind;
    const connected = await generator.connect(kind, target.clientUrl, perConnection);
    log(`${connected.opened} subscribers connected${connected.failed ? `, ${connected.failed} failed (${connected.errors.join('; ')})${await socketCounters(target)}` : ''}`);
    if (connected.opened === 0) throw new Error(`no client could connect: ${connected.errors.join('; ')}`);
    const finalSeq = new Map(setup.finalSeq);
    let tag = 1;
    const moderateStep = await measureStep(target, pool, generator, jobIds, connected.opened, config.moderateRate, config.moderateSeconds, tag++, finalSeq);
    const moderate = { ...moderateStep, cpuMicrosPerDelivery: moderateStep.serverCpuMicros / Math.max(1, moderateStep.delivered) };
    log(`moderate: ${describeStep(moderate)}; server CPU ${moderate.cpuMicrosPerDelivery.toFixed(2)} µs/delivery`);

    const steps: DeliveryStep[] = [];
    const run = async (rate: number) => {
      const step = await measureStep(target, pool, generator, jobIds, connected.opened, Math.round(rate), config.stepSeconds, tag++, finalSeq);
      steps.push(step);
      log(describeStep(step));
      await sleep(300);
      return step;
    };
    // Raise the rate until delivery saturates (the server no longer accepts or delivers what is
    // offered), not merely until the first step over the p99 limit: near the limit p99 is noisy,
    // so a higher step may hold where a lower one just missed.
    const saturated = (step: DeliveryStep) =>
      step.acceptedRate < 0.9 * step.rate || step.deliveredPerSecond < 0.8 * step.acceptedRate * step.subscribers || step.p99Ms > 2000;
    let held = moderate.passed ? moderate.rate : 0;
    if (!saturated(moderate)) {
      for (let rate = config.startRate; rate <= config.maxRate; rate *= 2) {
        const step = await run(rate);
        if (step.passed) held = rate;
        if (saturated(step)) break;
      }
    }
    if (held === 0) {
      // Not even the moderate rate held: step down until one does.
      for (let rate = config.moderateRate / 2; rate >= 3; rate /= 2) {
        const step = await run(rate);
        if (step.passed) {
          held = step.rate;
          break;
        }
      }
    }
    // Refine between the highest held rate and the next rate tried above it.
    for (let i = 0; i < config.bisectSteps && held > 0; i++) {
      const above = [moderate as DeliveryStep, ...steps].filter((step) => step.rate > held).map((step) => step.rate);
      if (above.length === 0) break;
      const rate = Math.round(Math.sqrt(held * Math.min(...above)));
      if (rate <= held || above.includes(rate)) break;
      const step = await run(rate);
      if (step.passed) held = rate;
    }
    const all = [moderate as DeliveryStep, ...steps];
    const passing = all.filter((step) => step.passed);
    const best = passing.length ? passing.reduce((a, b) => (b.deliveredPerSecond > a.deliveredPerSecond ? b : a)) : null;
    const complete = all.filter((step) => step.gaps + step.undelivered <= 0.001 * step.expected);
    const peak = complete.length ? complete.reduce((a, b) => (b.deliveredPerSecond > a.deliveredPerSecond ? b : a)) : null;
    const converged = await convergedCount(generator, perConnection, finalSeq);
    log(`converged on the final seq: ${converged}/${connected.opened}`);
    return { subscribers: connected.opened, connectFailures: connected.failed, moderate, steps, best, peak, converged };
  });
}

export function runManyJobs(name: TargetName, log: Log): Promise<ManyJobsResult> {
  return withTarget(name, async (target, pool, generator) => {
    const config = CONFIG.manyJobs;
    const jobIds = Array.from({ length: config.jobs }, (_, i) => `mj-${i}`);
    const setup = await createJobs(pool, jobIds);
    log(`${setup.accepted} jobs created and started in ${(setup.elapsedMs / 1000).toFixed(1)} s${setup.firstError ? ` (first error: ${setup.firstError})` : ''}`);
    const connected = await generator.connect(target.clientKind, target.clientUrl, jobIds);
    log(`${connected.opened} subscribers connected${connected.failed ? `, ${connected.failed} failed (${connected.errors.join('; ')})` : ''}`);
    const finalSeq = new Map(setup.finalSeq);
    const step = await measureStep(target, pool, generator, jobIds, 1, config.jobs * config.updatesPerJobPerSecond, config.seconds, 1, finalSeq);
    log(describeStep(step));
    const converged = await convergedCount(generator, jobIds, finalSeq);
    log(`converged on the final seq: ${converged}/${connected.opened}`);
    return { jobs: config.jobs, setupSeconds: setup.elapsedMs / 1000, connectFailures: connected.failed, step, converged };
  }, CONFIG.manyJobs.producerConnections);
}

export function runIdle(name: TargetName, log: Log): Promise<IdleResult> {
  return withTarget(name, async (target, pool, generator) => {
    const config = CONFIG.idle;
    await createJobs(pool, ['idle']);
    await sleep(1000);
    const rssBeforeBytes = processRssBytes(target.pid);
    const started = performance.now();
    const connected = await generator.connect(target.clientKind, target.clientUrl, Array<string>(config.connections).fill('idle'), 100);
    const connectSeconds = (performance.now() - started) / 1000;
    await sleep(config.settleMs);
    const rssAfterBytes = processRssBytes(target.pid);
    const result: IdleResult = {
      connections: connected.opened,
      connectFailures: connected.failed,
      connectSeconds,
      rssBeforeBytes,
      rssAfterBytes,
      bytesPerConnection: (rssAfterBytes - rssBeforeBytes) / Math.max(1, connected.opened),
    };
    log(
      `${connected.opened} connections in ${connectSeconds.toFixed(1)} s${connected.failed ? ` (${connected.failed} failed: ${connected.errors.join('; ')}${await socketCounters(target)})` : ''}: RSS ${(rssBeforeBytes / 2 ** 20).toFixed(1)} → ${(rssAfterBytes / 2 ** 20).toFixed(1)} MiB, ${(result.bytesPerConnection / 1024).toFixed(2)} KiB/connection`,
    );
    return result;
  });
}

export function runIngest(name: TargetName, log: Log): Promise<IngestResult> {
  const config = CONFIG.ingest;
  return withTarget(
    name,
    async (target, pool) => {
      const jobIds = Array.from({ length: config.jobs }, (_, i) => `in-${i}`);
      await createJobs(pool, jobIds);
      const coresBefore = coreTimes();
      const produced = await sendFlat(pool, jobIds, config.connections, config.seconds * 1000, 1);
      const busy = coreBusy(coresBefore, coreTimes());
      const result: IngestResult = {
        connections: config.connections,
        seconds: produced.elapsedMs / 1000,
        accepted: produced.accepted,
        eventsPerSecond: produced.accepted / (produced.elapsedMs / 1000),
        p50Ms: quantileMs(produced.roundTrips, 0.5),
        p99Ms: quantileMs(produced.roundTrips, 0.99),
        errors: produced.errors,
        serverCoreBusy: busy[CONFIG.serverCore] ?? 0,
      };
      if (produced.firstError) result.firstError = produced.firstError;
      log(
        `${result.eventsPerSecond.toFixed(0)} events/s accepted, round trip p50 ${result.p50Ms.toFixed(2)} ms p99 ${result.p99Ms.toFixed(2)} ms, server core ${(result.serverCoreBusy * 100).toFixed(0)}%${total(Object.values(result.errors)) ? `, errors ${JSON.stringify(result.errors)} (${result.firstError})` : ''}`,
      );
      return result;
    },
    config.connections,
  );
}
