/**
 * The default store: one embedded SQLite file (better-sqlite3) in WAL mode.
 *
 * Durability: a 202 is sent only after `save` has committed. With `synchronous=FULL` (the
 * default) SQLite fsyncs the WAL on every commit, so an acknowledged event survives `kill -9`
 * AND a power loss or kernel crash. `synchronous=NORMAL` (PT_DB_SYNC=normal) skips that fsync:
 * still safe against a killed process (the committed pages are in the OS page cache and WAL
 * recovery replays them) but the last commits may be lost if the machine itself goes down.
 *
 * Threads: better-sqlite3 is synchronous, so commits (and their fsync) run on a writer thread
 * (sqlite-writer.ts) with group commit, and the event loop never waits for the disk. Reads stay
 * on the event loop on their own connection: WAL readers see every committed write and never
 * wait for the writer.
 *
 * One server per file: the store holds `<db>.lock` while open (sqlite-lock.ts), so a second
 * server on the same file refuses to start and names the first.
 *
 * The write-ahead log is checkpointed by the writer thread on its own (sqlite-write-worker.ts), so
 * it stays small on a small volume; a write that fails on a full disk is answered 503 and the next
 * one succeeds once there is space again.
 *
 * Listing (`list`): a keyset walk of one index of sqlite-schema.ts (by tag, by status, by kind,
 * or every job) from the cursor, reading only the indexed columns; the records of the rows that
 * match the other filters are read by id afterwards. So a page costs O(log n + rows examined)
 * whatever its depth, and a filter the index does not cover costs at most `scan` rows.
 */
import type Database from 'better-sqlite3';
import { JOB_STATUSES, type JobStatus } from '../../protocol/index.js';
import { openDatabase, PRUNE_BATCH, rowOf, type Synchronous } from './sqlite-schema.js';
import { lockDatabase, type DatabaseLock } from './sqlite-lock.js';
import { InlineWriter, ThreadWriter, type SqliteWriter } from './sqlite-writer.js';
import { SeqConflictError, type EventIdEntry, type JobRecord, type ListPage, type ListQuery, type Store } from './store.js';

/** Rows examined by a walk whose filters are not all covered by its index, when the caller sets no `scan`. */
const DEFAULT_FILTERED_SCAN = 1000;
/** Before every stored position: a walk without a cursor starts here. */
const NEWEST = { createdAt: Number.MAX_SAFE_INTEGER, id: '' };

interface IndexRow {
  id: string;
  createdAt: number;
  status: JobStatus;
  kind: string;
}

export interface SqliteStoreOptions {
  /** File path or `:memory:`. */
  path: string;
  synchronous?: Synchronous;
}

function prepareReads(db: Database.Database) {
  return {
    get: db.prepare('SELECT record FROM jobs WHERE id = ?').pluck(),
    findEvent: db.prepare('SELECT seq FROM event_ids WHERE job_id = ? AND event_id = ?').pluck(),
    count: db.prepare('SELECT status, COUNT(*) AS n FROM jobs GROUP BY status'),
    loadHistory: db.prepare('SELECT key, sample FROM history ORDER BY id'),
    // Listing walks: (created_at, id) < (cursor) on an index in that order (see sqlite-schema.ts).
    walkAll: db.prepare(
      'SELECT id, created_at AS createdAt, status, kind FROM jobs INDEXED BY jobs_created ' +
        'WHERE (created_at, id) < (?, ?) ORDER BY created_at DESC, id DESC LIMIT ?',
    ),
    walkStatus: db.prepare(
      'SELECT id, created_at AS createdAt, status, kind FROM jobs INDEXED BY jobs_status_created ' +
        'WHERE status = ? AND (created_at, id) < (?, ?) ORDER BY created_at DESC, id DESC LIMIT ?',
    ),
    walkKind: db.prepare(
      'SELECT id, created_at AS createdAt, status, kind FROM jobs INDEXED BY jobs_kind_created ' +
        'WHERE kind = ? AND (created_at, id) < (?, ?) ORDER BY created_at DESC, id DESC LIMIT ?',
    ),
    walkTag: db.prepare(
      'SELECT t.id AS id, t.created_at AS createdAt, j.status AS status, j.kind AS kind FROM job_tags t CROSS JOIN jobs j ON j.id = t.id ' +
        'WHERE t.tag = ? AND (t.created_at, t.id) < (?, ?) ORDER BY t.created_at DESC, t.id DESC LIMIT ?',
    ),
  };
}

export class SqliteStore implements Store {
  /** The event loop's connection: reads only (and the schema, at open). */
  private readonly db: Database.Database;
  private readonly read: ReturnType<typeof prepareReads>;
  private readonly writer: SqliteWriter;
  /** Held while open; none for `:memory:`. */
  private readonly lock: DatabaseLock | undefined;

  constructor(options: SqliteStoreOptions) {
    const synchronous = options.synchronous ?? 'full';
    const memory = options.path === ':memory:';
    // Before anything touches the file: a second server stops here.
    this.lock = memory ? undefined : lockDatabase(options.path);
    try {
      this.db = openDatabase(options.path, synchronous, { create: true });
      this.read = prepareReads(this.db);
      // `:memory:` is private to its connection: there, the event loop writes too.
      this.writer = memory ? new InlineWriter(this.db) : new ThreadWriter(options.path, synchronous);
    } catch (err) {
      this.lock?.release();
      throw err;
    }
  }

  async insert(record: JobRecord): Promise<boolean> {
    return (await this.writer.write({ op: 'insert', row: rowOf(record) })) as boolean;
  }

  /** `expectedSeq` is enforced: a write built on a predecessor that failed is refused with SeqConflictError. */
  async save(record: JobRecord, eventIds: readonly EventIdEntry[] = [], expectedSeq?: number, jobJson?: string): Promise<void> {
    const result = await this.writer.write({ op: 'save', row: rowOf(record, jobJson), eventIds, expectedSeq });
    if (result !== null && typeof result === 'object' && 'conflict' in result) {
      throw new SeqConflictError(record.job.id, expectedSeq!, result.conflict);
    }
  }

  async get(id: string): Promise<JobRecord | undefined> {
    const text = this.read.get.get(id) as string | undefined;
    return text === undefined ? undefined : (JSON.parse(text) as JobRecord);
  }

  async getMany(ids: readonly string[]): Promise<Array<JobRecord | undefined>> {
    return Promise.all(ids.map((id) => this.get(id)));
  }

  async findEvent(jobId: string, eventId: string): Promise<number | undefined> {
    return this.read.findEvent.get(jobId, eventId) as number | undefined;
  }

  async list(query: ListQuery): Promise<ListPage> {
    const { tag, statuses, kind, limit } = query;
    if (limit <= 0 || statuses?.length === 0) return { records: [], scanned: 0 };
    const { createdAt, id } = query.before ?? NEWEST;
    // The index: the tag's, else the one status's, else the kind's, else every job's; the rest is checked on the way.
    const byStatus = tag === undefined && statuses?.length === 1 ? statuses[0]! : undefined;
    const byKind = tag === undefined && byStatus === undefined ? kind : undefined;
    const wantStatus = statuses !== undefined && byStatus === undefined ? new Set(statuses) : undefined;
    const wantKind = kind !== undefined && byKind === undefined ? kind : undefined;
    const filtered = wantStatus !== undefined || wantKind !== undefined;
    const scan = Math.max(1, query.scan ?? (filtered ? DEFAULT_FILTERED_SCAN : limit));
    const rows = (
      tag !== undefined
        ? this.read.walkTag.all(tag, createdAt, id, scan)
        : byStatus !== undefined
          ? this.read.walkStatus.all(byStatus, createdAt, id, scan)
          : byKind !== undefined
            ? this.read.walkKind.all(byKind, createdAt, id, scan)
            : this.read.walkAll.all(createdAt, id, scan)
    ) as IndexRow[];
    const records: JobRecord[] = [];
    let scanned = 0;
    while (scanned < rows.length && records.length < limit) {
      const row = rows[scanned++]!;
      if ((wantStatus && !wantStatus.has(row.status)) || (wantKind !== undefined && row.kind !== wantKind)) continue;
      const text = this.read.get.get(row.id) as string | undefined;
      if (text !== undefined) records.push(JSON.parse(text) as JobRecord);
    }
    // Stopped early (enough records, or `scan` rows examined): continue after the last row examined.
    const last = rows[scanned - 1];
    const stopped = records.length >= limit || rows.length === scan;
    return { records, scanned, ...(stopped && last && { next: { createdAt: last.createdAt, id: last.id } }) };
  }

  async listByStatus(statuses: readonly JobStatus[], limit: number): Promise<JobRecord[]> {
    if (statuses.length === 0) return [];
    const marks = statuses.map(() => '?').join(',');
    const rows = this.db
      .prepare(`SELECT record FROM jobs WHERE status IN (${marks}) ORDER BY updated_at DESC LIMIT ?`)
      .pluck()
      .all(...statuses, limit) as string[];
    return rows.map((text) => JSON.parse(text) as JobRecord);
  }

  async countByStatus(): Promise<Record<JobStatus, number>> {
    const counts = Object.fromEntries(JOB_STATUSES.map((s) => [s, 0])) as Record<JobStatus, number>;
    for (const row of this.read.count.all() as { status: JobStatus; n: number }[]) counts[row.status] = row.n;
    return counts;
  }

  async pruneFinished(before: number): Promise<string[]> {
    const pruned: string[] = [];
    // Batches keep each write transaction short.
    for (;;) {
      const ids = (await this.writer.write({ op: 'prune', before })) as string[];
      pruned.push(...ids);
      if (ids.length < PRUNE_BATCH) return pruned;
    }
  }

  async appendHistory(key: string, sample: unknown, maxPerKey: number): Promise<void> {
    await this.writer.write({ op: 'history', key, sample: JSON.stringify(sample), maxPerKey });
  }

  async loadHistory(): Promise<Array<{ key: string; sample: unknown }>> {
    return (this.read.loadHistory.all() as { key: string; sample: string }[]).map((r) => ({
      key: r.key,
      sample: JSON.parse(r.sample) as unknown,
    }));
  }

  async close(): Promise<void> {
    if (!this.db.open) return;
    await this.writer.close();
    try {
      // The thread checkpointed already; for `:memory:` this is a no-op.
      if (this.writer instanceof InlineWriter) this.db.pragma('wal_checkpoint(TRUNCATE)');
    } finally {
      this.db.close();
      this.lock?.release();
    }
  }
}
