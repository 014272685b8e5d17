/**
 * The benchmark scenarios (seven original ones, then harsher variants of `kinds`). Durations are in ms; a step's nominal duration is
 * median · complexity^exponent · lognormal(σ) "work", run at a speed set by drift and load.
 */
export interface Scenario {
  name: string;
  description: string;
  jobs: number;
  kinds: number;
  /** Steps per kind, drawn from a shared pool of step ids. */
  stepsPerKind: [number, number];
  stepPool: number;
  /** sd of a kind's log multiplier on a shared step's median (cold start: kinds resemble each other). */
  kindSpread: number;
  /** sd of a (kind, step)'s own log size around the shared step's median times the kind factor. */
  stepSizeSpread: number;
  /** Step names of the shared pool (default: a generic list). */
  vocabulary?: string[];
  meanInterarrivalMs: number;
  /** Concurrency (running steps) above which steps slow down: by (running / capacity)^sensitivity. */
  load: { capacity: number; sensitivity: number; bursts: boolean };
  /** Total slowdown over the trace (1 = none, 2 = twice as slow at the end). */
  drift: number;
  failures: { perAttempt: [number, number]; fatalShare: number } | null;
  /** Share of steps that never report progress. */
  silentShare: number;
  /** Whether steps carry their own complexity (else only the job has one). */
  stepComplexity: boolean;
  /**
   * Harsher many-kinds variants (absent = the behaviour above; none of these draws random numbers
   * unless set, so the other scenarios' traces are unchanged):
   * - `complexityHint`: 'absent' = the job event carries no complexity at all (the true one still
   *   varies); a number = the reported job complexity is off from the true one by that sd (log).
   * - `kindArrival` 'staggered': kinds are introduced over the first `share` of the trace (job i
   *   picks among the kinds introduced so far, newest kind always first), so new kinds keep
   *   appearing while others run, instead of all kinds appearing within the first few minutes.
   * - `heavyTail`: a share of attempts whose noise is multiplied by `scale` (a mixture: heavier
   *   tails than log-normal; the oracle knows σ but not which attempt is an outlier).
   */
  complexityHint?: 'absent' | number;
  kindArrival?: { share: number };
  heavyTail?: { share: number; scale: number };
}

const base: Omit<Scenario, 'name' | 'description'> = {
  jobs: 400,
  kinds: 4,
  stepsPerKind: [3, 6],
  stepPool: 10,
  kindSpread: 0.8,
  stepSizeSpread: 0.15,
  meanInterarrivalMs: 12_000,
  load: { capacity: 1_000, sensitivity: 0, bursts: false },
  drift: 1,
  failures: null,
  silentShare: 0.15,
  stepComplexity: true,
};

const VOCABULARY = ['render', 'upload', 'transcode', 'analysis', 'fetch', 'thumbnail', 'package', 'validate', 'encode', 'index', 'notify', 'archive'];

export const SCENARIOS: Scenario[] = [
  { ...base, name: 'steady', description: 'several kinds, lognormal durations, per-step complexity exponents, non-linear progress' },
  {
    ...base,
    name: 'load',
    description: 'bursts of arrivals; steps slow down with the number running at once',
    meanInterarrivalMs: 14_000,
    load: { capacity: 6, sensitivity: 0.7, bursts: true },
  },
  { ...base, name: 'drift', description: 'the whole system slows down 2x over the trace', drift: 2 },
  {
    ...base,
    name: 'failures',
    description: 'steps fail part way and are retried; a few jobs fail for good',
    failures: { perAttempt: [0.03, 0.2], fatalShare: 0.15 },
  },
  { ...base, name: 'silent', description: 'most steps report no progress', silentShare: 0.7 },
  {
    ...base,
    name: 'cold',
    description: 'many kinds, few jobs each; steps shared across kinds; only job complexity',
    jobs: 200,
    kinds: 40,
    stepsPerKind: [3, 5],
    stepPool: 8,
    kindSpread: 0.4,
    stepComplexity: false,
  },
  {
    // Issue 14: a platform adds pipelines all the time, built from one vocabulary of steps at
    // different sizes; the first job of every kind is the cold start users meet.
    ...base,
    name: 'kinds',
    description: 'about 60 kinds, about 7 jobs each, one shared vocabulary of step names at different sizes, per-kind speed',
    jobs: 420,
    kinds: 60,
    stepsPerKind: [3, 6],
    stepPool: 12,
    vocabulary: VOCABULARY,
    kindSpread: 0.6,
    stepSizeSpread: 0.4,
    stepComplexity: false,
  },
  // Harsher variants of `kinds` (what issue 14's held-out generator may do that ours did not).
  {
    ...base,
    name: 'kinds-wide',
    description: 'like kinds, but kind speed sd 1.0, 2–9 steps per kind (subsets and orders of 12), per-(kind, step) size sd 0.5, a misleading complexity hint (sd 0.5), 10% of attempts with 3× the noise',
    jobs: 420,
    kinds: 60,
    stepsPerKind: [2, 9],
    stepPool: 12,
    vocabulary: VOCABULARY,
    kindSpread: 1.0,
    stepSizeSpread: 0.5,
    stepComplexity: false,
    complexityHint: 0.5,
    heavyTail: { share: 0.1, scale: 3 },
  },
  {
    ...base,
    name: 'kinds-sparse',
    description: '100 kinds, about 3 jobs each, introduced over the trace while others run, kind speed sd 0.8, per-(kind, step) size sd 0.4, no complexity hint',
    jobs: 300,
    kinds: 100,
    stepsPerKind: [2, 7],
    stepPool: 12,
    vocabulary: VOCABULARY,
    kindSpread: 0.8,
    stepSizeSpread: 0.4,
    stepComplexity: false,
    complexityHint: 'absent',
    kindArrival: { share: 0.9 },
  },
  {
    ...base,
    name: 'kinds-stagger',
    description: '60 kinds introduced over the trace (a new kind appears while others run), 7 jobs each on average (early kinds more), kind speed sd 1.2, per-(kind, step) size sd 0.4, 10% of attempts with 2.5× the noise',
    jobs: 420,
    kinds: 60,
    stepsPerKind: [3, 6],
    stepPool: 12,
    vocabulary: VOCABULARY,
    kindSpread: 1.2,
    stepSizeSpread: 0.4,
    stepComplexity: false,
    kindArrival: { share: 0.7 },
    heavyTail: { share: 0.1, scale: 2.5 },
  },
];
