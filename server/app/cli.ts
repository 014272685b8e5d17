/**
 * The `progress-tracker` command.
 *
 *   progress-tracker serve [--port N] [--host H] [--demo] ...   (flags mirror the env variables)
 *   progress-tracker eta-replay < samples.jsonl                  (the ETA engine's replay tool)
 *
 * `main` returns the exit code; it never calls process.exit itself so embedding stays possible.
 */
import { startServer } from './start-server.js';
import { CONFIG_ENTRIES, ConfigError, loadConfig } from './config.js';
import { EngineError } from './engine.js';
import { createLogger } from './log.js';
import { StoreOpenError } from '../store/store.js';

const USAGE = `Usage: progress-tracker <command> [options]

Commands:
  serve        run the server (HTTP API, WebSocket hub, optional demo)
  eta-replay   replay recorded job timings through the ETA engine (stdin → stdout)

serve options (each mirrors an environment variable; the flag wins):
${Object.values(CONFIG_ENTRIES)
  .map((e) => `  ${(e.flag + ('boolean' in e && e.boolean ? '' : ' <value>')).padEnd(34)} ${e.env}`)
  .join('\n')}

See docs/configuration.md for what each one does.`;

export async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      return serve(rest);
    case 'eta-replay':
      return etaReplay();
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(USAGE + '\n');
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`progress-tracker: unknown command "${command}"\n\n${USAGE}\n`);
      return 2;
  }
}

async function serve(argv: readonly string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  let config;
  try {
    config = loadConfig(process.env, argv);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`progress-tracker: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const log = createLogger(config.logLevel);
  let server;
  try {
    server = await startServer({ ...config, logger: log });
  } catch (err) {
    const known = err instanceof StoreOpenError || err instanceof EngineError || err instanceof ConfigError;
    log.fatal({ err: known ? (err as Error).message : err }, 'cannot start');
    process.stderr.write(`progress-tracker: cannot start: ${(err as Error).message}\n`);
    return 1;
  }
  const running = server;
  return new Promise<number>((resolve) => {
    let signals = 0;
    const stop = (signal: NodeJS.Signals) => {
      signals++;
      if (signals > 1) {
        log.warn({ signal }, 'second signal: exiting now');
        process.exit(130);
      }
      log.info({ signal }, 'signal received');
      const exit = (code: number) => {
        // Idle keep-alive HTTP connections would hold the process for seconds after a clean
        // shutdown: once everything is flushed, do not wait for them.
        setTimeout(() => process.exit(code), 200).unref();
        resolve(code);
      };
      running.close().then(
        () => exit(0),
        (err: unknown) => {
          log.error({ err }, 'error during shutdown');
          exit(1);
        },
      );
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
}

interface EtaReplayModule {
  runEtaReplay(stdin: NodeJS.ReadableStream, stdout: NodeJS.WritableStream, stderr: NodeJS.WritableStream): Promise<number>;
}

async function etaReplay(): Promise<number> {
  // Built by the ETA engine (server/eta/replay.ts); loaded lazily so `serve` never depends on it.
  const specifier = '../eta/replay.js';
  let mod: EtaReplayModule;
  try {
    mod = (await import(specifier)) as EtaReplayModule;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ERR_MODULE_NOT_FOUND' && String(e.message).includes('replay')) {
      process.stderr.write('progress-tracker: eta-replay is not available in this build (dist/server/eta/replay.js is missing; run `npm run build`)\n');
      return 1;
    }
    throw err;
  }
  if (typeof mod.runEtaReplay !== 'function') {
    process.stderr.write('progress-tracker: dist/server/eta/replay.js does not export runEtaReplay\n');
    return 1;
  }
  return mod.runEtaReplay(process.stdin, process.stdout, process.stderr);
}
