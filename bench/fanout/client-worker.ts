/**
 * One load-generator process: opens connections with the lean raw-socket client of
 * lean-websocket.ts (the default in every scenario) or with `ws` / `socket.io-client`
 * (BENCH_CLIENT=library), subscribes each to one job, and accounts every update it receives:
 * count, bytes, seq gaps, and latency from the producer's send (the `@bench:<tag>:<µs>` marker the
 * producer writes into the step message) to receipt. Parsing is a byte search, not JSON.parse, so
 * the client costs as little as possible.
 */
import WebSocket from 'ws';
import { io as ioClient, type Socket } from 'socket.io-client';
import { createHistogram, nowMicros, record } from './histogram.js';
import type { ClientKind, TagStats, WorkerCommand, WorkerReply } from './ipc.js';
import { LeanWebSocket } from './lean-websocket.js';

const MARKER = '@bench:';

interface TagAccumulator {
  count: number;
  bytes: number;
  gaps: number;
  duplicates: number;
  revisions: number;
  histogram: Uint32Array;
  firstAt: number;
  lastAt: number;
}

const tags = new Map<number, TagAccumulator>();
let lastSeqs: number[] = [];
/** Per connection: the producer send time of the last update, to tell server-made revisions apart. */
let lastSentAt: number[] = [];
let closedByPeer = 0;
let closing = false;
const sockets: Array<WebSocket | Socket | LeanWebSocket> = [];

function tagStats(tag: number): TagAccumulator {
  let stats = tags.get(tag);
  if (!stats) {
    stats = { count: 0, bytes: 0, gaps: 0, duplicates: 0, revisions: 0, histogram: createHistogram(), firstAt: 0, lastAt: 0 };
    tags.set(tag, stats);
  }
  return stats;
}

function readInt(text: Buffer | string, from: number, end: number): number {
  let value = 0;
  for (let i = from; i < end; i++) {
    const code = typeof text === 'string' ? text.charCodeAt(i) : text[i]!;
    if (code < 48 || code > 57) break;
    value = value * 10 + (code - 48);
  }
  return value;
}

/**
 * What to look for in a message. Socket.IO carries our JSON as a string inside its packet
 * (`42["message","{\"type\":…"]`), so the lean Socket.IO client sees escaped quotes.
 */
interface Patterns {
  type: Buffer;
  seq: Buffer;
}
const PLAIN: Patterns = { type: Buffer.from('"type":"'), seq: Buffer.from('"seq":') };
const ESCAPED: Patterns = { type: Buffer.from('type\\":\\"'), seq: Buffer.from('seq\\":') };
const MARKER_BYTES = Buffer.from(MARKER);
let patterns = PLAIN;

/**
 * Where a pattern was found last time, relative to the message start: every message has the
 * same shape, so a byte check there usually replaces a native search (5× cheaper per message).
 */
const hints = { type: 0, seq: 0, marker: 0 };

function find(data: Buffer | string, pattern: Buffer, key: keyof typeof hints, from: number, start: number, end: number): number {
  if (typeof data === 'string') {
    const at = data.indexOf(pattern.toString(), from);
    return at < end ? at : -1;
  }
  const hint = start + hints[key];
  if (hint >= from && hint + pattern.length <= end) {
    let matches = true;
    for (let j = 0; j < pattern.length; j++) {
      if (data[hint + j] !== pattern[j]) {
        matches = false;
        break;
      }
    }
    if (matches) return hint;
  }
  const at = data.indexOf(pattern, from);
  if (at < 0 || at >= end) return -1;
  hints[key] = at - start;
  return at;
}

/**
 * Accounts one server message (bytes start..end of data, received at `receivedAt` µs) for
 * connection `index`; calls onSnapshot on the snapshot that answers the subscribe.
 */
function onMessage(index: number, data: Buffer | string, start: number, end: number, receivedAt: number, onSnapshot: (() => void) | null): void {
  const typeAt = find(data, patterns.type, 'type', start, start, end);
  if (typeAt < 0) return;
  const at = typeAt + patterns.type.length;
  const kind = typeof data === 'string' ? data.charCodeAt(at) : data[at]!;
  const seqAt = find(data, patterns.seq, 'seq', at, start, end);
  if (seqAt < 0) return;
  const seq = readInt(data, seqAt + patterns.seq.length, end);
  if (kind === 115 /* s: snapshot */) {
    if (seq > lastSeqs[index]!) lastSeqs[index] = seq;
    onSnapshot?.();
    return;
  }
  if (kind !== 117 /* u: update */) return;
  const markerAt = find(data, MARKER_BYTES, 'marker', seqAt, start, end);
  let tag = 0;
  let sentAt = 0;
  if (markerAt >= 0) {
    let i = markerAt + MARKER.length;
    tag = readInt(data, i, end);
    while (i < end && (typeof data === 'string' ? data.charCodeAt(i) : data[i]) !== 58 /* : */) i++;
    sentAt = readInt(data, i + 1, end);
  }
  const stats = tagStats(tag);
  stats.bytes += end - start;
  const last = lastSeqs[index]!;
  if (seq <= last) {
    // A resend of a state this client already has (e.g. a resync after congestion).
    stats.duplicates++;
    return;
  }
  if (last > 0 && seq > last + 1) stats.gaps += seq - last - 1;
  lastSeqs[index] = seq;
  if (sentAt > 0 && sentAt === lastSentAt[index]) {
    // A change the server made on its own (ours: an ETA revision) still carries the last
    // producer message: a delivery, but not of a producer event, and no latency to measure.
    stats.revisions++;
    return;
  }
  lastSentAt[index] = sentAt;
  stats.count++;
  if (sentAt > 0) record(stats.histogram, receivedAt - sentAt);
  if (stats.firstAt === 0) stats.firstAt = receivedAt;
  stats.lastAt = receivedAt;
}

/** Lean client for our protocol (ours, raw uWS) or Socket.IO's (Engine.IO 4 over WebSocket). */
function openLean(url: string, jobId: string, index: number, socketIo: boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    let subscribed = false;
    let opened = false;
    const timer = setTimeout(() => reject(new Error(opened ? 'upgraded, subscribed, but no snapshot within 30 s' : 'no upgrade within 30 s')), 30_000);
    const subscribe = JSON.stringify({ type: 'subscribe', jobId });
    const target = socketIo ? `${url.replace(/^http/, 'ws')}/socket.io/?EIO=4&transport=websocket` : url;
    const done = () => {
      subscribed = true;
      clearTimeout(timer);
      resolve();
    };
    const socket: LeanWebSocket = new LeanWebSocket(target, {
      open: () => {
        opened = true;
        if (!socketIo) socket.send(subscribe);
      },
      message: (buffer, start, end, receivedAt) => {
        if (!socketIo) return onMessage(index, buffer, start, end, receivedAt, subscribed ? null : done);
        // Engine.IO packet type, then Socket.IO packet type.
        const engine = buffer[start];
        if (engine === 0x32 /* 2: ping */) return socket.send('3');
        if (engine === 0x30 /* 0: open */) return socket.send('40');
        if (engine !== 0x34 /* 4: message */) return;
        const packet = buffer[start + 1];
        if (packet === 0x30 /* 0: connect ack */) return socket.send(`42${JSON.stringify(['message', subscribe])}`);
        if (packet === 0x32 /* 2: event */) onMessage(index, buffer, start, end, receivedAt, subscribed ? null : done);
      },
      error: (error) => {
        clearTimeout(timer);
        reject(error);
      },
      close: () => {
        if (!closing && subscribed) closedByPeer++;
      },
    });
    sockets.push(socket);
  });
}

function openWs(url: string, jobId: string, index: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { perMessageDeflate: false, skipUTF8Validation: true, handshakeTimeout: 30_000 });
    sockets.push(socket);
    let subscribed = false;
    let opened = false;
    const timer = setTimeout(() => reject(new Error(opened ? 'open, subscribed, but no snapshot within 30 s' : 'no upgrade within 30 s')), 30_000);
    socket.on('open', () => {
      opened = true;
      socket.send(JSON.stringify({ type: 'subscribe', jobId }));
    });
    socket.on('message', (data: Buffer) =>
      onMessage(index, data, 0, data.length, nowMicros(), subscribed ? null : () => {
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
    let opened = false;
    const timer = setTimeout(() => reject(new Error(opened ? 'connected, subscribed, but no snapshot within 30 s' : 'no connection within 30 s')), 30_000);
    socket.on('connect', () => {
      opened = true;
      socket.send(JSON.stringify({ type: 'subscribe', jobId }));
    });
    socket.on('message', (text: string) =>
      onMessage(index, text, 0, text.length, nowMicros(), subscribed ? null : () => {
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
  lastSentAt = jobIds.map(() => 0);
  let next = 0;
  let opened = 0;
  let failed = 0;
  const errors = new Set<string>();
  patterns = kind === 'lean-socket.io' ? ESCAPED : PLAIN;
  const open =
    kind === 'ws'
      ? openWs
      : kind === 'socket.io'
        ? openSocketIo
        : (url: string, jobId: string, index: number) => openLean(url, jobId, index, kind === 'lean-socket.io');
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
        if (socket instanceof WebSocket || socket instanceof LeanWebSocket) socket.terminate();
        else socket.disconnect();
      }
      send({ cmd: 'closed' });
      setTimeout(() => process.exit(0), 50);
      break;
  }
});
process.on('disconnect', () => process.exit(0));
