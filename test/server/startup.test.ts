// Start-up refusals are clear: the slow ws-based uWS fallback, a missing or weak token secret.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ROOT } from '../fixtures/server-process.js';

function serve(env: Record<string, string>, args: string[] = []) {
  const res = spawnSync(process.execPath, [join(ROOT, 'bin', 'progress-tracker.js'), 'serve', ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', PORT: '0', PT_DB: ':memory:', ...env },
    encoding: 'utf8',
    timeout: 15_000,
  });
  return { code: res.status, out: `${res.stdout}${res.stderr}` };
}

const SECRET = 'a-test-secret-that-is-long-enough-0123456789';

describe('start-up', () => {
  test('refuses to run on the ws-based uWebSockets.js fallback unless PT_ALLOW_FALLBACK=1', () => {
    // The package's loader switches to its fallback with this variable, as when the binary fails.
    const { code, out } = serve({ UWS_USE_FALLBACK: '1', PT_JWT_SECRET: SECRET });
    assert.equal(code, 1);
    assert.match(out, /refusing to run on the slow ws-based fallback/);
    assert.match(out, /PT_ALLOW_FALLBACK=1/);
  });

  test('no secret and no JWKS outside demo mode → exit 2 naming the variables', () => {
    const { code, out } = serve({});
    assert.equal(code, 2);
    assert.match(out, /PT_JWT_SECRET/);
    assert.match(out, /PT_JWKS_URL/);
  });

  test('a short HS256 secret and bad values are all reported at once', () => {
    const { code, out } = serve({ PT_JWT_SECRET: 'short', PT_RETENTION: 'forever' }, ['--port', 'abc', '--nope']);
    assert.equal(code, 2);
    assert.match(out, /at least 32 bytes/);
    assert.match(out, /PT_RETENTION/);
    assert.match(out, /PORT \(--port\)/);
    assert.match(out, /unknown option --nope/);
  });
});
