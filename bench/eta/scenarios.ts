/**
 * The seven benchmark scenarios. Durations are in ms; a step's nominal duration is
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
    vocabulary: ['render', 'upload', 'transcode', 'analysis', 'fetch', 'thumbnail', 'package', 'validate', 'encode', 'index', 'notify', 'archive'],
    kindSpread: 0.6,
    stepSizeSpread: 0.4,
    stepComplexity: false,
  },
];
