/**
 * A minimal RFC 6455 client for the fan-out ramp: handshake, unmasked server frames parsed in
 * place (no copy, no event per frame), masked client frames, ping → pong, close. It exists
 * because the load generator must cost less per message than the servers it measures: the `ws`
 * client spends several µs per message, more than uWebSockets.js spends per delivery, so with it
 * the benchmark would measure the client. No extensions, no fragmentation of outgoing frames.
 */
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { nowMicros } from './histogram.js';

export interface LeanHandlers {
  open(): void;
  /**
   * A text or binary message: bytes `start..end` of `buffer`, valid only during the call.
   * `receivedAt` (µs, see histogram.ts) is when the read that carried it returned.
   */
  message(buffer: Buffer, start: number, end: number, receivedAt: number): void;
  error(error: Error): void;
  close(): void;
}

const HEADER_END = Buffer.from('\r\n\r\n');

/**
 * Every socket of the process reads into this one buffer (net's `onread`): no allocation and no
 * stream machinery per read. Safe because each callback finishes before the next read.
 */
const READ_BUFFER = Buffer.allocUnsafe(256 * 1024);

export class LeanWebSocket {
  private readonly socket: Socket;
  private upgraded = false;
  private pending: Buffer | null = null;
  private fragments: Buffer[] | null = null;
  private closed = false;

  constructor(url: string, private readonly on: LeanHandlers) {
    const { hostname, port, pathname, search } = new URL(url);
    this.socket = connect({
      host: hostname,
      port: Number(port),
      noDelay: true,
      onread: {
        buffer: READ_BUFFER,
        callback: (length: number, buffer: Uint8Array) => {
          this.onData(Buffer.from(buffer.buffer, buffer.byteOffset, length));
          return true;
        },
      },
    });
    this.socket.on('connect', () => {
      this.socket.write(
        `GET ${pathname}${search} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
    this.socket.on('error', (error) => this.on.error(error));
    this.socket.on('close', () => {
      if (!this.upgraded) this.on.error(new Error('connection closed before the upgrade'));
      if (!this.closed) {
        this.closed = true;
        this.on.close();
      }
    });
  }

  send(text: string): void {
    const payload = Buffer.from(text);
    const length = payload.length;
    const header = length < 126 ? 2 : length < 65_536 ? 4 : 10;
    const frame = Buffer.allocUnsafe(header + 4 + length);
    frame[0] = 0x81;
    if (length < 126) frame[1] = 0x80 | length;
    else if (length < 65_536) {
      frame[1] = 0x80 | 126;
      frame.writeUInt16BE(length, 2);
    } else {
      frame[1] = 0x80 | 127;
      frame.writeBigUInt64BE(BigInt(length), 2);
    }
    this.writeMasked(frame, header, payload);
  }

  /**
   * Closes with a TCP reset: no TIME_WAIT entry is left behind. A suite closes tens of thousands
   * of connections, which otherwise linger for 60 s into the next scenarios (kernel timers and
   * socket lookups that are not the next server's work).
   */
  terminate(): void {
    this.closed = true;
    this.socket.resetAndDestroy();
  }

  private writeMasked(frame: Buffer, header: number, payload: Buffer): void {
    const mask = randomBytes(4);
    mask.copy(frame, header);
    for (let i = 0; i < payload.length; i++) frame[header + 4 + i] = payload[i]! ^ mask[i & 3]!;
    this.socket.write(frame);
  }

  private control(opcode: number, payload: Buffer): void {
    const frame = Buffer.allocUnsafe(2 + 4 + payload.length);
    frame[0] = 0x80 | opcode;
    frame[1] = 0x80 | payload.length;
    this.writeMasked(frame, 2, payload);
  }

  private onData(chunk: Buffer): void {
    // One clock reading per read: every frame in it arrived at the same moment.
    const receivedAt = nowMicros();
    const buffer = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = null;
    let offset = 0;
    if (!this.upgraded) {
      const end = buffer.indexOf(HEADER_END);
      if (end < 0) {
        this.pending = Buffer.from(buffer);
        return;
      }
      const status = buffer.toString('latin1', 9, 12);
      if (status !== '101') {
        this.on.error(new Error(`HTTP ${status} on upgrade`));
        this.terminate();
        return;
      }
      this.upgraded = true;
      offset = end + 4;
      this.on.open();
    }
    while (offset + 2 <= buffer.length) {
      const first = buffer[offset]!;
      let length = buffer[offset + 1]! & 0x7f;
      let header = 2;
      if (length === 126) {
        if (offset + 4 > buffer.length) break;
        length = buffer.readUInt16BE(offset + 2);
        header = 4;
      } else if (length === 127) {
        if (offset + 10 > buffer.length) break;
        length = Number(buffer.readBigUInt64BE(offset + 2));
        header = 10;
      }
      const start = offset + header;
      const end = start + length;
      if (end > buffer.length) break;
      const opcode = first & 0x0f;
      const fin = (first & 0x80) !== 0;
      if (opcode === 1 || opcode === 2 || opcode === 0) {
        if (fin && !this.fragments) this.on.message(buffer, start, end, receivedAt);
        else {
          (this.fragments ??= []).push(Buffer.from(buffer.subarray(start, end)));
          if (fin) {
            const whole = Buffer.concat(this.fragments);
            this.fragments = null;
            this.on.message(whole, 0, whole.length, receivedAt);
          }
        }
      } else if (opcode === 9) this.control(10, buffer.subarray(start, end));
      else if (opcode === 8) {
        this.closed = true;
        this.socket.end();
        this.on.close();
        return;
      }
      offset = end;
    }
    // The read buffer is shared and reused: keep a copy of an incomplete tail.
    if (offset < buffer.length) this.pending = Buffer.from(buffer.subarray(offset));
  }
}
