// Drives the ETA engine the way the job service does, on a virtual clock (no timers, no I/O).
import type { Job, Step } from '../../protocol/index.js';
import type { EtaEngine } from '../../server/eta/eta-engine.js';

export interface StepPlan {
  id: string;
  complexity?: number;
  durationMs: number;
  /** Report progress at these fractions of the duration: progress = fraction^shape. */
  reports?: number[];
  shape?: number;
  /** Fail once at this fraction of the duration, then retry after retryGapMs. */
  failAt?: number;
  retryGapMs?: number;
}

let nextId = 0;

export function newJob(kind: string, steps: Array<{ id: string; complexity?: number }>, now: number, complexity?: number): Job {
  return {
    id: `job-${++nextId}`,
    kind,
    status: 'queued',
    progress: 0,
    seq: 1,
    steps: steps.map((s) => ({ id: s.id, label: s.id, status: 'pending', progress: 0, ...(s.complexity !== undefined ? { complexity: s.complexity } : {}) })),
    eta: null,
    createdAt: now,
    updatedAt: now,
    ...(complexity !== undefined ? { complexity } : {}),
  };
}

/** Apply a change to one step and tell the engine; returns the new job. */
export function change(engine: EtaEngine, job: Job, stepId: string, patch: Partial<Step>, now: number, status: Job['status'] = 'running'): Job {
  const next: Job = { ...job, status, seq: job.seq + 1, updatedAt: now, steps: job.steps.map((s) => (s.id === stepId ? { ...s, ...patch } : s)) };
  engine.observe(job, next, now);
  return next;
}

export function finish(engine: EtaEngine, job: Job, now: number, status: 'completed' | 'failed' = 'completed'): Job {
  const next: Job = { ...job, status, seq: job.seq + 1, updatedAt: now };
  engine.observe(job, next, now);
  return next;
}

/** Run a whole job from `start`, one step after the other; returns the end time. */
export function runJob(engine: EtaEngine, kind: string, plan: StepPlan[], start: number, jobComplexity?: number): number {
  let job = newJob(kind, plan, start, jobComplexity);
  engine.observe(undefined, job, start);
  let t = start;
  for (const s of plan) {
    if (s.failAt !== undefined) {
      job = change(engine, job, s.id, { status: 'running', startedAt: t, progress: 0 }, t);
      t += s.durationMs * s.failAt;
      job = change(engine, job, s.id, { status: 'failed', endedAt: t }, t);
      t += s.retryGapMs ?? 1000;
    }
    job = change(engine, job, s.id, { status: 'running', startedAt: t, progress: 0, endedAt: undefined }, t);
    for (const f of s.reports ?? []) {
      job = change(engine, job, s.id, { progress: Math.pow(f, s.shape ?? 1) }, t + f * s.durationMs);
    }
    t += s.durationMs;
    job = change(engine, job, s.id, { status: 'completed', progress: 1, endedAt: t }, t);
  }
  finish(engine, job, t);
  return t;
}

/** A seeded PRNG so "noisy" histories are the same on every run. */
export function seeded(seed: number): { next(): number; normal(): number } {
  let state = seed >>> 0 || 1;
  const next = (): number => {
    let t = (state = (state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, normal: () => Math.sqrt(-2 * Math.log(Math.max(next(), 1e-12))) * Math.cos(2 * Math.PI * next()) };
}
