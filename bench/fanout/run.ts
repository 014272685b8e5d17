/**
 * `npm run bench`: the fan-out benchmark. Runs every scenario against our server (SQLite store),
 * our server on Redis ("ours + Redis": many jobs and ingest), a raw uWebSockets.js server and a
 * Socket.IO 4 server, prints progress (with the client core of every measurement) and a table of
 * absolute figures and ratios, writes bench/results/fanout-<time>.json and docs/benchmarks.md.
 *
 * Environment: BENCH_QUICK=1 (small smoke run; does not touch docs/),
 * BENCH_TARGETS=ours,ours-redis,raw-uws,socket.io BENCH_SCENARIOS=fanout,many-jobs,idle,ingest,
 * BENCH_SKIP_BUILD=1, BENCH_NO_DOCS=1, BENCH_CPU_PROF_DIR=dir (start the targets with --cpu-prof),
 * BENCH_OURS_ENV=K=V,K=V (extra env for our server), BENCH_OURS_BIN=path (another build of our
 * CLI), BENCH_CLIENT=library (`ws` / `socket.io-client` instead of the lean client),
 * BENCH_REDIS_SERVER_BIN=path.
 * `node dist/bench/bench/fanout/run.js --report bench/results/<file>.json` rewrites the docs from
 * an earlier run.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { killAll } from './children.js';
import { CONFIG } from './config.js';
import { loadAverage } from './proc.js';
import { consoleTable, markdown, type BenchResults, type TargetResults } from './report.js';
import { runIngest } from './ingest.js';
import { runFanout, runIdle, runManyJobs, type Log } from './scenarios.js';
import { runsScenario, TARGETS, type TargetName } from './targets.js';

const REPO = fileURLToPath(new URL('../../../../', import.meta.url));
const SOURCE_DIR = join(REPO, 'bench', 'fanout');
const started = performance.now();

function log(line: string): void {
  const seconds = Math.round((performance.now() - started) / 1000);
  console.log(`[${String(Math.floor(seconds / 60)).padStart(2, '0')}:${String(seconds % 60).padStart(2, '0')}] ${line}`);
}

const SCENARIOS = {
  fanout: runFanout,
  'many-jobs': runManyJobs,
  idle: runIdle,
  ingest: runIngest,
} as const;
type ScenarioName = keyof typeof SCENARIOS;
const RESULT_KEY: Record<ScenarioName, keyof Omit<TargetResults, 'errors'>> = { fanout: 'fanout', 'many-jobs': 'manyJobs', idle: 'idle', ingest: 'ingest' };

function list<T extends string>(env: string | undefined, all: readonly T[]): T[] {
  if (!env) return [...all];
  const wanted = env.split(',').map((s) => s.trim());
  return all.filter((name) => wanted.includes(name));
}

function gitDescribe(): string | undefined {
  try {
    return execFileSync('git', ['describe', '--always', '--dirty'], { cwd: REPO, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  } catch {
    return undefined;
  }
}

/** What bin/progress-tracker.js loads: present once `tsc -b` built the server. */
const SERVER_ENTRY = 'dist/server/app/cli.js';

function buildOurServer(): boolean {
  if (process.env.BENCH_SKIP_BUILD !== '1') {
    log('building our server (npm run build:server)…');
    try {
      execFileSync('npm', ['run', '--silent', 'build:server'], { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (error) {
      const stderr = (error as { stderr?: Buffer }).stderr?.toString() ?? '';
      log(`build:server failed${existsSync(join(REPO, SERVER_ENTRY)) ? '; using the existing dist/' : ''}: ${stderr.slice(0, 500)}`);
    }
  }
  return existsSync(join(REPO, SERVER_ENTRY));
}

/** The suite is bounded: past this, end every child process and fail. */
const SCENARIO_TIMEOUT_MS = 240_000;
const WATCHDOG_MS = Number(process.env.BENCH_WATCHDOG_MS ?? 15 * 60_000);

function writeDocs(results: BenchResults, others: Array<{ file: string; results: BenchResults }> = []): void {
  const prose = {
    intro: readFileSync(join(SOURCE_DIR, 'docs-intro.md'), 'utf8').trim(),
    notes: readFileSync(join(SOURCE_DIR, 'docs-notes.md'), 'utf8').trim(),
  };
  writeFileSync(join(REPO, 'docs', 'benchmarks.md'), markdown(results, prose, others));
  log('table written to docs/benchmarks.md');
}

async function main(): Promise<void> {
  // `--report <results.json> [earlier.json…]`: rewrite the table and docs/benchmarks.md from an
  // earlier run; further files are shown as earlier runs (summary table only).
  const reportIndex = process.argv.indexOf('--report');
  if (reportIndex < 0 && process.argv.length > 2) {
    // Anything else (e.g. --help) must not start a full run that rewrites the docs.
    console.error('usage: run.js [--report <results.json> [earlier.json…]]; settings are environment variables (see bench/fanout/run.ts)');
    process.exit(2);
  }
  if (reportIndex > 0) {
    const [main, ...rest] = process.argv.slice(reportIndex + 1).map((file) => ({
      file: relative(REPO, resolve(file)),
      results: JSON.parse(readFileSync(file, 'utf8')) as BenchResults,
    }));
    console.log(consoleTable(main!.results));
    writeDocs(main!.results, rest);
    return;
  }
  setTimeout(() => {
    log(`watchdog: the suite ran over ${WATCHDOG_MS / 60_000} minutes; stopping`);
    killAll();
    process.exit(1);
  }, WATCHDOG_MS).unref();
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      killAll();
      process.exit(130);
    });
  }
  // The runner and the producer live on the client core, away from the server under test.
  execFileSync('taskset', ['-a', '-p', '-c', String(CONFIG.clientCore), String(process.pid)], { stdio: 'ignore' });
  const targets = list<TargetName>(process.env.BENCH_TARGETS, TARGETS);
  const scenarios = list<ScenarioName>(process.env.BENCH_SCENARIOS, Object.keys(SCENARIOS) as ScenarioName[]);
  const loadBefore = loadAverage();
  log(`load average before: ${loadBefore}${Number(loadBefore.split(' ')[0]) > 0.5 ? ' (the machine is busy: figures will be noisy)' : ''}`);
  log(
    `server on core ${CONFIG.serverCore}; runner, producer and ${CONFIG.workers} load-generator processes (${CONFIG.client} client) on core ${CONFIG.clientCore}` +
      (targets.includes('ours-redis') ? `; Redis of "ours + Redis" on core ${CONFIG.redisCore}` : '') +
      `; a measurement with the client core at ${CONFIG.clientCoreLimit * 100}% or more is marked "limited by the load generator"`,
  );

  const results: BenchResults = {
    startedAt: new Date().toISOString(),
    durationSeconds: 0,
    quick: CONFIG.quick,
    machine: {
      cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
      cores: cpus().length,
      memoryGiB: totalmem() / 2 ** 30,
      node: process.version,
      os: `Linux ${release()}`,
      loadBefore,
      loadAfter: '',
      build: gitDescribe(),
    },
    config: CONFIG,
    targets: {},
  };
  if ((targets.includes('ours') || targets.includes('ours-redis')) && !buildOurServer()) {
    log(`our server is not built (${SERVER_ENTRY} missing): skipping it`);
    for (const ours of ['ours', 'ours-redis'] as const) if (targets.includes(ours)) targets.splice(targets.indexOf(ours), 1);
  }
  for (const name of targets) results.targets[name] = { errors: {} };

  // Scenario by scenario, the targets back to back, so background noise hits them alike.
  for (const scenario of scenarios) {
    for (const name of targets.filter((target) => runsScenario(target, scenario))) {
      const scoped: Log = (line) => log(`${scenario} · ${name} · ${line}`);
      scoped('start');
      const into = results.targets[name]!;
      try {
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            // Sequential scenarios: every live child belongs to this one.
            killAll();
            reject(new Error(`timed out after ${SCENARIO_TIMEOUT_MS / 1000} s`));
          }, SCENARIO_TIMEOUT_MS);
        });
        const value = await Promise.race([SCENARIOS[scenario](name, scoped), timeout]).finally(() => clearTimeout(timer));
        (into as unknown as Record<string, unknown>)[RESULT_KEY[scenario]] = value;
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        into.errors[scenario] = message.split('\n')[0]!;
        scoped(`ERROR: ${message}`);
      }
    }
  }

  results.machine.loadAfter = loadAverage();
  results.durationSeconds = (performance.now() - started) / 1000;
  console.log(`\n${consoleTable(results)}\n`);

  const resultsDir = join(REPO, 'bench', 'results');
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, `fanout-${results.startedAt.replace(/[:.]/g, '-')}${CONFIG.quick ? '-quick' : ''}.json`);
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  log(`results: ${file}`);
  if (!CONFIG.quick && process.env.BENCH_NO_DOCS !== '1') writeDocs(results);
  log(`done in ${Math.round(results.durationSeconds)} s; load average after: ${results.machine.loadAfter}`);
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
