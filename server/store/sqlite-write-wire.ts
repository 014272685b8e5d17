/**
 * How a batch of writes crosses to the writer thread: one string instead of an array of objects.
 * postMessage copies a string as one block, where an array of rows is walked and rebuilt field by
 * field on both sides (structured clone); under many small commits that walk was the largest
 * single cost on the event loop's side of a durable write.
 *
 * Format: ops joined by U+0001. An insert or save is a JSON array of its columns, U+0000, then the
 * job's record as it is stored (already JSON text). Other ops are their JSON. Neither separator can
 * occur inside: JSON.stringify escapes every control character, and the record is JSON text.
 */
import type { JobRow, WriteOp } from './sqlite-schema.js';
import type { EventIdEntry } from './store.js';

const OP_SEP = '\u0001';
const RECORD_SEP = '\u0000';

type RowHead = [id: string, status: JobRow['status'], seq: number, updatedAt: number, finishedAt: number | null, createdAt: number, kind: string, tags: readonly string[]];
type InsertHead = ['insert', ...RowHead];
type SaveHead = ['save', ...RowHead, eventIds: readonly EventIdEntry[], expectedSeq: number | null];

const rowHead = (r: JobRow): RowHead => [r.id, r.status, r.seq, r.updatedAt, r.finishedAt, r.createdAt, r.kind, r.tags];

export function encodeWrites(ops: readonly WriteOp[]): string {
  let out = '';
  for (let i = 0; i < ops.length; i++) {
    const w = ops[i]!;
    if (i > 0) out += OP_SEP;
    if (w.op === 'insert') out += JSON.stringify(['insert', ...rowHead(w.row)] satisfies InsertHead) + RECORD_SEP + w.row.record;
    else if (w.op === 'save') out += JSON.stringify(['save', ...rowHead(w.row), w.eventIds, w.expectedSeq ?? null] satisfies SaveHead) + RECORD_SEP + w.row.record;
    else out += JSON.stringify(w);
  }
  return out;
}

export function decodeWrites(text: string): WriteOp[] {
  if (text === '') return [];
  return text.split(OP_SEP).map((part): WriteOp => {
    const at = part.indexOf(RECORD_SEP);
    if (at < 0) return JSON.parse(part) as WriteOp;
    const head = JSON.parse(part.slice(0, at)) as InsertHead | SaveHead;
    const [op, id, status, seq, updatedAt, finishedAt, createdAt, kind, tags] = head;
    const row: JobRow = { id, status, seq, updatedAt, finishedAt, createdAt, kind, tags, record: part.slice(at + 1) };
    if (op === 'insert') return { op, row };
    const [, , , , , , , , , eventIds, expectedSeq] = head as SaveHead;
    return { op, row, eventIds, expectedSeq: expectedSeq ?? undefined };
  });
}
