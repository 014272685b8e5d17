/**
 * The Redis pub/sub channels of a cluster and what travels on them, in one place: the Redis
 * store publishes every committed change (inside its save script, so messages of a job follow
 * commit order) and the cluster bus (server/cluster/bus.ts) listens and sends the rest.
 *
 *   {prefix}ch:<jobId>    a job's committed states (`u`) and retry/cancel notices (`c`)
 *   {prefix}node:<node>   requests addressed to one node (a retry forwarded to a job's poller)
 */
import type { ControlMessage, Job } from '../../protocol/index.js';

export const jobChannel = (prefix: string, jobId: string): string => `${prefix}ch:${jobId}`;
export const nodeChannel = (prefix: string, nodeId: string): string => `${prefix}node:${nodeId}`;

/** A committed state, published by the store's save script. `n` is the committing node. */
export interface ChangeMessage {
  n: string;
  t: 'u';
  job: Job;
}

/** A retry or cancel: the job's producer sockets and streams on every node get `control`. */
export interface ControlNotice {
  n: string;
  t: 'c';
  control: ControlMessage;
}

export type JobChannelMessage = ChangeMessage | ControlNotice;

/** Messages on a node channel. */
export type NodeMessage = { n: string; t: 'retry'; jobId: string; step?: string };
