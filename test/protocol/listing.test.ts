// The listing and feed parts of the protocol: the query of GET /v1/jobs and GET /v1/feed (400s
// name the parameter), feed subscribe/unsubscribe messages, and the summary's fields.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ApiError, ClientMessageError, LISTING, parseClientMessage, parseFeedQuery, parseListJobsQuery, summaryOf, type Job } from '../../protocol/index.js';

const q = (text: string) => parseListJobsQuery(new URLSearchParams(text));
const refusal = (fn: () => unknown): string => {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ApiError);
    assert.equal(err.status, 400);
    return err.message;
  }
  assert.fail('accepted');
};

describe('parseListJobsQuery', () => {
  test('defaults, and every parameter', () => {
    assert.deepEqual(q(''), { limit: LISTING.defaultLimit });
    assert.deepEqual(q('tag=user:alice&status=running,queued&status=running&kind=render job&limit=100&cursor=abc_-1&access_token=x'), {
      limit: 100,
      tag: 'user:alice',
      status: ['running', 'queued'],
      kind: 'render job',
      cursor: 'abc_-1',
    });
    assert.deepEqual(q('cursor='), { limit: 20 }, 'an empty cursor is the first page');
  });

  test('refusals name the parameter', () => {
    assert.match(refusal(() => q('status=done')), /^status must be a comma-separated list of queued, running, completed, failed, canceled/);
    assert.match(refusal(() => q('status=')), /^status must be/);
    for (const limit of ['0', '101', '1.5', '-1', 'x', '']) assert.match(refusal(() => q(`limit=${limit}`)), /^limit must be an integer from 1 to 100/);
    assert.match(refusal(() => q('tag=a b')), /^tag must be/);
    assert.match(refusal(() => q(`tag=${'t'.repeat(129)}`)), /^tag must be/);
    assert.match(refusal(() => q(`kind=${'k'.repeat(65)}`)), /^kind must be/);
    assert.match(refusal(() => q('tag=a&tag=b')), /^tag is given more than once/);
    assert.match(refusal(() => q('cursor=a+b')), /^cursor must be/);
    assert.match(refusal(() => q(`cursor=${'c'.repeat(257)}`)), /^cursor must be/);
  });
});

test('parseFeedQuery: the tag, required', () => {
  assert.equal(parseFeedQuery(new URLSearchParams('tag=org:acme&access_token=x')), 'org:acme');
  assert.match(refusal(() => parseFeedQuery(new URLSearchParams(''))), /^tag is required/);
  assert.match(refusal(() => parseFeedQuery(new URLSearchParams('tag=%20'))), /^tag must be/);
});

test('feed subscribe and unsubscribe messages; refusals carry the tag', () => {
  assert.deepEqual(parseClientMessage({ type: 'subscribe', tag: 'user:alice' }), { type: 'subscribe', tag: 'user:alice' });
  assert.deepEqual(parseClientMessage({ type: 'unsubscribe', tag: 'user:alice' }), { type: 'unsubscribe', tag: 'user:alice' });
  assert.deepEqual(parseClientMessage({ type: 'subscribe', jobId: 'j1' }), { type: 'subscribe', jobId: 'j1' });
  const both = (() => {
    try {
      parseClientMessage({ type: 'subscribe', tag: 'user:alice', jobId: 'j1' });
    } catch (err) {
      return err as ClientMessageError;
    }
    assert.fail('accepted');
  })();
  assert.match(both.message, /either "jobId" or "tag"/);
  assert.equal(both.tag, 'user:alice');
  assert.throws(() => parseClientMessage({ type: 'subscribe', tag: 'bad tag' }), /"tag" must be/);
  assert.throws(() => parseClientMessage({ type: 'subscribe', tag: 7 }), /"tag" must be/);
  assert.throws(() => parseClientMessage({ type: 'retry', tag: 'user:alice' }), /retry needs a valid "jobId"/);
});

test('summaryOf: the documented fields in order, meta.title only when a string, tags always an array', () => {
  const job: Job = {
    id: 'j1', kind: 'k', status: 'failed', progress: 0.5, seq: 4, steps: [{ id: 'a', label: 'A', status: 'failed', progress: 0.5 }],
    eta: null, error: { code: 'boom', message: 'm' }, meta: { title: 'T', other: 1 }, result: { big: true },
    cancelRequested: { at: 5 }, createdAt: 1, updatedAt: 2,
  };
  const s = summaryOf(job);
  assert.deepEqual(Object.keys(s), ['id', 'kind', 'status', 'progress', 'eta', 'tags', 'seq', 'createdAt', 'updatedAt', 'error', 'cancelRequested', 'meta']);
  assert.deepEqual(s.meta, { title: 'T' });
  assert.deepEqual(s.tags, []);
  assert.equal(summaryOf({ ...job, meta: { title: 3 } }).meta, undefined);
  assert.equal(summaryOf({ ...job, meta: undefined }).meta, undefined);
  assert.deepEqual(summaryOf({ ...job, tags: ['x'] }).tags, ['x']);
});
