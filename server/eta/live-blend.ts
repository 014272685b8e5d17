/**
 * Live blending inside a running step: the learned prior for its duration and the duration the
 * progress reports imply are combined by precision (both are Gaussian in log space). Early
 * progress is a noisy witness, so the prior dominates; near the end the observation does.
 *
 * The prior is treated as heavy-tailed (Student-t-like, by inflating its variance when the two
 * disagree far beyond their spreads): a run that is plainly 3x faster than history must not be
 * averaged with history just because history was very regular.
 */
import type { LogNormal } from './lognormal.js';
import type { ShapePoint } from './progress-shape.js';

/** Degrees of freedom of the heavy-tailed prior (smaller = quicker to give up on history). */
const NU = 3;

export function blendWithObservation(prior: LogNormal, obs: ShapePoint): LogNormal {
  const gap = obs.mean - prior.mu;
  const priorVar = prior.sigma * prior.sigma;
  const inflated = priorVar * (1 + (gap * gap) / (NU * (priorVar + obs.variance)));
  const pPrior = 1 / inflated;
  const pObs = 1 / obs.variance;
  const mu = (prior.mu * pPrior + obs.mean * pObs) / (pPrior + pObs);
  return { mu, sigma: Math.sqrt(1 / (pPrior + pObs)) };
}
