// The pure job state machine (server/jobs.ts): no server, no clock, just rules.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { applyEvent, applyRetry, createJob, weightedProgress } from '../../server/core/job-machine.js';
import type { Job, JobEvent } from '../../protocol/index.js';

const job0 = () => createJob({ id: 'j', kind: 'k', steps: [{ id: 'a', complexity: 1 }, { id: 'b', complexity: 3 }, { id: 'c' }] }, 1000);

function run(job: Job, ...events: JobEvent[]): Job {
  for (const [i, e] of events.entries()) {
    const out = applyEvent(job, e, 2000 + i);
    if (!out.ok) throw out.error;
    job = out.value;
  }
  return job;
}

describe('job state machine', () => {
  test('inputs are never mutated and every accepted change adds exactly 1 to seq', () => {
    const start = job0();
    const frozen = JSON.stringify(start);
    const next = run(start, { type: 'step_start', step: 'a' }, { type: 'progress', step: 'a', progress: 0.5 });
    assert.equal(JSON.stringify(start), frozen);
    assert.equal(next.seq, start.seq + 2);
  });

  test('progress weighs steps by complexity (default 1)', () => {
    const j = run(job0(), { type: 'step_start', step: 'a' }, { type: 'step_end', step: 'a' }, { type: 'step_start', step: 'b' }, { type: 'progress', step: 'b', progress: 0.5 });
    assert.equal(weightedProgress(j), (1 + 1.5) / 5);
    assert.equal(j.progress, 0.5);
  });

  test('progress without step targets the only running step, else needs one', () => {
    const j = run(job0(), { type: 'step_start', step: 'a' }, { type: 'progress', progress: 0.3 });
    assert.equal(j.steps[0]!.progress, 0.3);
    const two = run(j, { type: 'step_start', step: 'b' });
    const out = applyEvent(two, { type: 'progress', progress: 0.4 }, 3000);
    assert.ok(!out.ok && out.error.code === 'bad_request');
  });

  test('job_end failed marks running steps failed; canceled keeps steps; both end the job', () => {
    const failed = run(job0(), { type: 'step_start', step: 'a' }, { type: 'job_end', status: 'failed', error: { code: 'oom', message: 'out of memory' } });
    assert.equal(failed.status, 'failed');
    assert.equal(failed.steps[0]!.status, 'failed');
    assert.equal(failed.error?.code, 'oom');
    const canceled = run(job0(), { type: 'step_start', step: 'a' }, { type: 'job_end', status: 'canceled' });
    assert.equal(canceled.status, 'canceled');
    const after = applyEvent(canceled, { type: 'step_end', step: 'a' }, 5000);
    assert.ok(!after.ok && after.error.code === 'job_finished' && after.error.status === 409);
  });

  test('a failed job may still be closed for good with job_end canceled', () => {
    const failed = run(job0(), { type: 'step_start', step: 'a' }, { type: 'step_failed', step: 'a' });
    assert.equal(run(failed, { type: 'job_end', status: 'canceled' }).status, 'canceled');
  });

  test('retry resets the failed step and later unfinished ones, keeps completed steps, restarts the clock', () => {
    const failed = run(
      job0(),
      { type: 'step_start', step: 'a' },
      { type: 'step_end', step: 'a' },
      { type: 'step_start', step: 'b' },
      { type: 'progress', step: 'b', progress: 0.7, message: 'almost' },
      { type: 'step_failed', step: 'b', error: { code: 'x', message: 'boom' } },
    );
    const out = applyRetry(failed, undefined, 9000);
    assert.ok(out.ok);
    const { job, step } = out.value;
    assert.equal(step, 'b');
    assert.equal(job.status, 'queued');
    assert.equal(job.seq, failed.seq + 1);
    assert.equal(job.attempts, 1);
    assert.equal(job.error, undefined);
    assert.deepEqual(job.steps.map((s) => [s.status, s.progress]), [['completed', 1], ['pending', 0], ['pending', 0]]);
    assert.equal(job.steps[1]!.message, undefined);
    assert.equal(job.steps[1]!.complexity, 3);
    // Resuming restarts the step's clock.
    const resumed = run(job, { type: 'step_start', step: 'b' });
    assert.equal(resumed.status, 'running');
    assert.equal(resumed.steps[1]!.startedAt, 2000);
    // Retrying a completed step or a job that did not fail is refused.
    const bad = applyRetry(failed, 'a', 9000);
    assert.ok(!bad.ok && bad.error.code === 'nothing_to_retry');
    const none = applyRetry(job0(), undefined, 9000);
    assert.ok(!none.ok && none.error.code === 'nothing_to_retry');
    const unknown = applyRetry(failed, 'zzz', 9000);
    assert.ok(!unknown.ok && unknown.error.code === 'unknown_step');
  });
});
