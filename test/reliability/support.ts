/**
 * Shared pieces of the reliability suite: the server helpers of the server tests (real server
 * process, tokens, `ws` client), a seeded PRNG so every run sends the same inputs, a bounded
 * wait that says what it waited for, a reconnecting `ws` follower, and a headless Chromium.
 */
import { createServer, type Server } from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import WebSocket from 'ws';
import type { Job, ServerMessage } from '../../protocol/index.js';
import { ROOT } from '../server/helpers.js';

export * from '../server/helpers.js';

/** mulberry32: small, fast, deterministic. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `fn` until truthy; on timeout fails with `what` and the last `detail()`. */
export async function eventually<T>(fn: () => T | Promise<T>, timeoutMs: number, what: string, detail?: () => string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail ? `: ${detail()}` : ''}`);
    await sleep(50);
  }
}

/** Rejects with a clear message when `p` does not settle in time. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    }),
  ]);
}

/**
 * A `ws` client that follows jobs the way a real client must: it keeps the newest state per
 * job (by seq), and when the socket drops it reconnects (growing delay, capped) and subscribes
 * again, getting a snapshot of each job.
 */
export class Follower {
  readonly latest = new Map<string, Job>();
  reconnects = 0;
  private ws: WebSocket | undefined;
  private stopped = false;

  constructor(
    private readonly wsUrl: string,
    private readonly token: string,
    readonly jobIds: string[],
  ) {}

  start(): Promise<void> {
    return new Promise((resolve) => this.connect(resolve, 0));
  }

  private connect(onOpen: () => void, attempt: number): void {
    if (this.stopped) return;
    const ws = new WebSocket(`${this.wsUrl}?access_token=${encodeURIComponent(this.token)}`);
    this.ws = ws;
    ws.on('open', () => {
      attempt = 0;
      // At most 100 subscriptions per socket and a burst of 100 messages: callers stay under.
      for (const id of this.jobIds) ws.send(JSON.stringify({ type: 'subscribe', jobId: id }));
      onOpen();
    });
    ws.on('message', (data) => {
      const msg = JSON.parse(data.toString()) as ServerMessage;
      if (msg.type !== 'snapshot' && msg.type !== 'update') return;
      const have = this.latest.get(msg.job.id);
      if (!have || msg.job.seq >= have.seq) this.latest.set(msg.job.id, msg.job);
    });
    ws.on('error', () => {
      /* followed by close */
    });
    ws.on('close', () => {
      if (this.stopped) return;
      this.reconnects++;
      setTimeout(() => this.connect(() => {}, attempt + 1), Math.min(2000, 100 * 2 ** attempt));
    });
  }

  stop(): void {
    this.stopped = true;
    this.ws?.terminate();
  }
}

export { CHROMIUM_ARGS, CHROMIUM_PATH } from '../chromium.mjs';

/** Serves one HTML page and the widget bundle (dist/progress-tracker.js) on a free port. */
export async function servePage(html: string): Promise<{ url: string; close(): Promise<void> }> {
  const bundle = readFileSync(join(ROOT, 'dist', 'progress-tracker.js'));
  const server: Server = createServer((req, res) => {
    if (req.url === '/progress-tracker.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' }).end(bundle);
    } else res.writeHead(200, { 'content-type': 'text/html' }).end(html);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/**
 * A free port below the kernel's ephemeral range. A server restarted on a fixed port that lies in
 * that range can find it taken by a reconnecting client's own socket (TCP self-connect), so
 * restart tests pick one outside it.
 */
export async function stablePort(): Promise<number> {
  const { createServer: createTcp } = await import('node:net');
  let low = 32768;
  try {
    low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || low;
  } catch {
    /* not Linux: keep the usual default */
  }
  const from = Math.max(1024, low - 12_000);
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = from + Math.floor(Math.random() * (low - from));
    const ok = await new Promise<boolean>((resolve) => {
      const probe = createTcp();
      probe.once('error', () => resolve(false));
      probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
    });
    if (ok) return port;
  }
  throw new Error('no free port below the ephemeral range');
}
