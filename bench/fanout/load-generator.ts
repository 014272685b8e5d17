/**
 * The runner's handle on the load-generator processes: spawns them pinned to the client core,
 * spreads connections over them, and merges their statistics.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { track } from './children.js';
import { BUCKETS } from './histogram.js';
import type { ClientKind, TagStats, WorkerCommand, WorkerReply } from './ipc.js';

const WORKER = fileURLToPath(new URL('./client-worker.js', import.meta.url));


export interface GeneratorStats {
  tags: Record<number, TagStats>;
  lastSeqs: number[];
  closed: number;
  cpuMicros: number;
}

class Worker {
  private readonly child: ChildProcess;
  private waiting: ((reply: WorkerReply) => void) | null = null;
  readonly exited: Promise<void>;

  constructor(core: number, fdLimit: number) {
    // taskset before node so every thread of the process (V8 platform threads too) is pinned.
    this.child = track(spawn('sh', ['-c', `ulimit -n ${fdLimit} 2>/dev/null; exec taskset -c ${core} "$0" "$@"`, process.execPath, WORKER], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    }));
    this.child.on('message', (reply: WorkerReply) => {
      const waiting = this.waiting;
      this.waiting = null;
      waiting?.(reply);
    });
    this.exited = new Promise((resolve) => this.child.once('exit', () => resolve()));
  }

  ask(command: WorkerCommand, timeoutMs = 120_000): Promise<WorkerReply> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`load-generator worker did not answer ${command.cmd}`)), timeoutMs);
      this.waiting = (reply) => {
        clearTimeout(timer);
        resolve(reply);
      };
      this.child.send(command);
    });
  }

  kill(): void {
    this.child.kill('SIGKILL');
  }
}

export class LoadGenerator {
  private readonly workers: Worker[];
  private slices: number[] = [];

  constructor(processes: number, core: number, fdLimit: number) {
    this.workers = Array.from({ length: processes }, () => new Worker(core, fdLimit));
  }

  /** Opens one connection per entry of jobIds (spread evenly over the workers) and subscribes it. */
  async connect(kind: ClientKind, url: string, jobIds: string[], concurrencyPerWorker = 64): Promise<{ opened: number; failed: number; errors: string[] }> {
    const per = Math.ceil(jobIds.length / this.workers.length);
    this.slices = this.workers.map((_, i) => Math.max(0, Math.min(per, jobIds.length - i * per)));
    const replies = await Promise.all(
      this.workers.map((worker, i) =>
        worker.ask({ cmd: 'connect', kind, url, jobIds: jobIds.slice(i * per, (i + 1) * per), concurrency: concurrencyPerWorker }, 300_000),
      ),
    );
    let opened = 0;
    let failed = 0;
    const errors: string[] = [];
    for (const reply of replies) {
      if (reply.cmd !== 'connected') continue;
      opened += reply.opened;
      failed += reply.failed;
      errors.push(...reply.errors);
    }
    return { opened, failed, errors: [...new Set(errors)] };
  }

  async stats(tags: number[]): Promise<GeneratorStats> {
    const replies = await Promise.all(this.workers.map((worker) => worker.ask({ cmd: 'stats', tags })));
    const merged: GeneratorStats = { tags: {}, lastSeqs: [], closed: 0, cpuMicros: 0 };
    for (const reply of replies) {
      if (reply.cmd !== 'stats') continue;
      merged.lastSeqs.push(...reply.lastSeqs);
      merged.closed += reply.closed;
      merged.cpuMicros += reply.cpuMicros;
      for (const [key, stats] of Object.entries(reply.tags)) {
        const tag = Number(key);
        const into = merged.tags[tag];
        if (!into) {
          merged.tags[tag] = { ...stats, histogram: [...stats.histogram] };
          continue;
        }
        into.count += stats.count;
        into.bytes += stats.bytes;
        into.gaps += stats.gaps;
        into.duplicates += stats.duplicates;
        into.revisions += stats.revisions;
        into.firstAt = Math.min(into.firstAt, stats.firstAt);
        into.lastAt = Math.max(into.lastAt, stats.lastAt);
        for (let i = 0; i < BUCKETS; i++) into.histogram[i] += stats.histogram[i] ?? 0;
      }
    }
    return merged;
  }

  async close(): Promise<void> {
    await Promise.all(
      this.workers.map(async (worker) => {
        await worker.ask({ cmd: 'close' }, 10_000).catch(() => worker.kill());
        await Promise.race([worker.exited, new Promise((resolve) => setTimeout(resolve, 2000))]);
        worker.kill();
      }),
    );
  }
}
