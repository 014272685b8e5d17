/**
 * The delivery scenarios, each run against one target at a time on a fresh server process:
 * fan-out (with the CPU-per-delivery reading), many jobs, idle capacity (producer ingest is
 * ingest.ts). Every step records what it cost the client core, so a figure the load generator
 * may have set is marked as such (core-meter.ts).
 */
import { CONFIG } from './config.js';
import { CoreMeter, describeClientCore } from './core-meter.js';
import { quantileMs } from './histogram.js';
import type { HttpPool } from './http-client.js';
import type { ClientKind, TagStats } from './ipc.js';
import type { LoadGenerator } from './load-generator.js';
import { processRssBytes } from './proc.js';
import { createJobs, sendPaced, type ProducerResult } from './producer.js';
import { withTarget } from './target-session.js';
import type { RunningTarget, TargetName } from './targets.js';

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
  /** Wall time of the step, producer and drain. */
  seconds: number;
  serverCoreBusy: number;
  /** Busy fraction of the client core (all processes on it), and the load generator's own share. */
  clientCoreBusy: number;
  loadGeneratorBusy: number;
  /** Client core ≥ CONFIG.clientCoreLimit: the figure may be the load generator's. */
  limitedByLoadGenerator: boolean;
  serverCpuMicros: number;
  /** The server's main thread (event loop) alone; the rest of serverCpuMicros is its other threads. */
  serverLoopCpuMicros: number;
  /** CPU of the target's store process (Redis of "ours + Redis") over the step, µs; else 0. */
  storeCpuMicros: number;
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
  /** Updates/s offered in total (jobs × updates per job per second). */
  offeredPerSecond: number;
  setupSeconds: number;
  connectFailures: number;
  step: DeliveryStep;
  /** Server CPU per delivery over the step, µs (Redis's apart: storeCpuMicrosPerDelivery). */
  cpuMicrosPerDelivery: number;
  /** The part of it spent on the server's event loop (main thread). */
  loopCpuMicrosPerDelivery: number;
  storeCpuMicrosPerDelivery: number;
  /** Server RSS at the end of the step, every connection open; Redis's RSS for "ours + Redis". */
  serverRssBytes: number;
  storeRssBytes?: number;
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

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The client every scenario connects with: the lean raw-socket one unless BENCH_CLIENT=library. */
function clientKind(target: RunningTarget): ClientKind {
  return CONFIG.client === 'lean' ? target.leanKind : target.clientKind;
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
  const meter = await CoreMeter.start(target.pid, target.storePid, generator);
  const produced: ProducerResult = await sendPaced(pool, jobIds, rate, seconds * 1000, tag);
  const expected = produced.accepted * subscribersPerJob;
  const stats = await drain(generator, tag, expected);
  const use = await meter.stop();
  const resyncs = (await counter(target, 'pt_ws_resyncs_total')) - resyncsBefore;
  for (const [job, seq] of produced.finalSeq) if (seq > (finalSeq.get(job) ?? 0)) finalSeq.set(job, seq);
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
    seconds: use.seconds,
    serverCoreBusy: use.serverCoreBusy,
    clientCoreBusy: use.clientCoreBusy,
    loadGeneratorBusy: use.loadGeneratorBusy,
    limitedByLoadGenerator: use.limitedByLoadGenerator,
    serverCpuMicros: use.serverCpuMicros,
    serverLoopCpuMicros: use.serverLoopCpuMicros,
    storeCpuMicros: use.storeCpuMicros,
    clientCpuMicrosPerMessage: use.clientCpuMicros / Math.max(1, delivered),
    producerCpuMicrosPerRequest: use.runnerCpuMicros / Math.max(1, produced.sent),
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
  return `${step.rate} upd/s → ${k(step.deliveredPerSecond)} deliveries/s, p50 ${step.p50Ms.toFixed(1)} ms, p99 ${step.p99Ms.toFixed(1)} ms, server core ${(step.serverCoreBusy * 100).toFixed(0)}% (${(step.serverCpuMicros / Math.max(1, step.delivered)).toFixed(2)} µs/delivery), ${describeClientCore(step)} (clients ${step.clientCpuMicrosPerMessage.toFixed(2)} µs/msg, producer ${step.producerCpuMicrosPerRequest.toFixed(0)} µs/req)${step.gaps ? `, gaps ${step.gaps}` : ''}${step.undelivered ? `, undelivered ${step.undelivered}` : ''}${step.duplicates ? `, resent ${step.duplicates}` : ''}${step.revisions ? `, server revisions ${step.revisions}` : ''} ${step.passed ? 'ok' : `FAIL (${step.why})`}`;
}

export function runFanout(name: TargetName, log: Log): Promise<FanoutResult> {
  return withTarget(name, async (target, pool, generator) => {
    const config = CONFIG.fanout;
    const setup = await createJobs(pool, ['fan']);
    if (setup.accepted !== 1) throw new Error(`cannot create the job: ${setup.firstError}`);
    const jobIds = ['fan'];
    const perConnection = Array<string>(config.subscribers).fill('fan');
    const connected = await generator.connect(clientKind(target), target.clientUrl, perConnection);
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
    const connected = await generator.connect(clientKind(target), target.clientUrl, jobIds);
    log(`${connected.opened} subscribers connected${connected.failed ? `, ${connected.failed} failed (${connected.errors.join('; ')})${await socketCounters(target)}` : ''}`);
    const finalSeq = new Map(setup.finalSeq);
    const offeredPerSecond = config.jobs * config.updatesPerJobPerSecond;
    const step = await measureStep(target, pool, generator, jobIds, 1, offeredPerSecond, config.seconds, 1, finalSeq);
    const serverRssBytes = processRssBytes(target.pid);
    const storeRssBytes = target.storePid !== undefined ? processRssBytes(target.storePid) : undefined;
    const result: ManyJobsResult = {
      jobs: config.jobs,
      offeredPerSecond,
      setupSeconds: setup.elapsedMs / 1000,
      connectFailures: connected.failed,
      step,
      cpuMicrosPerDelivery: step.serverCpuMicros / Math.max(1, step.delivered),
      loopCpuMicrosPerDelivery: step.serverLoopCpuMicros / Math.max(1, step.delivered),
      storeCpuMicrosPerDelivery: step.storeCpuMicros / Math.max(1, step.delivered),
      serverRssBytes,
      ...(storeRssBytes !== undefined && { storeRssBytes }),
      converged: 0,
    };
    const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
    log(
      `${describeStep(step)}; delivered ${((100 * step.delivered) / Math.max(1, offeredPerSecond * config.seconds)).toFixed(1)}% of offered; ` +
        `server ${result.cpuMicrosPerDelivery.toFixed(2)} µs/delivery (event loop ${result.loopCpuMicrosPerDelivery.toFixed(2)}, other threads ${(result.cpuMicrosPerDelivery - result.loopCpuMicrosPerDelivery).toFixed(2)}), RSS ${mib(serverRssBytes)}` +
        (storeRssBytes !== undefined ? `; Redis ${result.storeCpuMicrosPerDelivery.toFixed(2)} µs/delivery, RSS ${mib(storeRssBytes)}` : ''),
    );
    result.converged = await convergedCount(generator, jobIds, finalSeq);
    log(`converged on the final seq: ${result.converged}/${connected.opened}`);
    return result;
  }, CONFIG.manyJobs.producerConnections);
}

export function runIdle(name: TargetName, log: Log): Promise<IdleResult> {
  return withTarget(name, async (target, pool, generator) => {
    const config = CONFIG.idle;
    await createJobs(pool, ['idle']);
    await sleep(1000);
    const rssBeforeBytes = processRssBytes(target.pid);
    const started = performance.now();
    const connected = await generator.connect(clientKind(target), target.clientUrl, Array<string>(config.connections).fill('idle'), 100);
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
