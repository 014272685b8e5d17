/**
 * When a socket refreshes its token in place: a token's lifetime read from its JWT payload (without
 * verifying it: the server checks the token, this only times the refresh) and the schedule
 * constants. Refreshing at REFRESH_AT of the lifetime leaves room for REFRESH_RETRIES further
 * attempts before the server's 4001 at expiry would force a reconnect.
 */

/** Share of a token's lifetime (`iat`…`exp`) after which the socket refreshes it in place. */
export const REFRESH_AT = 0.8;
/** Further refresh attempts after one fails (provider error, refused or stale token), spread over the time left. */
export const REFRESH_RETRIES = 3;
/** Shortest wait before such a further attempt (ms). */
export const MIN_REFRESH_RETRY_MS = 200;
/** setTimeout's longest delay (a longer one fires at once): later refreshes are reached in hops. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** An `auth` message: its token and the token's times (epoch ms) as its payload states them. */
export interface Credentials {
  token: string;
  /** `iat`, or when the token was handed to the socket if it has none. */
  issuedAtMs: number;
  /** `exp`; undefined when the token is not a JWT or has no `exp` (then it is never refreshed). */
  expiresAtMs?: number;
}

/**
 * A token's `iat` and `exp` (epoch ms) from its JWT payload, read without verifying it: only
 * for timing the refresh; the server checks the token. Not a JWT or no `exp`: no expiry.
 */
export function credentialsOf(token: string): Credentials {
  const received = Date.now();
  try {
    const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as {
      exp?: unknown;
      iat?: unknown;
    };
    const exp = typeof payload.exp === 'number' && Number.isFinite(payload.exp) ? payload.exp * 1000 : undefined;
    const iat = typeof payload.iat === 'number' && Number.isFinite(payload.iat) ? payload.iat * 1000 : undefined;
    // An `iat` in the future (clock skew) or after `exp` would stretch the schedule: take the receipt time.
    const issuedAtMs = iat !== undefined && iat <= received && (exp === undefined || iat < exp) ? iat : received;
    return { token, issuedAtMs, expiresAtMs: exp };
  } catch {
    return { token, issuedAtMs: received };
  }
}
