/**
 * Recency-weighted linear regression of log duration on log complexity, kept as sufficient
 * statistics so adding a sample and refitting are O(1). Every new sample multiplies the old
 * weights by `decay`, so the fit follows a system that speeds up or slows down.
 *
 * Load enters as a third regressor whose coefficient γ is pooled across keys (one key rarely
 * sees enough load variety to learn it alone); the fit subtracts γ·load exactly because the
 * statistics keep the cross terms with load.
 */

/** A fitted line: log(ms) = alpha + beta·log(complexity) + gamma·log(load), residual sd sigma. */
export interface LineFit {
  alpha: number;
  beta: number;
  sigma: number;
  /** Effective number of samples behind the fit (0 for a pure prior). */
  weight: number;
}

/** How many samples' worth of trust a prior gets for each parameter. */
export interface Shrinkage {
  alpha: number;
  beta: number;
  sigma: number;
}

export class DecayedRegression {
  w = 0;
  private wx = 0;
  private wy = 0;
  private wl = 0;
  private wxx = 0;
  private wxy = 0;
  private wxl = 0;
  private wyy = 0;
  private wyl = 0;
  private wll = 0;
  /** Raw number of samples ever added. */
  count = 0;

  constructor(private readonly decay: number) {}

  add(x: number, y: number, l: number): void {
    const d = this.decay;
    this.w = this.w * d + 1;
    this.wx = this.wx * d + x;
    this.wy = this.wy * d + y;
    this.wl = this.wl * d + l;
    this.wxx = this.wxx * d + x * x;
    this.wxy = this.wxy * d + x * y;
    this.wxl = this.wxl * d + x * l;
    this.wyy = this.wyy * d + y * y;
    this.wyl = this.wyl * d + y * l;
    this.wll = this.wll * d + l * l;
    this.count++;
  }

  /** Recency-weighted mean of the load regressor (log concurrency) seen by this key. */
  meanLoad(): number {
    return this.w > 0 ? this.wl / this.w : 0;
  }

  /**
   * Posterior-mean fit under a Gaussian prior centred on `prior` (ridge toward the parent level
   * of the fallback chain), with load effect `gamma` removed from y.
   */
  fit(prior: LineFit, gamma: number, k: Shrinkage): LineFit {
    if (this.w <= 0) return { ...prior, weight: 0 };
    const sy = this.wy - gamma * this.wl;
    const sxy = this.wxy - gamma * this.wxl;
    const syy = this.wyy - 2 * gamma * this.wyl + gamma * gamma * this.wll;
    const a11 = this.w + k.alpha;
    const a12 = this.wx;
    const a22 = this.wxx + k.beta;
    const b1 = sy + k.alpha * prior.alpha;
    const b2 = sxy + k.beta * prior.beta;
    const det = a11 * a22 - a12 * a12;
    const alpha = (b1 * a22 - a12 * b2) / det;
    const beta = (a11 * b2 - a12 * b1) / det;
    const rss = Math.max(
      0,
      syy - 2 * alpha * sy - 2 * beta * sxy + alpha * alpha * this.w + 2 * alpha * beta * this.wx + beta * beta * this.wxx,
    );
    // Residual variance shrunk toward the prior's; one degree of freedom spent on the level.
    const dof = Math.max(this.w - 1, 0);
    const variance = (rss + k.sigma * prior.sigma * prior.sigma) / (dof + k.sigma);
    return { alpha, beta, sigma: Math.sqrt(variance), weight: this.w };
  }

  /** Residual of a sample against the fit (prediction error in log space, load removed). */
  static residual(fit: LineFit, gamma: number, x: number, y: number, l: number): number {
    return y - (fit.alpha + fit.beta * x + gamma * l);
  }
}

/** A recency-weighted mean and variance (Welford with forgetting). */
export class DecayedMean {
  w = 0;
  mean = 0;
  private m2 = 0;
  constructor(private readonly decay: number) {}

  add(v: number, weight = 1): void {
    this.w = this.w * this.decay + weight;
    this.m2 *= this.decay;
    const delta = v - this.mean;
    this.mean += (weight / this.w) * delta;
    this.m2 += weight * delta * (v - this.mean);
  }

  variance(): number {
    return this.w > 0 ? this.m2 / this.w : 0;
  }
}
