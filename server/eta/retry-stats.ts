/**
 * Retries: how often a step attempt fails, how far into it the failure comes, and how long the
 * producer waits before retrying. Future steps carry the expected cost of their retries.
 */
import { DecayedMean } from './regression.js';
import type { Moments } from './lognormal.js';

export class RetryStats {
  private readonly global: DecayedMean;
  private readonly byKey = new Map<string, DecayedMean>();
  /** Time to failure as a fraction of the attempt's expected duration. */
  private readonly failFraction: DecayedMean;
  private readonly gapMs: DecayedMean;

  constructor(
    private readonly decay = Math.pow(0.5, 1 / 200),
    private readonly prior = 5,
  ) {
    this.global = new DecayedMean(decay);
    this.failFraction = new DecayedMean(decay);
    this.gapMs = new DecayedMean(decay);
  }

  attempt(key: string, failed: boolean, elapsedMs: number, expectedMs: number): void {
    const v = failed ? 1 : 0;
    this.global.add(v);
    let k = this.byKey.get(key);
    if (!k) this.byKey.set(key, (k = new DecayedMean(this.decay)));
    k.add(v);
    if (failed && expectedMs > 0) this.failFraction.add(Math.min(elapsedMs / expectedMs, 3));
  }

  retryGap(ms: number): void {
    if (ms >= 0 && Number.isFinite(ms)) this.gapMs.add(ms);
  }

  /** Expected wait before a retry starts (ms). */
  get expectedGap(): number {
    return this.gapMs.w > 0 ? this.gapMs.mean : 0;
  }

  failureRate(key: string): number {
    const g = this.global.w > 0 ? (this.global.w * this.global.mean) / (this.global.w + 1) : 0;
    const k = this.byKey.get(key);
    const p = k && k.w > 0 ? (k.w * k.mean + this.prior * g) / (k.w + this.prior) : g;
    return Math.min(p, 0.9);
  }

  /** Extra time a not-yet-finished attempt costs in failed attempts and waits, on average. */
  overhead(key: string, step: Moments): Moments {
    const p = this.failureRate(key);
    if (p <= 0) return { mean: 0, variance: 0 };
    const failures = p / (1 - p);
    const phi = this.failFraction.w > 0 ? this.failFraction.mean : 0.5;
    const perFailure = phi * step.mean + this.expectedGap;
    const mean = failures * perFailure;
    return { mean, variance: (failures * (1 + p)) * perFailure * perFailure + failures * step.variance * phi * phi };
  }
}
