/**
 * The Next.js App Router example (demo/examples/next) against the real server: `next build`
 * (Turbopack, with Next's own TypeScript check of the app against the widget's React typings),
 * `next start`, then the server-rendered HTML and Debian's Chromium (playwright-core).
 *
 * What a user of Next.js must get: server rendering emits the element without errors (nothing
 * touches customElements on the server), the page hydrates without a mismatch, the element
 * upgrades in the browser, shows the job's steps (a property set after the define entry loaded)
 * and the typed `onprogress-complete` handler sees the completed job.
 *
 * Needs `npm run build` first (the example imports the workspace package's dist/).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { chromium, type Browser } from 'playwright-core';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from '../fixtures/chromium.mjs';
import { ROOT, api, startServerProcess, type ServerProcess } from '../fixtures/server-process.js';

const APP = join(ROOT, 'demo/examples/next');
const NEXT = join(ROOT, 'node_modules/next/dist/bin/next');
const env = { ...process.env, NEXT_TELEMETRY_DISABLED: '1' };

let server: ServerProcess;
let next: ChildProcess | undefined;
let nextOutput = '';
let origin = '';
let browser: Browser | undefined;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

before(async () => {
  assert.ok(existsSync(join(ROOT, 'packages/widget/dist/widget/define.js')), 'packages/widget/dist is missing: run `npm run build` first');
  const build = spawnSync(process.execPath, [NEXT, 'build', APP], { cwd: ROOT, env, encoding: 'utf8' });
  assert.equal(build.status, 0, `next build failed:\n${build.stdout}\n${build.stderr}`);
  server = await startServerProcess();
  const port = await freePort();
  origin = `http://127.0.0.1:${port}`;
  next = spawn(process.execPath, [NEXT, 'start', APP, '-p', String(port), '-H', '127.0.0.1'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  next.stdout!.on('data', (c: Buffer) => (nextOutput += c.toString()));
  next.stderr!.on('data', (c: Buffer) => (nextOutput += c.toString()));
  const deadline = Date.now() + 30_000;
  for (;;) {
    const up = await fetch(`${origin}/_not-found`).then(() => true, () => false);
    if (up) break;
    if (Date.now() > deadline || next.exitCode !== null) throw new Error(`next start did not answer:\n${nextOutput}`);
    await new Promise((r) => setTimeout(r, 250));
  }
});

after(async () => {
  await browser?.close();
  if (next && next.exitCode === null) {
    const exited = new Promise((r) => next!.once('exit', r));
    next.kill('SIGTERM');
    await exited;
  }
  if (server) {
    await server.stop();
    server.cleanup();
  }
});

async function createJob(id: string): Promise<{ write: string; read: string }> {
  const write = await server.token({ scope: 'progress:write' });
  const res = await api(server, 'POST', '/v1/jobs', write, { id, kind: 'export', steps: [{ id: 'fetch' }, { id: 'transform' }, { id: 'upload' }] });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return { write, read: await server.token({ scope: 'progress:read', jobs: [id] }) };
}

test('server rendering emits the element without touching customElements, and the page server-renders without errors', async () => {
  const { read } = await createJob('next-ssr');
  const res = await fetch(`${origin}/?${new URLSearchParams({ job: 'next-ssr', src: server.wsUrl, token: read })}`);
  assert.equal(res.status, 200);
  const html = await res.text();
  assert.match(html, /<progress-tracker[^>]*\bjob="next-ssr"/, 'the element and its attributes are in the server-rendered HTML');
  assert.match(html, /<progress-tracker[^>]*\bsrc="ws:\/\/127\.0\.0\.1:\d+\/v1\/ws"/);
  assert.doesNotMatch(nextOutput, /customElements|ReferenceError|HTMLElement is not defined|⨯|Error:/, nextOutput);
});

test('in Chromium the page hydrates, the element upgrades with its steps, and onprogress-complete sees the completed job', async () => {
  const { write, read } = await createJob('next-live');
  browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
  const page = await browser.newPage();
  const problems: string[] = [];
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    // The example has no favicon; Chromium asks for one anyway.
    if (msg.location().url.endsWith('/favicon.ico')) return;
    if (msg.type() === 'error' || msg.type() === 'warning') problems.push(`${msg.type()}: ${msg.text()} (${msg.location().url})`);
  });
  await page.goto(`${origin}/?${new URLSearchParams({ job: 'next-live', src: server.wsUrl, token: read })}`);

  // Upgraded (the define entry ran in the browser) and showing the step labels of the `steps` property.
  // What the page shows when a wait times out: the console, the element's state and the status line.
  const until = async (what: string, fn: () => unknown) => {
    try {
      await page.waitForFunction(fn, undefined, { timeout: 30_000 });
    } catch (err) {
      const state = await page.evaluate(() => {
        const el = document.querySelector('progress-tracker') as (HTMLElement & { connectionState?: string; steps?: unknown }) | null;
        return { defined: customElements.get('progress-tracker') !== undefined, connection: el?.connectionState, steps: el?.steps, shadow: el?.shadowRoot?.textContent?.slice(0, 200), status: document.querySelector('[data-testid=status]')?.textContent };
      });
      throw new Error(`${what}: ${(err as Error).message}\npage: ${JSON.stringify(state)}\nconsole: ${problems.join(' | ')}\nnext: ${nextOutput.slice(-2000)}`);
    }
  };
  await until('the element upgraded with its steps', () => {
    const el = document.querySelector('progress-tracker');
    return customElements.get('progress-tracker') !== undefined && el?.shadowRoot?.textContent?.includes('Transform');
  });
  await until('connection live', () => document.querySelector('[data-testid=status]')?.textContent?.includes('connection: live'));

  for (const event of [
    { type: 'step_start', step: 'fetch' },
    { type: 'step_end', step: 'fetch' },
    { type: 'step_start', step: 'transform' },
    { type: 'step_end', step: 'transform' },
    { type: 'step_start', step: 'upload' },
    { type: 'step_end', step: 'upload' },
    { type: 'job_end', status: 'completed' },
  ]) {
    const res = await api(server, 'POST', '/v1/jobs/next-live/events', write, event);
    assert.equal(res.status, 202, JSON.stringify(res.body));
  }
  await until('the completed job in the handler', () => document.querySelector('[data-testid=status]')?.textContent?.startsWith('Finished: next-live'));
  assert.equal(await page.evaluate(() => (document.querySelector('progress-tracker') as HTMLElement & { snapshot?: { status: string } }).snapshot?.status), 'completed');
  assert.deepEqual(problems, [], 'no errors or warnings in the browser console (hydration mismatches are logged there)');
});
