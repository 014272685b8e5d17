/**
 * The Redis of the "ours + Redis" target: a fresh redis-server per scenario, pinned to its own
 * core (CONFIG.redisCore), on a free port, with its data in a temp directory that `stop()`
 * removes. Persistence is docs/cluster.md's recommended durable setting, `appendonly yes` +
 * `appendfsync always` (Redis fsyncs the AOF before it answers, so a 202 is on disk, like
 * SQLite's `synchronous=FULL` for `ours`); no RDB snapshots, so no fork competes mid-run.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { track } from './children.js';

export const REDIS_SERVER_BIN = process.env.BENCH_REDIS_SERVER_BIN ?? '/usr/bin/redis-server';

/** The persistence arguments, also quoted by the docs. */
export const DURABLE_ARGS = ['--appendonly', 'yes', '--appendfsync', 'always', '--save', ''];

export interface RunningRedis {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export async function startRedis(core: number): Promise<RunningRedis> {
  if (!existsSync(REDIS_SERVER_BIN)) throw new Error(`${REDIS_SERVER_BIN} not found (apt-get install redis-server, or BENCH_REDIS_SERVER_BIN)`);
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'pt-bench-redis-'));
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--daemonize', 'no', '--protected-mode', 'no', '--loglevel', 'notice', ...DURABLE_ARGS];
  const child = track(spawn('taskset', ['-c', String(core), REDIS_SERVER_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }));
  let output = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`redis-server did not start within 10 s:\n${output.slice(-2000)}`)), 10_000);
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        if (/Ready to accept connections/.test(output)) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited with code ${code}:\n${output.slice(-2000)}`));
      });
    });
  } catch (error) {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  // Keep draining its output so a full pipe never blocks it.
  child.stdout!.resume();
  child.stderr!.resume();
  return {
    url: `redis://127.0.0.1:${port}`,
    pid: child.pid!,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
