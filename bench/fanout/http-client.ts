/**
 * A lean keep-alive HTTP/1.1 client for the producer side: a fixed pool of TCP connections, one
 * request in flight per connection, no pipelining. Node's `http.request` costs tens of µs per call
 * on the load-generator core; this costs a few, so the producer does not steal the core the
 * clients measure on. The body may be a function, called when the request is written, so a send
 * timestamp embedded in it is the real send time.
 */
import { connect, type Socket } from 'node:net';
import { nowMicros } from './histogram.js';

export interface HttpAnswer {
  status: number;
  body: string;
  /** Round trip in µs from write to complete answer. */
  micros: number;
}

interface Pending {
  method: string;
  path: string;
  body: string | (() => string);
  resolve: (answer: HttpAnswer) => void;
  reject: (error: Error) => void;
}

const HEADER_END = Buffer.from('\r\n\r\n');

class Connection {
  private socket: Socket | null = null;
  private ready: Promise<void> = Promise.resolve();
  private buffer: Buffer = Buffer.alloc(0);
  private current: (Pending & { sentAt: number }) | null = null;

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly headers: string,
    private readonly onIdle: (connection: Connection) => void,
  ) {}

  /** Servers close idle keep-alive connections (uWS after ~10 s, Node after 5 s): reopen on demand. */
  private open(): Socket {
    const socket = connect({ host: this.host, port: this.port, noDelay: true });
    this.socket = socket;
    this.buffer = Buffer.alloc(0);
    this.ready = new Promise((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('error', reject);
    });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      if (this.socket === socket) this.socket = null;
      this.fail(new Error('connection closed'));
    });
    return socket;
  }

  get busy(): boolean {
    return this.current !== null;
  }

  send(pending: Pending): void {
    this.current = { ...pending, sentAt: 0 };
    const socket = this.socket ?? this.open();
    void this.ready.then(
      () => {
        if (this.socket !== socket || !this.current) return;
        const body = typeof pending.body === 'function' ? pending.body() : pending.body;
        this.current.sentAt = nowMicros();
        socket.write(
          `${pending.method} ${pending.path} HTTP/1.1\r\nhost: 127.0.0.1\r\n${this.headers}content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
        );
      },
      (error: Error) => this.fail(error),
    );
  }

  close(): void {
    this.closed = true;
    // A reset, not a FIN: no TIME_WAIT entry left for the next scenario (see LeanWebSocket.terminate).
    this.socket?.resetAndDestroy();
  }

  private closed = false;

  /** Fails the request in flight, if any, and frees the connection for the next one. */
  private fail(error: Error): void {
    const current = this.current;
    this.current = null;
    if (!current) return;
    current.reject(error);
    if (!this.closed) this.onIdle(this);
  }

  private onData(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    const headerEnd = this.buffer.indexOf(HEADER_END);
    if (headerEnd < 0) return;
    const head = this.buffer.subarray(0, headerEnd).toString('latin1');
    const status = Number(head.slice(9, 12));
    const lengthMatch = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    let body: string;
    let consumed: number;
    if (lengthMatch) {
      const length = Number(lengthMatch[1]);
      if (this.buffer.length < headerEnd + 4 + length) return;
      body = this.buffer.subarray(headerEnd + 4, headerEnd + 4 + length).toString();
      consumed = headerEnd + 4 + length;
    } else if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
      const parts: Buffer[] = [];
      let offset = headerEnd + 4;
      for (;;) {
        const lineEnd = this.buffer.indexOf('\r\n', offset);
        if (lineEnd < 0) return;
        const size = parseInt(this.buffer.subarray(offset, lineEnd).toString('latin1'), 16);
        if (this.buffer.length < lineEnd + 2 + size + 2) return;
        if (size === 0) {
          consumed = lineEnd + 4;
          break;
        }
        parts.push(this.buffer.subarray(lineEnd + 2, lineEnd + 2 + size));
        offset = lineEnd + 2 + size + 2;
      }
      body = Buffer.concat(parts).toString();
    } else {
      body = '';
      consumed = headerEnd + 4;
    }
    this.buffer = this.buffer.subarray(consumed);
    const current = this.current;
    this.current = null;
    if (current) current.resolve({ status, body, micros: nowMicros() - current.sentAt });
    this.onIdle(this);
  }
}

export class HttpPool {
  private readonly connections: Connection[] = [];
  private readonly idle: Connection[] = [];
  private readonly queue: Pending[] = [];

  constructor(host: string, port: number, size: number, headers: Record<string, string> = {}) {
    const headerText = Object.entries(headers)
      .map(([name, value]) => `${name}: ${value}\r\n`)
      .join('');
    for (let i = 0; i < size; i++) {
      const connection = new Connection(host, port, headerText, (free) => this.release(free));
      this.connections.push(connection);
      this.idle.push(connection);
    }
  }

  /** Requests waiting for a free connection. */
  get queued(): number {
    return this.queue.length;
  }

  get inFlight(): number {
    return this.connections.length - this.idle.length;
  }

  request(method: string, path: string, body: string | (() => string)): Promise<HttpAnswer> {
    return new Promise((resolve, reject) => {
      const pending: Pending = { method, path, body, resolve, reject };
      const connection = this.idle.pop();
      if (connection) connection.send(pending);
      else this.queue.push(pending);
    });
  }

  close(): void {
    for (const connection of this.connections) connection.close();
  }

  private release(connection: Connection): void {
    const next = this.queue.shift();
    if (next) connection.send(next);
    else this.idle.push(connection);
  }
}
