/**
 * Queue waits: how long a job that its producer reported `queued` will wait before its first step
 * starts, learned per kind (a kind is usually one queue) and pooled across kinds.
 *
 * Two things are learned, both in log space, recency-weighted:
 * - the **time per slot**: how long it takes for one job ahead to leave the queue. Evidence is a
 *   position that went down (p0 → p1 in Δt: p0 − p1 slots) and a start (position p reported Δt
 *   before the first step started: p + 1 slots). A job at position p then waits (p + 1) slots.
 * - the **whole wait** from the first `queued` event to the first step, for jobs whose producer
 *   gives no position.
 * A kind's level is shrunk toward the pool by evidence (precision-weighted against the spread
 * between kinds), so a new kind's first queued job gets the pool's rate at once and its own after a
 * few samples. Time already waited is conditioned on (a wait that has lasted long has less left,
 * but never less than a plausible tail), like a running step.
 *
 * Pure: no clock; the engine feeds samples and persists them through the HistoryStore
 * (history-sample.ts: `queue_slots` and `queue_wait` records), so the rates survive restarts.
 */
import type { Job } from '../../protocol/index.js';
import { lognormalMoments, remainingGivenElapsed, type LogNormal, type Moments } from './lognormal.js';
import { DecayedMean } from './regression.js';

/** What a job's queue looked like when the engine last saw it. */
export interface QueueTrack {
  since: number;
  reportedAt: number;
  position?: number | undefined;
}

/** Learned from a job's queue (persisted; see history-sample.ts). */
export type QueueSample =
  | { type: 'queue_slots'; kind: string; at: number; waitMs: number; slots: number }
  | { type: 'queue_wait'; kind: string; at: number; waitMs: number };

/** History key step of queue records: not a valid step id (ids start with a letter or digit), so never a step's. */
export const QUEUE_HISTORY_STEP = '#queue';

const HALF_LIFE = 50;
/** Prior sd of how much one kind's queue differs from the pool's (log space). */
const KIND_SD = 1;
/** Floor on the noise of one observation (log space): queues are never perfectly regular. */
const MIN_NOISE_VAR = 0.04;
/** One observation never counts for more than this many slots (a long span is still one span). */
const MAX_SLOT_WEIGHT = 8;

class LogLevel {
  readonly byKind = new Map<string, DecayedMean>();
  readonly pool = new DecayedMean(Math.pow(0.5, 1 / HALF_LIFE));

  add(kind: string, logValue: number, weight: number): void {
    this.pool.add(logValue, weight);
    let k = this.byKind.get(kind);
    if (!k) this.byKind.set(kind, (k = new DecayedMean(Math.pow(0.5, 1 / HALF_LIFE))));
    k.add(logValue, weight);
  }

  /** The kind's level shrunk toward the pool by precision; null before any evidence. */
  level(kind: string): { mu: number; paramVar: number; noiseVar: number } | null {
    const pool = this.pool;
    if (pool.w <= 0) return null;
    const noiseVar = Math.max(pool.variance(), MIN_NOISE_VAR);
    const poolVar = noiseVar / (pool.w + 1);
    const k = this.byKind.get(kind);
    if (!k || k.w <= 0) return { mu: pool.mean, paramVar: poolVar + KIND_SD * KIND_SD, noiseVar };
    const kindNoise = Math.max(k.variance(), MIN_NOISE_VAR);
    // Evidence of the kind (w observations of its noise) against the prior spread between kinds.
    const precData = k.w / kindNoise;
    const precPrior = 1 / (KIND_SD * KIND_SD + poolVar);
    const mu = (precData * k.mean + precPrior * pool.mean) / (precData + precPrior);
    return { mu, paramVar: 1 / (precData + precPrior), noiseVar: k.w >= 3 ? kindNoise : noiseVar };
  }
}

export class QueueWaits {
  private readonly slots = new LogLevel();
  private readonly waits = new LogLevel();

  learn(s: QueueSample): void {
    if (!(s.waitMs > 0) || !Number.isFinite(s.waitMs)) return;
    if (s.type === 'queue_slots') {
      if (!(s.slots > 0)) return;
      this.slots.add(s.kind, Math.log(s.waitMs / s.slots), Math.min(s.slots, MAX_SLOT_WEIGHT));
    } else {
      this.waits.add(s.kind, Math.log(s.waitMs), 1);
    }
  }

  /** Whether anything is known about waits (any kind). */
  get known(): boolean {
    return this.slots.pool.w > 0 || this.waits.pool.w > 0;
  }

  /**
   * The remaining wait of a job in the queue at `now` (moments in ms), or null when nothing is
   * known. With a position: (position + 1) slots from the report, minus the time since it; else
   * the whole-wait distribution given the time already waited.
   */
  predict(kind: string, queue: QueueTrack, now: number): Moments | null {
    if (queue.position !== undefined) {
      const slot = this.slots.level(kind);
      if (slot) {
        const n = queue.position + 1;
        // The rate's own uncertainty does not average out over slots; per-slot noise does.
        const dist: LogNormal = { mu: slot.mu + Math.log(n), sigma: Math.sqrt(slot.paramVar + slot.noiseVar / n) };
        return remainingGivenElapsed(dist, Math.max(0, now - queue.reportedAt));
      }
    }
    const wait = this.waits.level(kind);
    if (!wait) return null;
    return remainingGivenElapsed({ mu: wait.mu, sigma: Math.sqrt(wait.paramVar + wait.noiseVar) }, Math.max(0, now - queue.since));
  }

  /** The expected wait of a job that reported no position and waited nothing yet (for tests and docs). */
  expectedWholeWait(kind: string): number | null {
    const wait = this.waits.level(kind);
    return wait ? lognormalMoments({ mu: wait.mu, sigma: Math.sqrt(wait.paramVar + wait.noiseVar) }).mean : null;
  }
}

/**
 * Follows one job's queue across versions: returns the new track and what it taught. A position
 * that went down gives a slot sample; the job leaving the queue for a running step gives the last
 * slot sample and the whole wait. A job that ends or is canceled while queued teaches nothing.
 */
export function followQueue(prev: QueueTrack | undefined, job: Job, now: number): { track: QueueTrack | undefined; samples: QueueSample[] } {
  const samples: QueueSample[] = [];
  const q = job.queue;
  if (job.status === 'queued' && q) {
    const track: QueueTrack = { since: q.since, reportedAt: q.updatedAt, position: q.position };
    if (prev && prev.position !== undefined && q.position !== undefined && q.position < prev.position && q.updatedAt > prev.reportedAt) {
      samples.push({ type: 'queue_slots', kind: job.kind, at: q.updatedAt, waitMs: q.updatedAt - prev.reportedAt, slots: prev.position - q.position });
    }
    return { track, samples };
  }
  if (prev && job.status === 'running') {
    let startedAt = Infinity;
    for (const s of job.steps) if (s.startedAt !== undefined && s.startedAt >= prev.since) startedAt = Math.min(startedAt, s.startedAt);
    if (!Number.isFinite(startedAt)) startedAt = now;
    if (prev.position !== undefined) {
      samples.push({ type: 'queue_slots', kind: job.kind, at: startedAt, waitMs: startedAt - prev.reportedAt, slots: prev.position + 1 });
    }
    samples.push({ type: 'queue_wait', kind: job.kind, at: startedAt, waitMs: startedAt - prev.since });
  }
  return { track: undefined, samples };
}
