/**
 * The oracle: the best estimate available from the generator's true parameters (per-step
 * medians, complexity exponents, noise, progress shapes, failure rates, the current slowdown and
 * load) and what has happened so far. It never looks at draws that lie in the future — a step's
 * actual duration, whether it will fail — so it is the bar for any engine on the same trace.
 */
import type { Eta } from '../../protocol/index.js';
import { lognormalMoments, normQuantile, remainingGivenElapsed, sumAsLogNormal, type Moments } from '../../server/eta/lognormal.js';

export type OracleStep = { mu: number; sigma: number; failPerAttempt: number; shape: number } & (
  | { state: 'done' | 'pending' }
  | { state: 'waiting'; waitedMs: number }
  | { state: 'running'; workDone: number; report: { progress: number; work: number } | null }
);

const Z80 = normQuantile(0.9);

export function oracleEta(steps: OracleStep[], factorNow: number, factorLater: number, meanGapMs: number, shapeJitter: number): Eta {
  const parts: Moments[] = [];
  const scale = (m: Moments, f: number): Moments => ({ mean: m.mean * f, variance: m.variance * f * f });
  const retries = (s: OracleStep, full: Moments, f: number): Moments => {
    if (s.failPerAttempt <= 0) return { mean: 0, variance: 0 };
    const failures = s.failPerAttempt / (1 - s.failPerAttempt);
    const per = 0.5 * full.mean * f + meanGapMs;
    return { mean: failures * per, variance: failures * per * per };
  };
  for (const s of steps) {
    const full = lognormalMoments(s);
    switch (s.state) {
      case 'done':
        break;
      case 'pending':
        parts.push(scale(full, factorLater), retries(s, full, factorLater));
        break;
      case 'waiting':
        parts.push({ mean: Math.max(0, meanGapMs - s.waitedMs), variance: 0 }, scale(full, factorLater), retries(s, full, factorLater));
        break;
      case 'running': {
        let mu = s.mu;
        let sigma = s.sigma;
        if (s.report && s.report.progress >= 0.02) {
          // progress = u^shape, so u = progress^(1/shape); the attempt's own shape varies a little.
          const logU = Math.log(s.report.progress) / s.shape;
          const obsMu = Math.log(s.report.work) - logU;
          const obsVar = (shapeJitter * logU) ** 2 + 1e-4;
          const pPrior = 1 / (sigma * sigma);
          const pObs = 1 / obsVar;
          mu = (mu * pPrior + obsMu * pObs) / (pPrior + pObs);
          sigma = Math.sqrt(1 / (pPrior + pObs));
        }
        parts.push(scale(remainingGivenElapsed({ mu, sigma }, s.workDone), factorNow));
        const left = s.report ? 1 - Math.pow(s.report.progress, 1 / s.shape) : 1;
        const r = retries(s, full, factorNow);
        parts.push({ mean: r.mean * left, variance: r.variance * left });
        break;
      }
    }
  }
  const total = sumAsLogNormal(parts);
  if (!total) return { remainingMs: 0, low: 0, high: 0 };
  return {
    remainingMs: Math.round(Math.exp(total.mu)),
    low: Math.round(Math.exp(total.mu - Z80 * total.sigma)),
    high: Math.round(Math.exp(total.mu + Z80 * total.sigma)),
  };
}
