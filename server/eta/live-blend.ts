/**
 * Live blending inside a running step: the learned prior for its duration and the duration the
 * progress reports imply are combined by precision (both are Gaussian in log space). Early
 * progress is a noisy witness, so the prior dominates; near the end the observation does.
 */
import type { LogNormal } from './lognormal.js';
import type { ShapePoint } from './progress-shape.js';

export function blendWithObservation(prior: LogNormal, obs: ShapePoint): LogNormal {
  const pPrior = 1 / (prior.sigma * prior.sigma);
  const pObs = 1 / obs.variance;
  const mu = (prior.mu * pPrior + obs.mean * pObs) / (pPrior + pObs);
  return { mu, sigma: Math.sqrt(1 / (pPrior + pObs)) };
}
