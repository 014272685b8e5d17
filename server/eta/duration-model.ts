/**
 * What a step will take: a hierarchy of recency-weighted log-space regressions with a fallback
 * chain for cold start — (kind, step) → the step across kinds (+ the kind's offset) → the kind →
 * all steps → a built-in prior — where each level is shrunk toward the one above by sample count.
 * On top sit two system-wide effects: load (γ, pooled across keys) and drift (δ, the current
 * speed of the whole system relative to what the per-key models remember).
 */
import { DecayedMean, DecayedRegression, type LineFit, type Shrinkage } from './regression.js';
import type { LogNormal } from './lognormal.js';

export interface DurationSample {
  kind: string;
  step: string;
  /** Step complexity (falls back to job complexity, then 1). */
  complexity: number;
  durationMs: number;
  /** Mean number of steps running system-wide while this one ran (≥ 1). */
  load: number;
}

export interface DurationModelTuning {
  /** Samples after which an old sample of a key counts half. */
  keyHalfLife: number;
  /** Same for the pooled levels (step across kinds, kind, global). */
  groupHalfLife: number;
  /** Samples (system-wide) after which an old drift observation counts half. */
  driftHalfLife: number;
  shrink: Shrinkage;
  /** Samples' worth of trust in "the kind has no offset". */
  kindOffsetPrior: number;
  /** Residuals beyond this many sd are clipped before learning (log-space Huber). */
  winsorZ: number;
  /** Used before anything is known. */
  defaultPrior: LineFit;
}

export const DEFAULT_DURATION_TUNING: DurationModelTuning = {
  keyHalfLife: 80,
  groupHalfLife: 300,
  driftHalfLife: 25,
  shrink: { alpha: 2, beta: 3, sigma: 3 },
  kindOffsetPrior: 2,
  winsorZ: 3,
  defaultPrior: { alpha: Math.log(30_000), beta: 1, sigma: 1.5, weight: 0 },
};

/** Even a perfectly regular step is not known to better than ±5%. */
const MIN_SIGMA = 0.05;

const halfLifeDecay = (samples: number): number => Math.pow(0.5, 1 / samples);

export class DurationModel {
  private readonly global: DecayedRegression;
  private readonly byStep = new Map<string, DecayedRegression>();
  private readonly byKind = new Map<string, DecayedRegression>();
  private readonly byKey = new Map<string, DecayedRegression>();
  private readonly kindOffset = new Map<string, DecayedMean>();
  private gammaNum = 0;
  private gammaDen = 0;
  /** Current log speed level of the system relative to the learned models. */
  private drift = 0;
  private readonly loadMean: DecayedMean;
  /** Fits are cached until the next sample (estimates far outnumber finished steps). */
  private version = 0;
  private readonly fitCache = new Map<string, { version: number; fit: LineFit }>();

  constructor(private readonly tuning: DurationModelTuning = DEFAULT_DURATION_TUNING) {
    this.global = new DecayedRegression(halfLifeDecay(tuning.groupHalfLife));
    this.loadMean = new DecayedMean(halfLifeDecay(tuning.groupHalfLife));
  }

  get sampleCount(): number {
    return this.global.count;
  }

  /** Pooled load coefficient: d log(duration) / d log(concurrency). */
  get gamma(): number {
    const g = this.gammaNum / (this.gammaDen + 2);
    return Math.min(Math.max(g, -0.5), 2);
  }

  get driftLevel(): number {
    return this.drift;
  }

  /** Variance of log concurrency over finished steps, times γ²: how unsure the load makes a step. */
  get loadLogVariance(): number {
    return this.gamma * this.gamma * this.loadMean.variance();
  }

  /** Typical log concurrency seen by finished steps (for steps that start later). */
  get typicalLogLoad(): number {
    return this.loadMean.mean;
  }

  learn(s: DurationSample): void {
    if (!(s.durationMs > 0) || !Number.isFinite(s.durationMs)) return;
    this.version++;
    const t = this.tuning;
    const x = Math.log(Math.max(s.complexity, 1e-6));
    const l = Math.log(Math.max(s.load, 1));
    let y = Math.log(s.durationMs) - this.drift;
    const gamma = this.gamma;
    const key = keyOf(s.kind, s.step);
    const keyStats = this.byKey.get(key);
    const fit = this.fitChain(s.kind, s.step);
    let r = DecayedRegression.residual(fit, gamma, x, y, l);
    // Never clip below ±0.7 (a 2x change): a real shift must get through even when the history is tight.
    const limit = Math.max(t.winsorZ * fit.sigma, 0.7);
    if (fit.weight >= 3 && Math.abs(r) > limit) {
      const clipped = Math.sign(r) * limit;
      y += clipped - r;
      r = clipped;
    }
    // Drift: a known key running slower than it used to says the system slowed down.
    if (fit.weight >= 3) this.drift += (1 - halfLifeDecay(t.driftHalfLife)) * r;
    // Load: within-key residual (no load term) against the key's own load spread.
    if (keyStats && keyStats.w >= 3) {
      const fit0 = keyStats.fit(fit, 0, t.shrink);
      const r0 = y - (fit0.alpha + fit0.beta * x);
      const lc = l - keyStats.meanLoad();
      const d = halfLifeDecay(t.groupHalfLife);
      this.gammaNum = this.gammaNum * d + r0 * lc;
      this.gammaDen = this.gammaDen * d + lc * lc;
    }
    // Kind offset: how this kind compares with the same steps in other kinds.
    const stepStats = this.byStep.get(s.step);
    if (stepStats && stepStats.w > 0) {
      const sf = stepStats.fit(this.fitGlobal(), gamma, t.shrink);
      const offset = this.kindOffset.get(s.kind) ?? new DecayedMean(halfLifeDecay(t.keyHalfLife));
      offset.add(DecayedRegression.residual(sf, gamma, x, y, l));
      this.kindOffset.set(s.kind, offset);
    }
    this.loadMean.add(l);
    this.global.add(x, y, l);
    getOrCreate(this.byStep, s.step, () => new DecayedRegression(halfLifeDecay(t.groupHalfLife))).add(x, y, l);
    getOrCreate(this.byKind, s.kind, () => new DecayedRegression(halfLifeDecay(t.groupHalfLife))).add(x, y, l);
    getOrCreate(this.byKey, key, () => new DecayedRegression(halfLifeDecay(t.keyHalfLife))).add(x, y, l);
  }

  /** Distribution of the step's duration in ms at the given complexity and concurrency. */
  predict(kind: string, step: string, complexity: number, load: number): LogNormal & { weight: number } {
    return this.predictLog(kind, step, Math.log(Math.max(complexity, 1e-6)), Math.log(Math.max(load, 1)));
  }

  predictLog(kind: string, step: string, x: number, l: number): LogNormal & { weight: number } {
    const fit = this.fitChain(kind, step);
    const mu = fit.alpha + fit.beta * x + this.gamma * l + this.drift;
    // Parameter uncertainty widens the predictive spread when the fit rests on few samples.
    const sigma = Math.max(fit.sigma, MIN_SIGMA) * Math.sqrt(1 + 1 / (fit.weight + this.tuning.shrink.alpha));
    return { mu, sigma, weight: fit.weight };
  }

  private fitGlobal(): LineFit {
    return this.global.fit(this.tuning.defaultPrior, this.gamma, this.tuning.shrink);
  }

  private fitChain(kind: string, step: string): LineFit {
    const key = keyOf(kind, step);
    const cached = this.fitCache.get(key);
    if (cached && cached.version === this.version) return cached.fit;
    const fit = this.computeFitChain(kind, step, key);
    if (this.fitCache.size > 10_000) this.fitCache.clear();
    this.fitCache.set(key, { version: this.version, fit });
    return fit;
  }

  private computeFitChain(kind: string, step: string, key: string): LineFit {
    const t = this.tuning;
    const gamma = this.gamma;
    const global = this.fitGlobal();
    let prior = global;
    const stepStats = this.byStep.get(step);
    const kindStats = this.byKind.get(kind);
    if (stepStats && stepStats.w > 0) {
      const sf = stepStats.fit(global, gamma, t.shrink);
      const off = this.kindOffset.get(kind);
      const offset = off ? (off.w * off.mean) / (off.w + t.kindOffsetPrior) : 0;
      prior = { ...sf, alpha: sf.alpha + offset };
    } else if (kindStats && kindStats.w > 0) {
      prior = kindStats.fit(global, gamma, t.shrink);
    }
    const keyStats = this.byKey.get(key);
    return keyStats ? keyStats.fit(prior, gamma, t.shrink) : { ...prior, weight: 0 };
  }
}

/** Internal map key of a (kind, step) pair. */
export const keyOf = (kind: string, step: string): string => `${kind}\u0000${step}`;

/** The HistoryStore key of a (kind, step) pair (readable, unambiguous). */
export const historyKeyOf = (kind: string, step: string): string => JSON.stringify([kind, step]);

function getOrCreate<K, V>(map: Map<K, V>, key: K, make: () => V): V {
  let v = map.get(key);
  if (v === undefined) {
    v = make();
    map.set(key, v);
  }
  return v;
}
