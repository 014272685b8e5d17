/**
 * When is a new estimate worth pushing to clients? Clients count down between updates, so an
 * estimate that only moved by the time that passed is not news. We remember when each Eta the
 * engine produced was computed (a symbol-keyed property, not a field of the wire type) to project
 * the shown one forward; an Eta from elsewhere (e.g. loaded from the store) is compared as is.
 */
import type { Eta } from '../../protocol/index.js';

// A symbol-keyed property: JSON (the wire, the store) never carries it. (A WeakMap did the same at
// the cost of an ephemeron per estimate for the garbage collector: thousands a second.)
const COMPUTED_AT = Symbol('computedAt');
type Stamped = Eta & { [COMPUTED_AT]?: number };

export function stampEta<E extends Eta>(eta: E, at: number): E {
  (eta as Stamped)[COMPUTED_AT] = at;
  return eta;
}

const computedAtOf = (eta: Eta): number | undefined => (eta as Stamped)[COMPUTED_AT];

export interface UpdatePolicy {
  /** A change smaller than this share of the remaining time is not news. */
  relative: number;
  /** Nor is one smaller than this (ms). */
  absoluteMs: number;
}

export const DEFAULT_UPDATE_POLICY: UpdatePolicy = { relative: 0.1, absoluteMs: 2_000 };

export function changedMeaningfully(shown: Eta | null, next: Eta | null, policy = DEFAULT_UPDATE_POLICY): boolean {
  if (shown === null || next === null) return shown !== next;
  const shownAt = computedAtOf(shown);
  const nextAt = computedAtOf(next);
  const passed = shownAt !== undefined && nextAt !== undefined ? Math.max(0, nextAt - shownAt) : 0;
  const projected = (v: number | undefined): number | undefined => (v === undefined ? undefined : Math.max(0, v - passed));
  const threshold = Math.max(policy.absoluteMs, policy.relative * Math.max(next.remainingMs, 0));
  const moved = (a: number | undefined, b: number | undefined, limit: number): boolean =>
    (a === undefined) !== (b === undefined) || (a !== undefined && b !== undefined && Math.abs(a - b) > limit);
  if (moved(projected(shown.remainingMs), next.remainingMs, threshold)) return true;
  // A wait appearing or ending (the job left its queue) is news; its size moves with the point.
  if ((shown.waitMs === undefined) !== (next.waitMs === undefined)) return true;
  // The range matters less than the point: only a large change of it is news.
  return moved(projected(shown.low), next.low, 2 * threshold) || moved(projected(shown.high), next.high, 2 * threshold);
}
