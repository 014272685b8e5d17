/**
 * One scenario's session with one target: a fresh server process (and its Redis, for "ours +
 * Redis"), the producer's connection pool and the load-generator processes, all ended afterwards
 * whatever happens.
 */
import { CONFIG } from './config.js';
import { HttpPool } from './http-client.js';
import { LoadGenerator } from './load-generator.js';
import { startTarget, type RunningTarget, type TargetName, type TargetOptions } from './targets.js';

function targetOptions(name: TargetName): TargetOptions {
  const options: TargetOptions = { core: CONFIG.serverCore, redisCore: CONFIG.redisCore, fdLimit: CONFIG.fdLimit };
  if (process.env.BENCH_CPU_PROF_DIR) options.cpuProfDir = `${process.env.BENCH_CPU_PROF_DIR}/${name}`;
  const extra = process.env.BENCH_OURS_ENV;
  if ((name === 'ours' || name === 'ours-redis') && extra) {
    options.env = Object.fromEntries(extra.split(',').map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]));
  }
  return options;
}

/** Runs `body` against a fresh `name`; `workers: 0` starts no load generator (ingest). */
export async function withTarget<T>(
  name: TargetName,
  body: (target: RunningTarget, pool: HttpPool, generator: LoadGenerator) => Promise<T>,
  poolSize = CONFIG.producerConnections,
  workers = CONFIG.workers,
): Promise<T> {
  const target = await startTarget(name, targetOptions(name));
  const pool = new HttpPool('127.0.0.1', target.port, poolSize, target.producerHeaders);
  const generator = new LoadGenerator(workers, CONFIG.clientCore, CONFIG.fdLimit);
  try {
    return await body(target, pool, generator);
  } finally {
    await generator.close();
    pool.close();
    await target.stop();
  }
}
