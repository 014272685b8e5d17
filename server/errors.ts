/**
 * One error type for every refusal the server gives: an HTTP status, a stable machine code from
 * protocol.ts, and a message a developer can act on. HTTP answers it as
 * `{"error":{"code","message"}}`; the WebSocket hub as `{"type":"error",...}`.
 */
import type { ErrorCode } from './protocol.js';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  toBody(): { error: { code: ErrorCode; message: string } } {
    return { error: { code: this.code, message: this.message } };
  }
}

export const badRequest = (message: string) => new ApiError(400, 'bad_request', message);
export const notFound = (message: string) => new ApiError(404, 'not_found', message);
export const forbidden = (message: string) => new ApiError(403, 'forbidden', message);
export const unauthorized = (message: string) => new ApiError(401, 'unauthorized', message);
