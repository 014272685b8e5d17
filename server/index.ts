/**
 * The server's public API, for embedding and for the other parts of the project
 * (polling adapters, ETA engine, tests). The wire types are in protocol.ts.
 */
export { startServer, type RunningServer, type StartServerOptions } from './app.js';
export { loadConfig, resolveConfig, ConfigError, parseDuration, type ServerConfig, type ServerLimits, type ServerOptions } from './config.js';
export { JobService, complexityEstimator, type JobView, type RetryNotice, type EventsResult, type JobServiceEvents, type JobServiceOptions } from './job-service.js';
export { applyEvent, applyRetry, createJob, weightedProgress, parseCreateJobRequest, parseJobEvent, JOB_ID_PATTERN, type Outcome } from './jobs.js';
export { createVerifier, mintToken, canRead, canWrite, canRetry, grantCovers, type Principal, type Verifier, type MintOptions } from './auth.js';
export { ApiError } from './errors.js';
export { loadEngine, EngineError, type Engine } from './engine.js';
export { createLogger, redactUrl, type Logger } from './log.js';
export { SqliteStore, type SqliteStoreOptions } from './store/sqlite.js';
export { StoreOpenError, type Store, type JobRecord, type EventIdEntry } from './store/store.js';
export type { Estimator, Estimate, HistoryStore } from './estimator.js';
export * from './protocol.js';
