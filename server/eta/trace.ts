/**
 * ETA traces (JSON Lines, sorted by `t`): parsing with clear errors, and a replayer that turns
 * events into the same Job objects the server builds, so replay and benchmark exercise the
 * engine's exact code path with the trace's clock.
 */
import type { Eta, Job, Step } from '../../protocol/index.js';

export type TraceEvent =
  | { t: number; type: 'job'; jobId: string; kind: string; complexity?: number; steps: Array<{ id: string; complexity?: number }> }
  | { t: number; type: 'step_start' | 'progress' | 'step_end' | 'step_failed'; jobId: string; step: string; progress?: number }
  | { t: number; type: 'job_end'; jobId: string; status: 'completed' | 'failed' | 'canceled' };

export class TraceError extends Error {}

const STEP_EVENTS = new Set(['step_start', 'progress', 'step_end', 'step_failed']);
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isComplexity = (v: unknown): boolean => v === undefined || v === null || (typeof v === 'number' && Number.isFinite(v) && v > 0);

/** Parse and validate one line; throws TraceError saying what is wrong. Unknown fields are ignored. */
export function parseTraceEvent(line: string): TraceEvent {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    throw new TraceError('not valid JSON');
  }
  if (!isObj(raw)) throw new TraceError('expected a JSON object');
  const { t, type, jobId } = raw;
  if (typeof t !== 'number' || !Number.isFinite(t)) throw new TraceError('"t" must be a finite number');
  if (typeof jobId !== 'string' || jobId === '') throw new TraceError('"jobId" must be a non-empty string');
  if (type === 'job') {
    const { kind, steps, complexity } = raw;
    if (typeof kind !== 'string') throw new TraceError('"kind" must be a string');
    if (!isComplexity(complexity)) throw new TraceError('"complexity" must be a positive number');
    if (!Array.isArray(steps) || steps.length === 0) throw new TraceError('"steps" must be a non-empty array');
    const ids = new Set<string>();
    const out: Array<{ id: string; complexity?: number }> = [];
    for (const s of steps) {
      if (!isObj(s) || typeof s.id !== 'string' || s.id === '') throw new TraceError('every step needs a string "id"');
      if (ids.has(s.id)) throw new TraceError(`duplicate step id "${s.id}"`);
      if (!isComplexity(s.complexity)) throw new TraceError(`step "${s.id}": "complexity" must be a positive number`);
      ids.add(s.id);
      out.push(typeof s.complexity === 'number' ? { id: s.id, complexity: s.complexity } : { id: s.id });
    }
    return typeof complexity === 'number' ? { t, type, jobId, kind, complexity, steps: out } : { t, type, jobId, kind, steps: out };
  }
  if (typeof type === 'string' && STEP_EVENTS.has(type)) {
    const { step, progress } = raw;
    if (typeof step !== 'string' || step === '') throw new TraceError(`"${type}" needs a string "step"`);
    if (progress !== undefined && (typeof progress !== 'number' || !(progress >= 0 && progress <= 1))) {
      throw new TraceError('"progress" must be a number between 0 and 1');
    }
    if (type === 'progress' && progress === undefined) throw new TraceError('"progress" event needs "progress"');
    const ev: TraceEvent = { t, type: type as 'step_start', jobId, step };
    if (progress !== undefined) ev.progress = progress;
    return ev;
  }
  if (type === 'job_end') {
    const { status } = raw;
    if (status !== 'completed' && status !== 'failed' && status !== 'canceled') {
      throw new TraceError('"job_end" needs "status": "completed" or "failed"');
    }
    return { t, type, jobId, status };
  }
  throw new TraceError(`unknown event type ${JSON.stringify(type)}`);
}

/** Anything that can learn from job changes and answer remaining time (the engine, baselines). */
export interface TracePredictor {
  observe(prev: Job | undefined, next: Job, now: number): void;
  forecast(job: Job, now: number): Eta | null;
}

export interface TracePrediction {
  t: number;
  jobId: string;
  remainingMs: number | null;
  low: number | null;
  high: number | null;
}

/**
 * Keeps the live jobs of a trace (finished ones are dropped at `job_end`, so memory is bounded
 * by the number of jobs running at once) and applies events to them.
 */
export class TraceReplayer {
  private readonly jobs = new Map<string, Job>();
  private lastT = Number.NEGATIVE_INFINITY;

  constructor(private readonly predictor: TracePredictor) {}

  get liveJobs(): number {
    return this.jobs.size;
  }

  /** Apply one event; returns the prediction to print, or null for job_end. Throws TraceError. */
  apply(ev: TraceEvent): TracePrediction | null {
    if (ev.t < this.lastT) throw new TraceError(`"t" goes backwards (${ev.t} after ${this.lastT})`);
    const prev = this.jobs.get(ev.jobId);
    let next: Job;
    if (ev.type === 'job') {
      if (prev) throw new TraceError(`job "${ev.jobId}" already exists`);
      next = {
        id: ev.jobId,
        kind: ev.kind,
        status: 'queued',
        progress: 0,
        seq: 1,
        steps: ev.steps.map((s) => ({ id: s.id, label: s.id, status: 'pending', progress: 0, ...(s.complexity !== undefined ? { complexity: s.complexity } : {}) })),
        eta: null,
        createdAt: ev.t,
        updatedAt: ev.t,
        ...(ev.complexity !== undefined ? { complexity: ev.complexity } : {}),
      };
    } else {
      if (!prev) throw new TraceError(`unknown job "${ev.jobId}"`);
      if (ev.type === 'job_end') {
        next = withChange(prev, ev.status, prev.steps, ev.t);
      } else {
        const index = prev.steps.findIndex((s) => s.id === ev.step);
        if (index < 0) throw new TraceError(`job "${ev.jobId}" has no step "${ev.step}"`);
        const steps = prev.steps.slice();
        steps[index] = applyStepEvent(steps[index]!, ev.type, ev.t, ev.progress);
        next = withChange(prev, 'running', steps, ev.t);
      }
    }
    this.lastT = ev.t;
    this.predictor.observe(prev, next, ev.t);
    if (ev.type === 'job_end') {
      this.jobs.delete(ev.jobId);
      return null;
    }
    this.jobs.set(ev.jobId, next);
    const eta = this.predictor.forecast(next, ev.t);
    return { t: ev.t, jobId: ev.jobId, remainingMs: eta?.remainingMs ?? null, low: eta?.low ?? null, high: eta?.high ?? null };
  }
}

/** The next version of a job (a new object: the predictor may keep the previous one). */
function withChange(prev: Job, status: Job['status'], steps: Step[], t: number): Job {
  const next: Job = { id: prev.id, kind: prev.kind, status, progress: prev.progress, seq: prev.seq + 1, steps, eta: null, createdAt: prev.createdAt, updatedAt: t };
  if (prev.complexity !== undefined) next.complexity = prev.complexity;
  return next;
}

function applyStepEvent(step: Step, type: 'step_start' | 'progress' | 'step_end' | 'step_failed', t: number, progress?: number): Step {
  switch (type) {
    case 'step_start':
      // A start (also a retry) restarts the step's clock.
      return startedStep(step, t, progress ?? 0);
    case 'progress':
      // Progress on a step not started yet implies it started now.
      if (step.status !== 'running') return startedStep(step, t, progress ?? 0);
      return startedStep(step, step.startedAt ?? t, progress ?? step.progress);
    case 'step_end':
      return { ...startedStep(step, step.startedAt ?? t, 1), status: 'completed', endedAt: t };
    case 'step_failed': {
      const s = startedStep(step, step.startedAt ?? t, step.progress);
      s.status = 'failed';
      s.endedAt = t;
      return s;
    }
  }
}

function startedStep(step: Step, t: number, progress: number): Step {
  const s: Step = { id: step.id, label: step.label, status: 'running', progress, startedAt: t };
  if (step.complexity !== undefined) s.complexity = step.complexity;
  return s;
}
