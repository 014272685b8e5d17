/**
 * The `progress-tracker` command.
 *
 *   progress-tracker serve [--port N] [--host H] [--demo] ...   (flags mirror the env variables)
 *   progress-tracker token --scope "progress:write" --jobs "*" --ttl 1h [--sub S] [--aud A] [--iss I]
 *                                                                 (prints an HS256 token signed with PT_JWT_SECRET)
 *   progress-tracker eta-replay < samples.jsonl                  (the ETA engine's replay tool)
 *
 * `main` returns the exit code; it never calls process.exit itself so embedding stays possible.
 */
import { startServer } from './start-server.js';
import { CONFIG_ENTRIES, ConfigError, loadConfig, parseDuration, unknownEnvVariables } from './config.js';
import { EngineError } from './engine.js';
import { createLogger } from './log.js';
import { StoreOpenError } from '../store/store.js';
import { mintToken } from '../transport/auth.js';
import type { Scope } from '../../protocol/index.js';

const USAGE = `Usage: progress-tracker <command> [options]

Commands:
  serve        run the server (HTTP API, WebSocket hub, optional demo)
  token        print a token signed with PT_JWT_SECRET (see below)
  eta-replay   replay recorded job timings through the ETA engine (stdin → stdout)

serve options (each mirrors an environment variable; the flag wins):
${Object.values(CONFIG_ENTRIES)
  .map((e) => `  ${(e.flag + ('boolean' in e && e.boolean ? '' : ' <value>')).padEnd(34)} ${e.env}`)
  .join('\n')}

token options (the secret, audience and issuer come from the same variables as serve):
  --scope <scopes>      space- or comma-separated: progress:read progress:write progress:retry progress:cancel (required)
  --jobs <grants>       comma-separated job ids, prefixes (build-*), tag:<tag> or * (required)
  --ttl <duration>      lifetime like 15m, 1h, 7d (default 1h; at most PT_JWT_MAX_TTL)
  --sub <subject>       the token's sub claim
  --aud <audience>      default PT_JWT_AUDIENCE (progress-tracker)
  --iss <issuer>        default PT_JWT_ISSUER

See docs/configuration.md for what each one does.`;

export async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      return serve(rest);
    case 'token':
      return token(rest);
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
  for (const name of unknownEnvVariables(process.env)) {
    log.warn({ variable: name }, `unknown environment variable ${name}: no setting reads it (a typo? see docs/configuration.md)`);
  }
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

const SCOPES: readonly Scope[] = ['progress:read', 'progress:write', 'progress:retry', 'progress:cancel'];
const TOKEN_FLAGS = ['--scope', '--jobs', '--ttl', '--sub', '--aud', '--iss'] as const;
type TokenFlag = (typeof TOKEN_FLAGS)[number];

/** `progress-tracker token`: an HS256 token for this server's PT_JWT_SECRET, on stdout. */
async function token(argv: readonly string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  const fail = (problems: string[]) => {
    process.stderr.write(`progress-tracker token: ${problems.join('\nprogress-tracker token: ')}\n`);
    return 2;
  };
  const flags: Partial<Record<TokenFlag, string>> = {};
  const problems: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.indexOf('=');
    const name = (eq > 0 ? arg.slice(0, eq) : arg) as TokenFlag;
    if (!TOKEN_FLAGS.includes(name)) {
      problems.push(`unknown option ${name}`);
      continue;
    }
    if (eq > 0) flags[name] = arg.slice(eq + 1);
    else if (i + 1 < argv.length) flags[name] = argv[++i]!;
    else problems.push(`${name} needs a value`);
  }
  const scopes = (flags['--scope'] ?? '').split(/[\s,]+/).filter(Boolean);
  if (scopes.length === 0) problems.push(`--scope is required (one or more of ${SCOPES.join(', ')})`);
  for (const s of scopes) if (!SCOPES.includes(s as Scope)) problems.push(`unknown scope "${s}" (known: ${SCOPES.join(', ')})`);
  const jobs = (flags['--jobs'] ?? '').split(',').map((j) => j.trim()).filter(Boolean);
  if (jobs.length === 0) problems.push('--jobs is required: comma-separated job ids, prefixes like build-*, tag:<tag>, or *');
  const ttlMs = parseDuration(flags['--ttl'] ?? '1h');
  if (ttlMs === undefined || ttlMs < 1000) problems.push(`--ttl must be a duration like 15m, 1h, 7d (at least 1s), got "${flags['--ttl']}"`);
  if (problems.length) return fail(problems);

  // The same variables as `serve`: a token minted here verifies on a server started with them.
  let config;
  try {
    config = loadConfig({ ...process.env, PT_DEMO: '' }, []);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return fail(err.problems);
  }
  if (!config.jwtSecret) return fail(['PT_JWT_SECRET is not set: tokens are signed with the server\'s shared secret (with PT_JWKS_URL only, your identity provider issues them)']);
  if (ttlMs! > config.jwtMaxTtlMs) {
    return fail([`--ttl ${flags['--ttl']} is longer than the server accepts (PT_JWT_MAX_TTL, ${Math.round(config.jwtMaxTtlMs / 1000)}s)`]);
  }
  const issuer = flags['--iss'] ?? config.jwtIssuer;
  const jwt = await mintToken({
    secret: config.jwtSecret,
    audience: flags['--aud'] ?? config.jwtAudience,
    ...(issuer !== undefined && { issuer }),
    scopes: scopes as Scope[],
    jobs,
    ttlSeconds: ttlMs! / 1000,
    ...(flags['--sub'] !== undefined && { subject: flags['--sub'] }),
  });
  process.stdout.write(jwt + '\n');
  return 0;
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
