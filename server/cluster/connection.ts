/**
 * Redis connection health, said out loud: every connection a node holds (store commands, the
 * bus's subscriber) logs when it drops, retries and comes back, and counts it for /metrics.
 * ioredis reconnects by itself (growing delay, capped at 2 s) and replays the bus's SUBSCRIBEs;
 * what it cannot know is what was published while it was away, so `onReady` after a drop is
 * where the bus resyncs.
 */
import type { Redis } from 'ioredis';
import type { ClusterMetrics } from './metrics.js';

export interface ClusterLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** Watches one connection; calls `onRecovered` each time it is ready again after a drop. */
export function watchConnection(
  client: Redis,
  name: string,
  log: ClusterLogger,
  metrics: ClusterMetrics,
  onRecovered?: () => void,
): () => void {
  let wasDown = false;
  let lastError = '';
  metrics.setConnection(name, client.status === 'ready');
  const onError = (err: Error) => {
    // ioredis repeats the same error on every retry: log a change, count them all.
    metrics.redisErrors++;
    if (err.message !== lastError) log.warn({ redis: name, err: err.message }, 'redis connection error');
    lastError = err.message;
  };
  const onClose = () => {
    if (!wasDown) log.warn({ redis: name }, 'redis connection lost; reconnecting');
    wasDown = true;
    metrics.setConnection(name, false);
  };
  const onReconnecting = () => {
    metrics.redisReconnects++;
  };
  const onReady = () => {
    metrics.setConnection(name, true);
    lastError = '';
    if (!wasDown) return;
    wasDown = false;
    log.info({ redis: name }, 'redis connection restored');
    onRecovered?.();
  };
  client.on('error', onError);
  client.on('close', onClose);
  client.on('reconnecting', onReconnecting);
  client.on('ready', onReady);
  return () => {
    client.off('error', onError);
    client.off('close', onClose);
    client.off('reconnecting', onReconnecting);
    client.off('ready', onReady);
  };
}
