/**
 * The SQLite store's file format and its writes, shared by the two threads that use the file:
 * the event loop reads (WAL lets readers run beside the writer) and the writer thread
 * (sqlite-write-worker.ts) commits. Every write goes through `runWriteBatch`: one transaction
 * per batch, so one fsync covers every change in it (group commit).
 *
 * Schema version 2 (listing, `GET /v1/jobs` and tag feeds): `jobs` gained `created_at` and `kind`
 * (both fixed at creation) and three indexes in the listing order (created_at DESC, id DESC):
 * every job, by status (it replaces version 1's `jobs_status`, which GROUP BY status and the start's
 * status query use as well) and by kind; `job_tags(tag, created_at, id)` (its primary key is the
 * per-tag index, WITHOUT ROWID) holds one row per tag of a job, written by the insert and deleted by
 * the prune in the same transaction. Keyset reads (`(created_at, id) < (?, ?)`) walk these indexes
 * from any cursor in O(log n), however deep the page. A save never touches them, except
 * `jobs_status_created` on a status change: its SET list leaves created_at and kind alone, and status
 * too unless it changes (see `prepareWrites`).
 * A version 1 file is migrated at open, in one transaction: the columns are added and filled from
 * each record's JSON (json_extract), the tags copied out of it (json_each), the indexes built.
 */
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import type { JobStatus } from '../../protocol/index.js';
import { recordJson, StoreOpenError, type EventIdEntry, type JobRecord } from './store.js';

export const SCHEMA_VERSION = 2;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS jobs (
  id TEXT PRIMARY KEY,
  status TEXT NOT NULL,
  seq INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  finished_at INTEGER,
  record TEXT NOT NULL,
  created_at INTEGER NOT NULL DEFAULT 0,
  kind TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs(finished_at) WHERE finished_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS event_ids (
  job_id TEXT NOT NULL,
  event_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  PRIMARY KEY (job_id, event_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  key TEXT NOT NULL,
  sample TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_key ON history(key, id);
`;

/** Version 2: the listing's columns, tags and indexes (see the header); run after SCHEMA and any migration. */
const LISTING_SCHEMA = `
CREATE TABLE IF NOT EXISTS job_tags (
  tag TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  id TEXT NOT NULL,
  PRIMARY KEY (tag, created_at, id)
) WITHOUT ROWID;
DROP INDEX IF EXISTS jobs_status;
CREATE INDEX IF NOT EXISTS jobs_created ON jobs(created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS jobs_status_created ON jobs(status, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS jobs_kind_created ON jobs(kind, created_at DESC, id DESC);
`;

/** Version 1 → 2, inside the open's transaction: the new columns filled from each record's JSON, its tags copied out. */
const MIGRATE_1_TO_2 = `
ALTER TABLE jobs ADD COLUMN created_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN kind TEXT NOT NULL DEFAULT '';
UPDATE jobs SET created_at = COALESCE(json_extract(record, '$.job.createdAt'), 0), kind = COALESCE(json_extract(record, '$.job.kind'), '');
CREATE TABLE IF NOT EXISTS job_tags (
  tag TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  id TEXT NOT NULL,
  PRIMARY KEY (tag, created_at, id)
) WITHOUT ROWID;
INSERT OR IGNORE INTO job_tags (tag, created_at, id)
  SELECT t.value, jobs.created_at, jobs.id FROM jobs, json_each(jobs.record, '$.job.tags') AS t WHERE t.type = 'text';
`;

/** Creates the tables (a new file) or migrates an older version's, then stamps SCHEMA_VERSION; in the caller's transaction. */
function migrate(db: Database.Database): void {
  db.exec(SCHEMA);
  const columns = (db.pragma('table_info(jobs)') as Array<{ name: string }>).map((c) => c.name);
  // A version 1 file: CREATE TABLE IF NOT EXISTS above kept its jobs table as it was.
  if (!columns.includes('created_at')) db.exec(MIGRATE_1_TO_2);
  db.exec(LISTING_SCHEMA);
  db.pragma(`user_version = ${SCHEMA_VERSION}`);
}

export type Synchronous = 'full' | 'normal';

/** Creates the directory of database file `path` (not for `:memory:`). */
export function ensureDirectory(path: string): void {
  try {
    mkdirSync(dirname(resolve(path)), { recursive: true });
  } catch (err) {
    throw new StoreOpenError(`cannot create the directory for database file ${resolve(path)}: ${(err as Error).message}`);
  }
}

/** Opens (and on first use creates) the database; every problem becomes a StoreOpenError that says what to do. */
export function openDatabase(path: string, synchronous: Synchronous, { create }: { create: boolean }): Database.Database {
  const where = path === ':memory:' ? 'in-memory database' : `database file ${resolve(path)}`;
  if (create && path !== ':memory:') ensureDirectory(path);
  let db: Database.Database | undefined;
  try {
    db = new Database(path);
    // Reading the header proves the file is SQLite; a write transaction proves we can write it.
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${synchronous === 'normal' ? 'NORMAL' : 'FULL'}`);
    db.pragma('busy_timeout = 5000');
    db.pragma('foreign_keys = OFF');
    if (create) {
      const version = db.pragma('user_version', { simple: true }) as number;
      if (version > SCHEMA_VERSION) {
        throw new Error(`schema version ${version} is newer than this server understands (${SCHEMA_VERSION})`);
      }
      db.exec('BEGIN IMMEDIATE');
      try {
        migrate(db);
        db.exec('COMMIT');
      } catch (err) {
        db.exec('ROLLBACK');
        throw err;
      }
      const check = db.pragma('quick_check(1)', { simple: true });
      if (check !== 'ok') throw new Error(`integrity check failed: ${String(check)}`);
    }
    return db;
  } catch (err) {
    try {
      db?.close();
    } catch {
      /* already unusable */
    }
    const e = err as Error & { code?: string };
    const hint =
      e.code === 'SQLITE_NOTADB' || e.code === 'SQLITE_CORRUPT'
        ? ' (the file is corrupt or not a SQLite database: restore it from a backup or point PT_DB elsewhere)'
        : e.code === 'SQLITE_READONLY' || e.code === 'SQLITE_CANTOPEN' || e.code === 'SQLITE_PERM'
          ? ' (check that the file and its directory are writable by this user)'
          : '';
    throw new StoreOpenError(`cannot use ${where}: ${e.message}${e.code ? ` [${e.code}]` : ''}${hint}`);
  }
}

/** A job as stored: indexed columns plus the record's JSON (serialized on the event loop, once). */
export interface JobRow {
  id: string;
  status: JobStatus;
  seq: number;
  updatedAt: number;
  finishedAt: number | null;
  createdAt: number;
  kind: string;
  /** The job's tags (rows of job_tags). */
  tags: readonly string[];
  record: string;
}

const FINISHED: readonly JobStatus[] = ['completed', 'failed', 'canceled'];

export function rowOf(record: JobRecord, jobJson?: string): JobRow {
  const { job } = record;
  return {
    id: job.id,
    status: job.status,
    seq: job.seq,
    updatedAt: job.updatedAt,
    finishedAt: FINISHED.includes(job.status) ? job.updatedAt : null,
    createdAt: job.createdAt,
    kind: job.kind,
    tags: job.tags ?? [],
    record: recordJson(record, jobJson),
  };
}

/** Finished jobs deleted per prune write (keeps each transaction short). */
export const PRUNE_BATCH = 1000;

/** One write of a batch. */
export type WriteOp =
  | { op: 'insert'; row: JobRow }
  | { op: 'save'; row: JobRow; eventIds: readonly EventIdEntry[]; expectedSeq: number | undefined }
  | { op: 'history'; key: string; sample: string; maxPerKey: number }
  | { op: 'prune'; before: number };

/**
 * What each write answers: insert → whether the id was new; save → null, or the stored seq
 * (undefined: no job) when `expectedSeq` did not match; history → null; prune → the deleted ids.
 */
export type WriteResult = boolean | null | { conflict: number | undefined } | string[];

export function prepareWrites(db: Database.Database): (ops: readonly WriteOp[]) => WriteResult[] {
  // Positional parameters, in this order: (id, status, seq, updated_at, finished_at, created_at, kind, record).
  const s = {
    insert: db.prepare('INSERT OR IGNORE INTO jobs (id, status, seq, updated_at, finished_at, created_at, kind, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?)'),
    // An unchecked save (none in the job service): created_at and kind are fixed at creation, so not in the SET list.
    upsert: db.prepare(
      'INSERT INTO jobs (id, status, seq, updated_at, finished_at, created_at, kind, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ' +
        'ON CONFLICT(id) DO UPDATE SET status = excluded.status, seq = excluded.seq, updated_at = excluded.updated_at, finished_at = excluded.finished_at, record = excluded.record',
    ),
    // A checked save is an UPDATE of the row at the expected seq. Status is in the SET list only when
    // it changes: SQLite rewrites the entry of every index holding an assigned column even when the
    // value is the same, so `SET status = <same>` dirtied a jobs_status_created page per save (twice
    // the WAL pages of a progress event, and more checkpoint work).
    update: db.prepare('UPDATE jobs SET seq = ?, updated_at = ?, finished_at = ?, record = ? WHERE id = ? AND seq = ? AND status = ?'),
    updateStatus: db.prepare('UPDATE jobs SET status = ?, seq = ?, updated_at = ?, finished_at = ?, record = ? WHERE id = ? AND seq = ?'),
    addTag: db.prepare('INSERT OR IGNORE INTO job_tags (tag, created_at, id) VALUES (?, ?, ?)'),
    deleteTag: db.prepare('DELETE FROM job_tags WHERE tag = ? AND created_at = ? AND id = ?'),
    seq: db.prepare('SELECT seq FROM jobs WHERE id = ?').pluck(),
    addEvent: db.prepare('INSERT OR IGNORE INTO event_ids (job_id, event_id, seq) VALUES (?, ?, ?)'),
    finishedBefore: db.prepare(
      `SELECT id, created_at AS createdAt, json_extract(record, '$.job.tags') AS tags FROM jobs WHERE finished_at IS NOT NULL AND finished_at < ? LIMIT ${PRUNE_BATCH}`,
    ),
    deleteJob: db.prepare('DELETE FROM jobs WHERE id = ?'),
    deleteEvents: db.prepare('DELETE FROM event_ids WHERE job_id = ?'),
    appendHistory: db.prepare('INSERT INTO history (key, sample) VALUES (?, ?)'),
    trimHistory: db.prepare('DELETE FROM history WHERE key = ? AND id NOT IN (SELECT id FROM history WHERE key = ? ORDER BY id DESC LIMIT ?)'),
  };
  const columns = (r: JobRow) => [r.id, r.status, r.seq, r.updatedAt, r.finishedAt, r.createdAt, r.kind, r.record] as const;
  /** The checked save: whether the row was at `expectedSeq` (and is now updated). */
  const update = (r: JobRow, expectedSeq: number): boolean =>
    s.update.run(r.seq, r.updatedAt, r.finishedAt, r.record, r.id, expectedSeq, r.status).changes === 1 ||
    s.updateStatus.run(r.status, r.seq, r.updatedAt, r.finishedAt, r.record, r.id, expectedSeq).changes === 1;
  const addTags = (row: JobRow) => {
    for (const tag of row.tags) s.addTag.run(tag, row.createdAt, row.id);
  };
  const one = (w: WriteOp): WriteResult => {
    switch (w.op) {
      case 'insert': {
        const inserted = s.insert.run(...columns(w.row)).changes === 1;
        if (inserted) addTags(w.row);
        return inserted;
      }
      case 'save': {
        // Checked per write: the job service pipelines a job's writes, so one built on an earlier
        // write that failed (or never landed) is refused without failing the batch.
        // No row at that seq: the stored one (undefined: no job) says why.
        if (w.expectedSeq !== undefined) {
          if (!update(w.row, w.expectedSeq)) return { conflict: s.seq.get(w.row.id) as number | undefined };
        } else {
          s.upsert.run(...columns(w.row));
          // Unchecked, the save may have created the job: its tags too (a checked one found it, with them).
          addTags(w.row);
        }
        for (const e of w.eventIds) s.addEvent.run(w.row.id, e.eventId, e.seq);
        return null;
      }
      case 'history':
        s.appendHistory.run(w.key, w.sample);
        s.trimHistory.run(w.key, w.key, w.maxPerKey);
        return null;
      case 'prune': {
        const rows = s.finishedBefore.all(w.before) as Array<{ id: string; createdAt: number; tags: string | null }>;
        for (const { id, createdAt, tags } of rows) {
          s.deleteEvents.run(id);
          for (const tag of tags ? (JSON.parse(tags) as unknown[]) : []) if (typeof tag === 'string') s.deleteTag.run(tag, createdAt, id);
          s.deleteJob.run(id);
        }
        return rows.map((r) => r.id);
      }
    }
  };
  /** Runs the writes in one transaction (one fsync); a failure rolls all of them back and throws. */
  return db.transaction((ops: readonly WriteOp[]): WriteResult[] => ops.map(one));
}
