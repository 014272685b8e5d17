/**
 * Persistence behind one small async interface, so a Redis store can replace SQLite later.
 * The job service is the only writer and serializes changes per job; a store only has to make
 * each `save` atomic and durable before its promise resolves (a 202 is sent after it).
 */
import type { HistoryStore } from '../core/estimator.js';
import type { Job, JobSource, JobStatus } from '../../protocol/index.js';

/** A job plus the parts that never go on the wire (webhook URL, polling source with its secrets). */
export interface JobRecord {
  job: Job;
  webhook?: string;
  source?: JobSource;
}

/** An accepted eventId and the seq it produced, for idempotent retries by producers. */
export interface EventIdEntry {
  eventId: string;
  seq: number;
}

export interface Store extends HistoryStore {
  /** Insert a new job; resolves false (and changes nothing) when the id exists. */
  insert(record: JobRecord): Promise<boolean>;
  /**
   * Replace a job's state and remember the eventIds that produced it, atomically.
   * `expectedSeq`: when given, the save happens only if the stored job still has that seq, else
   * it rejects with SeqConflictError and changes nothing. Every store enforces it: Redis because
   * two nodes may change the same job at once, SQLite because the job service pipelines a job's
   * writes, so a write built on a predecessor that failed must fail too.
   * `jobJson`: `record.job` already serialized (the published view's JSON), reused so a change is
   * serialized once.
   */
  save(record: JobRecord, eventIds?: readonly EventIdEntry[], expectedSeq?: number, jobJson?: string): Promise<void>;
  get(id: string): Promise<JobRecord | undefined>;
  /** Several jobs in one round trip, in the order asked (undefined where a job does not exist). */
  getMany(ids: readonly string[]): Promise<Array<JobRecord | undefined>>;
  /** The seq a job's eventId produced when it was first accepted. */
  findEvent(jobId: string, eventId: string): Promise<number | undefined>;
  /**
   * Jobs newest first (createdAt DESC, id DESC), for `GET /v1/jobs` and tag feeds: one walk of one
   * index (see ListQuery), keyset-paginated by `before`. The job service merges several walks
   * (several tags, several statuses) and filters by grants (core/job-list.ts).
   */
  list(query: ListQuery): Promise<ListPage>;
  /** Jobs in the given states (used at start to resume running jobs and their polling). */
  listByStatus(statuses: readonly JobStatus[], limit: number): Promise<JobRecord[]>;
  countByStatus(): Promise<Record<JobStatus, number>>;
  /** Delete finished (completed, failed, canceled) jobs last changed before `before`; returns their ids. */
  pruneFinished(before: number): Promise<string[]>;
  close(): Promise<void>;
}

/** A position in the listing order (createdAt DESC, id DESC); the cursor of `GET /v1/jobs`. */
export interface ListCursor {
  createdAt: number;
  id: string;
}

/**
 * One walk of a listing index. The store walks the jobs carrying `tag` when given, else those in
 * the one status of `statuses` when it names one, else those of `kind` when given, else every
 * job; the other filters are checked on the way (in the store, so rows that do not match never
 * leave it).
 */
export interface ListQuery {
  tag?: string;
  /** Only jobs in one of these states (empty: none). */
  statuses?: readonly JobStatus[];
  kind?: string;
  /** Only jobs strictly after this position (older, or as old with a smaller id). */
  before?: ListCursor;
  /** At most this many records. */
  limit: number;
  /** Examine at most this many index entries (default: `limit`, or 1000 when filters are checked on the way). */
  scan?: number;
}

export interface ListPage {
  /** Matching records, newest first. */
  records: JobRecord[];
  /**
   * Where the walk stopped, when it did before the end of the index (`limit` records found, or
   * `scan` entries examined): the next walk continues after it. Undefined: nothing older is left.
   */
  next?: ListCursor;
  /** Index entries examined. */
  scanned: number;
}

/** `a` comes before `b` in the listing order (newer, or as new with a larger id). */
export const listsBefore = (a: ListCursor, b: ListCursor): boolean => a.createdAt > b.createdAt || (a.createdAt === b.createdAt && a.id > b.id);

const sourceJson = new WeakMap<object, string>();

/**
 * The record as JSON, reusing the job's JSON when given. A job's `source` (up to 16 KiB) is the
 * same object from change to change, so its JSON is made once and remembered.
 */
export function recordJson(record: JobRecord, jobJson = JSON.stringify(record.job)): string {
  let text = `{"job":${jobJson}`;
  if (record.webhook !== undefined) text += `,"webhook":${JSON.stringify(record.webhook)}`;
  if (record.source !== undefined) {
    let source = sourceJson.get(record.source);
    if (source === undefined) sourceJson.set(record.source, (source = JSON.stringify(record.source)));
    text += `,"source":${source}`;
  }
  return text + '}';
}

/** A save lost a race: another node changed the job first. Reload it and apply the change again. */
export class SeqConflictError extends Error {
  constructor(
    readonly jobId: string,
    readonly expectedSeq: number,
    /** The stored seq (undefined when the job no longer exists). */
    readonly actualSeq: number | undefined,
  ) {
    super(`job ${jobId} changed concurrently (expected seq ${expectedSeq}, found ${actualSeq ?? 'no job'})`);
    this.name = 'SeqConflictError';
  }
}

/** Raised at open when the database cannot be used (corrupt, unwritable, wrong format). */
export class StoreOpenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StoreOpenError';
  }
}
