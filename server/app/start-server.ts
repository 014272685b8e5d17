/**
 * Assembles the server: engine check → store → job service → uWS app (API, WebSocket hub,
 * demo) → listen. `startServer` is the programmatic entry point (the CLI, the tests and
 * embedding applications use it); `close()` shuts down in order: stop accepting, close sockets
 * with 1001, finish in-flight changes, flush and close the store.
 */
import { randomBytes } from 'node:crypto';
import type { us_listen_socket } from 'uWebSockets.js';
import { createVerifier } from '../transport/auth.js';
import { resolveConfig, type ServerConfig, type ServerOptions } from './config.js';
import { registerDemo } from '../transport/demo.js';
import { EngineError, loadEngine, type Engine } from './engine.js';
import type { Estimator } from '../core/estimator.js';
import { EtaEngine } from '../eta/eta-engine.js';
import { registerApi, registerNotFound, type HttpContext } from '../transport/http-api.js';
import { JobService } from '../core/job-service.js';
import { createLogger, type Logger } from './log.js';
import { Metrics, PrometheusText } from './metrics.js';
import { attachPolling, type PollManager, type PollManagerOptions } from '../polling/poll-manager.js';
import { ClusterNode } from '../cluster/node.js';
import { BullmqAdapter, bullmqConnectionFromUrl } from '../polling/bullmq-adapter.js';
import { HttpAdapter } from '../polling/http-adapter.js';
import { attachClusterPolling, type ClusterPolling } from '../cluster/polling.js';
import { RedisStore } from '../store/redis.js';
import { SqliteStore } from '../store/sqlite.js';
import type { Store } from '../store/store.js';
import { WsHub } from '../transport/ws-hub.js';

async function loadEtaEngine(store: Store, log: Logger): Promise<Estimator> {
  const engine = new EtaEngine({ history: store, onError: (err) => log.warn({ err }, 'ETA engine error') });
  const samples = await engine.load();
  log.info({ samples }, 'ETA engine loaded its history');
  return engine;
}

export interface StartServerOptions extends ServerOptions {
  logger?: Logger;
  /** The estimator (default: the ETA engine of server/eta/ with this store's history). */
  estimator?: Estimator | ((store: Store) => Estimator | Promise<Estimator>);
  /** Use this store instead of opening SQLite at `db`. */
  store?: Store;
  /** Overrides `etaTickMs` (ETA re-estimation period for running jobs, 0 = off). */
  tickMs?: number;
  /** Polling adapters for jobs created with a `source` (server/polling, docs/polling.md). */
  polling?: Omit<PollManagerOptions, 'service'>;
}

export interface RunningServer {
  /** The port actually listened on (useful with port 0). */
  port: number;
  /** `http://host:port` */
  url: string;
  config: ServerConfig;
  /** The job service: create jobs, apply events, retry, listen to updates and retries. */
  jobs: JobService;
  engine: Engine;
  metrics: Metrics;
  /** Follows jobs created with a `source` (polling adapters). */
  polling: PollManager;
  /** This node of a Redis cluster (PT_REDIS_URL), else undefined. */
  cluster?: ClusterNode;
  /** The HS256 secret in use (demo mode generates one); undefined with JWKS only. */
  readonly jwtSecret: string | undefined;
  close(): Promise<void>;
}

export async function startServer(options: StartServerOptions = {}): Promise<RunningServer> {
  const { logger, estimator, store: givenStore, tickMs, polling: pollingOptions, ...rest } = options;
  const config = resolveConfig(rest);
  const log = logger ?? createLogger(config.logLevel);

  const engine = loadEngine();
  if (engine.native) {
    log.info({ engine: engine.description }, 'engine: uWebSockets.js native');
  } else if (config.allowFallback) {
    log.warn({ engine: engine.description }, 'engine: ws-based FALLBACK (PT_ALLOW_FALLBACK=1); expect lower throughput');
  } else {
    throw new EngineError(
      `the native uWebSockets.js binary could not be loaded (${engine.description}); ` +
        'refusing to run on the slow ws-based fallback. Use a Node version with a prebuilt binary ' +
        '(linux/darwin/win32 x64/arm64, Node 18/20/21) or set PT_ALLOW_FALLBACK=1 to accept it.',
    );
  }

  if (config.demo && !config.jwtSecret) {
    config.jwtSecret = randomBytes(48).toString('base64url');
    if (!config.jwtAlgorithms.includes('HS256')) config.jwtAlgorithms.push('HS256');
    log.info('demo mode: generated a random token secret for this run');
  }

  // PT_BULLMQ_URL: jobs may follow BullMQ jobs (`source.type: "bullmq"`); bullmq is loaded only then.
  const bullmq = config.bullmqUrl
    ? await BullmqAdapter.create({ connection: bullmqConnectionFromUrl(config.bullmqUrl), log: log.child({ component: 'bullmq' }) })
    : undefined;
  const pollingWithBullmq = bullmq ? { ...pollingOptions, adapters: [...(pollingOptions?.adapters ?? [new HttpAdapter()]), bullmq] } : pollingOptions;

  // PT_REDIS_URL: store and fan-out on Redis, shared with other nodes (docs/cluster.md).
  // Unset: the embedded SQLite store, exactly as before.
  const redisStore =
    !givenStore && config.redisUrl
      ? await RedisStore.open({ url: config.redisUrl, prefix: config.redisPrefix, retentionMs: config.retentionMs, ...(config.nodeId && { nodeId: config.nodeId }) })
      : undefined;
  const store = givenStore ?? redisStore ?? new SqliteStore({ path: config.db, synchronous: config.dbSync });
  const metrics = new Metrics();
  const cluster = redisStore ? new ClusterNode({ store: redisStore, log: log.child({ component: 'cluster' }) }) : undefined;
  let service: JobService | undefined;
  try {
    // Default: the ETA engine (server/eta/), learning from and persisting to this store's history.
    const est =
      typeof estimator === 'function'
        ? await estimator(store)
        : (estimator ?? (await loadEtaEngine(store, log)));
    service = new JobService({
      store,
      log,
      ...(est && { estimator: est }),
      tickMs: tickMs ?? config.etaTickMs,
      retentionMs: config.retentionMs,
      ...(cluster && { cluster: { isFresh: cluster.isFresh, onConflict: () => void cluster.metrics.seqConflicts++ } }),
    });
    await service.start();
    await cluster?.start(service);
  } catch (err) {
    await service?.close();
    await cluster?.close().catch(() => undefined);
    if (!givenStore) await store.close().catch(() => undefined);
    metrics.stop();
    throw err;
  }
  const jobs = service;
  // Polling adapters: one poll loop per job with a `source`, feeding the same service.
  // In a cluster only the node holding a job's poll lease polls it (server/cluster/polling.ts).
  const pollLog = log.child({ component: 'polling' });
  let clusterPolling: ClusterPolling | undefined;
  if (cluster) {
    clusterPolling = attachClusterPolling(jobs, cluster, { log: pollLog, leaseTtlMs: config.pollLeaseTtlMs, ...pollingWithBullmq });
    metrics.sections.push(() => cluster.renderMetrics());
  }
  const polling = clusterPolling?.manager ?? attachPolling(jobs, { log: pollLog, ...pollingWithBullmq });
  metrics.sections.push(() => {
    const out = new PrometheusText();
    out.metric('pt_poll_jobs', 'gauge', 'Jobs with a source that this node polls.', polling.stats.followed);
    out.metric('pt_poll_requests_total', 'counter', 'Polls of upstream job-status services.', polling.stats.polls);
    out.metric('pt_poll_failures_total', 'counter', 'Polls that failed (network, timeout, bad status or response).', polling.stats.failures);
    out.metric('pt_poll_events_total', 'counter', 'Job events derived from upstream responses.', polling.stats.eventsApplied);
    return out.toString();
  });
  bullmq?.attach({ get: async (id) => (await jobs.get(id))?.job, applyEvents: (id, events) => jobs.ingest(id, events) });

  const verifier = createVerifier({
    audience: config.jwtAudience,
    algorithms: config.jwtAlgorithms,
    ...(config.jwtSecret !== undefined && { jwtSecret: config.jwtSecret }),
    ...(config.jwksUrl !== undefined && { jwksUrl: config.jwksUrl }),
    ...(config.jwtIssuer !== undefined && { issuer: config.jwtIssuer }),
  });
  const ctx: HttpContext = { config, log, metrics, verifier, validateSource: (source, steps) => polling.validate(source, steps) };
  const app = engine.uws.App();
  const hub = new WsHub(app, { ...ctx, service: jobs, ...(cluster && { interest: cluster.interest }) });
  cluster?.onControl((jobId, step) => hub.deliverControl(jobId, step));
  hub.register('/v1/ws');
  registerApi(app, ctx, jobs, engine.native);
  const demoAbort = new AbortController();
  let url = '';
  if (config.demo) {
    registerDemo(app, ctx, { secret: config.jwtSecret!, baseUrl: () => url, signal: demoAbort.signal });
  }
  registerNotFound(app, ctx);

  let listenSocket: us_listen_socket;
  try {
    listenSocket = await new Promise<us_listen_socket>((resolve, reject) => {
      app.listen(config.host, config.port, (socket) => {
        if (socket) resolve(socket);
        else reject(new Error(`cannot listen on ${config.host}:${config.port} (port in use or address not available)`));
      });
    });
  } catch (err) {
    if (clusterPolling) await clusterPolling.close(); // also releases poll leases: other nodes take over at once
    else polling.close();
    await jobs.close();
    await bullmq?.close();
    await cluster?.close().catch(() => undefined);
    if (!givenStore) await store.close().catch(() => undefined);
    metrics.stop();
    throw err;
  }
  const port = engine.uws.us_socket_local_port(listenSocket as never);
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  url = `http://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${port}`;
  // Printed whatever LOG_LEVEL says: scripts and tests read the actual URL (port 0) from it.
  log.child({}, { level: 'info' }).info({ url, port, host: config.host, demo: config.demo, ...(redisStore ? { store: 'redis', node: cluster?.nodeId } : { db: config.db }) }, `listening on ${url}`);

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      log.info('shutting down');
      engine.uws.us_listen_socket_close(listenSocket);
      hub.closeAll();
      demoAbort.abort();
      if (clusterPolling) await clusterPolling.close(); // also releases poll leases: other nodes take over at once
    else polling.close();
      await jobs.close();
      await bullmq?.close();
      await cluster?.close();
      if (!givenStore) await store.close();
      metrics.stop();
      log.info('stopped');
    })());

  return {
    port,
    url,
    config,
    jobs,
    engine,
    metrics,
    polling,
    ...(cluster && { cluster }),
    get jwtSecret() {
      return config.jwtSecret;
    },
    close,
  };
}
