/**
 * How much a job's steps run off their predictions TOGETHER, beyond what the shared levels (the
 * system's, the kind's) explain: the job's own size when no complexity is reported or the reported
 * one is wrong, a machine the whole job ran on… A variance J shared by every step of one job.
 *
 * Estimated from completed jobs by the method of moments: for two finished steps i, j of one job,
 * with residuals r against the model as it stood before the job's first step taught it anything,
 * E[r_i·r_j] = l_i·l_j·S + J, where S is how unsure the shared levels were then and l their loadings.
 * One sample per job (its pairs averaged), recency-weighted, shrunk toward 0 while few jobs are seen
 * (a job effect must be shown, not assumed). The job's pace (job-pace.ts) takes J into its prior:
 * where jobs really do run fast or slow as a whole, one finished step says so for the rest.
 */
import { DecayedMean } from './regression.js';

export interface JobResidual {
  /** Log residual against the reference model (already rebased). */
  residual: number;
  /** How much of the shared level error reaches this step (0..1). */
  loading: number;
}

/** Jobs' worth of trust in "no job effect" before jobs are seen. */
const PRIOR_JOBS = 5;
/** A residual beyond ±2 (7×) is clipped: one outlier must not make every job look correlated. */
const CLIP = 2;
const MAX_VAR = 1;
/**
 * Only the part beyond this is used (soft threshold): a small shared effect is mostly load or drift,
 * which have their own terms and change within a job (a burst ends), so a finished step's pace says
 * little about the next one there (tuning seeds: load 1.42× → 1.46× of the oracle without it, 1.43× with
 * 0.05; the effects this is for are 0.25–0.4 in kinds-wide / kinds-sparse).
 */
const DEADBAND = 0.05;

export class JobEffect {
  private readonly products: DecayedMean;

  constructor(halfLifeJobs = 200) {
    this.products = new DecayedMean(Math.pow(0.5, 1 / halfLifeJobs));
  }

  /** A completed job's finished steps (≥ 2 to say anything), with the shared variance S at the reference. */
  addJob(steps: readonly JobResidual[], sharedVar: number): void {
    if (steps.length < 2) return;
    let sum = 0;
    let pairs = 0;
    for (let i = 0; i < steps.length; i++) {
      const a = steps[i]!;
      const ra = Math.max(-CLIP, Math.min(CLIP, a.residual));
      for (let j = i + 1; j < steps.length; j++) {
        const b = steps[j]!;
        const rb = Math.max(-CLIP, Math.min(CLIP, b.residual));
        sum += ra * rb - a.loading * b.loading * sharedVar;
        pairs++;
      }
    }
    if (Number.isFinite(sum)) this.products.add(sum / pairs);
  }

  /** The shared per-job variance (log space); 0 until jobs show one. */
  get variance(): number {
    const w = this.products.w;
    const v = (w * this.products.mean) / (w + PRIOR_JOBS);
    return Math.min(Math.max(v - DEADBAND, 0), MAX_VAR);
  }
}
