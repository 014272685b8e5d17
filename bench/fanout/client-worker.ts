/**
 * One load-generator process: opens WebSocket (`ws`) or Socket.IO connections, subscribes each
 * to one job, and accounts every update it receives: count, bytes, seq gaps, and latency from the
 * producer's send (the `@bench:<tag>:<µs>` marker the producer writes into the step message) to
 * receipt. Parsing is a byte search, not JSON.parse, so the client costs as little as possible.
 */
import WebSocket from 'ws';
import { io as ioClient, type Socket } from 'socket.io-client';
import { createHistogram, nowMicros, record } from './histogram.js';
import type { ClientKind, TagStats, WorkerCommand, WorkerReply } from './ipc.js';

const MARKER = '@bench:';

interface TagAccumulator {
  count: number;
  bytes: number;
  gaps: number;
  duplicates: number;
  histogram: Uint32Array;
  firstAt: number;
  lastAt: number;
}

const tags = new Map<number, TagAccumulator>();
let lastSeqs: number[] = [];
let closedByPeer = 0;
let closing = false;
const sockets: Array<WebSocket | Socket> = [];

function tagStats(tag: number): TagAccumulator {
  let stats = tags.get(tag);
  if (!stats) {
    stats = { count: 0, bytes: 0, gaps: 0, duplicates: 0, histogram: createHistogram(), firstAt: 0, lastAt: 0 };
    tags.set(tag, stats);
  }
  return stats;
}

function readInt(text: Buffer | string, from: number): number {
  let value = 0;
  for (let i = from; i < text.length; i++) {
    const code = typeof text === 'string' ? text.charCodeAt(i) : text[i]!;
    if (code < 48 || code > 57) break;
    value = value * 10 + (code - 48);
  }
  return value;
}

/** Accounts one server message for connection `index`; resolves its subscription on the snapshot. */
function onMessage(index: number, data: Buffer | string, onSnapshot: (() => void) | null): void {
  const receivedAt = nowMicros();
  const typeAt = data.indexOf('"type":"');
  const kind = typeAt < 0 ? 0 : typeof data === 'string' ? data.charCodeAt(typeAt + 8) : data[typeAt + 8]!;
  const seqAt = data.indexOf('"seq":');
  if (seqAt < 0) return;
  const seq = readInt(data, seqAt + 6);
  if (kind === 115 /* s: snapshot */) {
    if (seq > lastSeqs[index]!) lastSeqs[index] = seq;
    onSnapshot?.();
    return;
  }
  if (kind !== 117 /* u: update */) return;
  const markerAt = data.indexOf(MARKER);
  let tag = 0;
  let sentAt = 0;
  if (markerAt >= 0) {
    tag = readInt(data, markerAt + MARKER.length);
    const colon = data.indexOf(':', markerAt + MARKER.length);
    sentAt = readInt(data, colon + 1);
  }
  const stats = tagStats(tag);
  stats.bytes += data.length;
  const last = lastSeqs[index]!;
  if (seq <= last) {
    // A resend of a state this client already has (e.g. a resync after congestion).
    stats.duplicates++;
    return;
  }
  if (last > 0 && seq > last + 1) stats.gaps += seq - last - 1;
  lastSeqs[index] = seq;
  stats.count++;
  if (sentAt > 0) record(stats.histogram, receivedAt - sentAt);
  if (stats.firstAt === 0) stats.firstAt = receivedAt;
  stats.lastAt = receivedAt;
}

function openWs(url: string, jobId: string, index: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { perMessageDeflate: false, skipUTF8Validation: true, handshakeTimeout: 30_000 });
    sockets.push(socket);
    let subscribed = false;
    const timer = setTimeout(() => reject(new Error('no snapshot within 30 s')), 30_000);
    socket.on('open', () => socket.send(JSON.stringify({ type: 'subscribe', jobId })));
    socket.on('message', (data: Buffer) =>
      onMessage(index, data, subscribed ? null : () => {
        subscribed = true;
        clearTimeout(timer);
        resolve();
      }),
    );
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on('unexpected-response', (_request, response) => {
      clearTimeout(timer);
      reject(new Error(`HTTP ${response.statusCode} on upgrade`));
    });
    socket.on('close', () => {
      if (!closing && subscribed) closedByPeer++;
    });
  });
}

function openSocketIo(url: string, jobId: string, index: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = ioClient(url, { transports: ['websocket'], forceNew: true, reconnection: false, timeout: 30_000 });
    sockets.push(socket);
    let subscribed = false;
    const timer = setTimeout(() => reject(new Error('no snapshot within 30 s')), 30_000);
    socket.on('connect', () => socket.send(JSON.stringify({ type: 'subscribe', jobId })));
    socket.on('message', (text: string) =>
      onMessage(index, text, subscribed ? null : () => {
        subscribed = true;
        clearTimeout(timer);
        resolve();
      }),
    );
    socket.on('connect_error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on('disconnect', () => {
      if (!closing && subscribed) closedByPeer++;
    });
  });
}

async function connectAll(kind: ClientKind, url: string, jobIds: string[], concurrency: number): Promise<WorkerReply> {
  lastSeqs = jobIds.map(() => 0);
  let next = 0;
  let opened = 0;
  let failed = 0;
  const errors = new Set<string>();
  const open = kind === 'ws' ? openWs : openSocketIo;
  async function lane(): Promise<void> {
    while (next < jobIds.length) {
      const index = next++;
      try {
        await open(url, jobIds[index]!, index);
        opened++;
      } catch (error) {
        failed++;
        if (errors.size < 5) errors.add(error instanceof Error ? error.message : String(error));
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, jobIds.length) }, lane));
  return { cmd: 'connected', opened, failed, errors: [...errors] };
}

function snapshotStats(wanted: number[]): WorkerReply {
  const out: Record<number, TagStats> = {};
  for (const tag of wanted) {
    const stats = tags.get(tag);
    if (stats) out[tag] = { ...stats, histogram: Array.from(stats.histogram) };
  }
  const cpu = process.cpuUsage();
  return { cmd: 'stats', tags: out, lastSeqs, closed: closedByPeer, cpuMicros: cpu.user + cpu.system };
}

function send(reply: WorkerReply): void {
  process.send!(reply);
}

process.on('message', (command: WorkerCommand) => {
  switch (command.cmd) {
    case 'connect':
      void connectAll(command.kind, command.url, command.jobIds, command.concurrency).then(send);
      break;
    case 'stats':
      send(snapshotStats(command.tags));
      break;
    case 'close':
      closing = true;
      for (const socket of sockets) {
        if (socket instanceof WebSocket) socket.terminate();
        else socket.disconnect();
      }
      send({ cmd: 'closed' });
      setTimeout(() => process.exit(0), 50);
      break;
  }
});
process.on('disconnect', () => process.exit(0));
