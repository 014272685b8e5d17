// The ETA tick re-estimates silent jobs only: a job whose producer spoke within the last tick
// interval was estimated when that event was applied, so the tick leaves it alone; once the
// producer falls silent for a tick, the tick estimates it again.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLogger } from '../../server/app/log.js';
import { JobService } from '../../server/core/job-service.js';
import { SqliteStore } from '../../server/store/sqlite.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('the tick skips jobs whose producer spoke within the tick interval, and estimates them once they are silent', async () => {
  const store = new SqliteStore({ path: ':memory:' });
  const estimated: string[] = [];
  const service = new JobService({
    store,
    log: createLogger('silent'),
    tickMs: 100,
    estimator: {
      estimate: (job) => {
        estimated.push(job.id);
        return { progress: 0.5, eta: { remainingMs: 10_000 } };
      },
      observe: () => undefined,
      changedMeaningfully: () => false,
    },
  });
  await service.start();
  try {
    await service.create({ id: 'busy', kind: 'k', steps: [{ id: 'a' }] });
    await service.create({ id: 'silent', kind: 'k', steps: [{ id: 'a' }] });
    await service.applyEvents('busy', [{ type: 'step_start', step: 'a' }]);
    await service.applyEvents('silent', [{ type: 'step_start', step: 'a' }]);
    estimated.length = 0;
    // Ten events 40 ms apart: 400 ms, four ticks.
    for (let i = 1; i <= 10; i++) {
      await service.applyEvents('busy', [{ type: 'progress', step: 'a', progress: i / 20 }]);
      await sleep(40);
    }
    const busy = estimated.filter((id) => id === 'busy').length;
    const silent = estimated.filter((id) => id === 'silent').length;
    assert.equal(busy, 10, `one estimate per event, none from the tick (got ${busy})`);
    assert.ok(silent >= 3, `the silent job was estimated by the ticks (${silent})`);
    // The busy job falls silent: the ticks take it up again.
    estimated.length = 0;
    await sleep(350);
    assert.ok(estimated.filter((id) => id === 'busy').length >= 2, `ticks after the producer stopped: ${estimated.join(',')}`);
  } finally {
    await service.close();
    await store.close();
  }
});
