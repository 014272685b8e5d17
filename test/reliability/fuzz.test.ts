// Fuzzing with a fixed seed: 100,000+ random or mutated WebSocket frames and HTTP request bodies
// (broken JSON, wrong types, huge numbers, deep nesting, unicode, lone surrogates, binary frames,
// oversized frames, prototype-pollution keys). Proves: the server never crashes or hangs; each
// WebSocket frame that must be refused gets a `bad_request` error (or the socket a documented
// close code: 1003 binary, 1009 too big, 4008 flood), every reply is a known message; every HTTP
// body gets a JSON `{error:{code,message}}` 4xx or a success, never a 5xx or a dropped
// connection; and a well-behaved client is served (pong and live update) after every batch.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { ERROR_CODES as PROTOCOL_ERROR_CODES, type ServerMessage } from '../../protocol/index.js';
import { api, connectWs, createJob, seededRandom, startServerProcess, within, type ServerProcess, type WsClient } from '../fixtures/reliability.js';

const SEED = 0x5eed_2026;
const WS_FRAMES = 90_000;
const HTTP_BODIES = 10_000;
/** Frames per fuzz socket: under the burst of 100 so the rate limit does not hide the answers. */
const FRAMES_PER_SOCKET = 90;
const PARALLEL_SOCKETS = 100;
const ERROR_CODES = new Set<string>(PROTOCOL_ERROR_CODES);

const rnd = seededRandom(SEED);
const int = (n: number) => Math.floor(rnd() * n);
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;

const WEIRD_STRINGS = ['', ' ', '\u0000', '\ud800', '\udfff', '😀'.repeat(50), 'é́́', '\u202e', '../../etc/passwd', '%00', 'a'.repeat(300), '${7*7}', '<script>', '*', 'job:1', '-x'];
const WEIRD_NUMBERS = [0, -0, -1, 1e308, -1e308, 1e-320, 2 ** 53 + 1, 1.5, 0.999999999999, 1.0000001, Number.MAX_SAFE_INTEGER];
const POLLUTION_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf'];

function randomValue(depth = 0): unknown {
  switch (int(depth > 3 ? 5 : 8)) {
    case 0:
      return pick(WEIRD_STRINGS);
    case 1:
      return pick(WEIRD_NUMBERS);
    case 2:
      return pick([true, false, null]);
    case 3:
      return String.fromCodePoint(...Array.from({ length: int(20) }, () => int(0x10ffff + 1)).filter((c) => c < 0xd800 || c > 0xdfff));
    case 4:
      return int(1000) - 500;
    case 5:
      return Array.from({ length: int(4) }, () => randomValue(depth + 1));
    default: {
      const o: Record<string, unknown> = {};
      for (let i = int(4); i > 0; i--) o[rnd() < 0.3 ? pick(POLLUTION_KEYS) : pick(['type', 'jobId', 'step', 'since', 'x', 'progress'])] = randomValue(depth + 1);
      return o;
    }
  }
}

/** Text JSON with `__proto__` etc. as real own keys (JSON.stringify would drop a prototype). */
function pollutionJson(): string {
  const key = pick(POLLUTION_KEYS);
  return pick([
    `{"${key}":{"type":"ping"}}`,
    `{"type":"subscribe","jobId":"fuzz-live","${key}":{"polluted":true}}`,
    `{"${key}":{"polluted":true},"type":"ping"}`,
    `[{"${key}":1}]`,
  ]);
}

function deepNesting(maxBytes: number): string {
  const depth = 1 + int(Math.floor(maxBytes / 2) - 2);
  return rnd() < 0.5 ? '['.repeat(depth) + ']'.repeat(depth) : '{"a":'.repeat(Math.floor(depth / 5)) + '1' + '}'.repeat(Math.floor(depth / 5));
}

/** Corrupts valid JSON text: flips, drops, duplicates or inserts characters. */
function mutate(text: string): string {
  const chars = [...text];
  for (let i = 1 + int(3); i > 0; i--) {
    const at = int(chars.length + 1);
    switch (int(4)) {
      case 0:
        chars.splice(at, 1);
        break;
      case 1:
        chars.splice(at, 0, pick(['{', '}', '"', ',', ':', '[', '\\', '\u0000', '😀', 'x']));
        break;
      case 2:
        chars.splice(at, 0, ...chars.slice(at, at + int(10)));
        break;
      default:
        chars[at] = String.fromCharCode(int(128));
    }
  }
  return chars.join('');
}

const VALID_FRAMES = [
  { type: 'ping' },
  { type: 'subscribe', jobId: 'fuzz-live' },
  { type: 'subscribe', jobId: 'fuzz-missing', since: 3 },
  { type: 'unsubscribe', jobId: 'fuzz-live' },
  { type: 'retry', jobId: 'fuzz-live', step: 'one' },
];

function wsFrame(): string {
  // Deep nesting is costly to parse on both ends: one frame in 40 is enough to probe it.
  if (rnd() < 0.025) return deepNesting(16 * 1024 - 16);
  switch (int(7)) {
    case 0:
      return JSON.stringify(randomValue());
    case 1:
      return mutate(JSON.stringify(pick(VALID_FRAMES)));
    case 2:
      return JSON.stringify({ ...pick(VALID_FRAMES), [pick(['type', 'jobId', 'since', 'step'])]: randomValue(1) });
    case 3:
      return pollutionJson();
    case 4:
      return pollutionJson();
    case 5:
      return pick(['', 'null', '1e999999', '-', '"ping"', '{"type":"ping"', '{"type":"ping"}}', '\ufeff{"type":"ping"}', '{"type":"ping","type":"subscribe"}']);
    default:
      return JSON.stringify(pick(VALID_FRAMES));
  }
}

/** What the server must do with a text frame: answer an error, a pong, or maybe anything. */
function oracle(frame: string): 'error' | 'pong' | 'any' {
  let v: unknown;
  try {
    v = JSON.parse(frame);
  } catch {
    return 'error';
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'error';
  const type = (v as { type?: unknown }).type;
  if (type === 'ping') return 'pong';
  if (type === 'subscribe' || type === 'unsubscribe' || type === 'retry') return 'any';
  return 'error';
}

interface SocketResult {
  mustError: number;
  mustPong: number;
  errors: number;
  pongs: number;
  bad: string[];
  close?: number;
  expectClose?: number[];
}

/** One fuzz socket: `n` text frames, a final ping, and sometimes a frame that must close it. */
async function fuzzSocket(server: ServerProcess, token: string, n: number): Promise<SocketResult> {
  const ws = new WebSocket(`${server.wsUrl}?access_token=${encodeURIComponent(token)}`);
  const r: SocketResult = { mustError: 0, mustPong: 0, errors: 0, pongs: 0, bad: [] };
  const frames = Array.from({ length: n }, wsFrame);
  const terminal = rnd() < 0.15 ? pick(['binary', 'oversized', 'huge'] as const) : undefined;
  const done = new Promise<void>((resolve, reject) => {
    ws.on('error', reject);
    ws.on('message', (data, isBinary) => {
      let msg: ServerMessage;
      try {
        msg = JSON.parse(data.toString()) as ServerMessage;
      } catch {
        r.bad.push(`unparsable reply ${data.toString().slice(0, 80)} (binary: ${isBinary})`);
        return;
      }
      if (msg.type === 'error') {
        r.errors++;
        if (!ERROR_CODES.has(msg.code) || typeof msg.message !== 'string' || !msg.message) r.bad.push(`unclear error ${JSON.stringify(msg)}`);
      } else if (msg.type === 'pong') {
        r.pongs++;
        // The final ping's pong: everything before it was handled (messages are handled in order).
        if (!terminal && r.pongs === r.mustPong + 1) ws.close();
      } else if (!['snapshot', 'update', 'control'].includes(msg.type)) r.bad.push(`unknown reply ${JSON.stringify(msg).slice(0, 80)}`);
    });
    ws.on('close', (code) => {
      r.close = code;
      resolve();
    });
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  for (const f of frames) {
    const expect = oracle(f);
    if (expect === 'error') r.mustError++;
    if (expect === 'pong') r.mustPong++;
    ws.send(f);
  }
  if (terminal === 'binary') {
    ws.send(Buffer.from(Array.from({ length: 1 + int(64) }, () => int(256))));
    r.expectClose = [1003];
  } else if (terminal) {
    ws.send('x'.repeat(terminal === 'huge' ? 300_000 + int(300_000) : 16 * 1024 + 1 + int(100)));
    r.expectClose = [1009];
  } else ws.send('{"type":"ping"}');
  await within(done, 15_000, `fuzz socket (${n} frames, terminal ${terminal}) did not finish: the server hung`);
  return r;
}

function httpBody(): string {
  switch (int(6)) {
    case 0:
      return JSON.stringify(randomValue());
    case 1:
      return mutate(JSON.stringify({ type: 'progress', step: 'one', progress: 0.5 }));
    case 2:
      return JSON.stringify({ kind: randomValue(1), steps: rnd() < 0.5 ? randomValue(1) : [{ id: randomValue(2) }], meta: randomValue(), id: rnd() < 0.5 ? randomValue(2) : undefined });
    case 3:
      return JSON.stringify({ type: pick(['step_start', 'progress', 'step_end', 'step_failed', 'job_end', 'x']), step: randomValue(2), progress: randomValue(2), status: randomValue(2), eventId: randomValue(2), error: randomValue(1) });
    case 4:
      return pollutionJson().replace('"type":"ping"', '"kind":"x","steps":[{"id":"a"}]');
    default:
      return rnd() < 0.1 ? deepNesting(rnd() < 0.9 ? 4000 : 200_000) : JSON.stringify({ type: 'progress', step: 'one', progress: randomValue(1), message: randomValue(1) });
  }
}

describe('fuzzing (seed 0x5eed2026)', () => {
  let server: ServerProcess;
  let watcher: WsClient;
  let write: string;
  let read: string;
  let tick = 0;

  before(async () => {
    // Durability is not what this checks: NORMAL sync keeps the many accepted writes quick.
    server = await startServerProcess({ env: { PT_DB_SYNC: 'normal', PT_ETA_TICK: '0', LOG_LEVEL: 'warn' } });
    write = await server.token({ scope: 'progress:write', jobs: ['*'], expiresIn: 900 });
    read = await server.token({ scope: 'progress:read progress:retry', jobs: ['fuzz-*'], expiresIn: 900 });
    await createJob(server, { id: 'fuzz-live', steps: [{ id: 'one' }] });
    await createJob(server, { id: 'fuzz-watch', steps: [{ id: 'one' }] });
    await api(server, 'POST', '/v1/jobs/fuzz-watch/events', write, { type: 'step_start', step: 'one' });
    watcher = await connectWs(server, read);
    watcher.send({ type: 'subscribe', jobId: 'fuzz-watch' });
    await watcher.next('snapshot');
  });
  after(async () => {
    await watcher?.close();
    const code = await server.stop();
    server.cleanup();
    assert.equal(code, 0, 'the server exits cleanly after the fuzzing');
  });

  /** The well-behaved client: a pong, and a producer's change reaches it live. */
  async function wellBehavedServed(when: string) {
    assert.equal(server.child.exitCode, null, `server died ${when}:\n${server.output().slice(-2000)}`);
    watcher.send({ type: 'ping' });
    await within(watcher.next('pong', 10_000), 11_000, `pong ${when}`);
    tick++;
    const res = await api(server, 'POST', '/v1/jobs/fuzz-watch/events', write, { type: 'progress', step: 'one', progress: (tick % 1000) / 1000 });
    assert.equal(res.status, 202, `producer ${when}: ${JSON.stringify(res.body)}`);
    const seq = (res.body as { seq: number }).seq;
    await watcher.next((m) => m.type === 'update' && m.job.seq === seq, 10_000);
    watcher.queue.length = 0;
  }

  test(`${WS_FRAMES} WebSocket frames: each refused clearly, the server stays up`, { timeout: 180_000 }, async () => {
    const totals = { frames: 0, mustError: 0, errors: 0, closes: new Map<number, number>() };
    const sockets = Math.ceil(WS_FRAMES / FRAMES_PER_SOCKET);
    for (let start = 0; start < sockets; start += PARALLEL_SOCKETS) {
      const batch = Math.min(PARALLEL_SOCKETS, sockets - start);
      const results = await Promise.all(Array.from({ length: batch }, () => fuzzSocket(server, read, FRAMES_PER_SOCKET)));
      for (const r of results) {
        totals.frames += FRAMES_PER_SOCKET + 1;
        assert.deepEqual(r.bad, [], 'every reply is a known message with a clear error');
        totals.closes.set(r.close!, (totals.closes.get(r.close!) ?? 0) + 1);
        if (r.expectClose) {
          assert.ok(r.expectClose.includes(r.close!), `expected close ${r.expectClose}, got ${r.close}`);
        } else {
          // Every frame was answered before the final pong: errors for each refusable one.
          assert.equal(r.close, 1005, 'closed by the client after its final pong');
          assert.equal(r.pongs, r.mustPong + 1);
          assert.ok(r.errors >= r.mustError, `${r.mustError} frames must be refused, ${r.errors} errors came back`);
          totals.mustError += r.mustError;
          totals.errors += r.errors;
        }
      }
      if ((start / PARALLEL_SOCKETS) % 2 === 0) await wellBehavedServed(`after ${totals.frames} frames`);
    }
    await wellBehavedServed('after all frames');
    assert.ok(totals.frames >= WS_FRAMES);
    console.log(`# ws fuzz: ${totals.frames} frames, ${totals.mustError} must-refuse, ${totals.errors} errors, closes ${JSON.stringify([...totals.closes])}`);
  });

  test(`${HTTP_BODIES} HTTP bodies: a JSON 4xx or a success each, never a 5xx`, { timeout: 120_000 }, async () => {
    const statuses = new Map<number, number>();
    const targets = ['/v1/jobs', '/v1/jobs/fuzz-live/events', '/v1/jobs/fuzz-live/retry', '/v1/jobs/fuzz-missing/events'];
    let sent = 0;
    const worker = async () => {
      while (sent < HTTP_BODIES) {
        const n = sent++;
        const body = httpBody();
        const path = pick(targets);
        const contentType = rnd() < 0.9 ? 'application/json' : pick(['text/plain', 'application/x-www-form-urlencoded', '']);
        const res = await fetch(server.url + path, {
          method: 'POST',
          headers: { authorization: `Bearer ${write}`, ...(contentType && { 'content-type': contentType }) },
          body,
        });
        const text = await res.text();
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        assert.ok(res.status < 500, `#${n} POST ${path} ${body.slice(0, 200)} → ${res.status} ${text.slice(0, 300)}`);
        if (res.status >= 400) {
          const err = (JSON.parse(text) as { error?: { code?: unknown; message?: unknown } }).error;
          assert.ok(typeof err?.code === 'string' && typeof err.message === 'string' && err.message, `#${n} unclear error body: ${text.slice(0, 300)}`);
        }
        if (n % 2000 === 0) await wellBehavedServed(`after ${n} HTTP bodies`);
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    await wellBehavedServed('after all HTTP bodies');
    console.log(`# http fuzz: ${HTTP_BODIES} bodies, statuses ${JSON.stringify([...statuses].sort())}`);
  });
});
