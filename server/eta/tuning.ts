/**
 * The ETA engine's tuning: every constant that shapes its estimates, in one place, so the
 * benchmark (bench/eta) and tests can try other values without touching the engine. The defaults
 * are what bench:eta's tuning seeds chose (docs/eta.md); the held-out seeds report them.
 */
import { DEFAULT_DURATION_TUNING, type DurationModelTuning } from './duration-model.js';

export interface EtaTuning {
  duration: DurationModelTuning;
  /** Weight of the current concurrency (vs the typical one) for steps that have not started. */
  futureLoadWeight: number;
  /** Share of the load's variance added to a future step's spread (half of it to the running step). */
  loadUncertainty: number;
  /** How much of the calibrated median bias to apply to the point estimate (0..1). */
  biasCorrection: number;
  /**
   * Where the point sits in the predictive distribution, in sd above the median: slightly
   * pessimistic, because a job that finishes early disappoints nobody while a finish time that
   * keeps moving later erodes trust.
   */
  pointShift: number;
  /** Share of a later/earlier move of the finish time applied at once (1 = no smoothing). */
  smoothLater: number;
  smoothEarlier: number;
  /** A later move of the finish time is capped at this share of the remaining time per update. */
  maxLaterStep: number;
  /** ...but the shown remaining time never falls below this share of the fresh estimate. */
  minShownShare: number;
  /** Step size of the online interval calibration (standardized units per observation, early on). */
  calibrationRate: number;
  /** Share of outcomes the calibration aims to leave below (and above) the interval. */
  intervalTail: number;
  /** Past estimates kept per running job to calibrate intervals when it completes. */
  checkpointsPerJob: number;
}

export const DEFAULT_TUNING: EtaTuning = {
  duration: DEFAULT_DURATION_TUNING,
  futureLoadWeight: 0.5,
  loadUncertainty: 0.5,
  biasCorrection: 1,
  pointShift: 0.25,
  smoothLater: 0.2,
  smoothEarlier: 1,
  maxLaterStep: 0.06,
  minShownShare: 0.5,
  calibrationRate: 0.05,
  intervalTail: 0.08,
  checkpointsPerJob: 24,
};
