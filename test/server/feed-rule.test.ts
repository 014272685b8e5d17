// The feed rule (server/core/feed.ts) in isolation, on a short window: creation and status changes
// at once; other shown changes at most once per window per job, the latest state sent when the
// window ends (never a stale one last); duplicates and older seqs dropped; only followed tags; the
// per-tag counter and what a congested client is sent again.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Job } from '../../protocol/index.js';
import { JobFeed } from '../../server/core/feed.js';
import { createJob } from '../../server/core/job-machine.js';
import { createLogger } from '../../server/app/log.js';

const WINDOW = 150;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function setup(latest: Job[] = []) {
  const sent: Array<{ tag: string; id: string; seq: number; status: string; progress: number }> = [];
  const feed = new JobFeed({ latest: async (_tag, limit) => latest.slice(0, limit), log: createLogger('silent'), intervalMs: WINDOW });
  feed.onUpdate((tag, json) => {
    const s = JSON.parse(json) as Job;
    sent.push({ tag, id: s.id, seq: s.seq, status: s.status, progress: s.progress });
  });
  return { feed, sent };
}

const base = (id = 'f1', tags = ['user:alice']): Job => createJob({ id, kind: 'k', steps: [{ id: 'a' }], tags }, 1000);
const next = (job: Job, patch: Partial<Job>): Job => ({ ...job, ...patch, seq: job.seq + 1 });

describe('feed rule', () => {
  test('only jobs carrying a followed tag; creation and status changes at once', async () => {
    const { feed, sent } = setup();
    const j1 = base();
    feed.observe(j1);
    assert.equal(sent.length, 0, 'nobody follows user:alice yet');
    await feed.follow('user:alice');
    feed.observe(base('other', ['user:bob']));
    feed.observe(base('none', []));
    const j2 = next(j1, {});
    feed.observe(j2);
    assert.deepEqual(sent.map((s) => [s.id, s.seq]), [['f1', 2]], 'first sight of a job is news: sent at once');
    const j3 = next(j2, { status: 'running' });
    feed.observe(j3);
    const j4 = next(j3, { status: 'completed', progress: 1 });
    feed.observe(j4);
    assert.deepEqual(sent.map((s) => [s.seq, s.status]), [[2, 'queued'], [3, 'running'], [4, 'completed']]);
    feed.close();
  });

  test('progress at most once per window, the latest state last; a status change in between goes at once', async () => {
    const { feed, sent } = setup();
    await feed.follow('user:alice');
    let j = next(base(), { status: 'running' });
    feed.observe(j);
    for (const p of [0.1, 0.2, 0.3]) feed.observe((j = next(j, { progress: p })));
    assert.equal(sent.length, 1, 'progress inside the window is held');
    await sleep(WINDOW + 50);
    assert.deepEqual(sent.map((s) => s.progress), [0, 0.3], 'the held change went out when the window ended, with the latest progress');
    // Another window: progress held, then a status change sends the latest state at once and nothing follows it.
    feed.observe((j = next(j, { progress: 0.5 })));
    feed.observe((j = next(j, { status: 'failed', progress: 0.6 })));
    assert.deepEqual(sent.at(-1), { tag: 'user:alice', id: 'f1', seq: j.seq, status: 'failed', progress: 0.6 });
    await sleep(WINDOW + 50);
    assert.equal(sent.length, 3, 'no stale progress after the status change');
    // Progress after a full quiet window goes at once.
    await sleep(WINDOW);
    feed.observe((j = next(j, { status: 'failed', progress: 0.7 })));
    assert.equal(sent.at(-1)!.progress, 0.7);
    feed.close();
  });

  test('duplicates and older seqs are dropped; a change no summary shows is not sent', async () => {
    const { feed, sent } = setup();
    await feed.follow('user:alice');
    const j1 = base();
    const j2 = next(j1, { status: 'running' });
    feed.observe(j2);
    feed.observe(j2); // the same state through a second channel
    feed.observe(j1); // an older one arriving late
    const j3 = next(j2, { steps: [{ ...j2.steps[0]!, message: 'only a step message' }] });
    feed.observe(j3);
    await sleep(WINDOW + 50);
    assert.deepEqual(sent.map((s) => s.seq), [2]);
    feed.close();
  });

  test('one message per followed tag; the per-tag counter; changedSince for a congested client', async () => {
    const { feed, sent } = setup();
    await feed.follow('user:alice');
    await feed.follow('org:acme');
    feed.observe(base('both', ['user:alice', 'org:acme', 'unfollowed']));
    assert.deepEqual(sent.map((s) => s.tag), ['user:alice', 'org:acme']);
    assert.equal(feed.tagSeq('user:alice'), 1);
    const mark = feed.tagSeq('user:alice');
    feed.observe(base('a2'));
    feed.observe(next(base('a2'), { status: 'running' }));
    feed.observe(base('a3'));
    const changed = feed.changedSince('user:alice', mark)!.map((json) => JSON.parse(json) as Job);
    assert.deepEqual(changed.map((j) => [j.id, j.status]), [['a2', 'running'], ['a3', 'queued']], 'each job once, its latest summary');
    // More jobs than a feed holds changed since: a whole feed instead.
    for (let i = 0; i < 60; i++) feed.observe(base(`many-${i}`));
    assert.equal(feed.changedSince('user:alice', mark), undefined);
    feed.unfollow('user:alice');
    feed.unfollow('org:acme');
    const before = sent.length;
    feed.observe(next(base('a3'), { status: 'running' }));
    assert.equal(sent.length, before, 'unfollowed: nothing');
    feed.close();
  });

  test('latest: the feed message summaries; resync re-takes the latest jobs, sending only what is new', async () => {
    const known = next(base('r1'), { status: 'running' });
    const { feed, sent } = setup([known, base('r2')]);
    await feed.follow('user:alice');
    const latest = (await feed.latest('user:alice')).map((json) => JSON.parse(json) as Job);
    assert.deepEqual(latest.map((j) => j.id), ['r1', 'r2']);
    assert.equal((latest[0] as unknown as { steps?: unknown }).steps, undefined, 'summaries, not jobs');
    feed.observe(known);
    sent.length = 0;
    await feed.resync(['user:alice']);
    assert.deepEqual(sent.map((s) => s.id), ['r2'], 'r1 was seen at that seq already');
    feed.close();
  });
});
