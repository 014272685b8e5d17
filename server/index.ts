/**
 * The server's public API, for embedding and for the other parts of the project
 * (polling adapters, ETA engine, tests). The wire protocol (protocol/) is re-exported.
 */
export { startServer, type RunningServer, type StartServerOptions } from './app/start-server.js';
export { loadConfig, resolveConfig, ConfigError, parseDuration, type ServerConfig, type ServerLimits, type ServerOptions } from './app/config.js';
export { JobService, type JobView, type JobServiceOptions } from './core/job-service.js';
export { complexityEstimator } from './core/job-estimates.js';
export type { RetryNotice, EventsResult, JobServiceEvents } from './core/job-service-events.js';
export { singleNode, ClusterFreshness, type Freshness } from './core/freshness.js';
export { applyEvent, applyRetry, createJob, weightedProgress, type Outcome } from './core/job-machine.js';
export { createVerifier, mintToken, canRead, canWrite, canRetry, grantCovers, type Principal, type Verifier, type MintOptions } from './transport/auth.js';
export { loadEngine, EngineError, type Engine } from './app/engine.js';
export { createLogger, redactUrl, type Logger } from './app/log.js';
export { SqliteStore, type SqliteStoreOptions } from './store/sqlite.js';
export { StoreOpenError, type Store, type JobRecord, type EventIdEntry } from './store/store.js';
export type { Estimator, Estimate, HistoryStore } from './core/estimator.js';
export * from '../protocol/index.js';
