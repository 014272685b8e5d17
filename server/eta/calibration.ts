/**
 * Online calibration of the 80% interval (and of the point's bias). Every completed job tells,
 * for the estimates the engine gave during its life, where the truth fell in standardized log
 * units z = (log actual − μ)/σ. Stochastic quantile tracking keeps the 10th, 50th and 90th
 * percentiles of z, so the interval is [e^(μ+σ·q10), e^(μ+σ·q90)] whatever the model got wrong.
 */
import { normQuantile } from './lognormal.js';

export class IntervalCalibration {
  q10 = normQuantile(0.1);
  q50 = 0;
  q90 = normQuantile(0.9);
  count = 0;

  constructor(
    private readonly rate = 0.05,
    private readonly minRate = 0.01,
  ) {}

  update(z: number): void {
    if (!Number.isFinite(z)) return;
    this.count++;
    // Large steps first so the first few jobs move the quantiles, small ones later.
    const eta = Math.max(this.rate * Math.min(1, 20 / Math.sqrt(this.count + 100)), this.minRate) * 1.5;
    this.q10 += eta * (0.1 - (z <= this.q10 ? 1 : 0)) * 2;
    this.q50 += eta * (0.5 - (z <= this.q50 ? 1 : 0));
    this.q90 += eta * (0.9 - (z <= this.q90 ? 1 : 0)) * 2;
    if (this.q50 < this.q10) this.q50 = this.q10;
    if (this.q90 < this.q50) this.q90 = this.q50;
  }
}
