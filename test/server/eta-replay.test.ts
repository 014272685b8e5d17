// The eta-replay CLI as a user runs it: a child process reading a trace on stdin.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

const WRAPPER = fileURLToPath(new URL('../fixtures/eta-replay-cli.ts', import.meta.url));

function startReplay() {
  return spawn(process.execPath, ['--import', 'tsx', WRAPPER], { stdio: ['pipe', 'pipe', 'pipe'] });
}

async function replay(input: string): Promise<{ out: Array<Record<string, unknown>>; err: string; code: number | null }> {
  const child = startReplay();
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  child.stdin.end(input);
  const [code] = await once(child, 'close');
  return { out: out.split('\n').filter(Boolean).map((l) => JSON.parse(l)), err, code };
}

const ISSUE_TRACE = [
  '{"t":0,"type":"job","jobId":"j1","kind":"resume-tailor","steps":[{"id":"init","complexity":1},{"id":"analysis","complexity":3.2}]}',
  '{"t":120,"type":"step_start","jobId":"j1","step":"init"}',
  '{"t":300,"type":"progress","jobId":"j1","step":"init","progress":0.5}',
  '{"t":480,"type":"step_end","jobId":"j1","step":"init"}',
  '{"t":900,"type":"step_failed","jobId":"j1","step":"analysis"}',
  '{"t":5000,"type":"job_end","jobId":"j1","status":"completed"}',
];

test('answers one line per event except job_end, with t and jobId of the event', async () => {
  const { out, err, code } = await replay(ISSUE_TRACE.join('\n') + '\n');
  assert.equal(code, 0);
  assert.equal(err, '');
  assert.deepEqual(out.map((o) => o.t), [0, 120, 300, 480, 900]);
  for (const o of out) {
    assert.deepEqual(Object.keys(o), ['t', 'jobId', 'remainingMs', 'low', 'high']);
    assert.equal(o.jobId, 'j1');
    const { remainingMs, low, high } = o as { remainingMs: number; low: number; high: number };
    assert.ok(Number.isInteger(remainingMs) && remainingMs >= 0);
    assert.ok(low <= remainingMs && remainingMs <= high, JSON.stringify(o));
  }
});

test('reports malformed lines on stderr with their line number and skips them', async () => {
  const lines = [
    ISSUE_TRACE[0],
    'this is not json',
    '{"t":50,"type":"step_start","jobId":"nope","step":"init"}',
    '{"t":60,"type":"progress","jobId":"j1","step":"init","progress":1.5}',
    '{"t":70,"type":"warp","jobId":"j1"}',
    '{"type":"step_start","jobId":"j1","step":"init"}',
    '{"t":80,"type":"step_start","jobId":"j1","step":"missing"}',
    '',
    '{"t":120,"type":"step_start","jobId":"j1","step":"init","extra":"ignored"}',
    '{"t":100,"type":"step_end","jobId":"j1","step":"init"}',
    '[1,2]',
  ];
  const { out, err, code } = await replay(lines.join('\n'));
  assert.equal(code, 0);
  assert.deepEqual(out.map((o) => o.t), [0, 120]);
  const reported = err.trim().split('\n');
  assert.deepEqual(
    reported.map((l) => Number(/line (\d+)/.exec(l)?.[1])),
    [2, 3, 4, 5, 6, 7, 10, 11],
    err,
  );
  assert.match(err, /line 2: not valid JSON/);
  assert.match(err, /line 3: unknown job "nope"/);
  assert.match(err, /line 4: "progress" must be a number between 0 and 1/);
  assert.match(err, /line 7: job "j1" has no step "missing"/);
  assert.match(err, /line 10: "t" goes backwards/);
});

test('is a streaming filter: answers each line before the next one arrives', async () => {
  const child = startReplay();
  const answers = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  for (const line of ISSUE_TRACE.slice(0, 4)) {
    child.stdin.write(line + '\n');
    const { value } = await answers.next();
    assert.equal(JSON.parse(value as string).t, JSON.parse(line).t);
  }
  child.stdin.end();
  const [code] = await once(child, 'close');
  assert.equal(code, 0);
});

test('learns across jobs: the second run of a kind gets a history-based estimate', async () => {
  const job = (id: string, t0: number): string[] => [
    `{"t":${t0},"type":"job","jobId":"${id}","kind":"k","steps":[{"id":"a"},{"id":"b"}]}`,
    `{"t":${t0},"type":"step_start","jobId":"${id}","step":"a"}`,
    `{"t":${t0 + 2000},"type":"step_end","jobId":"${id}","step":"a"}`,
    `{"t":${t0 + 2000},"type":"step_start","jobId":"${id}","step":"b"}`,
    `{"t":${t0 + 8000},"type":"step_end","jobId":"${id}","step":"b"}`,
    `{"t":${t0 + 8000},"type":"job_end","jobId":"${id}","status":"completed"}`,
  ];
  const lines = [0, 1, 2, 3, 4, 5].flatMap((i) => job(`j${i}`, i * 10_000));
  const { out, code } = await replay(lines.join('\n') + '\n');
  assert.equal(code, 0);
  assert.equal(out.length, 6 * 5);
  const last = out.slice(-5) as Array<{ remainingMs: number }>;
  // At the start of the last job: ~8 s left; after step a: ~6 s.
  // (The built-in prior before any history would say ~60 s.)
  assert.ok(Math.abs(last[1]!.remainingMs - 8000) < 2000, JSON.stringify(last[1]));
  assert.ok(Math.abs(last[3]!.remainingMs - 6000) < 1500, JSON.stringify(last[3]));
});
