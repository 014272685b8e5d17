/** The JWT claims and scopes a progress-tracker server reads (docs/protocol.md "Tokens"). */

/** JWT scopes (space-separated `scope` claim). */
export type Scope = 'progress:read' | 'progress:write' | 'progress:retry' | 'progress:cancel';

/** JWT claims this server reads. */
export interface ProgressClaims {
  sub?: string;
  scope?: string;
  /** Job grants: an id, `prefix*` (by prefix), `*` (every job), or `tag:<tag>` (every job with that tag). */
  jobs?: string[];
  exp: number;
  nbf?: number;
  iss?: string;
  aud?: string | string[];
}
