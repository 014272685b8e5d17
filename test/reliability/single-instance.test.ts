// One server per port and per database. Proves: a second server on the same database refuses to
// start (exit 1) naming the first one's pid and the lock file, before it listens; a second server
// on the same port (another database) refuses to start saying the port is in use — uWS would
// otherwise share the port (SO_REUSEPORT) and the kernel would split connections between the
// two; the first server meanwhile answers every request; after the first is killed with -9, a
// server starts at once on the same database and port (the lock dies with its process) and has
// everything the first acknowledged.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { api, createJob, stablePort, startServerProcess, type ServerProcess } from '../fixtures/reliability.js';

const refusal = (p: Promise<ServerProcess>): Promise<Error> =>
  p.then(
    async (s) => {
      await s.stop();
      s.cleanup();
      return assert.fail(`a second server started on ${s.url}`);
    },
    (err: Error) => err,
  );

describe('one server per port and per database', () => {
  test('a second server on the same database or port exits saying why; the first keeps serving; after kill -9 a new one starts at once', { timeout: 60_000 }, async () => {
    const port = await stablePort();
    const first = await startServerProcess({ port, env: { PT_ETA_TICK: '0' } });
    const otherDir = mkdtempSync(join(tmpdir(), 'pt-other-db-'));
    let restarted: ServerProcess | undefined;
    try {
      const job = await createJob(first, { id: 'single-1' });
      const read = await first.token({ scope: 'progress:read', jobs: ['*'] });

      // Same database, any port: refused before listening, naming the holder and the lock file.
      const sameDb = await refusal(startServerProcess({ db: first.db, secret: first.secret }));
      assert.match(sameDb.message, /exited with code 1 before listening/);
      assert.ok(sameDb.message.includes(`database file ${first.db} is in use by another progress-tracker (pid ${first.child.pid} `), sameDb.message);
      assert.ok(sameDb.message.includes(`${first.db}.lock`), sameDb.message);
      assert.doesNotMatch(sameDb.message, /listening on/);

      // Same port, another database: refused at listen.
      const samePort = await refusal(startServerProcess({ port, db: join(otherDir, 'other.db'), secret: first.secret }));
      assert.match(samePort.message, /exited with code 1 before listening/);
      assert.ok(samePort.message.includes(`cannot listen on 127.0.0.1:${port}: the port is in use`), samePort.message);

      // The first one answers every request (no connection lands on a half-started twin).
      for (let i = 0; i < 20; i++) assert.equal((await api(first, 'GET', `/v1/jobs/${job.id}`, read)).status, 200);

      // kill -9: the kernel drops the lock with the process; a new server starts on the same database and port.
      await first.kill9();
      restarted = await startServerProcess({ port, db: first.db, secret: first.secret, env: { PT_ETA_TICK: '0' } });
      assert.equal(restarted.port, port);
      const again = await api(restarted, 'GET', `/v1/jobs/${job.id}`, read);
      assert.equal(again.status, 200);
      assert.equal(again.body.id, job.id);
    } finally {
      await first.stop();
      await restarted?.stop();
      first.cleanup();
      rmSync(otherDir, { recursive: true, force: true });
    }
  });
});
