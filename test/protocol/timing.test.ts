// The one backoff, Retry-After parser, sleep and clamp that the widget, the SDK and the server share.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backoffDelay, clamp, clamp01, parseRetryAfter, sleep } from '../../protocol/index.js';

test('backoff doubles from the base with jitter in the upper half, capped at max', () => {
  const opts = { baseMs: 1000, maxMs: 60_000 };
  assert.equal(backoffDelay(0, { ...opts, random: () => 0 }), 500);
  assert.equal(backoffDelay(0, { ...opts, random: () => 1 }), 1000);
  assert.equal(backoffDelay(3, { ...opts, random: () => 1 }), 8000);
  assert.equal(backoffDelay(39, { ...opts, random: () => 1 }), 60_000);
  assert.equal(backoffDelay(39, { ...opts, random: () => 0 }), 30_000);
});

test('Retry-After: delta-seconds or an HTTP date, capped; absent or invalid is undefined', () => {
  assert.equal(parseRetryAfter('3', 0), 3000);
  assert.equal(parseRetryAfter(' 1.5 ', 0), 1500);
  assert.equal(parseRetryAfter(new Date(10_000).toUTCString(), 4000), 6000);
  assert.equal(parseRetryAfter(new Date(1_000).toUTCString(), 4000), 0, 'a date in the past means now');
  assert.equal(parseRetryAfter('600', 0, 60_000), 60_000);
  assert.equal(parseRetryAfter('soon', 0), undefined);
  assert.equal(parseRetryAfter(null), undefined);
  assert.equal(parseRetryAfter(''), undefined);
});

test('sleep resolves after the delay and rejects with the abort reason', async () => {
  await sleep(1);
  const abort = new AbortController();
  const waiting = sleep(60_000, abort.signal);
  abort.abort(new Error('stop'));
  await assert.rejects(waiting, /stop/);
  await assert.rejects(sleep(1, abort.signal), /stop/, 'an aborted signal rejects at once');
});

test('clamp and clamp01', () => {
  assert.equal(clamp(5, 0, 3), 3);
  assert.equal(clamp(-1, 0, 3), 0);
  assert.equal(clamp(Number.NaN, 0, 3), 0);
  assert.equal(clamp01(1.2), 1);
  assert.equal(clamp01(Number.POSITIVE_INFINITY), 0);
});
