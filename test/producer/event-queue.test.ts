/**
 * The producer's per-job queue on its own (no server): what it coalesces, what it never drops,
 * and what it does when the retry budget runs out.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { EventsAccepted, JobEvent } from '../../protocol/index.js';
import { EventQueue } from '../../producer/event-queue.js';
import { ProducerError } from '../../producer/errors.js';

function gate() {
  let open!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  return { opened, open };
}

const ev = (type: JobEvent['type'], step?: string, progress?: number): JobEvent => ({ type, step, progress, eventId: `${type}-${step}-${progress}` });

test('progress coalesces to the latest per step between structural events, which are all kept in order', async () => {
  const sent: JobEvent[][] = [];
  const first = gate();
  let seq = 0;
  const q = new EventQueue({
    send: async (events) => {
      sent.push(events);
      if (sent.length === 1) await first.opened; // hold the first request: the rest queues
      seq += events.length;
      return { seq };
    },
    maxBatch: 1000,
    maxQueued: 1000,
    jobId: 'j',
    onGiveUp: () => undefined,
  });
  const calls: Array<Promise<EventsAccepted>> = [q.push(ev('step_start', 'a'))];
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setImmediate(r)); // the first request is in flight
  for (let i = 1; i <= 50; i++) {
    calls.push(q.push(ev('progress', 'a', i / 100)), q.push(ev('progress', 'b', i / 100)));
  }
  calls.push(q.push(ev('step_end', 'a')), q.push(ev('step_start', 'c')));
  for (let i = 1; i <= 50; i++) calls.push(q.push(ev('progress', 'c', i / 100)));
  calls.push(q.push(ev('step_failed', 'c')), q.push(ev('job_end')));
  assert.equal(q.size, 7);
  first.open();
  await Promise.all(calls);
  await q.drain();
  assert.equal(sent.length, 2);
  assert.deepEqual(
    sent[1]!.map((e) => `${e.type} ${e.step} ${e.progress ?? ''}`.trim()),
    ['progress a 0.5', 'progress b 0.5', 'step_end a', 'step_start c', 'progress c 0.5', 'step_failed c', 'job_end undefined'],
  );
});

test('beyond maxQueued progress entries the oldest is dropped, its callers settling with the newest', async () => {
  const sent: JobEvent[][] = [];
  const first = gate();
  const q = new EventQueue({
    send: async (events) => {
      sent.push(events);
      if (sent.length === 1) await first.opened;
      return { seq: sent.length };
    },
    maxBatch: 1000,
    maxQueued: 2,
    jobId: 'j',
    onGiveUp: () => undefined,
  });
  void q.push(ev('step_start', 'a'));
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setImmediate(r));
  const pa = q.push(ev('progress', 'a', 0.1));
  const sb = q.push(ev('step_start', 'b'));
  const pb = q.push(ev('progress', 'b', 0.2));
  const pc = q.push(ev('progress', 'c', 0.3)); // a third progress entry: the oldest (a) goes
  assert.equal(q.size, 3);
  first.open();
  assert.deepEqual(await Promise.all([pa, sb, pb, pc]), [{ seq: 2 }, { seq: 2 }, { seq: 2 }, { seq: 2 }]);
  assert.deepEqual(sent[1]!.map((e) => `${e.type} ${e.step}`), ['step_start b', 'progress b', 'progress c']);
});

test('a transient failure after the budget: every queued call rejects with producer_gave_up, later calls too, then the job end is sent', async () => {
  const sent: JobEvent[][] = [];
  let down = true;
  const reported: ProducerError[] = [];
  const q = new EventQueue({
    send: async (events) => {
      sent.push(events);
      if (down) throw new ProducerError('network_error', 'ECONNREFUSED', { retryable: true, jobId: 'j' });
      return { seq: 9 };
    },
    maxBatch: 2,
    maxQueued: 1000,
    jobId: 'j',
    onGiveUp: (err) => {
      reported.push(err);
      down = false;
      return { event: ev('job_end', undefined), settle: { resolve: () => undefined, reject: () => undefined } };
    },
  });
  const calls = [q.push(ev('step_start', 'a')), q.push(ev('progress', 'a', 0.5)), q.push(ev('step_end', 'a'))];
  const results = await Promise.allSettled(calls);
  const errs = results.map((r) => (r.status === 'rejected' ? (r.reason as ProducerError) : undefined));
  assert.ok(errs.every((e) => e?.code === 'producer_gave_up' && e === errs[0]), 'one shared producer_gave_up');
  assert.equal((errs[0]!.cause as ProducerError).code, 'network_error');
  await assert.rejects(q.push(ev('step_start', 'b')), (e: unknown) => e === errs[0]);
  await q.drain();
  assert.equal(reported.length, 1);
  assert.deepEqual(sent.map((b) => b.map((e) => e.type)), [['step_start', 'progress'], ['job_end']]);
});
