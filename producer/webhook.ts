/**
 * Verifying the server's webhooks on the receiving side (Standard Webhooks,
 * https://www.standardwebhooks.com). The server signs each attempt with the bytes of
 * PT_WEBHOOK_SECRET (`whsec_<base64>`): `webhook-signature: v1,<base64 HMAC-SHA256 of
 * "<webhook-id>.<webhook-timestamp>.<raw body>">`. `verifyWebhook` recomputes it, compares in
 * constant time, refuses timestamps more than 5 minutes away from now (stale or replayed
 * requests: the timestamp is signed, so it cannot be refreshed without the secret) and returns
 * the parsed body. Receivers dedupe on `webhook-id`: it is the same on every attempt of one
 * delivery. See docs/producer.md "Verifying webhooks".
 *
 * Node built-ins only, and its own implementation: nothing here is shared with the server.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { RetryWebhook } from '../protocol/index.js';

/** How far `webhook-timestamp` may be from now, either way (Standard Webhooks' 5 minutes). */
export const WEBHOOK_TOLERANCE_SECONDS = 300;

/** Why a webhook was refused. */
export type WebhookVerificationReason =
  /** `webhook-id`, `webhook-timestamp` or `webhook-signature` is absent, empty or repeated. */
  | 'missing_header'
  /** `webhook-timestamp` is not an integer number of seconds. */
  | 'invalid_timestamp'
  /** Older than the tolerance: a stale or replayed request. */
  | 'timestamp_too_old'
  /** Further ahead than the tolerance (or this machine's clock is behind). */
  | 'timestamp_too_new'
  /** No `v1` signature in `webhook-signature` matches the secret, id, timestamp and body. */
  | 'invalid_signature'
  /** Correctly signed, but the body is not a JSON object. */
  | 'invalid_payload';

/**
 * A request that is not a genuine, fresh webhook of the server: answer it with a 4xx (the
 * server does not retry a 4xx) and do not act on it. `reason` says which check failed.
 */
export class WebhookVerificationError extends Error {
  override readonly name = 'WebhookVerificationError';

  constructor(
    readonly reason: WebhookVerificationReason,
    message: string,
  ) {
    super(message);
  }
}

/** Type guard, optionally by reason: `isWebhookVerificationError(err, 'timestamp_too_old')`. */
export function isWebhookVerificationError(err: unknown, reason?: WebhookVerificationReason): err is WebhookVerificationError {
  return err instanceof WebhookVerificationError && (reason === undefined || err.reason === reason);
}

/** A fetch `Headers` (Fetch API, Hono, Next.js route handlers) or Node's `IncomingMessage.headers` (Express, Fastify, node:http). */
export type WebhookHeaders = Headers | Record<string, string | string[] | undefined>;

export interface VerifyWebhookOptions {
  /** The current time, `Date` or milliseconds since the epoch (default `Date.now()`): for tests. */
  now?: Date | number;
  /** Allowed distance of `webhook-timestamp` from now, in seconds (default 300). */
  toleranceSeconds?: number;
}

/**
 * Checks a webhook request and returns its parsed body. Throws a {@link WebhookVerificationError}
 * when the request is not a genuine, fresh webhook, and a `TypeError` when the call itself is
 * wrong (a secret that is not `whsec_<base64>`, a body that was already parsed).
 *
 * @param secret the server's PT_WEBHOOK_SECRET, `whsec_<base64>` (the prefix may be left out)
 * @param headers the request's headers
 * @param rawBody the body exactly as received (a string or a Buffer), never re-serialized JSON
 */
export function verifyWebhook(secret: string, headers: WebhookHeaders, rawBody: string | Uint8Array, options: VerifyWebhookOptions = {}): RetryWebhook {
  const key = secretKey(secret);
  if (typeof rawBody !== 'string' && !(rawBody instanceof Uint8Array)) {
    throw new TypeError('verifyWebhook: rawBody must be the body as received (string or Buffer), not parsed JSON: e.g. express.raw({ type: "application/json" })');
  }
  const id = single(headers, 'webhook-id');
  const timestampText = single(headers, 'webhook-timestamp');
  const signatures = header(headers, 'webhook-signature');
  if (signatures === undefined || signatures.trim() === '') throw new WebhookVerificationError('missing_header', 'missing webhook-signature header');

  if (!/^\d{1,15}$/.test(timestampText)) throw new WebhookVerificationError('invalid_timestamp', 'webhook-timestamp must be an integer number of seconds');
  const timestamp = Number(timestampText);
  const nowMs = options.now === undefined ? Date.now() : typeof options.now === 'number' ? options.now : options.now.getTime();
  const now = Math.floor(nowMs / 1000);
  const tolerance = options.toleranceSeconds ?? WEBHOOK_TOLERANCE_SECONDS;
  if (now - timestamp > tolerance) throw new WebhookVerificationError('timestamp_too_old', `webhook-timestamp is ${now - timestamp} s old (more than ${tolerance} s): stale or replayed`);
  if (timestamp - now > tolerance) throw new WebhookVerificationError('timestamp_too_new', `webhook-timestamp is ${timestamp - now} s in the future (more than ${tolerance} s)`);

  const body = typeof rawBody === 'string' ? Buffer.from(rawBody, 'utf8') : Buffer.from(rawBody.buffer, rawBody.byteOffset, rawBody.byteLength);
  const expected = createHmac('sha256', key).update(`${id}.${timestampText}.`).update(body).digest();
  // A space-separated list (several during a secret rotation): any matching v1 entry will do.
  const matches = signatures
    .split(/\s+/)
    .map((entry) => entry.replace(/,$/, '')) // `Headers.get` joins repeated headers with ", "
    .some((entry) => {
      const comma = entry.indexOf(',');
      if (comma < 0 || entry.slice(0, comma) !== 'v1') return false;
      const given = Buffer.from(entry.slice(comma + 1), 'base64');
      return given.length === expected.length && timingSafeEqual(given, expected);
    });
  if (!matches) throw new WebhookVerificationError('invalid_signature', 'no v1 signature in webhook-signature matches (wrong secret, or the body was changed: pass it exactly as received)');

  let payload: unknown;
  try {
    payload = JSON.parse(body.toString('utf8'));
  } catch {
    throw new WebhookVerificationError('invalid_payload', 'the signed body is not JSON');
  }
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) throw new WebhookVerificationError('invalid_payload', 'the signed body is not a JSON object');
  return payload as RetryWebhook;
}

function secretKey(secret: string): Buffer {
  const b64 = typeof secret === 'string' ? secret.replace(/^whsec_/, '') : '';
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) throw new TypeError('verifyWebhook: secret must be the server\'s PT_WEBHOOK_SECRET, whsec_ followed by base64');
  return Buffer.from(b64, 'base64');
}

/** A header's value, case-insensitively; repeated values joined with a space. */
function header(headers: WebhookHeaders, name: string): string | undefined {
  if (typeof (headers as Headers).get === 'function') return (headers as Headers).get(name) ?? undefined;
  const record = headers as Record<string, string | string[] | undefined>;
  let value = record[name];
  if (value === undefined) {
    const key = Object.keys(record).find((k) => k.toLowerCase() === name);
    value = key === undefined ? undefined : record[key];
  }
  return Array.isArray(value) ? value.join(' ') : value;
}

/** A header that must be there once, non-empty. */
function single(headers: WebhookHeaders, name: string): string {
  const value = header(headers, name)?.trim();
  if (!value) throw new WebhookVerificationError('missing_header', `missing ${name} header`);
  if (/[\s,]/.test(value)) throw new WebhookVerificationError('missing_header', `${name} must be one value`);
  return value;
}
