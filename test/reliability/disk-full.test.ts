// A full disk, for real: the server's database lives on a 2 MB tmpfs. Proves: the write-ahead log
// is checkpointed on its own (it stays at about 1 MB while ~2.5 MB are written through it; SQLite
// alone would let it reach 4 MB, more than the volume) and is truncated when writes pause; when
// the volume fills up, writes are answered 503 (never a 5xx of another kind, never a dropped
// connection) and reads go on; once space is freed the same process accepts writes again, with no
// restart; every acknowledged change (201/202) is there, each event applied once, after a
// `kill -9` and a restart on the same volume too.
//
// It mounts a tmpfs, so it needs root (or CAP_SYS_ADMIN). It does not skip itself elsewhere: it
// fails saying so.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statfsSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Job } from '../../protocol/index.js';
import { api, eventually, startServerProcess, type ServerProcess } from '../fixtures/reliability.js';

const VOLUME = '2m';
const PAD = 'p'.repeat(7000);

function mountSmallVolume(): string {
  const dir = mkdtempSync(join(tmpdir(), 'pt-disk-full-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${VOLUME},mode=0755`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    const why = (err as { stderr?: Buffer }).stderr?.toString().trim() || (err as Error).message;
    throw new Error(
      `disk-full test: cannot mount a ${VOLUME} tmpfs (${why}). This test needs root or CAP_SYS_ADMIN ` +
        `(uid ${process.getuid?.()}); run the reliability suite as root, e.g. in the CI container.`,
    );
  }
  return dir;
}

const walBytes = (db: string) => statSync(`${db}-wal`, { throwIfNoEntry: false })?.size ?? 0;
const files = (dir: string) => readdirSync(dir).map((f) => `${f} ${statSync(join(dir, f)).size}`).join(', ');
const freeBytes = (dir: string) => {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
};

describe('full disk (2 MB tmpfs)', () => {
  let volume: string;
  let server: ServerProcess | undefined;

  before(() => {
    volume = mountSmallVolume();
  });
  after(async () => {
    await server?.stop();
    try {
      execFileSync('umount', [volume]);
    } finally {
      rmSync(volume, { recursive: true, force: true });
    }
  });

  test('503 while full, no acknowledged change lost, writes again once space is freed, no restart', { timeout: 120_000 }, async () => {
    const db = join(volume, 'progress.db');
    const live = await startServerProcess({ db, env: { PT_ETA_TICK: '0', LOG_LEVEL: 'warn' } });
    server = live;
    const pid = live.child.pid;
    const write = await live.token({ scope: 'progress:write progress:read', jobs: ['*'] });
    const statuses = new Map<number, number>();
    const count = (status: number) => statuses.set(status, (statuses.get(status) ?? 0) + 1);

    // One job takes events throughout; each acknowledged event must be applied exactly once. Its
    // 7 KB of meta make every event rewrite ~8 KB.
    assert.equal((await api(live, 'POST', '/v1/jobs', write, { id: 'steady', kind: 'disk', steps: [{ id: 'work' }], meta: { pad: PAD } })).status, 201);
    assert.equal((await api(live, 'POST', '/v1/jobs/steady/events', write, { type: 'step_start', step: 'work', eventId: 'start' })).status, 202);
    let acked = 1;
    let eventNo = 0;
    const postEvent = async (): Promise<number> => {
      const n = ++eventNo;
      const res = await api(live, 'POST', '/v1/jobs/steady/events', write, { type: 'progress', step: 'work', progress: (n % 1000) / 1000, eventId: `e${n}` });
      count(res.status);
      if (res.status === 202) acked++;
      return res.status;
    };
    assert.equal(await postEvent(), 202);

    // ~2.5 MB through the WAL (40 jobs, 250 events): it stays at about 1 MB.
    const created: string[] = [];
    let maxWal = 0;
    for (let i = 0; i < 40; i++) {
      const res = await api(live, 'POST', '/v1/jobs', write, { id: `warm-${i}`, kind: 'disk', steps: [{ id: 'a' }], meta: { pad: PAD } });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      created.push(`warm-${i}`);
      maxWal = Math.max(maxWal, walBytes(db));
    }
    for (let i = 0; i < 250; i++) {
      assert.equal(await postEvent(), 202);
      maxWal = Math.max(maxWal, walBytes(db));
    }
    assert.ok(maxWal <= 1.25 * 1024 * 1024, `the WAL reached ${maxWal} bytes`);
    // Writes pause: the WAL is checkpointed and truncated.
    await eventually(() => walBytes(db) === 0, 10_000, 'the WAL to be truncated while idle', () => `${walBytes(db)} bytes`);

    // Leave ~300 KB free, then write jobs until the volume is full.
    const filler = join(volume, 'filler');
    writeFileSync(filler, Buffer.alloc(Math.max(0, freeBytes(volume) - 300 * 1024)));
    let refused = 0;
    for (let i = 0; i < 2000 && refused < 25; i++) {
      const res = await api(live, 'POST', '/v1/jobs', write, { id: `fill-${i}`, kind: 'disk', steps: [{ id: 'a' }], meta: { pad: PAD } });
      count(res.status);
      if (res.status === 201) created.push(`fill-${i}`);
      else if (res.status === 503) refused++;
      if (i % 4 === 0) await postEvent();
    }
    assert.ok(refused >= 25, `the volume never filled up (${freeBytes(volume)} bytes free; ${files(volume)}): ${JSON.stringify([...statuses])}`);
    const freed = statSync(filler).size;
    for (let i = 0; i < 5; i++) await postEvent();
    // Every answer was a success or a 503 (nothing else, no dropped connection); reads go on.
    assert.deepEqual([...statuses.keys()].filter((s) => ![201, 202, 503].includes(s)), [], JSON.stringify([...statuses]));
    assert.equal((await api(live, 'GET', '/v1/jobs/steady', write)).status, 200);

    // Space comes back: the same process takes writes again.
    rmSync(filler);
    let lastAnswer = '';
    await eventually(
      async () => {
        const status = await postEvent();
        lastAnswer = `${status}`;
        return status === 202;
      },
      15_000,
      'a 202 after space was freed',
      () => `last answer ${lastAnswer}; ${freeBytes(volume)} bytes free; ${files(volume)}; server output:\n${live.output().slice(-1500)}`,
    );
    assert.equal((await api(live, 'POST', '/v1/jobs', write, { id: 'after', kind: 'disk', steps: [{ id: 'a' }], meta: { pad: PAD } })).status, 201);
    created.push('after');
    for (let i = 0; i < 10; i++) assert.equal(await postEvent(), 202);
    assert.equal(live.child.pid, pid);
    assert.equal(live.child.exitCode, null, 'the server is still the same process');

    // Every acknowledged change is there, each event once (a 503 applied nothing).
    const check = async (s: ServerProcess, when: string) => {
      const steady = await api<Job>(s, 'GET', '/v1/jobs/steady', write);
      assert.equal(steady.body.seq, 1 + acked, `${when}: steady has seq ${steady.body.seq} after ${acked} acknowledged events`);
      for (const id of created) assert.equal((await api(s, 'GET', `/v1/jobs/${id}`, write)).status, 200, `${when}: job ${id} (201) is missing`);
    };
    await check(live, 'live');

    // And it is all durable: kill -9, restart on the same volume.
    await live.kill9();
    const restarted = await startServerProcess({ db, secret: live.secret, env: { PT_ETA_TICK: '0', LOG_LEVEL: 'warn' } });
    server = restarted;
    await check(restarted, 'after kill -9 and restart');
    console.log(`# disk full: ${created.length} jobs and ${acked} events acknowledged, ${refused} creates refused with 503, ${freed} B freed; WAL peak ${maxWal} B`);
  });
});
