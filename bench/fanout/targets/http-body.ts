/** Reads a uWebSockets.js request body (the chunks are only valid inside the callback: copy them). */
import type { HttpResponse } from 'uWebSockets.js';

export function readBody(res: HttpResponse, onBody: (body: Buffer) => void): void {
  const chunks: Buffer[] = [];
  res.onAborted(() => {
    chunks.length = 0;
  });
  res.onData((chunk, isLast) => {
    chunks.push(Buffer.from(chunk.slice(0)));
    if (isLast) onBody(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
  });
}
