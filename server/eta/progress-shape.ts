/**
 * The shape of in-step progress, learned as a time-vs-progress curve: for progress knots
 * 10%, 20% … 90%, the log of the fraction of the step's duration that had passed when progress
 * crossed the knot (mean and spread). A step that starts fast and ends slow crosses 50% early.
 *
 * The curve turns a live progress report into an observation of the step's total duration:
 * log D ≈ log(elapsed at report) − log f(progress), with the learned spread as its noise.
 */
import { DecayedMean } from './regression.js';

export const KNOT_COUNT = 9;
const knot = (j: number): number => (j + 1) / 10;
/** Spread below which a progress observation is never trusted (reports are rounded, load varies). */
const MIN_VARIANCE = 0.03 ** 2;
/** Before any history: progress proportional to time, loosely. */
const DEFAULT_VARIANCE = 0.35 ** 2;

/** Knot crossings of one running attempt, interpolated between consecutive reports. */
export class AttemptProgress {
  private lastP = 0;
  private lastE = 0;
  /** Elapsed ms at which progress crossed each knot (NaN until it does). */
  // (A plain array: one typed array per attempt cost more to allocate than it saved.)
  readonly crossings: number[] = [NaN, NaN, NaN, NaN, NaN, NaN, NaN, NaN, NaN];
  /** Latest report: progress and the elapsed ms at which it was reported. */
  latest: { progress: number; elapsedMs: number } | null = null;

  report(progress: number, elapsedMs: number): void {
    if (!(progress > this.lastP) || !(elapsedMs >= this.lastE)) {
      if (progress > 0 && this.latest === null) this.latest = { progress, elapsedMs };
      return;
    }
    for (let j = 0; j < KNOT_COUNT; j++) {
      const k = knot(j);
      if (k > this.lastP && k <= progress && Number.isNaN(this.crossings[j]!)) {
        this.crossings[j] = this.lastE + ((k - this.lastP) / (progress - this.lastP)) * (elapsedMs - this.lastE);
      }
    }
    this.lastP = progress;
    this.lastE = elapsedMs;
    this.latest = { progress, elapsedMs };
  }

  /** log(fraction of the duration) at each crossed knot, null where progress never crossed it. */
  logFractions(durationMs: number): Array<number | null> {
    const out: Array<number | null> = [];
    for (let j = 0; j < KNOT_COUNT; j++) {
      const e = this.crossings[j]!;
      out.push(Number.isNaN(e) || !(e > 0) || !(durationMs > 0) ? null : Math.log(Math.min(e / durationMs, 1)));
    }
    return out;
  }
}

/** Mean and spread of log f at each knot, for one level of the fallback chain. */
class KnotStats {
  readonly knots: DecayedMean[];
  constructor(decay: number) {
    this.knots = Array.from({ length: KNOT_COUNT }, () => new DecayedMean(decay));
  }
}

export interface ShapePoint {
  mean: number;
  variance: number;
}

export class ProgressShapes {
  private readonly global: KnotStats;
  private readonly byStep = new Map<string, KnotStats>();
  private readonly byKey = new Map<string, KnotStats>();

  constructor(
    private readonly decay = Math.pow(0.5, 1 / 80),
    /** Samples' worth of trust in the parent level. */
    private readonly prior = 3,
  ) {
    this.global = new KnotStats(decay);
  }

  learn(key: string, step: string, logFractions: ReadonlyArray<number | null>): void {
    const levels = [this.global, this.level(this.byStep, step), this.level(this.byKey, key)];
    for (let j = 0; j < KNOT_COUNT; j++) {
      const v = logFractions[j];
      if (v === null || v === undefined || !Number.isFinite(v)) continue;
      for (const level of levels) level.knots[j]!.add(v);
    }
  }

  /** Learned log f at knot j, shrunk key → step → global → proportional. */
  knotPoint(key: string, step: string, j: number): ShapePoint {
    let point: ShapePoint = { mean: Math.log(knot(j)), variance: DEFAULT_VARIANCE };
    for (const level of [this.global, this.byStep.get(step), this.byKey.get(key)]) {
      const s = level?.knots[j];
      if (!s || s.w <= 0) continue;
      const w = s.w;
      const k = this.prior;
      point = {
        mean: (w * s.mean + k * point.mean) / (w + k),
        variance: (w * s.variance() + k * point.variance) / (w + k),
      };
    }
    return { mean: point.mean, variance: Math.max(point.variance, MIN_VARIANCE) };
  }

  /**
   * An observation of log(total duration) from "progress p was reported after elapsed ms",
   * or null when progress is too small to say anything.
   */
  durationObservation(key: string, step: string, progress: number, elapsedMs: number): ShapePoint | null {
    if (!(progress >= 0.02) || !(elapsedMs > 0)) return null;
    const at = this.shapeAt(key, step, Math.min(progress, 1));
    return { mean: Math.log(elapsedMs) - at.mean, variance: at.variance };
  }

  /**
   * The share of a step's duration that has typically passed when it reports progress `p` (the
   * learned f(p), 0 below 2%): a step a producer says is half done is at least that far along,
   * even before any time has passed (a step started at 0.5, or resumed there).
   */
  timeFraction(key: string, step: string, progress: number): number {
    if (!(progress >= 0.02)) return 0;
    return Math.min(1, Math.exp(this.shapeAt(key, step, Math.min(progress, 1)).mean));
  }

  /** log f(p) by linear interpolation between knots; p=1 means the whole duration. */
  private shapeAt(key: string, step: string, p: number): ShapePoint {
    const pos = p * 10 - 1; // knot index as a real number
    if (pos <= 0) {
      // Below the first knot: assume progress proportional to time there, and be less sure.
      const first = this.knotPoint(key, step, 0);
      return { mean: first.mean + Math.log(p / knot(0)), variance: first.variance * 1.5 };
    }
    if (pos >= KNOT_COUNT - 1) {
      const last = this.knotPoint(key, step, KNOT_COUNT - 1);
      const frac = (p - knot(KNOT_COUNT - 1)) / (1 - knot(KNOT_COUNT - 1));
      return { mean: last.mean * (1 - frac), variance: Math.max(last.variance * (1 - frac), MIN_VARIANCE) };
    }
    const j = Math.floor(pos);
    const frac = pos - j;
    const a = this.knotPoint(key, step, j);
    const b = this.knotPoint(key, step, j + 1);
    return { mean: a.mean * (1 - frac) + b.mean * frac, variance: a.variance * (1 - frac) + b.variance * frac };
  }

  private level(map: Map<string, KnotStats>, key: string): KnotStats {
    let s = map.get(key);
    if (!s) {
      s = new KnotStats(this.decay);
      map.set(key, s);
    }
    return s;
  }
}
