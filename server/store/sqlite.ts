/**
 * The default store: one embedded SQLite file (better-sqlite3) in WAL mode.
 *
 * Durability: a 202 is sent only after `save` has committed. With `synchronous=FULL` (the
 * default) SQLite fsyncs the WAL on every commit, so an acknowledged event survives `kill -9`
 * AND a power loss or kernel crash. `synchronous=NORMAL` (PT_DB_SYNC=normal) skips that fsync:
 * still safe against a killed process (the committed pages are in the OS page cache and WAL
 * recovery replays them) but the last commits may be lost if the machine itself goes down.
 * better-sqlite3 is synchronous, so a commit blocks the event loop for one fsync (~0.1–2 ms on
 * SSDs); that is the price of the promise a 202 makes.
 */
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { JOB_STATUSES, type JobStatus } from '../../protocol/index.js';
import { SeqConflictError, StoreOpenError, type EventIdEntry, type JobRecord, type Store } from './store.js';

export interface SqliteStoreOptions {
  /** File path or `:memory:`. */
  path: string;
  synchronous?: 'full' | 'normal';
}

const SCHEMA_VERSION = 1;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS jobs (
  id TEXT PRIMARY KEY,
  status TEXT NOT NULL,
  seq INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  finished_at INTEGER,
  record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status);
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

function prepareStatements(db: Database.Database) {
  return {
    insert: db.prepare(
      'INSERT OR IGNORE INTO jobs (id, status, seq, updated_at, finished_at, record) VALUES (@id, @status, @seq, @updatedAt, @finishedAt, @record)',
    ),
    save: db.prepare(
      'INSERT INTO jobs (id, status, seq, updated_at, finished_at, record) VALUES (@id, @status, @seq, @updatedAt, @finishedAt, @record) ' +
        'ON CONFLICT(id) DO UPDATE SET status = excluded.status, seq = excluded.seq, updated_at = excluded.updated_at, finished_at = excluded.finished_at, record = excluded.record',
    ),
    get: db.prepare('SELECT record FROM jobs WHERE id = ?').pluck(),
    seq: db.prepare('SELECT seq FROM jobs WHERE id = ?').pluck(),
    addEvent: db.prepare('INSERT OR IGNORE INTO event_ids (job_id, event_id, seq) VALUES (?, ?, ?)'),
    findEvent: db.prepare('SELECT seq FROM event_ids WHERE job_id = ? AND event_id = ?').pluck(),
    count: db.prepare('SELECT status, COUNT(*) AS n FROM jobs GROUP BY status'),
    finishedBefore: db.prepare('SELECT id FROM jobs WHERE finished_at IS NOT NULL AND finished_at < ? LIMIT 1000').pluck(),
    deleteJob: db.prepare('DELETE FROM jobs WHERE id = ?'),
    deleteEvents: db.prepare('DELETE FROM event_ids WHERE job_id = ?'),
    appendHistory: db.prepare('INSERT INTO history (key, sample) VALUES (?, ?)'),
    trimHistory: db.prepare(
      'DELETE FROM history WHERE key = ? AND id NOT IN (SELECT id FROM history WHERE key = ? ORDER BY id DESC LIMIT ?)',
    ),
    loadHistory: db.prepare('SELECT key, sample FROM history ORDER BY id'),
  };
}

const FINISHED: readonly JobStatus[] = ['completed', 'failed', 'canceled'];

export class SqliteStore implements Store {
  private readonly db: Database.Database;
  private readonly stmt: ReturnType<typeof prepareStatements>;

  constructor(options: SqliteStoreOptions) {
    const path = options.path;
    const where = path === ':memory:' ? 'in-memory database' : `database file ${resolve(path)}`;
    try {
      if (path !== ':memory:') mkdirSync(dirname(resolve(path)), { recursive: true });
    } catch (err) {
      throw new StoreOpenError(`cannot create the directory for ${where}: ${(err as Error).message}`);
    }
    let db: Database.Database | undefined;
    try {
      db = new Database(path);
      // Reading the header proves the file is SQLite; a write transaction proves we can write it.
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${options.synchronous === 'normal' ? 'NORMAL' : 'FULL'}`);
      db.pragma('busy_timeout = 5000');
      db.pragma('foreign_keys = OFF');
      const version = db.pragma('user_version', { simple: true }) as number;
      if (version > SCHEMA_VERSION) {
        throw new Error(`schema version ${version} is newer than this server understands (${SCHEMA_VERSION})`);
      }
      db.exec('BEGIN IMMEDIATE');
      db.exec(SCHEMA);
      db.pragma(`user_version = ${SCHEMA_VERSION}`);
      db.exec('COMMIT');
      const check = db.pragma('quick_check(1)', { simple: true });
      if (check !== 'ok') throw new Error(`integrity check failed: ${String(check)}`);
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
    this.db = db;
    this.stmt = prepareStatements(db);
  }

  private row(record: JobRecord) {
    const { job } = record;
    return {
      id: job.id,
      status: job.status,
      seq: job.seq,
      updatedAt: job.updatedAt,
      finishedAt: FINISHED.includes(job.status) ? job.updatedAt : null,
      record: JSON.stringify(record),
    };
  }

  /**
   * Group commit: writes requested in the same event-loop turn share one transaction, hence one
   * fsync. Each promise still resolves only after the commit that contains its write, so a 202
   * keeps meaning "durable"; under concurrent producers the fsyncs per event drop sharply.
   */
  private pending: Array<{ write: () => unknown; resolve: (v: unknown) => void; reject: (e: unknown) => void }> = [];
  private flushScheduled = false;

  private enqueue<T>(write: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ write, resolve: resolve as (v: unknown) => void, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.flushScheduled = false;
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    const results: unknown[] = [];
    try {
      this.db.transaction(() => {
        for (const item of batch) results.push(item.write());
      })();
    } catch (err) {
      // The whole batch rolled back: nothing of it is stored, every caller hears so.
      for (const item of batch) item.reject(err);
      return;
    }
    batch.forEach((item, i) => item.resolve(results[i]));
  }

  insert(record: JobRecord): Promise<boolean> {
    const row = this.row(record);
    return this.enqueue(() => this.stmt.insert.run(row).changes === 1);
  }

  /**
   * `expectedSeq` is checked per write: the job service pipelines a job's writes, so a write built
   * on an earlier one that failed (or never landed) must be refused, without failing the batch.
   */
  save(record: JobRecord, eventIds: readonly EventIdEntry[] = [], expectedSeq?: number): Promise<void> {
    const row = this.row(record);
    const id = record.job.id;
    const conflict = this.enqueue(() => {
      if (expectedSeq !== undefined) {
        const stored = this.stmt.seq.get(id) as number | undefined;
        if (stored !== expectedSeq) return new SeqConflictError(id, expectedSeq, stored);
      }
      this.stmt.save.run(row);
      for (const e of eventIds) this.stmt.addEvent.run(id, e.eventId, e.seq);
      return undefined;
    });
    return conflict.then((err) => {
      if (err) throw err;
    });
  }

  async get(id: string): Promise<JobRecord | undefined> {
    const text = this.stmt.get.get(id) as string | undefined;
    return text === undefined ? undefined : (JSON.parse(text) as JobRecord);
  }

  async getMany(ids: readonly string[]): Promise<Array<JobRecord | undefined>> {
    return Promise.all(ids.map((id) => this.get(id)));
  }

  async findEvent(jobId: string, eventId: string): Promise<number | undefined> {
    return this.stmt.findEvent.get(jobId, eventId) as number | undefined;
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
    for (const row of this.stmt.count.all() as { status: JobStatus; n: number }[]) counts[row.status] = row.n;
    return counts;
  }

  async pruneFinished(before: number): Promise<string[]> {
    const pruned: string[] = [];
    const batch = this.db.transaction((ids: string[]) => {
      for (const id of ids) {
        this.stmt.deleteEvents.run(id);
        this.stmt.deleteJob.run(id);
      }
    });
    // Batches keep each write transaction (and the event-loop pause) short.
    for (;;) {
      const ids = this.stmt.finishedBefore.all(before) as string[];
      if (ids.length === 0) break;
      batch(ids);
      pruned.push(...ids);
      if (ids.length < 1000) break;
    }
    return pruned;
  }

  async appendHistory(key: string, sample: unknown, maxPerKey: number): Promise<void> {
    this.db.transaction(() => {
      this.stmt.appendHistory.run(key, JSON.stringify(sample));
      this.stmt.trimHistory.run(key, key, maxPerKey);
    })();
  }

  async loadHistory(): Promise<Array<{ key: string; sample: unknown }>> {
    return (this.stmt.loadHistory.all() as { key: string; sample: string }[]).map((r) => ({
      key: r.key,
      sample: JSON.parse(r.sample) as unknown,
    }));
  }

  async close(): Promise<void> {
    if (!this.db.open) return;
    this.flush();
    // Fold the WAL back into the main file so a copied .db is complete on its own.
    try {
      this.db.pragma('wal_checkpoint(TRUNCATE)');
    } finally {
      this.db.close();
    }
  }
}
