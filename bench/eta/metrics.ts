/**
 * Accuracy metrics of a runner's predictions on one trace, over jobs that completed (a job that
 * failed for good has no true remaining time).
 */
import type { TraceEvent } from '../../server/eta/trace.js';
import type { JobOutcome } from './generate.js';

export interface Prediction {
  remainingMs: number;
  low?: number | undefined;
  high?: number | undefined;
}

export interface Metrics {
  /** Median absolute percentage error of remaining time (0.25 = 25%). */
  mape: number;
  /** The same per quarter of elapsed job time. */
  quarters: [number, number, number, number];
  /** Share of predictions within ±20% of the truth. */
  within20: number;
  /** Share of predictions whose 80% interval holds the truth (NaN without intervals). */
  coverage: number;
  /** Median over jobs of the number of times the finish time moved later by >10% of the remaining time. */
  jumpiness: number;
  /** Median APE sampling each job every second, holding (counting down) the latest prediction. */
  timeWeightedMape: number;
  /** Median APE over the first jobs of the trace (started with little or no history): the cold start a user meets first. */
  firstJobsMape: number;
  /** 80% interval coverage over those jobs. */
  firstJobsCoverage: number;
  /** Median APE over the first job of every kind (its kind has no history; other kinds may share its steps). */
  firstOfKindMape: number;
  /** 80% interval coverage over those jobs. */
  firstOfKindCoverage: number;
  predictions: number;
}

/** How many of the earliest jobs the first-jobs metrics look at. */
export const FIRST_JOBS = 5;

const median = (xs: number[]): number => {
  if (xs.length === 0) return NaN;
  const s = Float64Array.from(xs).sort();
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

export function score(events: readonly TraceEvent[], predictions: ReadonlyArray<Prediction | null>, jobs: Map<string, JobOutcome>): Metrics {
  const apes: number[] = [];
  const quarters: number[][] = [[], [], [], []];
  let within = 0;
  let covered = 0;
  let withInterval = 0;
  const timeline = new Map<string, Array<{ t: number; r: number }>>();
  const jumps = new Map<string, number>();
  const first = new Set([...jobs.entries()].sort((a, b) => a[1].start - b[1].start).slice(0, FIRST_JOBS).map(([id]) => id));
  const firstApes: number[] = [];
  let firstCovered = 0;
  let firstWithInterval = 0;
  const firstOfKind = firstJobOfEachKind(jobs);
  const kindApes: number[] = [];
  let kindCovered = 0;
  let kindWithInterval = 0;
  for (let i = 0; i < events.length; i++) {
    const ev = events[i]!;
    const p = predictions[i];
    const job = jobs.get(ev.jobId);
    if (!p || !job || job.status !== 'completed') continue;
    const truth = job.end - ev.t;
    const line = timeline.get(ev.jobId) ?? [];
    if (line.length === 0) timeline.set(ev.jobId, line);
    const prev = line[line.length - 1];
    if (prev && truth > 0) {
      const moved = ev.t + p.remainingMs - (prev.t + prev.r);
      if (moved > 0.1 * truth) jumps.set(ev.jobId, (jumps.get(ev.jobId) ?? 0) + 1);
    }
    line.push({ t: ev.t, r: p.remainingMs });
    if (!(truth > 0)) continue;
    const ape = Math.abs(p.remainingMs - truth) / truth;
    apes.push(ape);
    const q = Math.min(3, Math.floor((4 * (ev.t - job.start)) / (job.end - job.start)));
    quarters[q]!.push(ape);
    if (ape <= 0.2) within++;
    const isFirst = first.has(ev.jobId);
    if (isFirst) firstApes.push(ape);
    const isFirstOfKind = firstOfKind.has(ev.jobId);
    if (isFirstOfKind) kindApes.push(ape);
    if (p.low !== undefined && p.high !== undefined) {
      const hit = p.low <= truth && truth <= p.high;
      withInterval++;
      if (hit) covered++;
      if (isFirst) {
        firstWithInterval++;
        if (hit) firstCovered++;
      }
      if (isFirstOfKind) {
        kindWithInterval++;
        if (hit) kindCovered++;
      }
    }
  }
  const tw: number[] = [];
  const perJobJumps: number[] = [];
  for (const [id, line] of timeline) {
    const job = jobs.get(id)!;
    perJobJumps.push(jumps.get(id) ?? 0);
    let k = 0;
    for (let s = job.start; s < job.end; s += 1000) {
      while (k + 1 < line.length && line[k + 1]!.t <= s) k++;
      const held = line[k]!;
      if (held.t > s) continue;
      const predicted = Math.max(0, held.r - (s - held.t));
      const truth = job.end - s;
      tw.push(Math.abs(predicted - truth) / truth);
    }
  }
  return {
    mape: median(apes),
    quarters: quarters.map(median) as Metrics['quarters'],
    within20: apes.length ? within / apes.length : NaN,
    coverage: withInterval ? covered / withInterval : NaN,
    jumpiness: median(perJobJumps),
    timeWeightedMape: median(tw),
    firstJobsMape: median(firstApes),
    firstJobsCoverage: firstWithInterval ? firstCovered / firstWithInterval : NaN,
    firstOfKindMape: median(kindApes),
    firstOfKindCoverage: kindWithInterval ? kindCovered / kindWithInterval : NaN,
    predictions: apes.length,
  };
}

/** The earliest job of every kind (ties: the first seen). */
function firstJobOfEachKind(jobs: Map<string, JobOutcome>): Set<string> {
  const first = new Map<string, { id: string; start: number }>();
  for (const [id, job] of jobs) {
    const seen = first.get(job.kind);
    if (!seen || job.start < seen.start) first.set(job.kind, { id, start: job.start });
  }
  return new Set([...first.values()].map((f) => f.id));
}
