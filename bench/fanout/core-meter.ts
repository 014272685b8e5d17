/**
 * What one measurement cost each side: the server process's CPU and its core's busy time, the
 * client core's busy time (every process on it: load generator, runner/producer, Redis when it
 * shares the core, and whatever else the machine runs), the benchmark's own share of it, and the
 * store process's CPU. A measurement whose client core was at CONFIG.clientCoreLimit or busier is
 * "limited by the load generator": the server may have had more to give.
 */
import { CONFIG } from './config.js';
import type { LoadGenerator } from './load-generator.js';
import { coreBusy, coreTimes, mainThreadCpuMicros, processCpuMicros, type CoreTimes } from './proc.js';

export const LIMITED = 'limited by the load generator';

export interface CoreUse {
  seconds: number;
  /** Busy fraction (0..1) of the server's core and the client core, all processes. */
  serverCoreBusy: number;
  clientCoreBusy: number;
  /** Fraction of a core the benchmark's load generator used: client workers and the runner (producer). */
  loadGeneratorBusy: number;
  /** CPU µs of the server process (all threads). */
  serverCpuMicros: number;
  /** CPU µs of the server's main thread alone: its event loop (the rest is worker threads and V8's GC helpers). */
  serverLoopCpuMicros: number;
  /** CPU µs of the client worker processes, and of the runner (producer, pacing, statistics). */
  clientCpuMicros: number;
  runnerCpuMicros: number;
  /** CPU µs of the target's store process (Redis), 0 without one. */
  storeCpuMicros: number;
  /** clientCoreBusy ≥ CONFIG.clientCoreLimit. */
  limitedByLoadGenerator: boolean;
}

interface Snapshot {
  at: number;
  cores: CoreTimes[];
  server: number;
  serverLoop: number;
  store: number;
  clients: number;
  runner: NodeJS.CpuUsage;
}

const cpuOf = (pid: number | undefined, read = processCpuMicros) => {
  if (pid === undefined) return 0;
  try {
    return read(pid);
  } catch {
    return 0;
  }
};

export class CoreMeter {
  private constructor(
    private readonly serverPid: number,
    private readonly storePid: number | undefined,
    private readonly generator: LoadGenerator | undefined,
    private readonly before: Snapshot,
  ) {}

  private static async snapshot(serverPid: number, storePid: number | undefined, generator: LoadGenerator | undefined): Promise<Snapshot> {
    const clients = generator ? (await generator.stats([])).cpuMicros : 0;
    return { at: performance.now(), cores: coreTimes(), server: cpuOf(serverPid), serverLoop: cpuOf(serverPid, mainThreadCpuMicros), store: cpuOf(storePid), clients, runner: process.cpuUsage() };
  }

  /** Starts measuring; `generator` when clients take part, `storePid` for a store process. */
  static async start(serverPid: number, storePid?: number, generator?: LoadGenerator): Promise<CoreMeter> {
    return new CoreMeter(serverPid, storePid, generator, await CoreMeter.snapshot(serverPid, storePid, generator));
  }

  async stop(): Promise<CoreUse> {
    const after = await CoreMeter.snapshot(this.serverPid, this.storePid, this.generator);
    const busy = coreBusy(this.before.cores, after.cores);
    const seconds = (after.at - this.before.at) / 1000;
    const runner = process.cpuUsage(this.before.runner);
    const runnerCpuMicros = runner.user + runner.system;
    const clientCpuMicros = after.clients - this.before.clients;
    const clientCoreBusy = busy[CONFIG.clientCore] ?? 0;
    return {
      seconds,
      serverCoreBusy: busy[CONFIG.serverCore] ?? 0,
      clientCoreBusy,
      loadGeneratorBusy: (clientCpuMicros + runnerCpuMicros) / 1e6 / Math.max(1e-6, seconds),
      serverCpuMicros: after.server - this.before.server,
      serverLoopCpuMicros: after.serverLoop - this.before.serverLoop,
      clientCpuMicros,
      runnerCpuMicros,
      storeCpuMicros: after.store - this.before.store,
      limitedByLoadGenerator: clientCoreBusy >= CONFIG.clientCoreLimit,
    };
  }
}

/**
 * "client core 95% (load generator 71%, Redis 12%, other 12%) — LIMITED BY THE LOAD GENERATOR".
 * "Other" is the rest of the core's busy time: the kernel's network work on the clients' behalf
 * (softirq is not charged to processes), hypervisor steal, and other processes on the machine.
 */
export function describeClientCore(use: Pick<CoreUse, 'clientCoreBusy' | 'loadGeneratorBusy' | 'limitedByLoadGenerator' | 'seconds' | 'storeCpuMicros'>): string {
  const pct = (x: number) => `${(x * 100).toFixed(0)}%`;
  const redisBusy = use.storeCpuMicros / 1e6 / Math.max(1e-6, use.seconds);
  const sharesCore = CONFIG.redisCore === CONFIG.clientCore;
  const other = use.clientCoreBusy - use.loadGeneratorBusy - (sharesCore ? redisBusy : 0);
  const parts = [`load generator ${pct(use.loadGeneratorBusy)}`];
  if (redisBusy > 0 && sharesCore) parts.push(`Redis ${pct(redisBusy)}`);
  if (other >= 0.05) parts.push(`other ${pct(other)}`);
  const apart = redisBusy > 0 && !sharesCore ? `, Redis ${pct(redisBusy)} on core ${CONFIG.redisCore}` : '';
  // When other work took most of the core, say so: the mark then means "the clients were starved".
  const starved = other > use.loadGeneratorBusy ? ' (the core was mostly taken by other work)' : '';
  return `client core ${pct(use.clientCoreBusy)} (${parts.join(', ')})${apart}${use.limitedByLoadGenerator ? ` — ${LIMITED.toUpperCase()}${starved}` : ''}`;
}
