/**
 * One server per database file: the SQLite store holds an exclusive lock on `<db>.lock` for as
 * long as it is open, and a second server on the same file refuses to start, naming the holder.
 * (Two servers on one file would each serve part of the traffic from their own job cache: the
 * second would answer 503 for jobs the first changed, and a publish on one would never reach the
 * sockets of the other.)
 *
 * Why this lock and not another:
 * - Not SQLite's `locking_mode=EXCLUSIVE` on the database itself: the store uses two connections
 *   (the event loop's reader and the writer thread's), and an exclusive lock would shut out our
 *   own reader. A lock that only one side takes is needed, on a file of its own.
 * - Not a pid file created with O_EXCL: after `kill -9` or a power loss it stays behind, and
 *   telling a stale one from a live one by its pid is unreliable (pids are reused, and in a
 *   container the server is often pid 1 every time, so a restarted container would see "its own"
 *   pid alive, or another process's).
 * - A lock held by the kernel is released when its process dies, however it dies: the crash
 *   test restarts on the same file at once. Node has no flock(), but SQLite's file locks are POSIX
 *   advisory locks held by the kernel, so `<db>.lock` is a tiny SQLite file of its own: we hold a
 *   write (RESERVED) lock on it by keeping a `BEGIN IMMEDIATE` transaction open, which still lets
 *   a second instance read the row that names us (pid, host, start time) for its error message.
 *   It works wherever SQLite's own locking works (local disks; not on NFS without working locks,
 *   where SQLite is unsafe anyway).
 * - The lock file is never deleted: removing it on exit would let a starting server lock the old,
 *   unlinked inode while a third one creates and locks a new file. It is harmless to leave, and
 *   safe to delete while no server uses the database.
 *
 * `:memory:` needs no lock: it is private to its connection.
 */
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import Database from 'better-sqlite3';
import { ensureDirectory } from './sqlite-schema.js';
import { StoreOpenError } from './store.js';

export interface DatabaseLock {
  /** The lock file. */
  readonly file: string;
  /** Lets the next server in. Idempotent. */
  release(): void;
}

interface Owner {
  pid: number;
  host: string;
  started: string;
}

const BUSY = new Set(['SQLITE_BUSY', 'SQLITE_LOCKED']);
const isBusy = (err: unknown) => BUSY.has((err as { code?: string }).code ?? '');

/** Takes the lock of database file `path`, or throws a StoreOpenError naming the server that holds it. */
export function lockDatabase(path: string): DatabaseLock {
  const dbFile = resolve(path);
  const file = `${dbFile}.lock`;
  ensureDirectory(path);
  let db: Database.Database | undefined;
  try {
    // No waiting: a held lock means another server, and it will not let go.
    db = new Database(file, { timeout: 0 });
    take(db, dbFile, file);
    // Say who we are, then take the lock again for good (the commit let go of it for a moment;
    // whoever got in between holds it now, and we refuse).
    db.exec('CREATE TABLE IF NOT EXISTS owner (pid INTEGER NOT NULL, host TEXT NOT NULL, started TEXT NOT NULL)');
    db.exec('DELETE FROM owner');
    db.prepare('INSERT INTO owner (pid, host, started) VALUES (?, ?, ?)').run(process.pid, hostname(), new Date().toISOString());
    // A second server reading who holds the lock holds a shared lock for a moment: wait for it.
    db.pragma('busy_timeout = 2000');
    db.exec('COMMIT');
    db.pragma('busy_timeout = 0');
    take(db, dbFile, file);
  } catch (err) {
    try {
      db?.close();
    } catch {
      /* already unusable */
    }
    if (err instanceof StoreOpenError) throw err;
    const e = err as Error & { code?: string };
    throw new StoreOpenError(
      `cannot use the lock file ${file} of database file ${dbFile}: ${e.message}${e.code ? ` [${e.code}]` : ''} ` +
        '(check that its directory is writable; the lock file is safe to delete while no server uses the database)',
    );
  }
  const held = db;
  let released = false;
  return {
    file,
    release() {
      if (released) return;
      released = true;
      try {
        held.exec('ROLLBACK');
      } finally {
        held.close();
      }
    },
  };
}

/** BEGIN IMMEDIATE: the write lock, kept until release. */
function take(db: Database.Database, dbFile: string, file: string): void {
  try {
    db.exec('BEGIN IMMEDIATE');
  } catch (err) {
    if (!isBusy(err)) throw err;
    const owner = readOwner(db);
    const who = owner ? `pid ${owner.pid} on ${owner.host}, started ${owner.started}` : 'a process that has not said who it is yet';
    throw new StoreOpenError(
      `database file ${dbFile} is in use by another progress-tracker (${who}; it holds the lock file ${file}). ` +
        'Two servers on one database would each serve part of the traffic from their own memory: stop the other one first, ' +
        'or give this one another database (PT_DB, --db).',
    );
  }
}

function readOwner(db: Database.Database): Owner | undefined {
  try {
    // The holder may be committing its row right now: give it a moment.
    db.pragma('busy_timeout = 500');
    return db.prepare('SELECT pid, host, started FROM owner LIMIT 1').get() as Owner | undefined;
  } catch {
    return undefined;
  }
}
