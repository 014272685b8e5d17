/**
 * The demo pipeline (demo/pipeline.ts), which uses only the producer SDK: its five stages to
 * completion, a failing stage that waits for a retry and resumes, Cancel stopping the run, and the
 * demo server's page Cancel (its browser token over HTTP).
 * Part of the producer SDK tests against the real server (real HTTP, real WebSocket, real
 * SQLite; test/fixtures/producer-harness.ts): faults are injected only between the SDK and the
 * server, never by mocking the server.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { startDemoJob, DEMO_STAGES, DEMO_FAILING_STAGE } from '../../demo/pipeline.js';
import type { Job } from '../../producer/index.js';
import { api, startServerProcess } from '../fixtures/server-process.js';
import { producer, server, token, waitFor, watchJob, within, useServer } from '../fixtures/producer-harness.js';

useServer();

describe('demo pipeline', () => {
  test('runs the five stages to completion using only the SDK', async () => {
    const { jobId, done } = await startDemoJob({
      baseUrl: server.url,
      token: await token(['progress:read', 'progress:write'], ['demo-*']),
      speed: 40,
    });
    assert.match(jobId, /^demo-/);
    const reader = await producer();
    const first = await reader.getJob(jobId);
    assert.equal(first.kind, 'generation');
    assert.deepEqual(
      first.steps.map((s) => s.id),
      ['initialization', 'analysis', 'planning', 'implementation', 'finalization'],
    );
    assert.deepEqual(
      first.steps.map((s) => s.label),
      DEMO_STAGES.map((s) => s.label),
    );

    // Follow it like a browser does, and keep every state it is shown.
    const seen = await watchJob(jobId, await token(['progress:read'], [jobId]));
    assert.equal(await within(done, 'the demo run', 20_000), 'completed');
    const final = await reader.getJob(jobId);
    assert.equal(final.status, 'completed');
    assert.ok(final.steps.every((s) => s.status === 'completed'));
    assert.ok(final.seq > 15, `expected many progress events, seq is ${final.seq}`);
    await waitFor('the final update', async () => (seen.jobs.at(-1)?.status === 'completed' ? true : undefined));
    seen.close();
    const partial = seen.jobs.flatMap((j) => j.steps).filter((s) => s.status === 'running' && s.progress > 0 && s.progress < 1);
    assert.ok(partial.length > 5, 'in-step progress was shown while stages ran');
    assert.ok(new Set(partial.map((s) => s.message)).size > 2, 'with changing messages');
    const overall = seen.jobs.map((j) => j.progress);
    assert.deepEqual(overall, [...overall].sort((a, b) => a - b), 'overall progress never goes back');
  });

  test('with fail: true, one stage fails part-way, waits for a retry and resumes from it', async () => {
    const { jobId, done } = await startDemoJob({
      baseUrl: server.url,
      token: await token(['progress:read', 'progress:write'], ['demo-*']),
      fail: true,
      speed: 40,
    });
    const user = await producer({ token: await token(['progress:read', 'progress:retry'], [jobId]) });
    const failed: Job = await waitFor('the injected failure', async () => {
      const j = await user.getJob(jobId);
      return j.status === 'failed' ? j : undefined;
    });
    const failedStep = failed.steps.find((s) => s.status === 'failed')!;
    assert.equal(failedStep.id, DEMO_FAILING_STAGE);
    assert.ok(failedStep.progress > 0.3 && failedStep.progress < 0.7, `failed part-way (${failedStep.progress})`);
    assert.equal(failed.error?.retryable, true);
    assert.equal(failed.error?.step, DEMO_FAILING_STAGE);

    await user.retryJob(jobId);
    assert.equal(await within(done, 'the resumed demo run', 20_000), 'completed');
    const final = await user.getJob(jobId);
    assert.equal(final.status, 'completed');
    assert.equal(final.attempts, 1);
    for (const stage of ['initialization', 'analysis', 'planning']) {
      const before = failed.steps.find((s) => s.id === stage)!;
      const after = final.steps.find((s) => s.id === stage)!;
      assert.equal(after.startedAt, before.startedAt, `${stage} was not run again`);
    }
  });

  test('Cancel stops the five-stage run at once and it ends the job as canceled', async () => {
    const { jobId, done } = await startDemoJob({
      baseUrl: server.url,
      token: await token(['progress:read', 'progress:write'], ['demo-*']),
      speed: 4, // about 10 s in all: a cancel lands mid-run
    });
    const user = await producer({ token: await token(['progress:read', 'progress:cancel'], [jobId]) });
    await waitFor('a stage in progress', async () => {
      const j = await user.getJob(jobId);
      return j.steps.some((s) => s.status === 'running' && s.progress > 0) ? j : undefined;
    });
    const canceledAt = Date.now();
    await user.cancelJob(jobId, 'changed my mind');
    assert.equal(await within(done, 'the demo run to stop', 5_000), 'canceled');
    const tookMs = Date.now() - canceledAt;
    assert.ok(tookMs < 3_000, `stopped in ${tookMs} ms, far within the server's 30 s grace`);
    const final = await user.getJob(jobId);
    assert.equal(final.status, 'canceled');
    assert.equal(final.error, undefined, 'no cancel_timeout: the producer ended it');
    assert.equal(final.cancelRequested?.reason, 'changed my mind');
    assert.ok(final.steps.some((s) => s.status !== 'completed'), 'it did not run to the end');
  });

  test("the demo server's job: the page's Cancel (its browser token over HTTP) ends it as canceled at once", async () => {
    // The demo as users run it: `serve --demo` starts the pipeline (dist/demo/pipeline.js) at full length.
    const demo = await startServerProcess({ env: { PT_DEMO: '1' } });
    try {
      const started = await api<{ jobId: string; token: string }>(demo, 'POST', '/demo/jobs', undefined, {});
      assert.equal(started.status, 201, JSON.stringify(started.body));
      const { jobId, token: browserToken } = started.body;
      const read = () => api<Job>(demo, 'GET', `/v1/jobs/${jobId}`, browserToken).then((r) => r.body);
      await waitFor('a stage in progress', async () => {
        const j = await read();
        return j.steps.some((s) => s.status === 'running' && s.progress > 0) ? j : undefined;
      });
      const canceledAt = Date.now();
      const res = await api<{ seq: number }>(demo, 'POST', `/v1/jobs/${jobId}/cancel`, browserToken, { reason: 'from the page' });
      assert.equal(res.status, 202, JSON.stringify(res.body));
      const final = await waitFor('the job to end', async () => {
        const j = await read();
        return j.status === 'canceled' ? j : undefined;
      }, 10_000);
      const tookMs = Date.now() - canceledAt;
      assert.ok(tookMs < 3_000, `ended ${tookMs} ms after the cancel (the server's grace is 30 s)`);
      assert.equal(final.error, undefined, 'ended by the pipeline, not by cancel_timeout');
      assert.equal(final.cancelRequested?.reason, 'from the page');
      assert.ok(final.steps.some((s) => s.status !== 'completed'), 'the run stopped early');
    } finally {
      await demo.stop();
      demo.cleanup();
    }
  });
});
