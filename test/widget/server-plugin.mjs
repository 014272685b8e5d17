// @web/test-runner plugin: starts the REAL progress-tracker server (from the TypeScript sources,
// through tsx, so it is never stale) with a known secret and an in-memory SQLite database, and
// exposes what the browser tests need as server commands (executeServerCommand):
//   pt:info                      → { url }                       the server's own HTTP URL
//   pt:token  {jobs?, scopes?, ttlSeconds?}  → JWT (HS256, the test secret)
//   pt:create-job {kind?, steps, id?}        → Job               POST /v1/jobs
//   pt:events {jobId, events}                → {status, body}     POST /v1/jobs/{id}/events
//   pt:proxy-create              → { id, port, url }             a chaos proxy to the server
//   pt:proxy {id, mode?, drop?}  → counts                        'up' | 'no-ws' | 'down'; drop all sockets
//   pt:proxy-close {id}
//   pt:permission {name, state}  → sets a permission for the test page's origin (CDP)
//   pt:visibility {hidden}       → hides/shows the test page by bringing another tab to front
//   pt:forced-colors {active}    → emulates forced-colors (Windows High Contrast)
// It also (re)builds the script-tag bundle and the framework examples when they are stale.
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { startChaosProxy } from './chaos-proxy.mjs';

export const TEST_SECRET = 'widget-tests-secret-0123456789-abcdefghijklmnopqrstuvwxyz';
const AUDIENCE = 'progress-tracker';

function newestMtime(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

function ensureBuilt(output, sources, build) {
  const outTime = existsSync(output) ? statSync(output).mtimeMs : 0;
  const srcTime = Math.max(...sources.map((s) => (statSync(s).isDirectory() ? newestMtime(s) : statSync(s).mtimeMs)));
  if (outTime >= srcTime) return;
  console.log(`[widget tests] building ${output}…`);
  build();
}

async function startServer() {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/widget/run-server.ts'], {
    env: { ...process.env, PT_JWT_SECRET: TEST_SECRET, PT_DB: ':memory:', LOG_LEVEL: process.env.LOG_LEVEL ?? 'info', PORT: '0', HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`server did not print its URL within 30 s:\n${out}`)), 30_000);
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const m = /(https?:\/\/[^\s"'/]+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with code ${code}:\n${out}`));
    });
  });
  // Keep the server's warnings and errors visible (pino levels ≥ 40); drop routine info lines.
  let buffered = '';
  child.stdout.removeAllListeners('data');
  child.stdout.on('data', (chunk) => {
    buffered += chunk;
    const lines = buffered.split('\n');
    buffered = lines.pop();
    for (const line of lines) {
      const level = Number(/"level":(\d+)/.exec(line)?.[1] ?? 50);
      if (level >= 40) console.log(`[server] ${line}`);
    }
  });
  return { child, url: url.replace('localhost', '127.0.0.1') };
}

export function progressServerPlugin() {
  let server;
  const proxies = new Map();
  const coverPages = new Map();
  const mediaSessions = new Map();
  let nextProxyId = 1;

  async function token({ jobs = ['*'], scopes = ['progress:read', 'progress:write', 'progress:retry'], ttlSeconds = 600 } = {}) {
    return new SignJWT({ scope: scopes.join(' '), jobs })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('widget-tests')
      .setAudience(AUDIENCE)
      .setIssuedAt()
      .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds)
      .sign(new TextEncoder().encode(TEST_SECRET));
  }

  async function api(method, path, body) {
    const res = await fetch(server.url + path, {
      method,
      headers: { Authorization: `Bearer ${await token()}`, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let json;
    try {
      json = JSON.parse(text);
    } catch {
      json = text;
    }
    return { status: res.status, body: json };
  }

  return {
    name: 'progress-server',
    async serverStart() {
      ensureBuilt('dist/progress-tracker.js', ['widget', 'server/protocol.ts'], () =>
        execFileSync(process.execPath, ['node_modules/rollup/dist/bin/rollup', '-c', 'rollup.config.mjs'], { stdio: 'inherit' }),
      );
      ensureBuilt('dist/examples/react.js', ['widget', 'demo/examples'], () =>
        execFileSync(process.execPath, ['demo/examples/build.mjs'], { stdio: 'inherit' }),
      );
      server = await startServer();
      console.log(`[widget tests] server at ${server.url}`);
    },
    async serverStop() {
      for (const p of proxies.values()) await p.close();
      server?.child.kill('SIGTERM');
    },
    async executeCommand({ command, payload, session }) {
      switch (command) {
        case 'pt:info':
          return { url: server.url };
        case 'pt:token':
          return token(payload ?? {});
        case 'pt:create-job': {
          const res = await api('POST', '/v1/jobs', { kind: 'widget-test', ...payload });
          if (res.status >= 300) throw new Error(`POST /v1/jobs → ${res.status} ${JSON.stringify(res.body)}`);
          return res.body.job ?? res.body;
        }
        case 'pt:events': {
          const res = await api('POST', `/v1/jobs/${encodeURIComponent(payload.jobId)}/events`, payload.events);
          if (res.status >= 300 && !payload.allowError) throw new Error(`POST events → ${res.status} ${JSON.stringify(res.body)}`);
          return res;
        }
        case 'pt:get-job':
          return (await api('GET', `/v1/jobs/${encodeURIComponent(payload.jobId)}`)).body;
        case 'pt:proxy-create': {
          const target = new URL(server.url);
          const proxy = await startChaosProxy(Number(target.port), target.hostname);
          const id = String(nextProxyId++);
          proxies.set(id, proxy);
          return { id, port: proxy.port, url: `http://127.0.0.1:${proxy.port}` };
        }
        case 'pt:proxy': {
          const proxy = proxies.get(payload.id);
          if (!proxy) throw new Error(`no proxy ${payload.id}`);
          if (payload.mode) proxy.setMode(payload.mode);
          if (payload.drop) proxy.dropAll();
          return { mode: proxy.mode, ...proxy.counts };
        }
        case 'pt:proxy-close': {
          await proxies.get(payload.id)?.close();
          proxies.delete(payload.id);
          return true;
        }
        case 'pt:permission': {
          const page = session.browser.getPage(session.id);
          const origin = new URL(page.url()).origin;
          await page.browserContext().setPermission(origin, { permission: { name: payload.name }, state: payload.state });
          return true;
        }
        case 'pt:forced-colors': {
          const page = session.browser.getPage(session.id);
          // puppeteer's emulateMediaFeatures does not know forced-colors; CDP does.
          // The override lives as long as its CDP session: keep it until switched off.
          let cdp = mediaSessions.get(session.id);
          if (!cdp) {
            cdp = await page.createCDPSession();
            mediaSessions.set(session.id, cdp);
          }
          await cdp.send('Emulation.setEmulatedMedia', { features: [{ name: 'forced-colors', value: payload.active ? 'active' : 'none' }] });
          if (!payload.active) {
            mediaSessions.delete(session.id);
            await cdp.detach();
          }
          return true;
        }
        case 'pt:visibility': {
          // A real hidden page: another tab in front, as when the user switches tabs.
          const page = session.browser.getPage(session.id);
          const other = coverPages.get(session.id);
          if (payload.hidden && !other) {
            const cover = await page.browser().newPage();
            coverPages.set(session.id, cover);
            await cover.bringToFront();
          } else if (!payload.hidden && other) {
            coverPages.delete(session.id);
            await page.bringToFront();
            await other.close();
          }
          return page.evaluate(() => document.visibilityState);
        }
        default:
          return undefined;
      }
    },
  };
}
