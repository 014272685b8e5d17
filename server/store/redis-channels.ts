/**
 * The Redis pub/sub channels of a cluster and what travels on them, in one place: the Redis
 * store publishes every committed change (inside its save script, so messages of a job follow
 * commit order) and the cluster bus (server/cluster/bus.ts) listens and sends the rest.
 *
 *   {prefix}ch:<jobId>    a job's committed states (`u`) and retry/cancel notices (`c`)
 *   {prefix}tagch:<tag>   the committed states (`u`, creation included) of every job carrying the
 *                         tag, published by the insert and save scripts once per tag of the job;
 *                         nodes listen while their clients follow the tag's feed
 *   {prefix}node:<node>   requests addressed to one node (a retry forwarded to a job's poller)
 *
 * Job and tag channel messages are JSON that starts with the sending node's id, `{"n":"<node>",`:
 * the bus drops its own node's by that prefix, without decoding them.
 */
import type { ControlMessage, Job } from '../../protocol/index.js';

export const jobChannel = (prefix: string, jobId: string): string => `${prefix}ch:${jobId}`;
export const nodeChannel = (prefix: string, nodeId: string): string => `${prefix}node:${nodeId}`;
export const tagChannel = (prefix: string, tag: string): string => `${prefix}tagch:${tag}`;

/** A committed state, published by the store's save script (and on tag channels by its insert script too). `n` is the committing node. */
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
