/**
 * Listing jobs (`GET /v1/jobs`, a feed's first message): newest first, keyset-paginated, over the
 * store's listing indexes (store.ts `list`).
 *
 * Order and cursor. Jobs are ordered by (createdAt DESC, id DESC), a total order fixed at creation,
 * and a page continues strictly after a position in it (the cursor: base64url of
 * `<createdAt>:<id>`, opaque to clients). So a job inserted while a client pages appears only on
 * pages before the cursor (it is newer), never shifts the pages after it: no job present throughout
 * is skipped or shown twice, which offset pagination cannot promise. Deleted (pruned) jobs simply
 * stop appearing; the cursor does not need its job to still exist.
 *
 * One query, several walks. The store walks one index at a time; a query needing several (jobs
 * carrying any of a token's tags, several statuses without a tag) is a k-way merge of walks, each
 * read in batches, a job carrying two of the tags shown once. A walk whose next batch is not read
 * yet stands in the merge at the position it stopped at, so the merge never passes a job it has
 * not seen.
 *
 * Filters an index does not cover (status or kind beside a tag, a token's id and prefix grants as
 * `where`) are checked on the way, within a scan budget (LIST_SCAN_BUDGET index entries per
 * request, counted by the store). When the budget is spent before the page is full, the page
 * holds what was found and `next` is where the walk stopped: a short (even empty) page with a
 * cursor means "keep going", only `next: null` means the end.
 */
import { Buffer } from 'node:buffer';
import { JOB_ID_PATTERN, type Job, type JobStatus } from '../../protocol/index.js';
import { listsBefore, type JobRecord, type ListCursor, type ListQuery, type Store } from '../store/store.js';

export type { ListCursor };

/** Index entries a request may examine when filters are checked on the way (see the header). */
export const LIST_SCAN_BUDGET = 1000;
/** Batch read from a walk when filters are checked on the way. */
const FILTERED_BATCH = 100;

export interface JobListQuery {
  /** Jobs carrying any of these tags; undefined: every job. An empty list lists nothing. */
  tags?: readonly string[];
  /** Only jobs in one of these states. */
  statuses?: readonly JobStatus[];
  /** Only jobs of exactly this kind. */
  kind?: string;
  /** Strictly after this position (the decoded cursor). */
  before?: ListCursor;
  limit: number;
  /** Only jobs this accepts (e.g. covered by a token's id and prefix grants), within the scan budget. */
  where?: (job: Job) => boolean;
  /** Index entries examined at most (default LIST_SCAN_BUDGET). */
  scanBudget?: number;
}

export interface JobListResult {
  /** At most `limit`, newest first. */
  jobs: Job[];
  /** Where the next page starts; null when nothing is left. */
  next: ListCursor | null;
}

export const positionOf = (job: Job): ListCursor => ({ createdAt: job.createdAt, id: job.id });

/** The opaque cursor of a position: base64url of `<createdAt>:<id>`. */
export const encodeCursor = (c: ListCursor): string => Buffer.from(`${c.createdAt}:${c.id}`, 'utf8').toString('base64url');

/** The position of a cursor this server issued, or undefined for anything else. */
export function decodeCursor(cursor: string): ListCursor | undefined {
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  const colon = text.indexOf(':');
  if (colon <= 0) return undefined;
  const digits = text.slice(0, colon);
  const id = text.slice(colon + 1);
  if (!/^[0-9]{1,16}$/.test(digits) || !JOB_ID_PATTERN.test(id)) return undefined;
  const createdAt = Number(digits);
  return Number.isSafeInteger(createdAt) ? { createdAt, id } : undefined;
}

interface Walk {
  query: Omit<ListQuery, 'limit' | 'scan' | 'before'>;
  /** Read, not yet taken by the merge. */
  buffer: JobRecord[];
  at: number;
  /** Unread entries are strictly after this (before the first read: the query's `before`, if any). */
  next: ListCursor | undefined;
  done: boolean;
}

export async function listJobs(store: Store, q: JobListQuery): Promise<JobListResult> {
  if (q.limit <= 0 || q.tags?.length === 0 || q.statuses?.length === 0) return { jobs: [], next: null };
  const statuses = q.statuses ? [...new Set(q.statuses)] : undefined;
  const kind = q.kind !== undefined ? { kind: q.kind } : {};
  // One walk per tag (status and kind checked on the way), else one per status (each on its own index).
  const queries: Walk['query'][] = q.tags
    ? [...new Set(q.tags)].map((tag) => ({ tag, ...(statuses && { statuses }), ...kind }))
    : statuses && statuses.length > 1
      ? statuses.map((status) => ({ statuses: [status], ...kind }))
      : [{ ...(statuses && { statuses }), ...kind }];
  const walks: Walk[] = queries.map((query) => ({ query, buffer: [], at: 0, next: q.before, done: false }));
  // Filters the walk checks itself (status or kind beside the index it walks), or ours (`where`).
  const filtering = q.where !== undefined || queries.some((w) => (w.tag !== undefined && (w.statuses || w.kind !== undefined)) || (w.statuses?.length === 1 && w.kind !== undefined));
  let budget = q.scanBudget ?? LIST_SCAN_BUDGET;
  const jobs: Job[] = [];

  const read = async (walk: Walk): Promise<void> => {
    const want = q.limit + 1 - jobs.length;
    const limit = filtering ? Math.max(want, FILTERED_BATCH) : want;
    // Unfiltered walks examine only what the page takes. Every walk reads at least one entry,
    // whatever is left of the budget, so a page always moves past its cursor.
    const scan = filtering ? Math.max(1, Math.min(limit, budget)) : limit;
    const page = await store.list({ ...walk.query, limit, scan, ...(walk.next && { before: walk.next }) });
    budget -= page.scanned;
    walk.buffer = page.records;
    walk.at = 0;
    // Unread entries are strictly after `page.next` (the last entry examined).
    if (page.next) walk.next = page.next;
    else walk.done = true;
  };

  await Promise.all(walks.map(read));
  const seen = new Set<string>();
  let stoppedAt: ListCursor | undefined;
  let more = false;
  for (;;) {
    // The newest head: a read record, or, for a walk whose buffer is empty, the position it
    // stopped at (a read is due before the merge passes it). On a tie the record goes first.
    let best: Walk | undefined;
    let bestAt: ListCursor | undefined;
    let bestIsRecord = false;
    for (const walk of walks) {
      const record = walk.buffer[walk.at];
      if (!record && walk.done) continue;
      const at = record ? positionOf(record.job) : walk.next!;
      const isRecord = record !== undefined;
      const beats = !bestAt || listsBefore(at, bestAt) || (isRecord && !bestIsRecord && at.createdAt === bestAt.createdAt && at.id === bestAt.id);
      if (beats) {
        best = walk;
        bestAt = at;
        bestIsRecord = isRecord;
      }
    }
    if (!best) break;
    if (!bestIsRecord) {
      if (filtering && budget <= 0) {
        stoppedAt = bestAt;
        break;
      }
      await read(best);
      continue;
    }
    const { job } = best.buffer[best.at++]!;
    if (seen.has(job.id)) continue;
    seen.add(job.id);
    if (q.where && !q.where(job)) continue;
    if (jobs.length === q.limit) {
      more = true;
      break;
    }
    jobs.push(job);
  }
  const lastJob = jobs.at(-1);
  let next: ListCursor | null = null;
  if (more) next = positionOf(lastJob!);
  else if (stoppedAt) next = jobs.length === q.limit ? positionOf(lastJob!) : stoppedAt;
  return { jobs, next };
}
