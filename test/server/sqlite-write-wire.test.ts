// The writer thread's batch encoding (server/store/sqlite-write-wire.ts): every write comes out as
// it went in, whatever the job's text holds (control characters included: they are the separators).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { rowOf, type WriteOp } from '../../server/store/sqlite-schema.js';
import { decodeWrites, encodeWrites } from '../../server/store/sqlite-write-wire.js';
import type { Job } from '../../protocol/index.js';

const job = (id: string, message: string): Job => ({
  id,
  kind: 'k\u0001ind',
  status: 'running',
  progress: 0.5,
  seq: 7,
  steps: [{ id: 's1', label: 'Step\u0000one', status: 'running', progress: 0.5, message }],
  eta: null,
  tags: ['user:1', 'team:a'],
  createdAt: 1,
  updatedAt: 2,
});

test('a batch of every kind of write round-trips through one string', () => {
  const ops: WriteOp[] = [
    { op: 'insert', row: rowOf({ job: job('a', 'plain') }) },
    { op: 'save', row: rowOf({ job: job('b', 'nul \u0000 soh \u0001 "quoted" \\ é 😀 \ud800'), webhook: { url: 'https://x' } }), eventIds: [{ eventId: 'e-1', seq: 7 }], expectedSeq: 6 },
    { op: 'save', row: { ...rowOf({ job: { ...job('c', 'done'), status: 'completed' } }), tags: [] }, eventIds: [], expectedSeq: undefined },
    { op: 'history', key: JSON.stringify(['k', 's1']), sample: JSON.stringify({ type: 'done', note: '\u0000\u0001' }), maxPerKey: 256 },
    { op: 'prune', before: 123 },
  ];
  const text = encodeWrites(ops);
  assert.equal(typeof text, 'string');
  assert.deepEqual(decodeWrites(text), ops);
  // The stored record is the very text the store made, byte for byte.
  assert.equal((decodeWrites(text)[1] as Extract<WriteOp, { op: 'save' }>).row.record, (ops[1] as Extract<WriteOp, { op: 'save' }>).row.record);
});

test('an empty batch is an empty string and back', () => {
  assert.equal(encodeWrites([]), '');
  assert.deepEqual(decodeWrites(''), []);
});
