/** The JWT claims and scopes a progress-tracker server reads (docs/protocol.md "Tokens"). */

/** JWT scopes (space-separated `scope` claim). */
export type Scope = 'progress:read' | 'progress:write' | 'progress:retry';

/** JWT claims this server reads. */
export interface ProgressClaims {
  sub?: string;
  scope?: string;
  /** Job ids; `prefix*` matches by prefix, `*` matches every job. */
  jobs?: string[];
  exp: number;
  nbf?: number;
  iss?: string;
  aud?: string | string[];
}
