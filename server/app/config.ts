/**
 * Server configuration from the environment, with CLI flags mirroring every variable
 * (`--jwt-secret` for PT_JWT_SECRET, ...). A flag wins over the variable. Every problem is
 * collected and reported at once, with the variable's name, so a misconfigured deployment
 * fails at start with one clear message instead of at the first request.
 * The table in docs/configuration.md documents each entry.
 */
import { LIMITS } from '../../protocol/index.js';

export type JwtAlgorithm = 'HS256' | 'HS384' | 'HS512' | 'RS256' | 'RS384' | 'RS512' | 'PS256' | 'ES256' | 'ES384' | 'EdDSA';
const HMAC_ALGORITHMS: readonly JwtAlgorithm[] = ['HS256', 'HS384', 'HS512'];
const PUBLIC_KEY_ALGORITHMS: readonly JwtAlgorithm[] = ['RS256', 'RS384', 'RS512', 'PS256', 'ES256', 'ES384', 'EdDSA'];

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
  db: string;
  dbSync: 'full' | 'normal';
  /** Exact origins allowed for WebSocket upgrades and CORS; empty = any. */
  allowedOrigins: string[];
  demo: boolean;
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

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

/** One configuration entry: its variable, its flag, and whether the flag takes no value. */
interface Entry {
  env: string;
  flag: string;
  boolean?: boolean;
}

export const CONFIG_ENTRIES = {
  port: { env: 'PORT', flag: '--port' },
  host: { env: 'HOST', flag: '--host' },
  jwtSecret: { env: 'PT_JWT_SECRET', flag: '--jwt-secret' },
  jwksUrl: { env: 'PT_JWKS_URL', flag: '--jwks-url' },
  jwtIssuer: { env: 'PT_JWT_ISSUER', flag: '--jwt-issuer' },
  jwtAudience: { env: 'PT_JWT_AUDIENCE', flag: '--jwt-audience' },
  jwtAlgorithms: { env: 'PT_JWT_ALGORITHMS', flag: '--jwt-algorithms' },
  db: { env: 'PT_DB', flag: '--db' },
  dbSync: { env: 'PT_DB_SYNC', flag: '--db-sync' },
  allowedOrigins: { env: 'PT_ALLOWED_ORIGINS', flag: '--allowed-origins' },
  demo: { env: 'PT_DEMO', flag: '--demo', boolean: true },
  logLevel: { env: 'LOG_LEVEL', flag: '--log-level' },
  retention: { env: 'PT_RETENTION', flag: '--retention' },
  etaTick: { env: 'PT_ETA_TICK', flag: '--eta-tick' },
  allowFallback: { env: 'PT_ALLOW_FALLBACK', flag: '--allow-fallback', boolean: true },
  trustProxy: { env: 'PT_TRUST_PROXY', flag: '--trust-proxy', boolean: true },
  maxConnectionsPerIp: { env: 'PT_MAX_CONNECTIONS_PER_IP', flag: '--max-connections-per-ip' },
  redisUrl: { env: 'PT_REDIS_URL', flag: '--redis-url' },
  redisPrefix: { env: 'PT_REDIS_PREFIX', flag: '--redis-prefix' },
  nodeId: { env: 'PT_NODE_ID', flag: '--node-id' },
  pollLeaseTtl: { env: 'PT_POLL_LEASE_TTL', flag: '--poll-lease-ttl' },
  bullmqUrl: { env: 'PT_BULLMQ_URL', flag: '--bullmq-url' },
} satisfies Record<string, Entry>;

type Key = keyof typeof CONFIG_ENTRIES;

/** Parses `--flag value`, `--flag=value` and boolean `--flag`; unknown flags are errors. */
export function parseFlags(argv: readonly string[]): { values: Partial<Record<Key, string>>; problems: string[] } {
  const byFlag = new Map<string, [Key, Entry]>(
    (Object.entries(CONFIG_ENTRIES) as [Key, Entry][]).map(([key, entry]) => [entry.flag, [key, entry]]),
  );
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

const TRUE = new Set(['1', 'true', 'yes', 'on']);
const FALSE = new Set(['', '0', 'false', 'no', 'off']);

/** `24h`, `30m`, `90s`, `7d`, `500ms` or a number of milliseconds. */
export function parseDuration(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/i.exec(text);
  if (!m) return undefined;
  const unit = (m[2] ?? 'ms').toLowerCase();
  const factor = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[unit]!;
  return Math.round(Number(m[1]) * factor);
}

/**
 * The configuration from `env` overridden by `argv` flags. Throws ConfigError listing every
 * problem. Demo mode without a secret leaves `jwtSecret` unset: the app generates one.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, argv: readonly string[] = []): ServerConfig {
  const { values: flags, problems } = parseFlags(argv);
  const raw = (key: Key): string | undefined => {
    const v = flags[key] ?? env[CONFIG_ENTRIES[key].env];
    return v === undefined ? undefined : v.trim();
  };
  const name = (key: Key) => `${CONFIG_ENTRIES[key].env} (${CONFIG_ENTRIES[key].flag})`;
  const bool = (key: Key): boolean => {
    const v = (raw(key) ?? '').toLowerCase();
    if (TRUE.has(v)) return true;
    if (!FALSE.has(v)) problems.push(`${name(key)} must be 1/true or 0/false, got "${v}"`);
    return false;
  };
  const int = (key: Key, fallback: number, min: number, max: number): number => {
    const v = raw(key);
    if (v === undefined || v === '') return fallback;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) {
      problems.push(`${name(key)} must be an integer in ${min}..${max}, got "${v}"`);
      return fallback;
    }
    return n;
  };

  const port = int('port', 8080, 0, 65535);
  const host = raw('host') || '127.0.0.1';
  const demo = bool('demo');
  const allowFallback = bool('allowFallback');
  const trustProxy = bool('trustProxy');

  const jwtSecret = raw('jwtSecret') || undefined;
  if (jwtSecret !== undefined && Buffer.byteLength(jwtSecret, 'utf8') < MIN_SECRET_BYTES) {
    problems.push(
      `${name('jwtSecret')} must be at least ${MIN_SECRET_BYTES} bytes of high-entropy secret (e.g. \`openssl rand -base64 48\`)`,
    );
  }
  const jwksUrl = raw('jwksUrl') || undefined;
  if (jwksUrl !== undefined) {
    try {
      const url = new URL(jwksUrl);
      if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error();
    } catch {
      problems.push(`${name('jwksUrl')} must be an http(s) URL, got "${jwksUrl}"`);
    }
  }
  if (!jwtSecret && !jwksUrl && !demo) {
    problems.push(
      `no way to verify tokens: set PT_JWT_SECRET (HS256, >= ${MIN_SECRET_BYTES} bytes) or PT_JWKS_URL (RS256/ES256), or run the demo with PT_DEMO=1 (--demo)`,
    );
  }

  let jwtAlgorithms: JwtAlgorithm[] = [];
  const algText = raw('jwtAlgorithms');
  if (algText) {
    for (const alg of algText.split(',').map((a) => a.trim()).filter(Boolean)) {
      const known = [...HMAC_ALGORITHMS, ...PUBLIC_KEY_ALGORITHMS] as string[];
      if (!known.includes(alg)) problems.push(`${name('jwtAlgorithms')}: unsupported algorithm "${alg}" (known: ${known.join(', ')})`);
      else if (HMAC_ALGORITHMS.includes(alg as JwtAlgorithm) && !jwtSecret && !demo) problems.push(`${name('jwtAlgorithms')}: ${alg} needs PT_JWT_SECRET`);
      else if (PUBLIC_KEY_ALGORITHMS.includes(alg as JwtAlgorithm) && !jwksUrl) problems.push(`${name('jwtAlgorithms')}: ${alg} needs PT_JWKS_URL`);
      else jwtAlgorithms.push(alg as JwtAlgorithm);
    }
  } else {
    if (jwtSecret || demo) jwtAlgorithms.push('HS256');
    if (jwksUrl) jwtAlgorithms.push('RS256', 'ES256');
  }
  jwtAlgorithms = [...new Set(jwtAlgorithms)];

  const allowedOrigins = (raw('allowedOrigins') ?? '')
    .split(',')
    .map((o) => o.trim())
    .filter(Boolean);
  for (const origin of allowedOrigins) {
    let ok = false;
    try {
      ok = new URL(origin).origin === origin;
    } catch {
      /* reported below */
    }
    if (!ok) problems.push(`${name('allowedOrigins')}: "${origin}" is not an origin like https://app.example.com (scheme://host[:port], no path or trailing slash)`);
  }

  const retentionText = raw('retention') || '24h';
  const retentionMs = parseDuration(retentionText);
  if (retentionMs === undefined || retentionMs < 1000) {
    problems.push(`${name('retention')} must be a duration like 24h, 30m, 7d (at least 1s), got "${retentionText}"`);
  }

  const etaTickText = raw('etaTick') || '1s';
  const etaTickMs = parseDuration(etaTickText);
  if (etaTickMs === undefined || (etaTickMs !== 0 && etaTickMs < 100)) {
    problems.push(`${name('etaTick')} must be 0 (off) or a duration of at least 100ms like 1s, got "${etaTickText}"`);
  }

  const dbSync = (raw('dbSync') || 'full').toLowerCase();
  if (dbSync !== 'full' && dbSync !== 'normal') problems.push(`${name('dbSync')} must be full or normal, got "${dbSync}"`);

  const logLevel = (raw('logLevel') || 'info').toLowerCase();
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(logLevel)) {
    problems.push(`${name('logLevel')} must be one of fatal, error, warn, info, debug, trace, silent; got "${logLevel}"`);
  }

  const maxConnectionsPerIp = int('maxConnectionsPerIp', DEFAULT_LIMITS.maxConnectionsPerIp, 1, 1_000_000);

  // Cluster on Redis (docs/cluster.md): absent = the embedded SQLite default, unchanged.
  const redisUrl = raw('redisUrl') || undefined;
  if (redisUrl !== undefined && !/^rediss?:\/\/[^\s]+$/.test(redisUrl)) {
    problems.push(`${name('redisUrl')} must be a redis:// or rediss:// URL`);
  }
  const bullmqUrl = raw('bullmqUrl') || undefined;
  if (bullmqUrl !== undefined && !/^rediss?:\/\/[^\s]+$/.test(bullmqUrl)) {
    problems.push(`${name('bullmqUrl')} must be a redis:// or rediss:// URL`);
  }
  const redisPrefix = raw('redisPrefix') ?? 'pt:';
  if (!/^[A-Za-z0-9_.:{}-]{0,64}$/.test(redisPrefix)) problems.push(`${name('redisPrefix')} must be at most 64 letters, digits or _ . : { } -`);
  const nodeId = raw('nodeId') || undefined;
  if (nodeId !== undefined && !/^[A-Za-z0-9_.-]{1,64}$/.test(nodeId)) problems.push(`${name('nodeId')} must be 1-64 letters, digits or _ . -`);
  const leaseText = raw('pollLeaseTtl') || '10s';
  const pollLeaseTtlMs = parseDuration(leaseText);
  if (pollLeaseTtlMs === undefined || pollLeaseTtlMs < 300 || pollLeaseTtlMs > 600_000) {
    problems.push(`${name('pollLeaseTtl')} must be a duration between 300ms and 10m, got "${leaseText}"`);
  }

  if (problems.length > 0) throw new ConfigError(problems);
  const config: ServerConfig = {
    port,
    host,
    jwtAudience: raw('jwtAudience') || 'progress-tracker',
    jwtAlgorithms,
    db: raw('db') || './data/progress.db',
    dbSync: dbSync as 'full' | 'normal',
    allowedOrigins,
    demo,
    logLevel,
    retentionMs: retentionMs!,
    etaTickMs: etaTickMs!,
    allowFallback,
    trustProxy,
    redisPrefix,
    pollLeaseTtlMs: pollLeaseTtlMs!,
    limits: { ...DEFAULT_LIMITS, maxConnectionsPerIp },
  };
  if (redisUrl) config.redisUrl = redisUrl;
  if (bullmqUrl) config.bullmqUrl = bullmqUrl;
  if (nodeId) config.nodeId = nodeId;
  if (jwtSecret) config.jwtSecret = jwtSecret;
  if (jwksUrl) config.jwksUrl = jwksUrl;
  const issuer = raw('jwtIssuer');
  if (issuer) config.jwtIssuer = issuer;
  return config;
}

/** Options for `startServer`: any config entry, the rest defaulted (see `loadConfig`). */
export type ServerOptions = Partial<Omit<ServerConfig, 'limits'>> & { limits?: Partial<ServerLimits> };

/**
 * A complete config from programmatic options (no environment). Throws ConfigError on the same
 * problems `loadConfig` reports.
 */
export function resolveConfig(options: ServerOptions): ServerConfig {
  const problems: string[] = [];
  const config: ServerConfig = {
    port: 8080,
    host: '127.0.0.1',
    jwtAudience: 'progress-tracker',
    jwtAlgorithms: [],
    db: './data/progress.db',
    dbSync: 'full',
    allowedOrigins: [],
    demo: false,
    logLevel: 'info',
    retentionMs: 86_400_000,
    etaTickMs: 1000,
    allowFallback: false,
    trustProxy: false,
    redisPrefix: 'pt:',
    pollLeaseTtlMs: 10_000,
    ...options,
    limits: { ...DEFAULT_LIMITS, ...options.limits },
  };
  if (config.jwtSecret !== undefined && Buffer.byteLength(config.jwtSecret, 'utf8') < MIN_SECRET_BYTES) {
    problems.push(`jwtSecret must be at least ${MIN_SECRET_BYTES} bytes`);
  }
  if (!config.jwtSecret && !config.jwksUrl && !config.demo) {
    problems.push('no way to verify tokens: give jwtSecret or jwksUrl, or enable demo');
  }
  if (config.jwtAlgorithms.length === 0) {
    if (config.jwtSecret || config.demo) config.jwtAlgorithms.push('HS256');
    if (config.jwksUrl) config.jwtAlgorithms.push('RS256', 'ES256');
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}
