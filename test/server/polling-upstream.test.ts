/**
 * What the polling adapters do when the upstream misbehaves, against a real local HTTP upstream
 * and the real job service, in virtual time: 429 + Retry-After, malformed JSON, bad values,
 * slow answers, timeouts, an unreachable upstream that comes back, a failure retried through
 * `retryUrl`, ETags, and secret headers.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { close, createPolled, jobOf, runUntil, stack, STEPS } from '../fixtures/polling-stack.js';

const gaps = (times: number[]): number[] => times.slice(1).map((t, i) => t - times[i]!);

describe('polling an upstream that misbehaves', () => {
  test('429 with Retry-After: the next poll waits as asked, and the job carries on', async () => {
    const s = await stack();
    try {
      await createPolled(s, 'r1', 'flat');
      await runUntil(s, s.clock.now() + 5000);
      s.upstream.setFault({ type: 'rateLimit', retryAfterS: 7 });
      const from = s.upstream.requests.length;
      await runUntil(s, s.clock.now() + 20_000);
      const times = s.upstream.requests.slice(from).map((r) => r.at);
      assert.ok(times.length >= 2 && times.length <= 4, `${times.length} polls in 20 s under Retry-After: 7`);
      for (const gap of gaps(times)) assert.ok(gap >= 7000, `polled again after ${gap} ms`);
      assert.equal((await jobOf(s, 'r1')).status, 'running', 'a short throttle is not an error');
      s.upstream.setFault(null);
      await runUntil(s, s.upstream.completesAt('r1') + 3000);
      assert.equal((await jobOf(s, 'r1')).status, 'completed');
    } finally {
      await close(s);
    }
  });

  test('malformed JSON → upstream_bad_response at once, then the job recovers by itself', async () => {
    const s = await stack();
    try {
      await createPolled(s, 'm1', 'flat');
      await runUntil(s, s.clock.now() + 15_000);
      s.upstream.setFault({ type: 'malformed' });
      await runUntil(s, s.clock.now() + 20_000); // the next poll, whenever the cadence puts it
      let job = await jobOf(s, 'm1');
      assert.equal(job.status, 'failed');
      assert.equal(job.error?.code, 'upstream_bad_response');
      assert.equal(job.error?.retryable, true);
      assert.match(job.error!.message, /malformed JSON/);
      s.upstream.setFault(null);
      await runUntil(s, s.clock.now() + 70_000);
      job = await jobOf(s, 'm1');
      assert.equal(job.status, 'running', 'polling resumed the job when the upstream answered properly');
      assert.equal(job.error, undefined);
      assert.equal(job.steps.find((st) => st.status === 'running')?.id, STEPS[s.upstream.state('m1').step]!.name, 'caught up with the upstream');
      await runUntil(s, s.upstream.completesAt('m1') + 3000);
      assert.equal((await jobOf(s, 'm1')).status, 'completed');
    } finally {
      await close(s);
    }
  });

  test('a value the map cannot read names the failing path', async () => {
    const s = await stack();
    try {
      await createPolled(s, 'b1', 'flat');
      s.upstream.setFault({ type: 'badValue' }, 'b1');
      await runUntil(s, s.clock.now() + 2000);
      const job = await jobOf(s, 'b1');
      assert.equal(job.error?.code, 'upstream_bad_response');
      assert.match(job.error!.message, /at 'pct'/);
    } finally {
      await close(s);
    }
  });

  test('unreachable past the threshold → upstream_unreachable with backoff; recovers when it answers', async () => {
    const s = await stack({ unreachableAfterMs: 20_000 });
    try {
      await createPolled(s, 'u1', 'stages');
      await runUntil(s, s.clock.now() + 14_000); // in "analysis"
      s.upstream.setFault({ type: 'reset' });
      const from = s.upstream.requests.length;
      const down = s.clock.now();
      await runUntil(s, down + 15_000);
      assert.equal((await jobOf(s, 'u1')).status, 'running', 'a blip shorter than the threshold shows nothing');
      await runUntil(s, down + 60_000);
      let job = await jobOf(s, 'u1');
      assert.equal(job.status, 'failed');
      assert.equal(job.error?.code, 'upstream_unreachable');
      assert.equal(job.error?.retryable, true);
      assert.equal(job.error?.step, 'analysis');
      const times = s.upstream.requests.slice(from).map((r) => r.at);
      const g = gaps(times);
      assert.ok(g.length >= 3 && g[g.length - 1]! > g[0]! * 2, `backoff grows: ${g.join(', ')}`);
      s.upstream.setFault(null);
      await runUntil(s, s.clock.now() + 65_000);
      job = await jobOf(s, 'u1');
      assert.ok(job.status === 'running' || job.status === 'completed', job.status);
      assert.equal(job.error, undefined);
      await runUntil(s, s.upstream.completesAt('u1') + 3000);
      assert.equal((await jobOf(s, 'u1')).status, 'completed');
    } finally {
      await close(s);
    }
  });

  test('5xx answers count as unreachable too', async () => {
    const s = await stack({ unreachableAfterMs: 5000 });
    try {
      await createPolled(s, 'e1', 'queue');
      s.upstream.setFault({ type: 'status', status: 502 });
      await runUntil(s, s.clock.now() + 30_000);
      const job = await jobOf(s, 'e1');
      assert.equal(job.error?.code, 'upstream_unreachable');
      assert.match(job.error!.message, /HTTP 502/);
    } finally {
      await close(s);
    }
  });

  test('slow answers are waited for; answers slower than the timeout are failures', async () => {
    const s = await stack({ unreachableAfterMs: 10_000 });
    try {
      await createPolled(s, 'slow', 'flat', {}, {});
      s.upstream.setFault({ type: 'slow', delayMs: 150 }, 'slow');
      await runUntil(s, s.clock.now() + 15_000);
      assert.equal((await jobOf(s, 'slow')).steps[1]!.status, 'running');
    } finally {
      await close(s);
    }
    const t = await stack({ unreachableAfterMs: 10_000, adapters: [new (await import('../../server/polling/http-adapter.js')).HttpAdapter({ timeoutMs: 200 })] });
    try {
      await createPolled(t, 'hang', 'flat');
      t.upstream.setFault({ type: 'hang' }, 'hang');
      await runUntil(t, t.clock.now() + 30_000);
      const job = await jobOf(t, 'hang');
      assert.equal(job.error?.code, 'upstream_unreachable');
      assert.match(job.error!.message, /no answer within 200 ms/);
    } finally {
      await close(t);
    }
  });

  test('an upstream failure fails the step; retry POSTs retryUrl with the secret headers, then polling resumes', async () => {
    const s = await stack();
    try {
      const secret = 'Bearer s3cr3t-upstream-key';
      await createPolled(
        s,
        'f1',
        'flat',
        { retryUrl: s.upstream.retryUrl('f1'), headers: { Authorization: secret } },
        { failAt: { step: 2, fraction: 0.4, message: 'GPU out of memory' } },
      );
      await runUntil(s, s.upstream.stepChangeAt('f1', 2) + 15_000);
      let job = await jobOf(s, 'f1');
      assert.equal(job.status, 'failed');
      assert.equal(job.error?.code, 'upstream_failed');
      assert.equal(job.error?.message, 'GPU out of memory');
      assert.equal(job.error?.step, 'planning');
      const polls = s.upstream.jobs.get('f1')!.polls;
      await runUntil(s, s.clock.now() + 120_000);
      assert.equal(s.upstream.jobs.get('f1')!.polls, polls, 'a failed job is not polled');
      assert.ok(s.upstream.requests.every((r) => r.headers.authorization === secret), 'the secret header reaches the upstream');
      assert.ok(!JSON.stringify(job).includes('s3cr3t'), 'and never the job');

      await s.service.retry('f1');
      await s.manager.idle();
      const retries = s.upstream.jobs.get('f1')!.retries;
      assert.equal(retries.length, 1);
      assert.deepEqual(retries[0]!.body, { type: 'retry', jobId: 'f1', step: 'planning' });
      assert.equal(retries[0]!.headers.authorization, secret);
      await runUntil(s, s.clock.now() + 5000);
      job = await jobOf(s, 'f1');
      assert.equal(job.status, 'running');
      assert.equal(job.steps[2]!.status, 'running');
      assert.equal(job.steps[0]!.status, 'completed', 'completed steps stay completed');
      await runUntil(s, s.upstream.completesAt('f1') + 3000);
      job = await jobOf(s, 'f1');
      assert.equal(job.status, 'completed');
      assert.equal(job.attempts, 1);
    } finally {
      await close(s);
    }
  });

  test('ETag: unchanged answers are 304s', async () => {
    const s = await stack();
    try {
      await createPolled(s, 'q1', 'queue', {}, { queuedMs: 120_000 });
      await runUntil(s, s.clock.now() + 100_000);
      const reqs = s.upstream.requests.filter((r) => r.jobId === 'q1');
      assert.ok(reqs.length >= 3);
      assert.ok(reqs.slice(1).every((r) => typeof r.headers['if-none-match'] === 'string'), 'every later poll sends If-None-Match');
      assert.equal((await jobOf(s, 'q1')).status, 'queued');
      assert.ok(reqs.length <= 20, `a long queue wait is polled sparingly (${reqs.length} polls in 100 s)`);
    } finally {
      await close(s);
    }
  });

  test('sources are validated before a job exists', async () => {
    const s = await stack();
    try {
      const steps = STEPS.map((st) => ({ id: st.name }));
      const base = { type: 'http', url: 'https://up.example/jobs/1', map: { status: 'state' } };
      assert.equal(s.manager.validate(base, steps), null);
      assert.match(s.manager.validate({ ...base, type: 'kafka' }, steps)!, /source.type/);
      assert.match(s.manager.validate({ ...base, url: 'ftp://x/y' }, steps)!, /http or https/);
      assert.match(s.manager.validate({ ...base, url: 'https://u:p@x/y' }, steps)!, /credentials/);
      assert.match(s.manager.validate({ ...base, headers: { Authorization: 'a\nb' } }, steps)!, /single-line/);
      assert.doesNotMatch(s.manager.validate({ ...base, headers: { Authorization: 'top-secret\n' } }, steps)!, /top-secret/);
      assert.match(s.manager.validate({ ...base, minIntervalMs: 10 }, steps)!, /minIntervalMs/);
      assert.match(s.manager.validate({ ...base, minIntervalMs: 5000, maxIntervalMs: 1000 }, steps)!, /exceed/);
      assert.match(s.manager.validate({ ...base, map: { step: 'x..y' } }, steps)!, /empty segment/);
    } finally {
      await close(s);
    }
  });
});
