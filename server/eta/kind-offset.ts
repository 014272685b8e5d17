/**
 * A kind's offset: how much slower or faster this kind runs the steps it shares with other kinds
 * (log space), learned from every finished step of the kind against the same step pooled across
 * kinds. It is what lets the first job of a new kind be estimated from steps other kinds taught,
 * and a kind's own speed be learned from its first steps.
 *
 * Shrinkage is by evidence, not by a fixed count: each residual is weighted by its precision (a
 * step known to vary ±50% says less about the kind than one known to ±10%), and the prior on an
 * offset is the spread between kinds, estimated from the kinds seen so far (empirical Bayes,
 * method of moments, itself shrunk toward a configured prior spread while few kinds are known).
 * So where kinds really differ a kind follows its own few samples; where they do not, it stays
 * with the pool.
 */

interface KindEvidence {
  /** Decayed Σ 1/noiseVar. */
  precision: number;
  /** Decayed Σ residual/noiseVar. */
  sum: number;
}

/** Kinds' worth of trust in the configured prior spread between kinds. */
const PRIOR_KINDS = 3;
/** The between-kind variance is kept within these bounds (sd 0.05 .. 1.5 in log space). */
const MIN_TAU2 = 0.05 ** 2;
const MAX_TAU2 = 1.5 ** 2;

export class KindOffsets {
  private readonly byKind = new Map<string, KindEvidence>();
  private tau2Cache: number | undefined;

  /** `decay` per sample of the kind (recency); `priorSd` the spread between kinds assumed before any are seen. */
  constructor(
    private readonly decay: number,
    private readonly priorSd: number,
  ) {}

  /** A finished step of `kind` ran `residual` (log) off the step pooled across kinds, whose own noise is `noiseVar`. */
  add(kind: string, residual: number, noiseVar: number): void {
    let e = this.byKind.get(kind);
    if (!e) this.byKind.set(kind, (e = { precision: 0, sum: 0 }));
    const p = 1 / Math.max(noiseVar, 1e-4);
    e.precision = e.precision * this.decay + p;
    e.sum = e.sum * this.decay + p * residual;
    this.tau2Cache = undefined;
  }

  /** Evidence behind a kind's offset (0 for a new kind). */
  precisionOf(kind: string): number {
    return this.byKind.get(kind)?.precision ?? 0;
  }

  /** The posterior mean of the kind's offset (0 for a new kind). */
  offset(kind: string): number {
    const e = this.byKind.get(kind);
    return e ? e.sum / (e.precision + 1 / this.betweenKinds()) : 0;
  }

  /** The posterior variance of the kind's offset: the between-kind spread for a new kind. */
  variance(kind: string): number {
    const e = this.byKind.get(kind);
    return 1 / ((e?.precision ?? 0) + 1 / this.betweenKinds());
  }

  /**
   * The spread between kinds (variance of true offsets): each kind's raw mean squared, minus its
   * sampling variance, averaged, with the configured prior counting as PRIOR_KINDS kinds.
   */
  betweenKinds(): number {
    if (this.tau2Cache !== undefined) return this.tau2Cache;
    let sum = PRIOR_KINDS * this.priorSd * this.priorSd;
    let n = PRIOR_KINDS;
    for (const e of this.byKind.values()) {
      if (e.precision <= 0) continue;
      const mean = e.sum / e.precision;
      // A kind's weight in the estimate grows with its evidence (one noisy sample says little).
      const w = e.precision / (e.precision + 1 / (this.priorSd * this.priorSd));
      sum += w * (mean * mean - 1 / e.precision);
      n += w;
    }
    this.tau2Cache = Math.min(Math.max(sum / n, MIN_TAU2), MAX_TAU2);
    return this.tau2Cache;
  }
}
