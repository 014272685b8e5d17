/**
 * Starts each benchmark target as its own process pinned to the server core, and describes how
 * the producer and the clients reach it. "ours + Redis" is our server with its Redis store
 * (PT_REDIS_URL) on a Redis the target starts itself (redis.ts), on a core of its own.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { SignJWT } from 'jose';
import { track } from './children.js';
import type { ClientKind } from './ipc.js';
import { startRedis, type RunningRedis } from './redis.js';

export type TargetName = 'ours' | 'ours-redis' | 'raw-uws' | 'socket.io';
export const TARGETS: TargetName[] = ['ours', 'ours-redis', 'raw-uws', 'socket.io'];

export const TARGET_LABELS: Record<TargetName, string> = {
  ours: 'ours',
  'ours-redis': 'ours + Redis',
  'raw-uws': 'raw uWS',
  'socket.io': 'Socket.IO',
};

/**
 * Scenarios a target runs, when not all. The Redis store changes the producer path (a Lua script
 * and an AOF fsync per commit) and adds a pub/sub hop per job: many jobs and ingest show both;
 * one hot job's fan-out and idle sockets are the same uWS code as `ours`.
 */
export const TARGET_SCENARIOS: Partial<Record<TargetName, readonly string[]>> = {
  'ours-redis': ['many-jobs', 'ingest'],
};

export function runsScenario(name: TargetName, scenario: string): boolean {
  return TARGET_SCENARIOS[name]?.includes(scenario) ?? true;
}

export interface TargetOptions {
  core: number;
  /** Core of the Redis that "ours + Redis" starts. */
  redisCore: number;
  fdLimit: number;
  /** Directory for `--cpu-prof` output, when profiling. */
  cpuProfDir?: string;
  /** Extra environment for our server. */
  env?: Record<string, string>;
}

export interface RunningTarget {
  name: TargetName;
  pid: number;
  port: number;
  /** The store's own process, when it has one (Redis of "ours + Redis"): its CPU is reported apart. */
  storePid?: number;
  /** What the load generator connects to: the library client (BENCH_CLIENT=library) and the lean one (default). */
  clientKind: ClientKind;
  leanKind: ClientKind;
  clientUrl: string;
  /** Headers every producer request carries. */
  producerHeaders: Record<string, string>;
  /** Prometheus text of /metrics, for targets that have one. */
  metrics(): Promise<string | null>;
  stop(): Promise<void>;
}

const REPO = fileURLToPath(new URL('../../../../', import.meta.url));
const TARGET_SCRIPTS: Record<Exclude<TargetName, 'ours' | 'ours-redis'>, string> = {
  'raw-uws': fileURLToPath(new URL('./targets/raw-uws.js', import.meta.url)),
  'socket.io': fileURLToPath(new URL('./targets/socketio.js', import.meta.url)),
};

async function token(secret: string, scope: string): Promise<string> {
  return new SignJWT({ scope, jobs: ['*'] })
    .setProtectedHeader({ alg: 'HS256' })
    .setAudience('progress-tracker')
    .setSubject('bench')
    .setIssuedAt()
    .setExpirationTime('2h')
    .sign(new TextEncoder().encode(secret));
}

function launch(args: string[], env: NodeJS.ProcessEnv, options: TargetOptions): ChildProcess {
  const nodeFlags = options.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfDir}`] : [];
  // `exec` twice keeps the pid: the pid we read /proc of is the node process itself.
  return track(spawn(
    'sh',
    ['-c', `ulimit -n ${options.fdLimit} 2>/dev/null; exec taskset -c ${options.core} "$@"`, 'sh', process.execPath, ...nodeFlags, ...args],
    { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] },
  ));
}

/** Resolves with the port once the process prints a line that reveals it. */
function waitForPort(child: ChildProcess, name: string, timeoutMs = 30_000): Promise<number> {
  return new Promise((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => reject(new Error(`${name} did not report its port within ${timeoutMs} ms:\n${output.slice(-2000)}`)), timeoutMs);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /"port":\s*(\d+)/.exec(output) ?? /https?:\/\/(?:127\.0\.0\.1|localhost|\[::1\]):(\d+)/.exec(output);
      if (match && Number(match[1]) > 0) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with code ${code}:\n${output.slice(-2000)}`));
    });
  });
}

function stopper(child: ChildProcess, cleanup?: () => void | Promise<void>): () => Promise<void> {
  return async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    await cleanup?.();
  };
}

export async function startTarget(name: TargetName, options: TargetOptions): Promise<RunningTarget> {
  if (name === 'ours' || name === 'ours-redis') {
    const secret = randomBytes(32).toString('hex');
    const dataDir = mkdtempSync(join(tmpdir(), 'pt-bench-'));
    let redis: RunningRedis | undefined;
    const cleanup = async () => {
      rmSync(dataDir, { recursive: true, force: true });
      await redis?.stop();
    };
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      PT_JWT_SECRET: secret,
      PT_DB: join(dataDir, 'bench.db'),
      HOST: '127.0.0.1',
      // Every benchmark client comes from 127.0.0.1: lift the per-address connection limit.
      PT_MAX_CONNECTIONS_PER_IP: '100000',
      ...options.env,
    };
    let child: ChildProcess | undefined;
    let port: number;
    try {
      if (name === 'ours-redis') {
        redis = await startRedis(options.redisCore);
        env.PT_REDIS_URL = redis.url;
      }
      // BENCH_OURS_BIN: another build of the CLI (e.g. a patched copy) for A/B runs.
      child = launch([process.env.BENCH_OURS_BIN ?? 'bin/progress-tracker.js', 'serve', '--port', '0'], env, options);
      // Keep draining its output so a chatty log never blocks it on a full pipe.
      child.stdout!.resume();
      child.stderr!.resume();
      port = await waitForPort(child, name === 'ours' ? 'our server' : 'our server (Redis store)');
    } catch (error) {
      child?.kill('SIGKILL');
      await cleanup();
      throw error;
    }
    const [readToken, writeToken] = await Promise.all([token(secret, 'progress:read'), token(secret, 'progress:write')]);
    return {
      name,
      pid: child.pid!,
      port,
      ...(redis && { storePid: redis.pid }),
      clientKind: 'ws',
      leanKind: 'lean-ws',
      clientUrl: `ws://127.0.0.1:${port}/v1/ws?access_token=${readToken}`,
      producerHeaders: { authorization: `Bearer ${writeToken}` },
      metrics: async () => {
        const response = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { authorization: `Bearer ${writeToken}` } });
        return response.ok ? response.text() : null;
      },
      stop: stopper(child, cleanup),
    };
  }
  const child = launch([TARGET_SCRIPTS[name]], { ...process.env }, options);
  child.stdout!.resume();
  child.stderr!.resume();
  const port = await waitForPort(child, name);
  return {
    name,
    pid: child.pid!,
    port,
    clientKind: name === 'socket.io' ? 'socket.io' : 'ws',
    leanKind: name === 'socket.io' ? 'lean-socket.io' : 'lean-ws',
    clientUrl: name === 'socket.io' ? `http://127.0.0.1:${port}` : `ws://127.0.0.1:${port}/v1/ws`,
    producerHeaders: {},
    metrics: async () => null,
    stop: stopper(child),
  };
}
