/**
 * Shared helpers for server tests: start the real server as a child process (the `progress-tracker`
 * bin from dist/, so `npm run build:server` first), mint tokens, call the HTTP API, and a real
 * WebSocket client (`ws`) with a message queue.
 *
 *   const server = await startServerProcess();
 *   const token = await server.token({ scope: 'progress:write', jobs: ['*'] });
 *   const res = await api(server, 'POST', '/v1/jobs', token, { kind: 'x', steps: [{ id: 'a' }] });
 *   const ws = await connectWs(server, readToken);
 *   ws.send({ type: 'subscribe', jobId });
 *   const snap = await ws.next('snapshot');
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import type { Job, ServerMessage } from '../../protocol/index.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'progress-tracker.js');
const CLI = join(ROOT, 'dist', 'server', 'cli.js');

// ---------------------------------------------------------------------------------------------
// Server process
// ---------------------------------------------------------------------------------------------

export interface ServerProcess {
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** `ws://127.0.0.1:<port>/v1/ws` */
  wsUrl: string;
  port: number;
  secret: string;
  /** SQLite file (in a temp dir removed by `cleanup`) or `:memory:`. */
  db: string;
  child: ChildProcess;
  /** Everything the process printed so far (stdout + stderr). */
  output(): string;
  /** Mints an HS256 token for this server (see `mintTestToken`). */
  token(claims?: TokenClaims): Promise<string>;
  /** SIGTERM and wait for exit (SIGKILL after 5 s). Resolves with the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL: the crash case. */
  kill9(): Promise<void>;
  /** Removes the temp dir (after stop). */
  cleanup(): void;
}

export interface StartOptions {
  /** Extra environment (overrides the defaults below). */
  env?: Record<string, string>;
  /** Extra `serve` flags. */
  args?: string[];
  /** Reuse a database file (restart tests); default a fresh temp file. */
  db?: string;
  secret?: string;
  /** Fixed port (restart on the same port); default 0 = any free port. */
  port?: number;
}

/** Spawns `node bin/progress-tracker.js serve` and resolves once it printed its URL. */
export async function startServerProcess(options: StartOptions = {}): Promise<ServerProcess> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build:server\` before the server tests`);
  const dir = options.db ? undefined : mkdtempSync(join(tmpdir(), 'pt-test-'));
  const db = options.db ?? join(dir!, 'progress.db');
  const secret = options.secret ?? randomBytes(32).toString('base64url');
  const child = spawn(process.execPath, [BIN, 'serve', ...(options.args ?? [])], {
    cwd: ROOT,
    env: {
      ...process.env,
      PORT: String(options.port ?? 0),
      HOST: '127.0.0.1',
      PT_JWT_SECRET: secret,
      PT_DB: db,
      LOG_LEVEL: 'info',
      PT_DEMO: '',
      PT_ALLOWED_ORIGINS: '',
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start within 15 s:\n${output}`)), 15_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      // The server logs one JSON line with its URL when it listens.
      const m = /"msg":"listening on (http:\/\/[^"]+)"/.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with code ${code} before listening:\n${output}`));
    });
  });
  const port = Number(new URL(url).port);
  return {
    url,
    wsUrl: `ws://127.0.0.1:${port}/v1/ws`,
    port,
    secret,
    db,
    child,
    output: () => output,
    token: (claims) => mintTestToken(secret, claims),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
    async kill9() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGKILL');
      await exited;
    },
    cleanup() {
      if (dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------------------

export interface TokenClaims {
  /** Space-separated scopes; default all three. */
  scope?: string;
  jobs?: string[];
  /** Seconds from now; negative = already expired. Default 300. Null = no exp claim. */
  expiresIn?: number | null;
  aud?: string;
  iss?: string;
  sub?: string;
  nbf?: number;
}

/** An HS256 token for the test server's secret. */
export async function mintTestToken(secret: string, claims: TokenClaims = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const payload: Record<string, unknown> = {
    scope: claims.scope ?? 'progress:read progress:write progress:retry',
    jobs: claims.jobs ?? ['*'],
  };
  let jwt = new SignJWT(payload).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setIssuedAt(now).setAudience(claims.aud ?? 'progress-tracker');
  const expiresIn = claims.expiresIn === undefined ? 300 : claims.expiresIn;
  if (expiresIn !== null) jwt = jwt.setExpirationTime(now + expiresIn);
  if (claims.iss) jwt = jwt.setIssuer(claims.iss);
  if (claims.sub) jwt = jwt.setSubject(claims.sub);
  if (claims.nbf !== undefined) jwt = jwt.setNotBefore(claims.nbf);
  return jwt.sign(new TextEncoder().encode(secret));
}

/** An unsigned `alg: none` token with the given payload (must be rejected). */
export function unsignedToken(payload: Record<string, unknown>): string {
  const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${enc({ alg: 'none', typ: 'JWT' })}.${enc(payload)}.`;
}

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

export interface ApiResponse<T = unknown> {
  status: number;
  headers: Headers;
  /** Parsed JSON, or the text when not JSON, or undefined when empty. */
  body: T;
}

export async function api<T = any>(
  server: { url: string },
  method: string,
  path: string,
  token?: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<ApiResponse<T>> {
  const res = await fetch(server.url + path, {
    method,
    headers: {
      ...(token !== undefined && { authorization: `Bearer ${token}` }),
      ...(body !== undefined && { 'content-type': 'application/json' }),
      ...headers,
    },
    ...(body !== undefined && { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  const text = await res.text();
  let parsed: unknown = undefined;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = text;
    }
  }
  return { status: res.status, headers: res.headers, body: parsed as T };
}

/** Creates a job with write scope over `*`; returns it. */
export async function createJob(
  server: ServerProcess,
  request: { id?: string; kind?: string; steps?: Array<{ id: string; label?: string; complexity?: number }>; [k: string]: unknown } = {},
): Promise<Job> {
  const token = await server.token({ scope: 'progress:write', jobs: ['*'] });
  const res = await api<Job>(server, 'POST', '/v1/jobs', token, {
    kind: 'test',
    steps: [{ id: 'one' }, { id: 'two' }, { id: 'three' }],
    ...request,
  });
  if (res.status !== 201) throw new Error(`create failed: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

/** Reads a Prometheus metric's value (first sample matching `labels`, e.g. `{status="running"}`). */
export async function metric(server: { url: string }, name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  if (!line) throw new Error(`metric ${name}${labels} not found`);
  return Number(line.split(' ')[1]);
}

// ---------------------------------------------------------------------------------------------
// WebSocket
// ---------------------------------------------------------------------------------------------

export interface WsClient {
  ws: WebSocket;
  send(msg: unknown): void;
  /** Sends raw text or bytes as is. */
  sendRaw(data: string | Buffer): void;
  /** The next message (of `type`, or matching `match`), waiting up to `timeoutMs`. Earlier non-matching messages stay queued. */
  next<T extends ServerMessage['type']>(type?: T | ((m: ServerMessage) => boolean), timeoutMs?: number): Promise<Extract<ServerMessage, { type: T }>>;
  /** Everything received and not yet consumed by `next`. */
  queue: ServerMessage[];
  /** Resolves with the close code and reason. */
  closed: Promise<{ code: number; reason: string }>;
  close(): Promise<void>;
}

export class UpgradeRefused extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
  ) {
    super(`upgrade refused with HTTP ${status}: ${body}`);
  }
}

/** Opens `/v1/ws?access_token=` (token omitted when undefined); rejects with UpgradeRefused on 4xx. */
export function connectWs(server: { wsUrl: string }, token: string | undefined, options: { origin?: string } = {}): Promise<WsClient> {
  const url = token === undefined ? server.wsUrl : `${server.wsUrl}?access_token=${encodeURIComponent(token)}`;
  const ws = new WebSocket(url, { ...(options.origin !== undefined && { origin: options.origin }) });
  const queue: ServerMessage[] = [];
  const waiters: Array<() => void> = [];
  ws.on('message', (data) => {
    queue.push(JSON.parse(data.toString()) as ServerMessage);
    for (const w of waiters.splice(0)) w();
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    ws.on('close', (code, reason) => {
      resolve({ code, reason: reason.toString() });
      for (const w of waiters.splice(0)) w();
    });
  });
  const client: WsClient = {
    ws,
    queue,
    closed,
    send: (msg) => ws.send(JSON.stringify(msg)),
    sendRaw: (data) => ws.send(data),
    next(type, timeoutMs = 5000) {
      const match = (m: ServerMessage) => (type === undefined ? true : typeof type === 'function' ? type(m) : m.type === type);
      return new Promise((resolve, reject) => {
        const deadline = setTimeout(() => {
          reject(new Error(`no ${typeof type === 'string' ? type : 'matching'} message within ${timeoutMs} ms; queue: ${JSON.stringify(queue).slice(0, 500)}`));
        }, timeoutMs);
        const check = () => {
          const i = queue.findIndex(match);
          if (i >= 0) {
            clearTimeout(deadline);
            resolve(queue.splice(i, 1)[0] as never);
            return;
          }
          if (ws.readyState === WebSocket.CLOSED) {
            clearTimeout(deadline);
            reject(new Error(`socket closed while waiting for ${typeof type === 'string' ? type : 'a message'}`));
            return;
          }
          waiters.push(check);
        };
        check();
      });
    },
    async close() {
      if (ws.readyState === WebSocket.CLOSED) return;
      ws.close();
      await closed;
    },
  };
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(client));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => reject(new UpgradeRefused(res.statusCode ?? 0, body)));
    });
    ws.once('error', (err) => reject(err));
  });
}

/** Resolves when `fn` returns truthy, polling every 20 ms, or rejects after `timeoutMs`. */
export async function waitFor<T>(fn: () => T | Promise<T>, timeoutMs = 5000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
