/**
 * A job's own pace: how much faster or slower than the model THIS job has run so far, shared by
 * its remaining steps. It matters when the levels the model rests on are not well known (the first
 * job ever, a new kind): one finished step that took 5 s instead of the prior's 30 s says the next
 * steps will be quick, too.
 *
 * One shared factor U in log space, U ~ N(0, levelVar) a priori (the model's own uncertainty about
 * the levels, so a well-known system gives the job no room to move). Each piece of evidence is a
 * residual r = loading·U + noise (a finished step's log duration against its prediction, or the
 * duration the running step's progress implies), combined by precision: evidence shrinks toward
 * the prior, and the posterior variance of U widens the remaining steps honestly.
 */
import type { LogNormal } from './lognormal.js';

export interface PaceEvidence {
  /** Log residual against the prediction (log actual − μ). */
  residual: number;
  /** Variance of the residual's own noise (everything not shared with the job's other steps). */
  noiseVar: number;
  /** How much of the shared error reaches this step (0..1). */
  loading: number;
}

export class PacePosterior {
  private precision: number;
  private weighted = 0;

  /** `priorVar`: how unsure the shared level is before this job's evidence. */
  constructor(readonly priorVar: number) {
    this.precision = priorVar > 0 ? 1 / priorVar : Infinity;
  }

  add(e: PaceEvidence): void {
    if (!(this.priorVar > 0) || !(e.noiseVar > 0) || !(e.loading > 0) || !Number.isFinite(e.residual)) return;
    // r/loading observes U with noise noiseVar/loading².
    this.precision += (e.loading * e.loading) / e.noiseVar;
    this.weighted += (e.loading * e.residual) / e.noiseVar;
  }

  /** Posterior mean and variance of U (log speed factor; 0 and priorVar before evidence). */
  get mean(): number {
    return Number.isFinite(this.precision) ? this.weighted / this.precision : 0;
  }

  get variance(): number {
    return Number.isFinite(this.precision) ? 1 / this.precision : 0;
  }

  /**
   * A step's distribution given the pace: shifted by its share of U, its shared part of the spread
   * replaced by what is still unknown about U.
   */
  apply(dist: LogNormal, levelVar: number, loading: number): LogNormal {
    const own = this.shift(dist, levelVar, loading);
    return { mu: own.mu, sigma: Math.sqrt(own.sigma * own.sigma + loading * loading * this.variance) };
  }

  /** The same, without the shared spread (for steps summed first and widened together after). */
  shift(dist: LogNormal, levelVar: number, loading: number): LogNormal {
    return { mu: dist.mu + loading * this.mean, sigma: Math.sqrt(Math.max(dist.sigma * dist.sigma - levelVar, 1e-4)) };
  }
}
