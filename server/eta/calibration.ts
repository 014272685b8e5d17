/**
 * Online calibration of the 80% interval (and of the point's bias). Every completed job tells,
 * for the estimates the engine gave during its life, where the truth fell in standardized log
 * units z = (log actual − μ)/σ. Stochastic quantile tracking keeps the lower, middle and upper
 * percentiles of z, so the interval is [e^(μ+σ·qLow), e^(μ+σ·qHigh)] whatever the model got wrong.
 *
 * The tracked tails can be set a little beyond 10%/90% (`tail`): what is learned from jobs that
 * just finished lags a system that changes, and the lag shows as under-coverage.
 */
import { normQuantile } from './lognormal.js';

export class IntervalCalibration {
  q10: number;
  q50 = 0;
  q90: number;
  count = 0;

  constructor(
    private readonly rate = 0.05,
    private readonly tail = 0.1,
    private readonly minRate = 0.01,
  ) {
    this.q10 = normQuantile(tail);
    this.q90 = normQuantile(1 - tail);
  }

  update(z: number): void {
    if (!Number.isFinite(z)) return;
    this.count++;
    // Large steps first so the first few jobs move the quantiles, small ones later.
    const eta = Math.max(this.rate * Math.min(1, 20 / Math.sqrt(this.count + 100)), this.minRate) * 1.5;
    const tail = this.tail;
    this.q10 += (eta * (tail - (z <= this.q10 ? 1 : 0))) / (2 * tail) / 2.5;
    this.q50 += eta * (0.5 - (z <= this.q50 ? 1 : 0));
    this.q90 += (eta * (1 - tail - (z <= this.q90 ? 1 : 0))) / (2 * tail) / 2.5;
    if (this.q50 < this.q10) this.q50 = this.q10;
    if (this.q90 < this.q50) this.q90 = this.q50;
  }
}
