/**
 * One rule for "is this state of the job newer than the one shown", used by both
 * `<progress-tracker>`'s `snapshot` setter and `ProgressClient.ingest`, so a state is accepted or
 * dropped the same way whichever of them sees it first.
 *
 * The rule: `next` is newer when its `seq` is higher, or when `seq` is equal and its `updatedAt`
 * is later. Anything else (lower seq; same seq with the same or an earlier `updatedAt`) is not.
 *
 * Why:
 * - `seq` is the server's order of changes (it adds 1 on every accepted change, ETA revisions
 *   included), and the protocol's one promise to clients is never to show a lower `seq` than one
 *   already shown (docs/protocol.md), whichever transport or server delivered it.
 * - `updatedAt` only breaks ties. The server never publishes two different states with one
 *   `seq`, but an app may hand the element a locally refreshed state of the shown job (the
 *   `snapshot` property, its own transport); a later `updatedAt` says it is the fresher one.
 * - It is a strict order, nothing content-based (ProgressClient.ingest used to take "same seq
 *   and updatedAt, different ETA" as news too): the same state delivered twice — a resend after
 *   congestion, the snapshot answering every resubscribe, the element seeding a new client — is
 *   not news, and two sources holding different copies of one (seq, updatedAt) cannot flip
 *   the view back and forth.
 */
import type { Job } from '../protocol/index.js';

export type JobVersion = Pick<Job, 'seq' | 'updatedAt'>;

/** Whether `next` is a newer state than `shown` (nothing shown yet: always). */
export function isNewer(next: JobVersion, shown: JobVersion | undefined): boolean {
  if (!shown) return true;
  return next.seq > shown.seq || (next.seq === shown.seq && next.updatedAt > shown.updatedAt);
}
