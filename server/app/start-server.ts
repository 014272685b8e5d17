/**
 * Assembles the server, top to bottom: config → engine → store → job service and its listeners
 * (cluster, webhooks, polling) → uWS app (WebSocket hub, HTTP API, demo) → listen.
 * `startServer` is the programmatic entry point (the CLI, the tests and embedding applications
 * use it). Every resource registers its close right after it opens (lifecycle.ts), so a failed
 * start and `close()` undo the same steps in reverse: stop accepting, close sockets with 1001,
 * stop polling, finish in-flight changes, flush and close the store.
 */
import type { TemplatedApp, us_listen_socket } from 'uWebSockets.js';
import { ClusterNode } from '../cluster/node.js';
import { leasedJobs } from '../cluster/poll-ownership.js';
import type { Estimator } from '../core/estimator.js';
import { CancelDeadlines } from '../core/cancel-deadlines.js';
import { StallWatch } from '../core/stall-watch.js';
import { ClusterFreshness, singleNode } from '../core/freshness.js';
import { JobService } from '../core/job-service.js';
import { attachLifecycleLog } from '../core/lifecycle-log.js';
import { JobWebhooks } from '../core/webhook.js';
import { EtaEngine } from '../eta/eta-engine.js';
import type { SourceAdapter } from '../polling/adapter.js';
import { attachPolling, type AttachPollingOptions } from '../polling/attach.js';
import { BullmqAdapter, bullmqConnectionFromUrl } from '../polling/bullmq-adapter.js';
import { HttpAdapter } from '../polling/http-adapter.js';
import type { PollManager } from '../polling/poll-manager.js';
import { RedisStore } from '../store/redis.js';
import { SqliteStore } from '../store/sqlite.js';
import type { Store } from '../store/store.js';
import { createVerifier } from '../transport/auth.js';
import { registerDemo } from '../transport/demo.js';
import { registerApi, registerNotFound } from '../transport/http-api.js';
import type { HttpContext } from '../transport/uws-http.js';
import { AddressLimit } from '../transport/address-limit.js';
import { SseStreams } from '../transport/sse.js';
import { WsHub } from '../transport/ws-hub.js';
import { resolveConfig, type ServerConfig, type ServerOptions } from './config.js';
import { EngineError, loadEngine, type Engine } from './engine.js';
import { Closer } from './lifecycle.js';
import { createLogger, type Logger } from './log.js';
import { Metrics, PrometheusText } from './metrics.js';

export interface StartServerOptions extends ServerOptions {
  logger?: Logger;
  /** The estimator (default: the ETA engine of server/eta/ with this store's history). */
  estimator?: Estimator | ((store: Store) => Estimator | Promise<Estimator>);
  /** Use this store instead of opening SQLite at `db` (the caller closes it). */
  store?: Store;
  /** Overrides `etaTickMs` (ETA re-estimation period for running jobs, 0 = off). */
  tickMs?: number;
  /** Polling adapters for jobs created with a `source` (server/polling, docs/polling.md). */
  polling?: Omit<AttachPollingOptions, 'ownership'>;
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
  const engine = nativeEngine(config, log);
  if (config.demoSecretGenerated) log.info('demo mode: generated a random token secret for this run');

  const closer = new Closer(log);
  try {
    const metrics = new Metrics();
    closer.defer('metrics', () => metrics.stop());

    // PT_REDIS_URL: store and fan-out on Redis, shared with other nodes (docs/cluster.md).
    // Unset: the embedded SQLite store.
    const store = givenStore ?? (await openStore(config));
    if (!givenStore) closer.defer('store', () => store.close());
    const cluster = store instanceof RedisStore && !givenStore ? new ClusterNode({ store, log: log.child({ component: 'cluster' }) }) : undefined;
    if (cluster) closer.defer('cluster', () => cluster.close());

    // Webhook deliveries outlive the job service's last changes: closed after it.
    const webhooks = new JobWebhooks(log, { ...(config.webhookSecret !== undefined && { secret: config.webhookSecret }), unsigned: config.webhookUnsigned });
    closer.defer('webhooks', () => webhooks.close());
    const jobs = new JobService({
      store,
      log,
      estimator: typeof estimator === 'function' ? await estimator(store) : (estimator ?? (await loadEtaEngine(store, log))),
      tickMs: tickMs ?? config.etaTickMs,
      retentionMs: config.retentionMs,
      freshness: cluster ? new ClusterFreshness(cluster.isFresh, () => void cluster.metrics.seqConflicts++) : singleNode,
    });
    attachLifecycleLog(jobs, log); // one info line per job lifecycle change (created, failed, retry requested, ...)
    await jobs.start();
    closer.defer('job service', () => jobs.close());
    jobs.on('retry', webhooks.onRetry);
    jobs.on('cancel', webhooks.onCancel);
    const cancelDeadlines = new CancelDeadlines(jobs, config.cancelGraceMs, log);
    closer.defer('cancel deadlines', () => cancelDeadlines.close());
    const stallWatch = new StallWatch(jobs, { stallAfterMs: config.stallAfterMs, failAfterMs: config.stallFailAfterMs }, log);
    closer.defer('stall watch', () => stallWatch.close());
    if (cluster) {
      await cluster.start(jobs);
      metrics.sections.push(() => cluster.renderMetrics());
    }

    // Polling: one poll loop per job with a `source`, on the node that owns the job.
    const polling = attachPolling(jobs, {
      log: log.child({ component: 'polling' }),
      ...pollingOptions,
      adapters: await pollingAdapters(config, log, pollingOptions?.adapters),
      ...(cluster && { ownership: leasedJobs(cluster, { leaseTtlMs: config.pollLeaseTtlMs }) }),
    });
    closer.defer('polling', () => polling.close()); // in a cluster: releases poll leases, other nodes take over at once
    metrics.sections.push(() => pollingMetrics(polling));

    // The uWS app: WebSocket hub, HTTP API, demo, and the catch-all 404 last.
    const verifier = createVerifier({
      audience: config.jwtAudience,
      algorithms: config.jwtAlgorithms,
      maxTtlMs: config.jwtMaxTtlMs,
      ...(config.jwtSecret !== undefined && { jwtSecret: config.jwtSecret }),
      ...(config.jwksUrl !== undefined && { jwksUrl: config.jwksUrl }),
      ...(config.jwtIssuer !== undefined && { issuer: config.jwtIssuer }),
    });
    const ctx: HttpContext = { config, log, metrics, verifier, validateSource: (source, steps) => polling.validate(source, steps) };
    const app = engine.uws.App();
    const live = { ...ctx, service: jobs, addresses: new AddressLimit(config.limits.maxConnectionsPerIp), ...(cluster && { interest: cluster.interest }) };
    const hub = new WsHub(app, live);
    hub.register('/v1/ws');
    closer.defer('websocket hub', () => hub.closeAll());
    const sse = new SseStreams(live);
    sse.register(app, '/v1/jobs/:id/stream');
    closer.defer('sse streams', () => sse.closeAll());
    cluster?.onControl((msg) => {
      hub.deliverControl(msg);
      sse.deliverControl(msg);
    });
    registerApi(app, ctx, jobs, engine.native);
    let url = '';
    if (config.demo) {
      const demo = new AbortController();
      registerDemo(app, ctx, { secret: config.jwtSecret!, baseUrl: () => url, signal: demo.signal });
      closer.defer('demo', () => demo.abort());
    }
    registerNotFound(app, ctx);

    const listenSocket = await listen(app, config);
    closer.defer('listen socket', () => engine.uws.us_listen_socket_close(listenSocket));
    const port = engine.uws.us_socket_local_port(listenSocket as never);
    url = urlOf(config.host, port);
    // Printed whatever LOG_LEVEL says: scripts and tests read the actual URL (port 0) from it.
    log.child({}, { level: 'info' }).info(
      { url, port, host: config.host, demo: config.demo, ...(cluster ? { store: 'redis', node: cluster.nodeId } : { db: config.db }) },
      `listening on ${url}`,
    );

    return {
      port,
      url,
      config,
      jobs,
      engine,
      metrics,
      polling,
      ...(cluster && { cluster }),
      jwtSecret: config.jwtSecret,
      close: async () => {
        log.info('shutting down');
        await closer.close();
        log.info('stopped');
      },
    };
  } catch (err) {
    await closer.close();
    throw err;
  }
}

/** The native uWebSockets.js engine, or the ws-based fallback only when allowed. */
function nativeEngine(config: ServerConfig, log: Logger): Engine {
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
  return engine;
}

function openStore(config: ServerConfig): Promise<Store> | Store {
  if (config.redisUrl) {
    return RedisStore.open({ url: config.redisUrl, prefix: config.redisPrefix, retentionMs: config.retentionMs, ...(config.nodeId && { nodeId: config.nodeId }) });
  }
  return new SqliteStore({ path: config.db, synchronous: config.dbSync });
}

/** The ETA engine (server/eta/), learning from and persisting to this store's history. */
async function loadEtaEngine(store: Store, log: Logger): Promise<Estimator> {
  const engine = new EtaEngine({ history: store, onError: (err) => log.warn({ err }, 'ETA engine error') });
  const samples = await engine.load();
  log.info({ samples }, 'ETA engine loaded its history');
  return engine;
}

/** HTTP sources always; BullMQ when PT_BULLMQ_URL is set (bullmq is loaded only then). */
async function pollingAdapters(config: ServerConfig, log: Logger, given: SourceAdapter[] | undefined): Promise<SourceAdapter[]> {
  const adapters = given ?? [new HttpAdapter()];
  if (!config.bullmqUrl) return adapters;
  const bullmq = await BullmqAdapter.create({ connection: bullmqConnectionFromUrl(config.bullmqUrl), log: log.child({ component: 'bullmq' }) });
  return [...adapters, bullmq];
}

function pollingMetrics(polling: PollManager): string {
  const out = new PrometheusText();
  out.metric('pt_poll_jobs', 'gauge', 'Jobs with a source that this node polls.', polling.stats.followed);
  out.metric('pt_poll_requests_total', 'counter', 'Polls of upstream job-status services.', polling.stats.polls);
  out.metric('pt_poll_failures_total', 'counter', 'Polls that failed (network, timeout, bad status or response).', polling.stats.failures);
  out.metric('pt_poll_events_total', 'counter', 'Job events derived from upstream responses.', polling.stats.eventsApplied);
  return out.toString();
}

/** uWS's LIBUS_LISTEN_EXCLUSIVE_PORT: bind without SO_REUSEPORT (its typings lack the host + options overload). */
const LISTEN_EXCLUSIVE_PORT = 1;
type ListenWithOptions = (host: string, port: number, options: number, cb: (socket: us_listen_socket | false) => void) => TemplatedApp;

/**
 * Listens exclusively. uWS's default sets SO_REUSEPORT, so a second server started on the same
 * port would start without error and the kernel would split connections between the two; with
 * the exclusive option the second bind fails and the second server exits saying so.
 */
function listen(app: TemplatedApp, config: ServerConfig): Promise<us_listen_socket> {
  return new Promise((resolve, reject) => {
    (app.listen as unknown as ListenWithOptions).call(app, config.host, config.port, LISTEN_EXCLUSIVE_PORT, (socket) => {
      if (socket) resolve(socket);
      else {
        reject(
          new Error(
            `cannot listen on ${config.host}:${config.port}: the port is in use (another progress-tracker or another program) ` +
              'or the address is not available on this machine; stop the other process or set PORT (--port)',
          ),
        );
      }
    });
  });
}

function urlOf(host: string, port: number): string {
  const h = host.includes(':') ? `[${host}]` : host;
  return `http://${h === '0.0.0.0' || h === '[::]' ? '127.0.0.1' : h}:${port}`;
}
