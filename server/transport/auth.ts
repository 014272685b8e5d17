/**
 * JWT verification (jose) and per-job authorization.
 *
 * - The accepted algorithms come from config, never from the token: `alg: none` is rejected
 *   by jose outright and any algorithm outside the allow-list fails before a key is chosen.
 * - One key per algorithm family: HS* tokens are checked only against the shared secret, RS/ES/
 *   PS/EdDSA tokens only against the JWKS. That closes algorithm confusion (an RSA public key
 *   used as an HMAC secret). `kid` only selects among the JWKS's keys; `jku`/`x5u` are ignored.
 * - `exp` is required, `nbf`/`iss`/`aud` are checked, tokens over 8 KiB are refused unparsed.
 * - Lifetime is bounded (PT_JWT_MAX_TTL, default 24 h): `exp` must be a finite time at most that
 *   far from now (plus the clock tolerance), and `exp` − `iat` at most that when `iat` is given.
 *   A token with `exp: 1e308` would otherwise never expire, and a socket opened with it would
 *   never be closed by the expiry sweep.
 * - Scopes come in one form only: the `scope` claim, a space-separated string (RFC 8693 §4.2).
 *   A `scope` array or an `scp` claim (other IdPs' conventions) is refused with 401 rather than
 *   half-understood, so a misissued token fails loudly at the door instead of as a 403 later.
 * - The JWKS is fetched lazily and cached (jose's createRemoteJWKSet: 10 min cache, refetch on
 *   an unknown `kid` at most every 30 s).
 */
import { createRemoteJWKSet, errors as joseErrors, jwtVerify, SignJWT, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import type { JwtAlgorithm } from '../app/config.js';
import { ApiError, LIMITS, type Scope } from '../../protocol/index.js';

/**
 * What authorization needs from a verified token. One frozen object per token, shared by every
 * request and socket that presents it (see the verifier's cache).
 */
export interface Principal {
  /** `sub` claim, for logs. */
  readonly subject?: string;
  readonly scopes: ReadonlySet<Scope>;
  /** Job grants: exact ids, `prefix*`, or `*`. */
  readonly jobs: readonly string[];
  /** Expiry, epoch ms. */
  readonly expiresAt: number;
}

export interface AuthOptions {
  jwtSecret?: string;
  jwksUrl?: string;
  issuer?: string;
  audience: string;
  algorithms: readonly JwtAlgorithm[];
  /** Allowed clock skew, seconds (default 30). */
  clockToleranceSec?: number;
  /** Longest accepted token lifetime, ms (default 24 h): see the header. */
  maxTtlMs?: number;
}

/** PT_JWT_MAX_TTL's default. */
export const DEFAULT_JWT_MAX_TTL_MS = 86_400_000;

export interface Verifier {
  verify(token: string): Promise<Principal>;
}

const SCOPES: readonly Scope[] = ['progress:read', 'progress:write', 'progress:retry', 'progress:cancel'];

const unauthorized = (message: string) => new ApiError(401, 'unauthorized', message);

/** What the server expects, named in refusals (never anything from the token itself). */
interface Expected {
  audience: string;
  issuer?: string;
  algorithms: readonly string[];
}

/** A short reason naming what was expected, without echoing the token. */
function describe(err: unknown, expected: Expected): string {
  if (err instanceof joseErrors.JWTExpired) return 'token expired';
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'aud') return `token audience (claim "aud") is not accepted: this server expects "${expected.audience}" (PT_JWT_AUDIENCE)`;
    if (err.claim === 'iss' && expected.issuer !== undefined) {
      return `token issuer (claim "iss") is not accepted: this server expects "${expected.issuer}" (PT_JWT_ISSUER)`;
    }
    return `token claim "${err.claim}" is invalid (${err.reason})`;
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return algorithmNotAllowed(expected);
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'token signature is invalid';
  if (err instanceof joseErrors.JWKSNoMatchingKey) return 'no key matches the token';
  if (err instanceof joseErrors.JWKSTimeout) return 'the key set could not be fetched in time';
  if (err instanceof joseErrors.JWTInvalid || err instanceof joseErrors.JWSInvalid) return 'token is malformed';
  if (err instanceof joseErrors.JOSENotSupported) return `token algorithm not supported: this server expects ${expected.algorithms.join(' or ')}`;
  if (err instanceof ApiError) return err.message;
  return 'token is invalid';
}

const algorithmNotAllowed = (expected: Expected) => `token algorithm not allowed: this server expects ${expected.algorithms.join(' or ')} (PT_JWT_ALGORITHMS)`;

export function createVerifier(options: AuthOptions): Verifier {
  const secret = options.jwtSecret ? new TextEncoder().encode(options.jwtSecret) : undefined;
  const jwks = options.jwksUrl
    ? createRemoteJWKSet(new URL(options.jwksUrl), { cacheMaxAge: 10 * 60_000, cooldownDuration: 30_000, timeoutDuration: 5_000 })
    : undefined;
  const algorithms = [...options.algorithms];
  const expected: Expected = { audience: options.audience, algorithms, ...(options.issuer !== undefined && { issuer: options.issuer }) };

  const hmacKeys = new Map<string, Promise<CryptoKey>>();
  const getKey: JWTVerifyGetKey = async (header, token) => {
    const alg = header.alg ?? '';
    if (alg.startsWith('HS')) {
      if (!secret) throw unauthorized(`HMAC tokens are not accepted by this server: it expects ${algorithms.join(' or ')}`);
      if (!algorithms.includes(alg as JwtAlgorithm)) throw unauthorized(algorithmNotAllowed(expected));
      // Imported once per algorithm: jose would otherwise import the raw secret on every verify.
      let key = hmacKeys.get(alg);
      if (!key) {
        key = crypto.subtle.importKey('raw', secret, { name: 'HMAC', hash: `SHA-${alg.slice(2)}` }, false, ['verify']);
        hmacKeys.set(alg, key);
      }
      return key;
    }
    if (!jwks) throw unauthorized(`public-key tokens are not accepted by this server: it expects ${algorithms.join(' or ')}`);
    return jwks(header, token);
  };

  // Producers send many requests with one token: remember verified tokens (by their exact
  // text, so the signature is the same) until they expire, instead of re-running the crypto.
  const verified = new Map<string, { principal: Principal; notBefore: number }>();
  const CACHE_SIZE = 10_000;
  // A burst of connections with one token (a page of widgets, a reconnect storm) shares one
  // verification, so they share one principal too.
  const inFlight = new Map<string, Promise<Principal>>();

  const verifyUncached = async (token: string): Promise<Principal> => {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, getKey, {
        algorithms,
        audience: options.audience,
        ...(options.issuer !== undefined && { issuer: options.issuer }),
        requiredClaims: ['exp'],
        clockTolerance: options.clockToleranceSec ?? 30,
      }));
    } catch (err) {
      throw unauthorized(describe(err, expected));
    }
    checkLifetime(payload, options.maxTtlMs ?? DEFAULT_JWT_MAX_TTL_MS, options.clockToleranceSec ?? 30);
    const principal = principalFrom(payload);
    if (verified.size >= CACHE_SIZE) verified.delete(verified.keys().next().value!);
    verified.set(token, { principal, notBefore: typeof payload.nbf === 'number' ? payload.nbf * 1000 : 0 });
    return principal;
  };

  return {
    async verify(token: string): Promise<Principal> {
      if (!token) throw unauthorized('missing token');
      if (token.length > LIMITS.maxTokenBytes) throw unauthorized(`token larger than ${LIMITS.maxTokenBytes} bytes`);
      const hit = verified.get(token);
      if (hit) {
        const now = Date.now();
        const tolerance = (options.clockToleranceSec ?? 30) * 1000;
        if (now < hit.principal.expiresAt + tolerance && now >= hit.notBefore - tolerance) return hit.principal;
        verified.delete(token);
      }
      let pending = inFlight.get(token);
      if (!pending) {
        pending = verifyUncached(token).finally(() => inFlight.delete(token));
        inFlight.set(token, pending);
      }
      return pending;
    },
  };
}

/**
 * `exp` (already required and checked against the clock by jose) must be a plausible time: finite
 * and at most `maxTtlMs` (+ tolerance) from now; with `iat`, the lifetime `exp` − `iat` is bounded
 * too, so a long-lived token is refused even late in its life.
 */
function checkLifetime(payload: JWTPayload, maxTtlMs: number, toleranceSec: number): void {
  const exp = payload.exp as number;
  const maxSec = maxTtlMs / 1000;
  const seconds = `${Math.round(maxSec)} s`;
  if (!Number.isFinite(exp)) throw unauthorized('token claim "exp" is not a plausible time');
  if (exp - Date.now() / 1000 > maxSec + toleranceSec) {
    throw unauthorized(`token claim "exp" is too far in the future (this server accepts tokens living at most ${seconds})`);
  }
  const iat = payload.iat;
  if (iat !== undefined && (!Number.isFinite(iat) || exp - iat > maxSec)) {
    throw unauthorized(`token lifetime (exp - iat) is longer than this server accepts (at most ${seconds})`);
  }
}

function principalFrom(payload: JWTPayload): Principal {
  // One documented form: `scope`, a space-separated string. Anything else is refused, not guessed.
  if (payload.scp !== undefined) throw unauthorized('token claim "scp" is not accepted: give scopes as the space-separated "scope" string');
  const rawScope = payload.scope;
  if (rawScope !== undefined && typeof rawScope !== 'string') throw unauthorized('token claim "scope" must be a space-separated string');
  const words = rawScope === undefined ? [] : rawScope.split(/\s+/);
  const scopes = new Set(words.filter((w): w is Scope => SCOPES.includes(w as Scope)));
  const jobs = Array.isArray(payload.jobs) ? payload.jobs.filter((j): j is string => typeof j === 'string' && j.length > 0) : [];
  const expiresAt = (payload.exp as number) * 1000;
  Object.freeze(jobs);
  return Object.freeze(typeof payload.sub === 'string' ? { subject: payload.sub, scopes, jobs, expiresAt } : { scopes, jobs, expiresAt });
}

/**
 * What a grant is checked against: a job id, or a job (id and tags). A `tag:` grant covers only a
 * job whose tags are known; callers holding just an id load the job when `hasTagGrants`.
 */
export type JobRef = string | { readonly id: string; readonly tags?: readonly string[] };

const TAG_GRANT = 'tag:';

/** Whether one grant (`id`, `prefix*`, `*`, `tag:<tag>`) covers the job. */
export function grantCovers(grant: string, job: JobRef): boolean {
  const id = typeof job === 'string' ? job : job.id;
  if (grant.startsWith(TAG_GRANT)) return typeof job !== 'string' && (job.tags?.includes(grant.slice(TAG_GRANT.length)) ?? false);
  if (grant === '*') return true;
  if (grant.endsWith('*')) return id.startsWith(grant.slice(0, -1));
  return grant === id;
}

export const coversJob = (p: Principal, job: JobRef): boolean => p.jobs.some((g) => grantCovers(g, job));

/** The token grants jobs by tag: an id alone cannot decide, the job's tags must be read. */
export const hasTagGrants = (p: Principal): boolean => p.jobs.some((g) => g.startsWith(TAG_GRANT));

/**
 * Whether `can` allows job `id`: by its id alone, or — for a token with `tag:` grants — by the
 * job's tags, read only then. A job that does not exist is simply not allowed (no 404/403 leak).
 */
export async function allowed(
  p: Principal,
  can: (p: Principal, job: JobRef) => boolean,
  id: string,
  load: (id: string) => Promise<{ id: string; tags?: readonly string[] } | undefined>,
): Promise<boolean> {
  if (can(p, id)) return true;
  if (!hasTagGrants(p)) return false;
  const job = await load(id);
  return job !== undefined && can(p, job);
}

/** The tags a token's `tag:` grants name. */
export const grantedTags = (p: Principal): string[] => p.jobs.filter((g) => g.startsWith(TAG_GRANT)).map((g) => g.slice(TAG_GRANT.length));

/**
 * Follow or list a whole tag (its feed, `GET /v1/jobs?tag=`): read (or write) scope and a grant
 * naming the tag (`tag:<tag>`) or every job (`*`). An id or prefix grant does not cover a tag:
 * which of its jobs it covers is not known without reading them.
 */
export const canReadTag = (p: Principal, tag: string): boolean =>
  (p.scopes.has('progress:read') || p.scopes.has('progress:write')) && (p.jobs.includes('*') || p.jobs.includes(TAG_GRANT + tag));

/**
 * What a token may list (`GET /v1/jobs`), undefined when nothing: with `tag`, that tag's jobs when
 * `canReadTag`; without, every job for `*`, the union of its tags for a token with only `tag:`
 * grants, else the jobs its grants cover, checked one by one (`where`, within the listing's scan
 * budget: core/job-list.ts).
 */
export function listingScope(p: Principal, tag: string | undefined): { tags?: string[]; where?: (job: JobRef) => boolean } | undefined {
  if (!p.scopes.has('progress:read') && !p.scopes.has('progress:write')) return undefined;
  if (tag !== undefined) return canReadTag(p, tag) ? { tags: [tag] } : undefined;
  if (p.jobs.includes('*')) return {};
  const tags = grantedTags(p);
  if (tags.length === p.jobs.length) return { tags };
  return { where: (job) => coversJob(p, job) };
}

/** Read a job (GET, subscribe). A producer's write scope includes reading its own jobs. */
export const canRead = (p: Principal, job: JobRef): boolean =>
  (p.scopes.has('progress:read') || p.scopes.has('progress:write')) && coversJob(p, job);
export const canWrite = (p: Principal, job: JobRef): boolean => p.scopes.has('progress:write') && coversJob(p, job);
export const canRetry = (p: Principal, job: JobRef): boolean => p.scopes.has('progress:retry') && coversJob(p, job);
export const canCancel = (p: Principal, job: JobRef): boolean => p.scopes.has('progress:cancel') && coversJob(p, job);

/**
 * The id prefix a producer may create jobs under when it gives no id: its single `prefix*`
 * grant (`""` for `*`), or undefined when its grants do not name one.
 */
export function creationPrefix(p: Principal): string | undefined {
  if (p.jobs.includes('*')) return '';
  const prefixes = p.jobs.filter((g) => g.endsWith('*'));
  return prefixes.length === 1 ? prefixes[0]!.slice(0, -1) : undefined;
}

export interface MintOptions {
  secret: string;
  audience: string;
  issuer?: string;
  scopes: readonly Scope[];
  jobs: readonly string[];
  ttlSeconds: number;
  subject?: string;
}

/** Signs an HS256 token (demo mode and tests). */
export async function mintToken(o: MintOptions): Promise<string> {
  let jwt = new SignJWT({ scope: o.scopes.join(' '), jobs: [...o.jobs] })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuedAt()
    .setAudience(o.audience)
    .setExpirationTime(`${Math.max(1, Math.round(o.ttlSeconds))}s`);
  if (o.issuer) jwt = jwt.setIssuer(o.issuer);
  if (o.subject) jwt = jwt.setSubject(o.subject);
  return jwt.sign(new TextEncoder().encode(o.secret));
}
