/**
 * The wire protocol of progress-tracker (package exports `@progress-tracker-kit/widget/protocol`, `@progress-tracker-kit/producer/protocol`, `progress-tracker-kit/protocol`): the
 * types, limits, error codes and runtime validation that the widget, the server, the producer
 * SDKs and the tests share. Everything exported here is a public contract (docs/protocol.md):
 * extend it, never rename it. Browser-safe: this folder compiles without Node types
 * (protocol/tsconfig.json), so nothing Node-only can reach the widget through it.
 */
export * from './job.js';
export * from './http-api.js';
export * from './source.js';
export * from './messages.js';
export * from './claims.js';
export * from './errors.js';
export * from './limits.js';
export * from './validate.js';
export * from './timing.js';
