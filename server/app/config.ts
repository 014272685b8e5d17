/**
 * Server configuration: one schema entry per setting (its variable, its CLI flag, default, parser
 * and check) and one resolver. The CLI reads the environment and flags (`loadConfig`; a flag wins
 * over the variable), embedding code passes options (`resolveConfig`); both end in the same
 * checks, so a misconfigured deployment fails at start with every problem listed at once, each
 * named by its variable and flag. docs/configuration.md documents each entry.
 *
 * The resolved config is final: demo mode's generated secret and algorithm are decided here, and
 * nothing changes the config after resolution.
 */
import { randomBytes } from 'node:crypto';
import { LIMITS } from '../../protocol/index.js';

export type JwtAlgorithm = 'HS256' | 'HS384' | 'HS512' | 'RS256' | 'RS384' | 'RS512' | 'PS256' | 'ES256' | 'ES384' | 'EdDSA';
const HMAC_ALGORITHMS: readonly JwtAlgorithm[] = ['HS256', 'HS384', 'HS512'];
const PUBLIC_KEY_ALGORITHMS: readonly JwtAlgorithm[] = ['RS256', 'RS384', 'RS512', 'PS256', 'ES256', 'ES384', 'EdDSA'];
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** HS256 needs a key at least as long as its hash (RFC 7518 §3.2): 32 bytes. */
export const MIN_SECRET_BYTES = 32;

export interface ServerConfig {
  port: number;
  host: string;
  jwtSecret?: string;
  jwksUrl?: string;
  jwtIssuer?: string;
  jwtAudience: string;
  /** Accepted JWT algorithms: an allow-list, never taken from the token. */
  jwtAlgorithms: JwtAlgorithm[];
  /** Longest token lifetime accepted (ms): `exp` − (`iat`, or now), and `exp` − now. */
  jwtMaxTtlMs: number;
  db: string;
  dbSync: 'full' | 'normal';
  /** Exact origins allowed for WebSocket upgrades and CORS; empty = any. */
  allowedOrigins: string[];
  demo: boolean;
  /** Demo mode without a configured secret: `jwtSecret` was generated for this run. */
  demoSecretGenerated?: boolean;
  logLevel: string;
  /** How long finished jobs are kept (ms). */
  retentionMs: number;
  /** How often running jobs are re-estimated (ms); 0 = only on events. */
  etaTickMs: number;
  allowFallback: boolean;
  /** Trust `X-Forwarded-For` for client addresses in logs (behind a reverse proxy). */
  trustProxy: boolean;
  /** Redis for the store and the fan-out across nodes (docs/cluster.md); unset = embedded SQLite. */
  redisUrl?: string;
  /** Prefix of every Redis key and channel (all nodes of one cluster share it). */
  redisPrefix: string;
  /** This node's name in logs, metrics and poll leases (default random). */
  nodeId?: string;
  /** Lifetime of a polled job's lease: how long a dead node's polled jobs wait for another node. */
  pollLeaseTtlMs: number;
  /** Redis of the BullMQ queues that jobs with a `bullmq` source follow (docs/cluster.md). */
  bullmqUrl?: string;
  /** `whsec_<base64>`: signs retry webhooks (Standard Webhooks). Unset: jobs with a `webhook` are refused. */
  webhookSecret?: string;
  /** Without `webhookSecret`: accept jobs with a `webhook` and send it unsigned (local experiments). */
  webhookUnsigned: boolean;
  /** A canceled job its producer has not ended this long after the cancel is ended by the server (ms). */
  cancelGraceMs: number;
  /** A queued or running job with no producer event this long is marked `stalled` (ms; a job's `stallAfterMs` overrides it). */
  stallAfterMs: number;
  /** A job silent this long is ended as failed `producer_lost` (ms); 0 = never. */
  stallFailAfterMs: number;
  limits: ServerLimits;
}

export interface ServerLimits {
  maxMessageBytes: number;
  maxBodyBytes: number;
  maxSubscriptionsPerSocket: number;
  messagesPerSecond: number;
  idleTimeoutSeconds: number;
  /** Bytes a socket may have queued before updates for it are skipped (then resynced on drain). */
  maxBackpressureBytes: number;
  /** WebSocket connections per client address. */
  maxConnectionsPerIp: number;
}

export const DEFAULT_LIMITS: ServerLimits = {
  maxMessageBytes: LIMITS.maxMessageBytes,
  maxBodyBytes: LIMITS.maxBodyBytes,
  maxSubscriptionsPerSocket: LIMITS.maxSubscriptionsPerSocket,
  messagesPerSecond: LIMITS.messagesPerSecond,
  idleTimeoutSeconds: LIMITS.idleTimeoutSeconds,
  maxBackpressureBytes: 256 * 1024,
  maxConnectionsPerIp: 1000,
};

/** Options for `startServer`: any config entry, the rest defaulted. */
export type ServerOptions = Partial<Omit<ServerConfig, 'limits'>> & { limits?: Partial<ServerLimits> };

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

// ---------------------------------------------------------------------------------------------
// The schema
// ---------------------------------------------------------------------------------------------

/** The settings a variable or flag can set: ServerConfig's own fields, and one limit. */
type Settable = Omit<ServerConfig, 'limits' | 'demoSecretGenerated'> & { maxConnectionsPerIp: number };
type Key = keyof Settable;

interface Setting<K extends Key> {
  env: string;
  flag: string;
  /** A flag without a value (`--demo`). */
  boolean?: true;
  default?: Settable[K];
  /** The variable's or flag's text → value; throws a message saying what is expected. */
  parse(text: string): Settable[K];
  /** What is wrong with a value, however it was given. */
  check?(value: Settable[K]): string | undefined;
}

/** Parse failures carry the expectation; the resolver prefixes the setting's name. */
const expected = (what: string, text: string): never => {
  throw new Error(`must be ${what}, got "${text}"`);
};

const TRUE = new Set(['1', 'true', 'yes', 'on']);
const FALSE = new Set(['', '0', 'false', 'no', 'off']);

const text = (t: string): string => t;
const bool = (t: string): boolean => (TRUE.has(t.toLowerCase()) ? true : FALSE.has(t.toLowerCase()) ? false : expected('1/true or 0/false', t));
const int = (min: number, max: number) => (t: string): number => {
  const n = Number(t);
  return Number.isInteger(n) && n >= min && n <= max ? n : expected(`an integer in ${min}..${max}`, t);
};
const duration = (what: string) => (t: string): number => parseDuration(t) ?? expected(what, t);
const list = (t: string): string[] => t.split(',').map((s) => s.trim()).filter(Boolean);
const oneOf = <T extends string>(values: readonly T[]) => (t: string): T => {
  const v = t.toLowerCase() as T;
  return values.includes(v) ? v : expected(values.join(', ').replace(/, ([^,]*)$/, ' or $1'), t);
};
/** Standard Webhooks: a symmetric secret is 24 to 64 random bytes, serialized `whsec_<base64>`. */
export const MIN_WEBHOOK_SECRET_BYTES = 24;
export const MAX_WEBHOOK_SECRET_BYTES = 64;
const webhookSecretCheck = (v: string | undefined): string | undefined => {
  if (v === undefined) return undefined;
  const b64 = v.startsWith('whsec_') ? v.slice('whsec_'.length) : undefined;
  const bytes = b64 !== undefined && /^[A-Za-z0-9+/]+={0,2}$/.test(b64) ? Buffer.from(b64, 'base64').length : 0;
  return bytes < MIN_WEBHOOK_SECRET_BYTES || bytes > MAX_WEBHOOK_SECRET_BYTES
    ? `must be whsec_ followed by the base64 of ${MIN_WEBHOOK_SECRET_BYTES} to ${MAX_WEBHOOK_SECRET_BYTES} random bytes (e.g. \`echo whsec_$(openssl rand -base64 32)\`)`
    : undefined;
};
const redisUrlCheck = (v: string | undefined) => (v !== undefined && !/^rediss?:\/\/[^\s]+$/.test(v) ? 'must be a redis:// or rediss:// URL' : undefined);

const setting = <K extends Key>(s: Setting<K>): Setting<K> => s;

export const CONFIG_ENTRIES = {
  port: setting<'port'>({ env: 'PORT', flag: '--port', default: 8080, parse: int(0, 65535) }),
  host: setting<'host'>({ env: 'HOST', flag: '--host', default: '127.0.0.1', parse: text }),
  jwtSecret: setting<'jwtSecret'>({
    env: 'PT_JWT_SECRET',
    flag: '--jwt-secret',
    parse: text,
    check: (v) =>
      v !== undefined && new TextEncoder().encode(v).length < MIN_SECRET_BYTES
        ? `must be at least ${MIN_SECRET_BYTES} bytes of high-entropy secret (e.g. \`openssl rand -base64 48\`)`
        : undefined,
  }),
  jwksUrl: setting<'jwksUrl'>({
    env: 'PT_JWKS_URL',
    flag: '--jwks-url',
    parse: text,
    check: (v) => (v !== undefined && !/^https?:$/.test(urlProtocol(v)) ? `must be an http(s) URL, got "${v}"` : undefined),
  }),
  jwtIssuer: setting<'jwtIssuer'>({ env: 'PT_JWT_ISSUER', flag: '--jwt-issuer', parse: text }),
  jwtAudience: setting<'jwtAudience'>({ env: 'PT_JWT_AUDIENCE', flag: '--jwt-audience', default: 'progress-tracker', parse: text }),
  jwtAlgorithms: setting<'jwtAlgorithms'>({
    env: 'PT_JWT_ALGORITHMS',
    flag: '--jwt-algorithms',
    parse: (t) => list(t) as JwtAlgorithm[],
    check: (v) => {
      const known: readonly string[] = [...HMAC_ALGORITHMS, ...PUBLIC_KEY_ALGORITHMS];
      const unknown = v?.filter((a) => !known.includes(a));
      return unknown?.length ? `unsupported algorithm "${unknown[0]}" (known: ${known.join(', ')})` : undefined;
    },
  }),
  jwtMaxTtlMs: setting<'jwtMaxTtlMs'>({
    env: 'PT_JWT_MAX_TTL',
    flag: '--jwt-max-ttl',
    default: 86_400_000,
    parse: duration('a duration like 24h, 1h, 7d (at least 1s)'),
    check: (v) => (v !== undefined && (!Number.isSafeInteger(v) || v < 1000) ? 'must be a duration like 24h, 1h, 7d (at least 1s)' : undefined),
  }),
  db: setting<'db'>({ env: 'PT_DB', flag: '--db', default: './data/progress.db', parse: text }),
  dbSync: setting<'dbSync'>({ env: 'PT_DB_SYNC', flag: '--db-sync', default: 'full', parse: oneOf(['full', 'normal'] as const) }),
  allowedOrigins: setting<'allowedOrigins'>({
    env: 'PT_ALLOWED_ORIGINS',
    flag: '--allowed-origins',
    default: [],
    parse: list,
    check: (v) => {
      const bad = v?.find((origin) => urlOrigin(origin) !== origin);
      return bad !== undefined ? `"${bad}" is not an origin like https://app.example.com (scheme://host[:port], no path or trailing slash)` : undefined;
    },
  }),
  demo: setting<'demo'>({ env: 'PT_DEMO', flag: '--demo', boolean: true, default: false, parse: bool }),
  logLevel: setting<'logLevel'>({ env: 'LOG_LEVEL', flag: '--log-level', default: 'info', parse: oneOf(LOG_LEVELS) }),
  retentionMs: setting<'retentionMs'>({
    env: 'PT_RETENTION',
    flag: '--retention',
    default: 86_400_000,
    parse: duration('a duration like 24h, 30m, 7d (at least 1s)'),
    check: (v) => (v !== undefined && v < 1000 ? 'must be a duration like 24h, 30m, 7d (at least 1s)' : undefined),
  }),
  etaTickMs: setting<'etaTickMs'>({
    env: 'PT_ETA_TICK',
    flag: '--eta-tick',
    default: 1000,
    parse: duration('0 (off) or a duration of at least 100ms like 1s'),
    check: (v) => (v !== undefined && v !== 0 && v < 100 ? 'must be 0 (off) or a duration of at least 100ms like 1s' : undefined),
  }),
  allowFallback: setting<'allowFallback'>({ env: 'PT_ALLOW_FALLBACK', flag: '--allow-fallback', boolean: true, default: false, parse: bool }),
  trustProxy: setting<'trustProxy'>({ env: 'PT_TRUST_PROXY', flag: '--trust-proxy', boolean: true, default: false, parse: bool }),
  maxConnectionsPerIp: setting<'maxConnectionsPerIp'>({
    env: 'PT_MAX_CONNECTIONS_PER_IP',
    flag: '--max-connections-per-ip',
    default: DEFAULT_LIMITS.maxConnectionsPerIp,
    parse: int(1, 1_000_000),
  }),
  redisUrl: setting<'redisUrl'>({ env: 'PT_REDIS_URL', flag: '--redis-url', parse: text, check: redisUrlCheck }),
  redisPrefix: setting<'redisPrefix'>({
    env: 'PT_REDIS_PREFIX',
    flag: '--redis-prefix',
    default: 'pt:',
    parse: text,
    check: (v) => (v !== undefined && !/^[A-Za-z0-9_.:{}-]{0,64}$/.test(v) ? 'must be at most 64 letters, digits or _ . : { } -' : undefined),
  }),
  nodeId: setting<'nodeId'>({
    env: 'PT_NODE_ID',
    flag: '--node-id',
    parse: text,
    check: (v) => (v !== undefined && !/^[A-Za-z0-9_.-]{1,64}$/.test(v) ? 'must be 1-64 letters, digits or _ . -' : undefined),
  }),
  pollLeaseTtlMs: setting<'pollLeaseTtlMs'>({
    env: 'PT_POLL_LEASE_TTL',
    flag: '--poll-lease-ttl',
    default: 10_000,
    parse: duration('a duration between 300ms and 10m'),
    check: (v) => (v !== undefined && (v < 300 || v > 600_000) ? 'must be a duration between 300ms and 10m' : undefined),
  }),
  bullmqUrl: setting<'bullmqUrl'>({ env: 'PT_BULLMQ_URL', flag: '--bullmq-url', parse: text, check: redisUrlCheck }),
  webhookSecret: setting<'webhookSecret'>({ env: 'PT_WEBHOOK_SECRET', flag: '--webhook-secret', parse: text, check: webhookSecretCheck }),
  webhookUnsigned: setting<'webhookUnsigned'>({ env: 'PT_WEBHOOK_UNSIGNED', flag: '--webhook-unsigned', boolean: true, default: false, parse: bool }),
  cancelGraceMs: setting<'cancelGraceMs'>({
    env: 'PT_CANCEL_GRACE',
    flag: '--cancel-grace',
    default: 30_000,
    parse: duration('a duration between 1s and 1h, like 30s'),
    check: (v) => (v !== undefined && (v < 1000 || v > 3_600_000) ? 'must be a duration between 1s and 1h, like 30s' : undefined),
  }),
  stallAfterMs: setting<'stallAfterMs'>({
    env: 'PT_STALL_AFTER',
    flag: '--stall-after',
    default: 300_000,
    parse: duration('a duration between 1s and 7d, like 5m'),
    check: (v) => (v !== undefined && (!Number.isSafeInteger(v) || v < 1000 || v > 604_800_000) ? 'must be a duration between 1s and 7d, like 5m' : undefined),
  }),
  stallFailAfterMs: setting<'stallFailAfterMs'>({
    env: 'PT_STALL_FAIL_AFTER',
    flag: '--stall-fail-after',
    default: 3_600_000,
    parse: duration('0 (never) or a duration of at least 1s, like 1h'),
    check: (v) => (v !== undefined && v !== 0 && (!Number.isSafeInteger(v) || v < 1000) ? 'must be 0 (never) or a duration of at least 1s, like 1h' : undefined),
  }),
} satisfies { [K in Key]: Setting<K> };

const ENTRIES = Object.entries(CONFIG_ENTRIES) as [Key, Setting<Key>][];
const nameOf = (key: Key): string => `${CONFIG_ENTRIES[key].env} (${CONFIG_ENTRIES[key].flag})`;

// ---------------------------------------------------------------------------------------------
// Resolution
// ---------------------------------------------------------------------------------------------

/** Parses `--flag value`, `--flag=value` and boolean `--flag`; unknown flags are errors. */
export function parseFlags(argv: readonly string[]): { values: Partial<Record<Key, string>>; problems: string[] } {
  const byFlag = new Map(ENTRIES.map(([key, entry]) => [entry.flag, [key, entry] as const]));
  const values: Partial<Record<Key, string>> = {};
  const problems: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.indexOf('=');
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    const found = byFlag.get(name);
    if (!found) {
      problems.push(`unknown option ${name}`);
      continue;
    }
    const [key, entry] = found;
    if (eq > 0) values[key] = arg.slice(eq + 1);
    else if (entry.boolean) values[key] = '1';
    else if (i + 1 < argv.length) values[key] = argv[++i]!;
    else problems.push(`${name} needs a value`);
  }
  return { values, problems };
}

/** `24h`, `30m`, `90s`, `7d`, `500ms` or a number of milliseconds. */
export function parseDuration(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/i.exec(text);
  if (!m) return undefined;
  const unit = (m[2] ?? 'ms').toLowerCase();
  const factor = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[unit]!;
  return Math.round(Number(m[1]) * factor);
}

/** The configuration from `env` overridden by `argv` flags. Throws ConfigError listing every problem. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, argv: readonly string[] = []): ServerConfig {
  const { values: flags, problems } = parseFlags(argv);
  const options: Partial<Record<Key, unknown>> = {};
  for (const [key, entry] of ENTRIES) {
    const raw = (flags[key] ?? env[entry.env])?.trim();
    // An empty variable means unset (a boolean's empty text is "off", which is its default).
    if (raw === undefined || raw === '') continue;
    try {
      options[key] = entry.parse(raw);
    } catch (err) {
      problems.push(`${nameOf(key)} ${(err as Error).message}`);
    }
  }
  const { maxConnectionsPerIp, ...rest } = options as Partial<Settable>;
  return resolve({ ...rest, ...(maxConnectionsPerIp !== undefined && { limits: { maxConnectionsPerIp } }) }, problems);
}

/** A complete config from programmatic options (no environment). Throws ConfigError on the same problems as `loadConfig`. */
export function resolveConfig(options: ServerOptions): ServerConfig {
  return resolve(options, []);
}

function resolve(options: ServerOptions, problems: string[]): ServerConfig {
  const given: Partial<Settable> = { ...options, ...(options.limits?.maxConnectionsPerIp !== undefined && { maxConnectionsPerIp: options.limits.maxConnectionsPerIp }) };
  const values: Partial<Record<Key, unknown>> = {};
  for (const [key, entry] of ENTRIES) {
    const value = given[key] !== undefined ? given[key] : entry.default;
    const problem = entry.check?.(value as never);
    if (problem) problems.push(`${nameOf(key)} ${problem}`);
    if (value !== undefined) values[key] = value;
  }
  const { maxConnectionsPerIp, ...fields } = values as Settable;
  const config: ServerConfig = { ...fields, limits: { ...DEFAULT_LIMITS, ...options.limits, maxConnectionsPerIp } };
  // A config resolved before (the CLI's) keeps saying where its secret came from.
  if (options.demoSecretGenerated) config.demoSecretGenerated = true;

  // Token verification: at least one key; algorithms follow the keys unless listed.
  if (!config.jwtSecret && !config.jwksUrl && !config.demo) {
    problems.push(
      `no way to verify tokens: set PT_JWT_SECRET (HS256, >= ${MIN_SECRET_BYTES} bytes) or PT_JWKS_URL (RS256/ES256), or run the demo with PT_DEMO=1 (--demo)`,
    );
  }
  const hmacKey = config.jwtSecret !== undefined || config.demo;
  if (given.jwtAlgorithms?.length) {
    for (const alg of given.jwtAlgorithms) {
      if (HMAC_ALGORITHMS.includes(alg) && !hmacKey) problems.push(`${nameOf('jwtAlgorithms')}: ${alg} needs PT_JWT_SECRET`);
      if (PUBLIC_KEY_ALGORITHMS.includes(alg) && !config.jwksUrl) problems.push(`${nameOf('jwtAlgorithms')}: ${alg} needs PT_JWKS_URL`);
    }
    config.jwtAlgorithms = [...new Set(given.jwtAlgorithms)];
  } else {
    config.jwtAlgorithms = [...(hmacKey ? (['HS256'] as const) : []), ...(config.jwksUrl ? (['RS256', 'ES256'] as const) : [])];
  }
  if (problems.length > 0) throw new ConfigError(problems);

  // Demo mode without a secret: one generated for this run (demo tokens are minted with it).
  if (config.demo && !config.jwtSecret) {
    config.jwtSecret = randomBytes(48).toString('base64url');
    config.demoSecretGenerated = true;
    if (!config.jwtAlgorithms.includes('HS256')) config.jwtAlgorithms.push('HS256');
  }
  return config;
}

function urlProtocol(url: string): string {
  try {
    return new URL(url).protocol;
  } catch {
    return '';
  }
}

function urlOrigin(url: string): string | undefined {
  try {
    return new URL(url).origin;
  } catch {
    return undefined;
  }
}

/**
 * `PT_*` variables that other parts of the kit read (examples, the producer's shell, the tests'
 * fixtures), not the server: never reported as unknown.
 */
const NOT_SERVER_VARIABLES = new Set(['PT_URL', 'PT_TOKEN', 'PT_BROWSER_URL', 'PT_WIDGET_URL', 'PT_WIDGET_BUNDLE', 'PT_REDIS_SERVER_BIN']);

/**
 * `PT_*` variables in `env` that no setting reads: most often a typo (`PT_JWT_SECERT`) or a
 * setting of another version. `serve` warns about each at start; they are not errors.
 */
export function unknownEnvVariables(env: NodeJS.ProcessEnv = process.env): string[] {
  const known = new Set<string>(Object.values(CONFIG_ENTRIES).map((e) => e.env));
  return Object.keys(env)
    .filter((name) => name.startsWith('PT_') && !known.has(name) && !NOT_SERVER_VARIABLES.has(name))
    .sort();
}
