/**
 * The SQLite writer thread: owns the write connection, commits each batch it is sent as one
 * transaction (one fsync under PT_DB_SYNC=full) and answers with each write's result. The event
 * loop never waits on an fsync; it only hears that a batch is on disk.
 *
 *   main → worker: { batch, ops }        worker → main: { batch, results } | { batch, error }
 *   main → worker: { close: true }       worker → main: { closed: true } (after a TRUNCATE checkpoint)
 */
import { parentPort, workerData } from 'node:worker_threads';
import { openDatabase, prepareWrites, type Synchronous, type WriteOp } from './sqlite-schema.js';

export interface WriterData {
  path: string;
  synchronous: Synchronous;
}

export type ToWriter = { batch: number; ops: WriteOp[] } | { close: true };
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
  write = prepareWrites(db);
} catch (err) {
  port.postMessage({ fatal: (err as Error).message } satisfies FromWriter);
  process.exit(1);
}

port.on('message', (msg: ToWriter) => {
  if ('close' in msg) {
    try {
      // Fold the WAL back into the main file so a copied .db is complete on its own.
      db.pragma('wal_checkpoint(TRUNCATE)');
    } finally {
      db.close();
      port.postMessage({ closed: true } satisfies FromWriter);
      port.close();
    }
    return;
  }
  let reply: FromWriter;
  try {
    reply = { batch: msg.batch, results: write(msg.ops) };
  } catch (err) {
    const e = err as Error & { code?: string };
    reply = { batch: msg.batch, error: { message: e.message, ...(e.code && { code: e.code }) } };
  }
  port.postMessage(reply);
});
