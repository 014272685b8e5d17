/**
 * What a step will take: a hierarchy of recency-weighted log-space regressions with a fallback
 * chain for cold start — (kind, step) → the step across kinds (+ the kind's offset, kind-offset.ts,
 * shrunk by evidence) → the kind → all steps → a built-in prior — where each level is shrunk
 * toward the one above by sample count.
 * On top sit two system-wide effects: load (γ, pooled across keys) and drift (δ, the current
 * speed of the whole system relative to what the per-key models remember).
 */
import { DecayedMean, DecayedRegression, type LineFit, type Shrinkage } from './regression.js';
import type { LogNormal } from './lognormal.js';
import { KindOffsets } from './kind-offset.js';

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
  /** Residuals beyond this many sd are clipped before learning (log-space Huber). */
  winsorZ: number;
  /**
   * Used before anything is known. Its sigma is how much steps of one system differ around the
   * system's level; how little we know that level itself is `levelSigma`.
   */
  defaultPrior: LineFit;
  /** Prior sd of the system's level (log ms per unit of complexity) before any history. */
  levelSigma: number;
  /** sd of how much a kind's level differs from other kinds' on the same steps, before kinds are seen (then learned). */
  kindLevelSigma: number;
}

export const DEFAULT_DURATION_TUNING: DurationModelTuning = {
  keyHalfLife: 80,
  groupHalfLife: 300,
  driftHalfLife: 25,
  shrink: { alpha: 2, beta: 3, sigma: 3 },
  winsorZ: 3,
  defaultPrior: { alpha: Math.log(30_000), beta: 1, sigma: 0.8, weight: 0 },
  levelSigma: 1.5,
  kindLevelSigma: 0.5,
};

/**
 * A prediction split by where its uncertainty comes from: `sigma` is the whole predictive spread;
 * `levelVar` is the part every step of the job shares because the level it rests on (the system's,
 * the kind's) is not well known yet — what the job's own finished steps can teach. `globalShare` and
 * `kindShare` say how much of an error in each level reaches this step through the fallback chain.
 */
export interface StepPrediction extends LogNormal {
  weight: number;
  levelVar: number;
  globalShare: number;
  kindShare: number;
}

/** Where the shared levels stand now (to rebase a residual measured against an older model). */
export interface LevelMark {
  global: number;
  drift: number;
  kind: number;
}

interface ChainFit extends LineFit {
  globalShare: number;
  kindShare: number;
}

/** Even a perfectly regular step is not known to better than ±5%. */
const MIN_SIGMA = 0.05;

const halfLifeDecay = (samples: number): number => Math.pow(0.5, 1 / samples);

export class DurationModel {
  private readonly global: DecayedRegression;
  private readonly byStep = new Map<string, DecayedRegression>();
  private readonly byKind = new Map<string, DecayedRegression>();
  private readonly byKey = new Map<string, DecayedRegression>();
  private readonly kindOffset: KindOffsets;
  private gammaNum = 0;
  private gammaDen = 0;
  /** Current log speed level of the system relative to the learned models. */
  private drift = 0;
  private readonly loadMean: DecayedMean;
  /**
   * Evidence-based trust in a key's parent (kind-offset step level) vs the key's own samples: the
   * squared surprise of a key's first sample against its parent (between-key spread + noise) and
   * the squared residual of well-known keys (noise alone). Their ratio is the prior's worth in samples.
   */
  private readonly firstSurprise: DecayedMean;
  private readonly withinNoise: DecayedMean;
  private keyShrinkCache: { version: number; shrink: Shrinkage } | undefined;
  /** Fits are cached until the next sample (estimates far outnumber finished steps). */
  private version = 0;
  private readonly fitCache = new Map<string, { version: number; fit: ChainFit }>();
  private globalCache: { version: number; fit: LineFit } | undefined;
  private readonly levelCache = new Map<string, { version: number; levels: { global: number; kind: number } }>();

  constructor(private readonly tuning: DurationModelTuning = DEFAULT_DURATION_TUNING) {
    this.global = new DecayedRegression(halfLifeDecay(tuning.groupHalfLife));
    this.loadMean = new DecayedMean(halfLifeDecay(tuning.groupHalfLife));
    this.firstSurprise = new DecayedMean(halfLifeDecay(tuning.groupHalfLife));
    this.withinNoise = new DecayedMean(halfLifeDecay(tuning.groupHalfLife));
    this.kindOffset = new KindOffsets(halfLifeDecay(tuning.keyHalfLife), tuning.kindLevelSigma);
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
    const t = this.tuning;
    const x = Math.log(Math.max(s.complexity, 1e-6));
    const l = Math.log(Math.max(s.load, 1));
    let y = Math.log(s.durationMs) - this.drift;
    const gamma = this.gamma;
    const key = keyOf(s.kind, s.step);
    const keyStats = this.byKey.get(key);
    const fit = this.fitChain(s.kind, s.step);
    let r = DecayedRegression.residual(fit, gamma, x, y, l);
    if (!keyStats) this.firstSurprise.add(r * r);
    else if (keyStats.w >= 3) this.withinNoise.add(Math.min(r * r, 4) * (keyStats.w + 1) / keyStats.w);
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
      // (Uncached: γ has just moved.)
      const sf = stepStats.fit(this.global.fit(t.defaultPrior, gamma, this.globalShrink), gamma, t.shrink);
      // Weighted by how much the step itself varies (and how well it is known): evidence, not a count.
      // (The pooled step's spread mixes kinds' differences in; once measured, a sample's own noise
      // plus the spread of keys around their kind's level is the residual's true noise.)
      const pooled = sf.sigma * sf.sigma * (1 + 1 / (stepStats.w + t.shrink.alpha));
      const measured = this.keyVariances();
      const noiseVar = measured ? Math.min(pooled, measured.noise + measured.between) : pooled;
      this.kindOffset.add(s.kind, DecayedRegression.residual(sf, gamma, x, y, l), noiseVar);
    }
    this.loadMean.add(l);
    this.global.add(x, y, l);
    getOrCreate(this.byStep, s.step, () => new DecayedRegression(halfLifeDecay(t.groupHalfLife))).add(x, y, l);
    getOrCreate(this.byKind, s.kind, () => new DecayedRegression(halfLifeDecay(t.groupHalfLife))).add(x, y, l);
    getOrCreate(this.byKey, key, () => new DecayedRegression(halfLifeDecay(t.keyHalfLife))).add(x, y, l);
    // Only now: fits computed above (from the state before this sample) must not outlive it.
    this.version++;
  }

  /** Distribution of the step's duration in ms at the given complexity and concurrency. */
  predict(kind: string, step: string, complexity: number, load: number): StepPrediction {
    return this.predictLog(kind, step, Math.log(Math.max(complexity, 1e-6)), Math.log(Math.max(load, 1)));
  }

  /** `key` (keyOf(kind, step)) and `levels` (levelVariance(kind)) may be passed in by a caller that has them. */
  predictLog(kind: string, step: string, x: number, l: number, key = keyOf(kind, step), levels = this.levelVariance(kind)): StepPrediction {
    const fit = this.fitChain(kind, step, key);
    const mu = fit.alpha + fit.beta * x + this.gamma * l + this.drift;
    // Parameter uncertainty widens the predictive spread when the fit rests on few samples.
    const s = Math.max(fit.sigma, MIN_SIGMA);
    const ownVar = s * s * (1 + 1 / (fit.weight + this.tuning.shrink.alpha));
    const levelVar = fit.globalShare ** 2 * levels.global + fit.kindShare ** 2 * levels.kind;
    return { mu, sigma: Math.sqrt(ownVar + levelVar), weight: fit.weight, levelVar, globalShare: fit.globalShare, kindShare: fit.kindShare };
  }

  /**
   * How unsure the shared levels are: the system's (posterior variance of the global intercept)
   * and the kind's (its offset from other kinds, shrunk like the offset itself).
   */
  levelVariance(kind: string): { global: number; kind: number } {
    const cached = this.levelCache.get(kind);
    if (cached && cached.version === this.version) return cached.levels;
    const g = this.fitGlobal();
    const levels = {
      global: (g.sigma * g.sigma) / (g.weight + this.globalShrink.alpha),
      kind: this.kindOffset.variance(kind),
    };
    if (this.levelCache.size > 10_000) this.levelCache.clear();
    this.levelCache.set(kind, { version: this.version, levels });
    return levels;
  }

  levelMark(kind: string): LevelMark {
    return { global: this.fitGlobal().alpha, drift: this.drift, kind: this.kindOffset.offset(kind) };
  }

  /** The global level is shrunk toward the default prior by how sure that prior is of the level. */
  private get globalShrink(): Shrinkage {
    const t = this.tuning;
    return { ...t.shrink, alpha: (t.defaultPrior.sigma / t.levelSigma) ** 2 };
  }

  private fitGlobal(): LineFit {
    if (this.globalCache?.version !== this.version) {
      this.globalCache = { version: this.version, fit: this.global.fit(this.tuning.defaultPrior, this.gamma, this.globalShrink) };
    }
    return this.globalCache.fit;
  }

  private fitChain(kind: string, step: string, key = keyOf(kind, step)): ChainFit {
    const cached = this.fitCache.get(key);
    if (cached && cached.version === this.version) return cached.fit;
    const fit = this.computeFitChain(kind, step, key);
    if (this.fitCache.size > 10_000) this.fitCache.clear();
    this.fitCache.set(key, { version: this.version, fit });
    return fit;
  }

  /**
   * How many samples a key's parent is worth: noise / between-key spread (a key's own samples say
   * more where keys differ much from their parent), within [0.25, 4]; the configured count until
   * both are measured.
   */
  private keyShrink(): Shrinkage {
    if (this.keyShrinkCache?.version === this.version) return this.keyShrinkCache.shrink;
    const t = this.tuning;
    let shrink = t.shrink;
    const v = this.keyVariances();
    if (v) shrink = { ...t.shrink, alpha: Math.min(Math.max(v.noise / v.between, 0.25), 4) };
    this.keyShrinkCache = { version: this.version, shrink };
    return shrink;
  }

  /** A sample's noise around its key, and the spread of keys around their parent; null until measured. */
  private keyVariances(): { noise: number; between: number } | null {
    if (this.firstSurprise.w < 5 || this.withinNoise.w < 10) return null;
    const noise = this.withinNoise.mean;
    return { noise, between: Math.max(this.firstSurprise.mean - noise, 1e-3) };
  }

  private computeFitChain(kind: string, step: string, key: string): ChainFit {
    const t = this.tuning;
    const k = t.shrink.alpha;
    const gamma = this.gamma;
    const global = this.fitGlobal();
    let prior = global;
    // A level's error reaches a fit below it in proportion to the prior's share in that fit's ridge.
    let globalShare = 1;
    let kindShare = 1;
    const stepStats = this.byStep.get(step);
    const keyStats = this.byKey.get(key);
    if (stepStats && stepStats.w > 0) {
      const sf = stepStats.fit(global, gamma, t.shrink);
      prior = { alpha: sf.alpha + this.kindOffset.offset(kind), beta: sf.beta, sigma: sf.sigma, weight: sf.weight };
      globalShare = k / (stepStats.w + k);
      // The kind's offset only matters as far as the step is known from other kinds.
      kindShare = Math.max(0, 1 - (keyStats?.w ?? 0) / stepStats.w);
    } else {
      const kindStats = this.byKind.get(kind);
      if (kindStats && kindStats.w > 0) {
        prior = kindStats.fit(global, gamma, t.shrink);
        globalShare = k / (kindStats.w + k);
        // The kind's own regression is its level: what is unsure about it is its parameter error.
        kindShare = globalShare;
      }
    }
    // (One object shape for every fit: the estimate's hot path reads them all.)
    if (!keyStats) return { alpha: prior.alpha, beta: prior.beta, sigma: prior.sigma, weight: 0, globalShare, kindShare };
    const shrink = this.keyShrink();
    const f = keyStats.fit(prior, gamma, shrink);
    const ks = shrink.alpha / (keyStats.w + shrink.alpha);
    return { alpha: f.alpha, beta: f.beta, sigma: f.sigma, weight: f.weight, globalShare: globalShare * ks, kindShare: kindShare * ks };
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
