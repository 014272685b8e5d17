// The protocol's validators, as the server, the SDKs and a browser call them: typed values for
// good input, ApiError 400 naming the field for bad input.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  ApiError,
  ClientMessageError,
  FIELD_LIMITS,
  LIMITS,
  parseClientMessage,
  parseCreateJobRequest,
  parseEventsBody,
  parseJobEvent,
  parseRetryRequest,
} from '../../protocol/index.js';

const refused = (fn: () => unknown, code: string, message: RegExp) =>
  assert.throws(fn, (err: unknown) => err instanceof ApiError && err.status === 400 && err.code === code && message.test(err.message));

describe('parseCreateJobRequest', () => {
  test('a minimal job, and every optional field', () => {
    assert.deepEqual(parseCreateJobRequest({ kind: 'report', steps: [{ id: 'a' }] }), { kind: 'report', steps: [{ id: 'a' }] });
    const full = parseCreateJobRequest({
      id: 'acme-1',
      kind: 'report',
      steps: [{ id: 'a', label: 'A', complexity: 2 }],
      complexity: 3,
      meta: { user: 'u1' },
      webhook: 'https://hooks.example/retry',
    });
    assert.equal(full.id, 'acme-1');
    assert.equal(full.steps[0]!.complexity, 2);
    assert.equal(full.webhook, 'https://hooks.example/retry');
  });

  test('names the first problem', () => {
    refused(() => parseCreateJobRequest([]), 'bad_request', /body must be a JSON object/);
    refused(() => parseCreateJobRequest({ kind: '', steps: [{ id: 'a' }] }), 'bad_request', /kind must be a non-empty string/);
    refused(() => parseCreateJobRequest({ kind: 'k', steps: [] }), 'bad_request', /steps must be a non-empty array/);
    refused(() => parseCreateJobRequest({ kind: 'k', steps: [{ id: 'a' }, { id: 'a' }] }), 'bad_request', /steps\[1\]\.id "a" is repeated/);
    refused(() => parseCreateJobRequest({ kind: 'k', steps: [{ id: 'x'.repeat(FIELD_LIMITS.stepIdChars + 1) }] }), 'bad_request', /steps\[0\]\.id must match/);
    refused(() => parseCreateJobRequest({ kind: 'k', steps: [{ id: 'a', complexity: 0 }] }), 'bad_request', /steps\[0\]\.complexity must be a number > 0/);
    refused(() => parseCreateJobRequest({ kind: 'k', steps: [{ id: 'a' }], webhook: 'ftp://x' }), 'bad_request', /webhook must be an http\(s\) URL/);
    const steps = Array.from({ length: LIMITS.maxSteps + 1 }, (_, i) => ({ id: `s${i}` }));
    refused(() => parseCreateJobRequest({ kind: 'k', steps }), 'bad_request', /at most 100 steps/);
  });

  test('sizes are UTF-8 bytes of the JSON (multi-byte text counts in full)', () => {
    const meta = { note: 'é'.repeat(FIELD_LIMITS.metaBytes / 2) }; // 2 bytes each: over the limit
    refused(() => parseCreateJobRequest({ kind: 'k', steps: [{ id: 'a' }], meta }), 'bad_request', /meta is larger than 8192 bytes/);
  });
});

describe('events', () => {
  test('one event or an array; array problems name their index', () => {
    assert.deepEqual(parseEventsBody({ type: 'progress', step: 'a', progress: 0.5 }), [{ type: 'progress', step: 'a', progress: 0.5 }]);
    assert.equal(parseEventsBody([{ type: 'step_start', step: 'a' }, { type: 'step_end', step: 'a' }]).length, 2);
    refused(() => parseEventsBody([{ type: 'step_start', step: 'a' }, { type: 'nope' }]), 'bad_request', /^events\[1\]\.type must be one of/);
    const many = Array.from({ length: LIMITS.maxEventsPerRequest + 1 }, () => ({ type: 'progress', progress: 0.1 }));
    refused(() => parseEventsBody(many), 'bad_request', /at most 1000 events per request/);
  });

  test('progress outside 0..1 has its own code; eventId and error are checked', () => {
    refused(() => parseJobEvent({ type: 'progress', progress: 1.5 }), 'progress_out_of_range', /in 0\.\.1/);
    refused(() => parseJobEvent({ type: 'progress', progress: Number.NaN }), 'progress_out_of_range', /in 0\.\.1/);
    refused(() => parseJobEvent({ type: 'step_end', step: 'a', eventId: '' }), 'bad_request', /eventId must be a non-empty string/);
    refused(() => parseJobEvent({ type: 'step_failed', step: 'a', error: { code: 1 } }), 'bad_request', /error must be/);
    assert.deepEqual(parseJobEvent({ type: 'job_end', status: 'canceled' }), { type: 'job_end', status: 'canceled' });
  });

  test('retry bodies', () => {
    assert.deepEqual(parseRetryRequest(undefined), {});
    assert.deepEqual(parseRetryRequest({ step: 'b' }), { step: 'b' });
    refused(() => parseRetryRequest({ step: 3 }), 'bad_request', /step must be a string/);
    refused(() => parseRetryRequest('b'), 'bad_request', /body must be/);
  });
});

describe('parseClientMessage', () => {
  test('the four messages', () => {
    assert.deepEqual(parseClientMessage({ type: 'ping' }), { type: 'ping' });
    assert.deepEqual(parseClientMessage({ type: 'subscribe', jobId: 'j1', since: 3 }), { type: 'subscribe', jobId: 'j1', since: 3 });
    assert.deepEqual(parseClientMessage({ type: 'unsubscribe', jobId: 'j1', extra: 1 }), { type: 'unsubscribe', jobId: 'j1' });
    assert.deepEqual(parseClientMessage({ type: 'retry', jobId: 'j1', step: 'a' }), { type: 'retry', jobId: 'j1', step: 'a' });
  });

  test('refusals carry the job they concern when known', () => {
    const refusal = (msg: unknown) => {
      try {
        parseClientMessage(msg);
      } catch (err) {
        assert.ok(err instanceof ClientMessageError);
        return { message: err.message, jobId: err.jobId };
      }
      assert.fail('accepted');
    };
    assert.deepEqual(refusal({ type: 'subscribe', jobId: 'j1', since: 'x' }), { message: '"since" must be a number', jobId: 'j1' });
    assert.deepEqual(refusal({ type: 'subscribe', jobId: 'bad id' }), { message: 'subscribe needs a valid "jobId"', jobId: undefined });
    assert.match(refusal({ type: 'dance' }).message, /unknown message type/);
    assert.match(refusal([1]).message, /JSON object with a "type"/);
  });
});
