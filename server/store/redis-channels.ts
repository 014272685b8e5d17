/**
 * The Redis pub/sub channels of a cluster and what travels on them, in one place: the Redis
 * store publishes every committed change (inside its save script, so messages of a job follow
 * commit order) and the cluster bus (server/cluster/bus.ts) listens and sends the rest.
 *
 *   {prefix}ch:<jobId>    a job's committed states (`u`) and retry notices (`c`)
 *   {prefix}node:<node>   requests addressed to one node (a retry forwarded to a job's poller)
 */
import type { Job } from '../../protocol/index.js';

export const jobChannel = (prefix: string, jobId: string): string => `${prefix}ch:${jobId}`;
export const nodeChannel = (prefix: string, nodeId: string): string => `${prefix}node:${nodeId}`;

/** A committed state, published by the store's save script. `n` is the committing node. */
export interface ChangeMessage {
  n: string;
  t: 'u';
  job: Job;
}

/** A retry notice: the job's producer sockets on every node get a `control` message. */
export interface ControlMessage {
  n: string;
  t: 'c';
  jobId: string;
  step: string;
}

export type JobChannelMessage = ChangeMessage | ControlMessage;

/** Messages on a node channel. */
export type NodeMessage = { n: string; t: 'retry'; jobId: string; step?: string };
