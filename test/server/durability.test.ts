// A 202 means durable: kill -9 right after it, restart on the same database, and the job and its
// seq are there. A corrupt or unwritable database stops the server at start with a clear message.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { Job } from '../../protocol/index.js';
import { api, connectWs, createJob, startServerProcess } from '../fixtures/server-process.js';

describe('durability', () => {
  test('kill -9 right after a 202, restart: the job, its steps and its seq are there', async () => {
    // No ETA revisions (they bump seq too): this test pins exact seqs across the restart.
    const noTick = { PT_ETA_TICK: '0' };
    const first = await startServerProcess({ env: noTick });
    try {
      await createJob(first, { id: 'dur-1' });
      const write = await first.token({ scope: 'progress:write', jobs: ['*'] });
      await api(first, 'POST', '/v1/jobs/dur-1/events', write, { type: 'step_start', step: 'one', eventId: 'ev-1' });
      const last = await api(first, 'POST', '/v1/jobs/dur-1/events', write, { type: 'progress', step: 'one', progress: 0.7, eventId: 'ev-2' });
      assert.equal(last.status, 202);
      assert.equal(last.body.seq, 3);
      await first.kill9();

      const second = await startServerProcess({ db: first.db, secret: first.secret, env: noTick });
      try {
        const job = await api<Job>(second, 'GET', '/v1/jobs/dur-1', write);
        assert.equal(job.status, 200);
        assert.equal(job.body.seq, 3);
        assert.equal(job.body.status, 'running');
        assert.equal(job.body.steps[0]!.progress, 0.7);
        // Idempotency survives too, and new changes continue from seq 3.
        const replay = await api(second, 'POST', '/v1/jobs/dur-1/events', write, { type: 'progress', step: 'one', progress: 0.7, eventId: 'ev-2' });
        assert.equal(replay.body.seq, 3);
        const ws = await connectWs(second, await second.token({ scope: 'progress:read', jobs: ['dur-1'] }));
        ws.send({ type: 'subscribe', jobId: 'dur-1' });
        assert.equal((await ws.next('snapshot')).job.seq, 3);
        assert.equal((await api(second, 'POST', '/v1/jobs/dur-1/events', write, { type: 'step_end', step: 'one' })).body.seq, 4);
        assert.equal((await ws.next('update')).job.seq, 4);
        await ws.close();
      } finally {
        await second.stop();
      }
    } finally {
      first.cleanup();
    }
  });

  test('a corrupt or unwritable database file: the server refuses to start and says why', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pt-bad-db-'));
    try {
      const corrupt = join(dir, 'corrupt.db');
      writeFileSync(corrupt, 'this is not a database, just some bytes '.repeat(200));
      const err = await startServerProcess({ db: corrupt }).then(
        () => assert.fail('started on a corrupt database'),
        (e: Error) => e,
      );
      assert.match(err.message, /exited with code 1/);
      assert.match(err.message, /cannot use database file .*corrupt\.db.*not a database/);

      // A directory that cannot be created (its parent is a file).
      const err2 = await startServerProcess({ db: '/dev/null/pt/x.db' }).then(
        () => assert.fail('started on an unwritable path'),
        (e: Error) => e,
      );
      assert.match(err2.message, /cannot create the directory for database file \/dev\/null\/pt\/x\.db/);

      if (process.getuid?.() !== 0) {
        // A read-only file (root ignores permissions, so only as a normal user).
        const readonly = join(dir, 'readonly.db');
        const ok = await startServerProcess({ db: readonly });
        await ok.stop();
        chmodSync(readonly, 0o444);
        const err3 = await startServerProcess({ db: readonly }).then(
          () => assert.fail('started on a read-only database'),
          (e: Error) => e,
        );
        assert.match(err3.message, /cannot use database file .*readonly/);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
