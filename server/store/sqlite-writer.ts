/**
 * How the SQLite store's writes reach the disk, with group commit either way: writes requested
 * while the previous batch commits (or within one event-loop turn) share one transaction, hence
 * one fsync, and each promise resolves only after the commit that contains its write.
 *
 * - `ThreadWriter` (files): the write connection lives in a worker thread
 *   (sqlite-write-worker.ts). The event loop hands a batch over and keeps serving sockets and
 *   requests while the thread commits; one batch is in flight at a time, and what arrives
 *   meanwhile becomes the next batch, so batches grow with the load and the fsync time.
 * - `InlineWriter` (`:memory:`, which another thread cannot open): commits on the event loop,
 *   batching one loop turn. Nothing is fsynced, so nothing long blocks the loop.
 *
 * A failed batch rolls back as a whole: every write in it is rejected, nothing of it is stored.
 */
import { Worker } from 'node:worker_threads';
import type Database from 'better-sqlite3';
import { prepareWrites, type Synchronous, type WriteOp, type WriteResult } from './sqlite-schema.js';
import type { FromWriter, ToWriter, WriterData } from './sqlite-write-worker.js';
import { encodeWrites } from './sqlite-write-wire.js';

export interface SqliteWriter {
  write(op: WriteOp): Promise<WriteResult>;
  /** Commits what is queued, then stops; later writes are refused. */
  close(): Promise<void>;
}

interface Pending {
  op: WriteOp;
  resolve(result: WriteResult): void;
  reject(err: unknown): void;
}

export class WriterClosedError extends Error {
  constructor(reason: string) {
    super(`the SQLite writer is closed: ${reason}`);
    this.name = 'WriterClosedError';
  }
}

export class InlineWriter implements SqliteWriter {
  private readonly run: ReturnType<typeof prepareWrites>;
  private queue: Pending[] = [];
  private scheduled = false;
  private closed = false;

  constructor(db: Database.Database) {
    this.run = prepareWrites(db);
  }

  write(op: WriteOp): Promise<WriteResult> {
    if (this.closed) return Promise.reject(new WriterClosedError('store closed'));
    return new Promise((resolve, reject) => {
      this.queue.push({ op, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0) return;
    let results: WriteResult[];
    try {
      results = this.run(batch.map((p) => p.op));
    } catch (err) {
      for (const p of batch) p.reject(err);
      return;
    }
    batch.forEach((p, i) => p.resolve(results[i]!));
  }

  async close(): Promise<void> {
    this.flush();
    this.closed = true;
  }
}

export class ThreadWriter implements SqliteWriter {
  private readonly worker: Worker;
  private queue: Pending[] = [];
  private inFlight: Pending[] | undefined;
  private batchNo = 0;
  private scheduled = false;
  private failure: Error | undefined;
  private closing: Promise<void> | undefined;
  private onClosed: (() => void) | undefined;

  constructor(path: string, synchronous: Synchronous) {
    const workerData: WriterData = { path, synchronous };
    if (import.meta.url.endsWith('.ts')) {
      // From the TypeScript sources (tests through tsx): the thread registers tsx, then loads the .ts entry.
      const entry = new URL('./sqlite-write-worker.ts', import.meta.url).href;
      const boot = `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}); })`;
      this.worker = new Worker(boot, { eval: true, workerData });
    } else {
      this.worker = new Worker(new URL('./sqlite-write-worker.js', import.meta.url), { workerData });
    }
    this.worker.on('message', (msg: FromWriter) => this.onMessage(msg));
    this.worker.on('error', (err) => this.fail(err));
    this.worker.on('exit', (code) => {
      if (this.onClosed) this.onClosed();
      else this.fail(new Error(`the SQLite writer thread exited (code ${code})`));
    });
  }

  write(op: WriteOp): Promise<WriteResult> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closing) return Promise.reject(new WriterClosedError('store closed'));
    return new Promise((resolve, reject) => {
      this.queue.push({ op, resolve, reject });
      // Idle: send at the end of this loop turn, so a turn's writes share a commit.
      if (!this.inFlight && !this.scheduled) {
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          this.send();
        });
      }
    });
  }

  /** Resolves once everything queued is committed and the thread has checkpointed and stopped. */
  close(): Promise<void> {
    return (this.closing ??= (async () => {
      await this.drained();
      if (this.failure) return;
      await new Promise<void>((resolve) => {
        this.onClosed = resolve;
        this.worker.postMessage({ close: true } satisfies ToWriter);
      });
    })());
  }

  private drained(): Promise<void> {
    if (!this.inFlight && this.queue.length === 0) return Promise.resolve();
    const last = this.queue.at(-1) ?? this.inFlight!.at(-1)!;
    return new Promise((resolve) => {
      const { resolve: done, reject: failed } = last;
      last.resolve = (r) => (done(r), resolve());
      last.reject = (e) => (failed(e), resolve());
      if (!this.inFlight) this.send();
    });
  }

  private send(): void {
    if (this.inFlight || this.queue.length === 0 || this.failure) return;
    this.inFlight = this.queue;
    this.queue = [];
    this.worker.postMessage({ batch: ++this.batchNo, ops: encodeWrites(this.inFlight.map((p) => p.op)) } satisfies ToWriter);
  }

  private onMessage(msg: FromWriter): void {
    if ('fatal' in msg) return this.fail(new Error(msg.fatal));
    if (!('batch' in msg)) return;
    const batch = this.inFlight ?? [];
    this.inFlight = undefined;
    // What queued up during this commit goes out now, before the callers below run.
    this.send();
    if ('error' in msg) {
      const err = Object.assign(new Error(msg.error.message), msg.error.code ? { code: msg.error.code } : {});
      for (const p of batch) p.reject(err);
    } else {
      batch.forEach((p, i) => p.resolve(msg.results[i] as WriteResult));
    }
  }

  /** The thread died: every waiting and later write fails (the job service answers 503). */
  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    for (const p of [...(this.inFlight ?? []), ...this.queue]) p.reject(err);
    this.inFlight = undefined;
    this.queue = [];
  }
}
