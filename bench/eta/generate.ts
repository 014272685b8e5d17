/**
 * Seeded synthetic traces: a small discrete-time simulation of jobs running steps whose speed
 * depends on system load and drift, emitting the trace events the engine consumes. Alongside
 * each event it records the oracle's prediction (see oracle.ts), computed from the true
 * parameters and the state so far — never from draws that lie in the future.
 */
import type { TraceEvent } from '../../server/eta/trace.js';
import type { Eta } from '../../protocol/index.js';
import { Random } from './random.js';
import type { Scenario } from './scenarios.js';
import { oracleEta, type OracleStep } from './oracle.js';

export interface StepTruth {
  id: string;
  /** Median work (ms at speed 1) at complexity 1. */
  median: number;
  exponent: number;
  sigma: number;
  /** progress = (work done / work)^shape: below 1 starts fast and ends slow. */
  shape: number;
  reportEveryMs: number;
  silent: boolean;
  failPerAttempt: number;
}

export interface JobOutcome {
  kind: string;
  start: number;
  end: number;
  status: 'completed' | 'failed';
}

export interface GeneratedTrace {
  scenario: string;
  seed: number;
  events: TraceEvent[];
  /** The oracle's prediction after each event (null for job_end). */
  oracle: Array<Eta | null>;
  jobs: Map<string, JobOutcome>;
}

/** Per-attempt variation of the progress shape exponent (sd in log space). */
export const SHAPE_JITTER = 0.15;
export const RETRY_GAP_MS: [number, number] = [500, 3000];
export const MAX_ATTEMPTS = 4;
const TICK_MS = 100;

interface Attempt {
  work: number;
  done: number;
  shape: number;
  failAt: number;
  nextReport: number;
  lastReportP: number;
  lastReportWork: number;
}

interface SimJob {
  id: string;
  steps: StepTruth[];
  complexities: number[];
  jobComplexity: number;
  index: number;
  attempts: number;
  attempt: Attempt | null;
  startAt: number | null;
  failedAt: number | null;
}

export function generateTrace(scenario: Scenario, seed: number): GeneratedTrace {
  const rng = new Random(seed * 7919 + scenario.name.length * 104729 + hash(scenario.name));
  const pool = Array.from({ length: scenario.stepPool }, (_, i) => ({
    id: scenario.vocabulary?.[i] ?? ['fetch', 'parse', 'analyze', 'embed', 'rank', 'render', 'upload', 'notify', 'index', 'verify', 'plan', 'draft'][i] ?? `step${i}`,
    median: Math.exp(rng.uniform(Math.log(2_000), Math.log(30_000))),
    exponent: rng.uniform(0.3, 1.5),
    shape: Math.exp(rng.uniform(Math.log(0.35), Math.log(1.6))),
  }));
  const kinds = Array.from({ length: scenario.kinds }, (_, k) => {
    const count = rng.int(scenario.stepsPerKind[0], scenario.stepsPerKind[1]);
    const chosen = shuffle(pool.slice(), rng).slice(0, count);
    const kindFactor = Math.exp(scenario.kindSpread * rng.normal());
    const steps: StepTruth[] = chosen.map((p) => ({
      id: p.id,
      median: p.median * kindFactor * Math.exp(scenario.stepSizeSpread * rng.normal()),
      exponent: Math.max(0.1, p.exponent + 0.1 * rng.normal()),
      sigma: rng.uniform(0.15, 0.45),
      // A step id is the same algorithm wherever it runs: kinds change its size, barely its shape.
      shape: p.shape * Math.exp(0.1 * rng.normal()),
      reportEveryMs: rng.uniform(500, 3_000),
      silent: rng.next() < scenario.silentShare,
      failPerAttempt: scenario.failures ? rng.uniform(...scenario.failures.perAttempt) : 0,
    }));
    return { name: `kind-${k}`, steps };
  });

  // Which kind a job is: uniform over all kinds, or (staggered) over the kinds introduced so far,
  // a newly introduced kind taking the job that introduces it.
  let introduced = 0;
  const pickKind = (i: number): (typeof kinds)[number] => {
    if (!scenario.kindArrival) return kinds[Math.floor(rng.next() * kinds.length)]!;
    const due = Math.min(kinds.length, Math.ceil((kinds.length * (i + 1)) / (scenario.jobs * scenario.kindArrival.share)));
    if (due > introduced) return kinds[introduced++]!;
    return kinds[Math.floor(rng.next() * introduced)]!;
  };

  // Arrivals: Poisson, in bursts when the scenario says so (3x for a quarter of each 10 minutes).
  const rate = (t: number): number => (scenario.load.bursts ? ((t % 600_000) < 150_000 ? 3 : 0.5) : 1);
  const arrivals: number[] = [];
  for (let t = 0, i = 0; i < scenario.jobs; i++) {
    t += rng.exponential(scenario.meanInterarrivalMs / rate(t));
    arrivals.push(Math.round(t));
  }
  const horizon = arrivals[arrivals.length - 1]! + 120_000;
  const drift = (t: number): number => Math.pow(scenario.drift, Math.min(t / horizon, 1));
  const loadPart = (n: number): number => Math.pow(Math.max(1, n / scenario.load.capacity), scenario.load.sensitivity);

  const raw: Array<{ ev: TraceEvent; oracle: Eta | null; order: number }> = [];
  const jobs = new Map<string, JobOutcome>();
  const live: SimJob[] = [];
  let nextArrival = 0;
  let loadSum = 0;
  let loadTicks = 0;
  let order = 0;

  const oracleFor = (job: SimJob, now: number, factorNow: number, loadNow: number): Eta => {
    const meanLoad = loadTicks > 0 ? loadSum / loadTicks : loadNow;
    const factorLater = drift(now) * (0.5 * loadNow + 0.5 * meanLoad);
    const steps: OracleStep[] = job.steps.map((s, i) => {
      const mu = Math.log(s.median) + s.exponent * Math.log(job.complexities[i]!);
      if (i < job.index) return { state: 'done', mu, sigma: s.sigma, failPerAttempt: s.failPerAttempt, shape: s.shape };
      if (i > job.index || (job.attempt === null && job.failedAt === null))
        return { state: 'pending', mu, sigma: s.sigma, failPerAttempt: s.failPerAttempt, shape: s.shape };
      if (job.attempt === null)
        return { state: 'waiting', mu, sigma: s.sigma, failPerAttempt: s.failPerAttempt, shape: s.shape, waitedMs: now - job.failedAt! };
      const a = job.attempt;
      return {
        state: 'running',
        mu,
        sigma: s.sigma,
        failPerAttempt: s.failPerAttempt,
        shape: s.shape,
        workDone: a.done,
        report: a.lastReportP > 0 ? { progress: a.lastReportP, work: a.lastReportWork } : null,
      };
    });
    return oracleEta(steps, factorNow, factorLater, (RETRY_GAP_MS[0] + RETRY_GAP_MS[1]) / 2, SHAPE_JITTER);
  };

  const emit = (ev: TraceEvent, job: SimJob | null, oracle: () => Eta | null): void => {
    raw.push({ ev, oracle: job ? oracle() : null, order: order++ });
  };

  const newAttempt = (job: SimJob, at: number): Attempt => {
    const s = job.steps[job.index]!;
    const tail = scenario.heavyTail && rng.next() < scenario.heavyTail.share ? scenario.heavyTail.scale : 1;
    const work = s.median * Math.pow(job.complexities[job.index]!, s.exponent) * Math.exp(tail * s.sigma * rng.normal());
    const fails = rng.next() < s.failPerAttempt;
    return {
      work,
      done: 0,
      shape: s.shape * Math.exp(SHAPE_JITTER * rng.normal()),
      failAt: fails ? work * rng.uniform(0.05, 0.95) : Infinity,
      nextReport: s.silent ? Infinity : at + rng.exponential(s.reportEveryMs),
      lastReportP: 0,
      lastReportWork: 0,
    };
  };

  for (let t = 0; nextArrival < arrivals.length || live.length > 0; t += TICK_MS) {
    const running = live.filter((j) => j.attempt !== null).length;
    const lp = loadPart(running);
    const factor = drift(t) * lp;
    const speed = 1 / factor;
    loadSum += lp;
    loadTicks++;
    // Arrivals.
    while (nextArrival < arrivals.length && arrivals[nextArrival]! <= t) {
      const id = `j${nextArrival + 1}`;
      const kind = pickKind(nextArrival);
      const jobComplexity = Math.exp(0.7 * rng.normal());
      const hint = scenario.complexityHint;
      const reported = typeof hint === 'number' ? round(jobComplexity * Math.exp(hint * rng.normal())) : round(jobComplexity);
      const complexities = kind.steps.map(() => (scenario.stepComplexity ? jobComplexity * Math.exp(0.35 * rng.normal()) : jobComplexity));
      const job: SimJob = { id, steps: kind.steps, complexities, jobComplexity, index: 0, attempts: 0, attempt: null, startAt: t + rng.uniform(0, 1_000), failedAt: null };
      live.push(job);
      jobs.set(id, { kind: kind.name, start: t, end: NaN, status: 'completed' });
      const ev: TraceEvent = scenario.stepComplexity
        ? { t, type: 'job', jobId: id, kind: kind.name, complexity: round(jobComplexity), steps: kind.steps.map((s, i) => ({ id: s.id, complexity: round(complexities[i]!) })) }
        : hint === 'absent'
          ? { t, type: 'job', jobId: id, kind: kind.name, steps: kind.steps.map((s) => ({ id: s.id })) }
          : { t, type: 'job', jobId: id, kind: kind.name, complexity: reported, steps: kind.steps.map((s) => ({ id: s.id })) };
      emit(ev, job, () => oracleFor(job, t, factor, lp));
      nextArrival++;
    }
    // Starts of first attempts and retries.
    for (const job of live) {
      if (job.attempt === null && job.startAt !== null && job.startAt <= t + TICK_MS) {
        const at = Math.max(t, Math.round(job.startAt));
        job.attempt = newAttempt(job, at);
        job.startAt = null;
        job.failedAt = null;
        emit({ t: at, type: 'step_start', jobId: job.id, step: job.steps[job.index]!.id }, job, () => oracleFor(job, at, factor, lp));
      }
    }
    // Work.
    for (let i = live.length - 1; i >= 0; i--) {
      const job = live[i]!;
      const a = job.attempt;
      if (!a || job.startAt !== null) continue;
      const before = a.done;
      const after = before + TICK_MS * speed;
      const stopWork = Math.min(a.failAt, a.work);
      const stopAt = after >= stopWork ? t + (stopWork - before) / speed : Infinity;
      while (a.nextReport <= Math.min(t + TICK_MS, stopAt)) {
        const at = Math.max(t, Math.round(a.nextReport));
        const w = before + (a.nextReport - t) * speed;
        const p = round(Math.min(Math.pow(Math.max(w, 0) / a.work, a.shape), 0.999));
        if (p > a.lastReportP) {
          a.lastReportP = p;
          a.lastReportWork = w;
          a.done = w;
          emit({ t: at, type: 'progress', jobId: job.id, step: job.steps[job.index]!.id, progress: p }, job, () => oracleFor(job, at, factor, lp));
        }
        a.nextReport += rng.exponential(job.steps[job.index]!.reportEveryMs);
      }
      if (stopAt === Infinity) {
        a.done = after;
        continue;
      }
      const at = Math.round(stopAt);
      a.done = stopWork;
      const stepId = job.steps[job.index]!.id;
      const end = (status: 'completed' | 'failed'): void => {
        emit({ t: at, type: 'job_end', jobId: job.id, status }, null, () => null);
        jobs.set(job.id, { ...jobs.get(job.id)!, end: at, status });
        live.splice(i, 1);
      };
      if (a.failAt <= a.work) {
        job.attempt = null;
        job.attempts++;
        job.failedAt = at;
        emit({ t: at, type: 'step_failed', jobId: job.id, step: stepId }, job, () => oracleFor(job, at, factor, lp));
        if (rng.next() < scenario.failures!.fatalShare || job.attempts >= MAX_ATTEMPTS) end('failed');
        else job.startAt = at + rng.uniform(...RETRY_GAP_MS);
        continue;
      }
      job.index++;
      job.attempts = 0;
      job.attempt = null;
      emit({ t: at, type: 'step_end', jobId: job.id, step: stepId }, job, () => oracleFor(job, at, factor, lp));
      if (job.index >= job.steps.length) end('completed');
      else {
        job.attempt = newAttempt(job, at);
        emit({ t: at, type: 'step_start', jobId: job.id, step: job.steps[job.index]!.id }, job, () => oracleFor(job, at, factor, lp));
      }
    }
  }
  raw.sort((a, b) => a.ev.t - b.ev.t || a.order - b.order);
  return { scenario: scenario.name, seed, events: raw.map((r) => r.ev), oracle: raw.map((r) => r.oracle), jobs };
}

const round = (v: number): number => Math.round(v * 1000) / 1000;

function shuffle<T>(items: T[], rng: Random): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

function hash(s: string): number {
  let h = 0;
  for (const c of s) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return h;
}
