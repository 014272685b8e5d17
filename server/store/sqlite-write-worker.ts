/**
 * The SQLite writer thread: owns the write connection, commits each batch it is sent as one
 * transaction (one fsync under PT_DB_SYNC=full) and answers with each write's result. The event
 * loop never waits on an fsync; it only hears that a batch is on disk.
 *
 *   main → worker: { batch, ops }        worker → main: { batch, results } | { batch, error }
 *   (ops: one string, sqlite-write-wire.ts)
 *   main → worker: { close: true }       worker → main: { closed: true } (after a TRUNCATE checkpoint)
 *
 * Checkpoints are this thread's job. SQLite's automatic checkpoint only runs once the WAL holds
 * 1000 pages (4 MB): on a smaller volume the WAL filled the disk first and then never shrank,
 * even after space was freed. So, after answering a batch, the thread runs a PASSIVE checkpoint
 * once a second while writes go on (and past 4 MB of WAL, SQLite's own threshold), a TRUNCATE one
 * past 16 MB (readers kept PASSIVE ones from finishing) — both lower on a small or nearly full
 * volume (an eighth and a quarter of the free space), and a TRUNCATE one when writes stop for a
 * second or a batch failed (a full disk gets the WAL's space back). The size thresholds are not
 * lower on purpose: each checkpoint is an extra fsync of the database file before the next batch
 * can commit, and at 1 MB they ran after nearly every batch under load (durable ingest fell by
 * about a quarter). Once a checkpoint has finished, the next write restarts the WAL, and
 * journal_size_limit = the PASSIVE threshold cuts the file to that size then (SQLite would keep it
 * at its largest size for reuse: on a 2 MB volume, half of it); new frames overwrite the kept
 * part. Cutting it to nothing (limit 0, before) freed its blocks at every restart and allocated
 * them again as it regrew, metadata in each fsync: about a quarter of this thread's CPU per save
 * under many small commits. The file only exceeds the limit once the WAL itself does, so the size
 * checks above still measure the WAL. A checkpoint never delays the answer to the batch it
 * follows; a TRUNCATE one waits at most 100 ms for readers and is retried later.
 *
 * A failed batch (SQLITE_FULL on a full disk, an I/O error) is rolled back and answered with its
 * error, and the connection stays usable: the next batch is tried as usual and succeeds once the
 * cause is gone, without a restart.
 */
import { statfsSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { openDatabase, prepareWrites, type Synchronous } from './sqlite-schema.js';
import { decodeWrites } from './sqlite-write-wire.js';

/** A PASSIVE checkpoint at least this often (ms) while writes go on. */
export const CHECKPOINT_EVERY_MS = 1000;
/** A WAL file larger than this is checkpointed after the batch that grew it (less on a small volume, see `limits`). */
export const CHECKPOINT_WAL_ABOVE_BYTES = 4 * 1024 * 1024;
/** A WAL larger than this is checkpointed and truncated after the batch that grew it (likewise). */
export const TRUNCATE_WAL_ABOVE_BYTES = 16 * 1024 * 1024;
/** The floor of both thresholds on a nearly full volume. */
const MIN_WAL_THRESHOLD_BYTES = 256 * 1024;
/** Writes stopped this long: checkpoint and truncate the WAL. */
const IDLE_TRUNCATE_MS = 1000;
/** How long a TRUNCATE checkpoint waits for readers before trying again later. */
const TRUNCATE_BUSY_MS = 100;
const BUSY_TIMEOUT_MS = 5000;

export interface WriterData {
  path: string;
  synchronous: Synchronous;
}

/** `ops`: the batch's writes, encoded by sqlite-write-wire.ts. */
export type ToWriter = { batch: number; ops: string } | { close: true };
export type FromWriter =
  | { batch: number; results: unknown[] }
  | { batch: number; error: { message: string; code?: string } }
  | { closed: true }
  | { fatal: string };

const port = parentPort!;
const { path, synchronous } = workerData as WriterData;
let db: ReturnType<typeof openDatabase>;
let write: ReturnType<typeof prepareWrites>;
try {
  db = openDatabase(path, synchronous, { create: false });
  // The WAL file is cut to the PASSIVE threshold whenever it restarts (see the header and `walLimits`).
  db.pragma(`journal_size_limit = ${CHECKPOINT_WAL_ABOVE_BYTES}`);
  write = prepareWrites(db);
} catch (err) {
  port.postMessage({ fatal: (err as Error).message } satisfies FromWriter);
  process.exit(1);
}

const walFile = `${path}-wal`;
let lastCheckpoint = Date.now();
/** Written (or failed) since the last complete TRUNCATE checkpoint. */
let dirty = false;
let idleTimer: NodeJS.Timeout | undefined;

/** Runs a checkpoint; never throws (a full disk or a busy reader: the next one tries again). Whether it completed. */
function checkpoint(mode: 'PASSIVE' | 'TRUNCATE'): boolean {
  lastCheckpoint = Date.now();
  try {
    if (mode === 'TRUNCATE') db.pragma(`busy_timeout = ${TRUNCATE_BUSY_MS}`);
    // One row: busy (1 = could not finish), frames in the WAL, frames checkpointed.
    const [row] = db.pragma(`wal_checkpoint(${mode})`) as Array<{ busy: number }>;
    return row?.busy === 0;
  } catch {
    return false;
  } finally {
    if (mode === 'TRUNCATE') db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
  }
}

function walBytes(): number {
  return statSync(walFile, { throwIfNoEntry: false })?.size ?? 0;
}

/**
 * The WAL thresholds for the volume as it is: the fixed ones on a roomy disk; on a small or
 * nearly full one, an eighth (PASSIVE) and a quarter (TRUNCATE) of the free space, so the WAL
 * never fills the volume by itself. Free space is read at most once a second. The WAL file's size
 * limit follows the PASSIVE threshold (see the header).
 */
const limits = { passive: CHECKPOINT_WAL_ABOVE_BYTES, truncate: TRUNCATE_WAL_ABOVE_BYTES, readAt: 0 };
function walLimits(): typeof limits {
  const now = Date.now();
  if (now - limits.readAt >= CHECKPOINT_EVERY_MS) {
    limits.readAt = now;
    try {
      const fs = statfsSync(dirname(walFile));
      const free = fs.bavail * fs.bsize + walBytes();
      const passive = Math.floor(Math.max(MIN_WAL_THRESHOLD_BYTES, Math.min(CHECKPOINT_WAL_ABOVE_BYTES, free / 8)));
      if (passive !== limits.passive) db.pragma(`journal_size_limit = ${passive}`);
      limits.passive = passive;
      limits.truncate = Math.max(2 * MIN_WAL_THRESHOLD_BYTES, Math.min(TRUNCATE_WAL_ABOVE_BYTES, free / 4));
    } catch {
      /* keep the last ones */
    }
  }
  return limits;
}

/** After each batch, once its answer is on its way. */
function afterBatch(failed: boolean): void {
  dirty = true;
  const bytes = walBytes();
  const since = Date.now() - lastCheckpoint;
  const { passive, truncate } = walLimits();
  if (failed || bytes > truncate) {
    if (checkpoint('TRUNCATE')) dirty = false;
  } else if (since >= CHECKPOINT_EVERY_MS || bytes > passive) {
    checkpoint('PASSIVE');
  }
  clearTimeout(idleTimer);
  if (dirty) {
    idleTimer = setTimeout(onIdle, IDLE_TRUNCATE_MS);
    idleTimer.unref();
  }
}

function onIdle(): void {
  if (checkpoint('TRUNCATE')) dirty = false;
  else {
    // A reader was busy, or the disk is still full: try again in a while.
    idleTimer = setTimeout(onIdle, IDLE_TRUNCATE_MS);
    idleTimer.unref();
  }
}

port.on('message', (msg: ToWriter) => {
  if ('close' in msg) {
    clearTimeout(idleTimer);
    try {
      // Fold the WAL back into the main file so a copied .db is complete on its own.
      db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      db.pragma('wal_checkpoint(TRUNCATE)');
    } catch {
      /* a full disk: the WAL stays, and the next open recovers from it */
    } finally {
      db.close();
      port.postMessage({ closed: true } satisfies FromWriter);
      port.close();
    }
    return;
  }
  let reply: FromWriter;
  try {
    reply = { batch: msg.batch, results: write(decodeWrites(msg.ops)) };
  } catch (err) {
    // The transaction was rolled back (better-sqlite3 does it if SQLite did not): nothing of the
    // batch is stored, and the connection is ready for the next one.
    const e = err as Error & { code?: string };
    reply = { batch: msg.batch, error: { message: e.message, ...(e.code && { code: e.code }) } };
  }
  port.postMessage(reply);
  try {
    afterBatch('error' in reply);
  } catch {
    /* housekeeping only: never let it take the writer down */
  }
});
