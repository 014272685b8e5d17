/**
 * Token refresh in place on an open WebSocket: before the token expires, ask the token provider
 * for a fresh one and send `{"type":"auth","token"}` on the same socket, so a long job never
 * loses its connection to a short-lived token. The server answers `auth_ok` with the new expiry
 * (which plans the next refresh) and closes with 4001 only when no valid token arrived in time.
 *
 * When: at 80% of the token's lifetime (`exp − iat`, read from the JWT without verifying it —
 * the server verifies; the client only needs the times). The lifetime is the same on both
 * clocks, so a browser clock that disagrees with the issuer's cannot push the refresh past the
 * expiry: the age since `iat` is bounded to 0..lifetime. A token that is not a JWT (no readable
 * `exp`) is not refreshed in place; the server's 4001 then leads to a reconnect with a fresh one.
 */
import { clamp } from '../protocol/index.js';

/** The share of a token's lifetime after which it is replaced. */
export const REFRESH_AT_FRACTION = 0.8;
/** Never plan a refresh sooner than this (a nearly expired token must not spin the timer). */
const MIN_DELAY_MS = 1000;

export interface JwtTimes {
  /** Expiry, epoch seconds. */
  exp?: number;
  /** Issued at, epoch seconds. */
  iat?: number;
}

/** `exp` and `iat` of a JWT (base64url JSON payload), unverified; {} for anything else. */
export function jwtTimes(token: string | undefined): JwtTimes {
  const payload = token?.split('.')[1];
  if (!payload) return {};
  try {
    const claims = JSON.parse(atob(payload.replace(/-/g, '+').replace(/_/g, '/'))) as Record<string, unknown>;
    const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
    return { exp: num(claims.exp), iat: num(claims.iat) };
  } catch {
    return {};
  }
}

/** Milliseconds from `now` until a token valid until `exp` (issued at `iat`) should be replaced. */
export function refreshDelayMs(exp: number, iat: number | undefined, now: number, fraction = REFRESH_AT_FRACTION): number {
  const expMs = exp * 1000;
  const issuedMs = iat !== undefined && iat < exp ? iat * 1000 : now;
  const lifetime = expMs - issuedMs;
  if (!(lifetime > 0)) return MIN_DELAY_MS;
  const age = clamp(now - issuedMs, 0, lifetime);
  return Math.max(MIN_DELAY_MS, fraction * lifetime - age);
}

export interface TokenRefresherOptions {
  /** The token provider (fresh token, or the same/undefined when it has none). */
  getToken: () => Promise<string | undefined>;
  /** Sends `{"type":"auth","token"}` on the open socket. */
  send: (token: string) => void;
}

/**
 * Plans and sends refreshes for one socket at a time. The client tells it what happened:
 * `sent` (an `auth` went out), `accepted` (`auth_ok`), `refused` (an `unauthorized` error), and
 * `stop` when the socket goes.
 */
export class TokenRefresher {
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** The token the socket holds (accepted), and the one awaiting an answer. */
  private current: string | undefined;
  private inFlight: string | undefined;
  /** Expiry of the current token (epoch s), from `auth_ok`. */
  private exp = 0;
  private generation = 0;

  constructor(private readonly options: TokenRefresherOptions) {}

  /** An `auth` with `token` went out (the first one of a socket, or a refresh). */
  sent(token: string): void {
    this.inFlight = token;
  }

  /** `auth_ok`: the token in flight holds until `exp`; plan its replacement. */
  accepted(exp: number): void {
    if (this.inFlight !== undefined) this.current = this.inFlight;
    this.inFlight = undefined;
    this.exp = exp;
    this.plan(refreshDelayMs(exp, jwtTimes(this.current).iat, Date.now()));
  }

  /** `unauthorized` after an `auth`: the socket keeps the token it had; try again while it lasts. */
  refused(): void {
    if (this.inFlight === undefined) return;
    this.inFlight = undefined;
    this.retryLater();
  }

  /** A socket authenticated with its URL token (`tokenInUrl`): plan from the token's own `exp`. */
  adopt(token: string): void {
    const { exp } = jwtTimes(token);
    this.stop();
    this.current = token;
    if (exp !== undefined) this.accepted(exp);
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.current = undefined;
    this.inFlight = undefined;
    this.exp = 0;
    this.generation++;
  }

  private plan(delay: number): void {
    clearTimeout(this.timer);
    const generation = this.generation;
    this.timer = setTimeout(() => void this.refresh(generation), delay);
  }

  private async refresh(generation: number): Promise<void> {
    const token = await this.options.getToken();
    if (generation !== this.generation) return;
    // No new token (a static one, or the provider failed): ask again while the old one lasts.
    if (!token || token === this.current) return this.retryLater();
    this.sent(token);
    this.options.send(token);
  }

  /** Half of the time left, while some is left; after that the server's 4001 decides. */
  private retryLater(): void {
    const left = this.exp * 1000 - Date.now();
    if (left > MIN_DELAY_MS) this.plan(Math.max(MIN_DELAY_MS, left / 2));
  }
}
