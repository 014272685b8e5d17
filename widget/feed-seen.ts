/**
 * What the user has seen of a tag's feed, for `<notification-badge src tag>`: kept in
 * `localStorage` under `notification-badge:<tag>` so the count survives route changes and
 * reloads, and is shared by the tabs of one browser (each hears the others' writes through the
 * `storage` event). Per browser, not per user account: another browser keeps its own.
 *
 *   {"since": 1767000000000, "seen": {"gen-42": 1767000123000}}
 *
 * - `since`: a watermark in the server's clock (jobs' `updatedAt`). The first time a browser sees
 *   the feed it is the newest `updatedAt` in it (0 for an empty feed), so what finished before
 *   does not count; "Mark all as seen" moves it to the newest `updatedAt` known.
 * - `seen`: jobs seen one by one (their link was followed), with the `updatedAt` seen: a job
 *   retried and finished again counts again. Entries the watermark covers are dropped, and at
 *   most 100 are kept.
 *
 * A job counts when it has finished (completed, failed, canceled), its `updatedAt` is after
 * `since`, and it was not seen at that `updatedAt` or later. Without localStorage (blocked,
 * private mode quota) the state lives in the page only.
 */
import { isTerminal, type JobSummary } from '../protocol/index.js';

export interface SeenState {
  since: number;
  seen: Record<string, number>;
}

const key = (tag: string) => `notification-badge:${tag}`;

/** The stored state of `tag`, if this browser has one. */
export function readSeen(tag: string): SeenState | undefined {
  try {
    const s = JSON.parse(localStorage.getItem(key(tag))!) as SeenState | null;
    if (s?.seen) return s;
  } catch {
    // Unavailable or not ours: as if nothing was stored.
  }
  return undefined;
}

/** Stores `state` (pruned) and returns it. */
export function writeSeen(tag: string, state: SeenState): SeenState {
  const s = { since: state.since, seen: Object.fromEntries(Object.entries(state.seen).filter(([, t]) => t > state.since).slice(-100)) };
  try {
    localStorage.setItem(key(tag), JSON.stringify(s));
  } catch {
    // Kept in the page only.
  }
  return s;
}

/** Whether a `storage` event's key is the state of `tag`. */
export const isSeenKey = (k: string | null, tag: string) => k === key(tag);

export function isUnseen(job: JobSummary, state: SeenState | undefined): boolean {
  return !!state && isTerminal(job.status) && job.updatedAt > state.since && !((state.seen[job.id] ?? 0) >= job.updatedAt);
}

/** The newest `updatedAt` of `jobs` (at least `since`). */
export const newest = (jobs: JobSummary[], since = 0) => Math.max(since, ...jobs.map((j) => j.updatedAt));
