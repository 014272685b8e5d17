/**
 * A published state of a job: the object, its JSON and its ETag, made once per change. Every
 * socket, HTTP poll and snapshot reuses the same string, so a change is serialized exactly once
 * however many clients follow the job.
 */
import type { Job } from '../../protocol/index.js';

export interface JobView {
  readonly job: Job;
  readonly json: string;
  readonly etag: string;
}

export const viewOf = (job: Job): JobView => ({
  job,
  json: JSON.stringify(job),
  etag: `"${job.createdAt.toString(36)}.${job.seq}"`,
});
