/**
 * The ETA engine: learns from every job change the server accepts and estimates, for any job,
 * overall progress and the remaining time with a calibrated 80% interval.
 *
 * Pure: no clock (every call takes `now`), no I/O except appending learned samples to the
 * HistoryStore it is given (fire and forget) and reading them back in `load()`.
 *
 * Per job it keeps only what a running job needs (the current attempt of each step, a few past
 * estimates for calibration); a job is forgotten as soon as it is completed, failed or canceled.
 */
import { isTerminal, type Eta, type Job, type Step } from '../../protocol/index.js';
import type { Estimate, Estimator, HistoryStore } from '../core/estimator.js';
import { DEFAULT_DURATION_TUNING, DurationModel, historyKeyOf, keyOf, type DurationModelTuning, type LevelMark } from './duration-model.js';
import { DEFAULT_TUNING, type EtaTuning } from './tuning.js';
import { lognormalMoments, remainingGivenElapsed, sumAsLogNormal, type LogNormal, type Moments } from './lognormal.js';
import { AttemptProgress, ProgressShapes, type ShapePoint } from './progress-shape.js';
import { LoadTracker } from './load-tracker.js';
import { RetryStats } from './retry-stats.js';
import { IntervalCalibration } from './calibration.js';
import { blendWithObservation } from './live-blend.js';
import { PacePosterior } from './job-pace.js';
import { JobEffect } from './job-effect.js';
import { changedMeaningfully, stampEta } from '../core/eta-update-policy.js';
import { parseHistorySample, type HistorySample } from './history-sample.js';
import { followQueue, QUEUE_HISTORY_STEP, QueueWaits, type QueueTrack } from './queue-wait.js';

export interface EtaEngineOptions {
  /** Where learned samples persist; without it the engine learns in memory only. */
  history?: HistoryStore;
  /** Samples kept per (kind, step) in the store. */
  maxSamplesPerKey?: number;
  /** Persisting a sample failed (the engine keeps working). */
  onError?: (err: unknown) => void;
  tuning?: Partial<Omit<EtaTuning, 'duration'>> & { duration?: Partial<DurationModelTuning> };
}

/** An estimate with its log-normal behind it (for calibration and the benchmark). */
export interface Forecast extends Eta {
  low: number;
  high: number;
}

interface Attempt {
  startedAt: number;
  loadMark: number;
  progress: AttemptProgress;
  lastProgress: number;
}

/** How a finished step compared with its prediction, for the job's pace (see job-pace.ts). */
interface FinishedResidual {
  residual: number;
  noiseVar: number;
  globalShare: number;
  kindShare: number;
  /** The shared levels when it was measured: later learning (from this very step, too) moves them. */
  mark: LevelMark;
  /** How unsure the shared levels were then (levelVariance global + kind), and this step's loading on them. */
  sharedVar: number;
  loading: number;
}

interface StepState {
  /** keyOf(kind, step), made once. */
  key: string;
  attempt: Attempt | null;
  failedAt?: number;
  finished?: FinishedResidual;
}

interface Checkpoint {
  at: number;
  mu: number;
  sigma: number;
}

interface JobState {
  steps: Map<string, StepState>;
  progress: number;
  shownFinish?: number;
  checkpoints: Checkpoint[];
  stride: number;
  seen: number;
  /** Where the job waits, while it is reported `queued` (queue-wait.ts). */
  queue?: QueueTrack | undefined;
  /** The version observed last, and when: observing it again at the same time changes nothing. */
  observed?: Job;
  observedSeq?: number;
  observedAt?: number;
}

export const DEFAULT_MAX_SAMPLES_PER_KEY = 256;

/** A shared level known better than ±1% leaves the job's own pace nothing to correct. */
const MIN_PACE_VARIANCE = 1e-4;

export class EtaEngine implements Estimator {
  private readonly tuning: EtaTuning;
  private readonly model: DurationModel;
  private readonly shapes = new ProgressShapes();
  private readonly concurrency = new LoadTracker();
  private readonly retries = new RetryStats();
  private readonly queueWaits = new QueueWaits();
  private readonly calibration: IntervalCalibration;
  private readonly jobEffect = new JobEffect();
  private readonly jobs = new Map<string, JobState>();
  private readonly history: HistoryStore | undefined;
  private readonly maxPerKey: number;
  private readonly onError: (err: unknown) => void;

  constructor(options: EtaEngineOptions = {}) {
    this.tuning = { ...DEFAULT_TUNING, ...options.tuning, duration: { ...DEFAULT_DURATION_TUNING, ...options.tuning?.duration } };
    this.model = new DurationModel(this.tuning.duration);
    this.calibration = new IntervalCalibration(this.tuning.calibrationRate, this.tuning.intervalTail);
    this.history = options.history;
    this.maxPerKey = options.maxSamplesPerKey ?? DEFAULT_MAX_SAMPLES_PER_KEY;
    this.onError = options.onError ?? (() => {});
  }

  /** Relearn from the persisted history (call once before serving). */
  async load(): Promise<number> {
    if (!this.history) return 0;
    const rows = await this.history.loadHistory();
    const samples = rows.map((r) => parseHistorySample(r.sample)).filter((s): s is HistorySample => s !== null);
    samples.sort((a, b) => a.at - b.at);
    for (const s of samples) this.learn(s, false);
    return samples.length;
  }

  /** Jobs currently tracked (running or queued); finished ones are forgotten. */
  get trackedJobs(): number {
    return this.jobs.size;
  }

  /** What a job's steps share beyond the levels (job-effect.ts), log-space variance. */
  get jobEffectVariance(): number {
    return this.jobEffect.variance;
  }

  /** Steps running system-wide, as the engine counts them. */
  get runningSteps(): number {
    return this.concurrency.current;
  }

  /** Stop tracking a job that disappeared without reaching a terminal state (e.g. deleted). */
  forget(jobId: string, now: number): void {
    const state = this.jobs.get(jobId);
    if (!state) return;
    for (const s of state.steps.values()) if (s.attempt) this.concurrency.stop(s.attempt.loadMark, s.attempt.startedAt, now);
    this.jobs.delete(jobId);
  }

  observe(_prev: Job | undefined, next: Job, now: number): void {
    let state = this.jobs.get(next.id);
    // Jobs are immutable versions (a change makes a new object with seq + 1): the version this job
    // was last observed as, at the same time, is nothing new. The service estimates a version
    // before its commit and observes it after, with other jobs' changes in between.
    if (state?.observed === next && state.observedSeq === next.seq && state.observedAt === now) return;
    if (!state) {
      if (isTerminal(next.status)) return;
      state = { steps: new Map(), progress: 0, checkpoints: [], stride: 1, seen: 0 };
      this.jobs.set(next.id, state);
    }
    state.observed = next;
    state.observedSeq = next.seq;
    state.observedAt = now;
    for (const step of next.steps) {
      let s = state.steps.get(step.id);
      if (!s) state.steps.set(step.id, (s = { key: keyOf(next.kind, step.id), attempt: null }));
      if (step.status === 'running') {
        const startedAt = step.startedAt ?? s.attempt?.startedAt ?? now;
        if (!s.attempt || s.attempt.startedAt !== startedAt) {
          // A new attempt (first run or retry): its clock starts now.
          if (s.attempt) this.concurrency.stop(s.attempt.loadMark, s.attempt.startedAt, now);
          if (s.failedAt !== undefined) {
            this.learn({ type: 'gap', kind: next.kind, step: step.id, at: startedAt, gapMs: startedAt - s.failedAt }, true);
            s.failedAt = undefined;
          }
          s.attempt = { startedAt, loadMark: this.concurrency.start(now), progress: new AttemptProgress(), lastProgress: 0 };
          s.finished = undefined;
        }
        if (step.progress !== s.attempt.lastProgress) {
          s.attempt.progress.report(step.progress, now - startedAt);
          s.attempt.lastProgress = step.progress;
        }
      } else if (s.attempt) {
        const a = s.attempt;
        s.attempt = null;
        const endedAt = step.endedAt ?? now;
        const meanLoad = this.concurrency.stop(a.loadMark, a.startedAt, now);
        const durationMs = endedAt - a.startedAt;
        const complexity = complexityOf(step, next);
        if (step.status === 'completed') {
          // The end is the last report (progress 1), but only for steps that reported at all:
          // a silent step says nothing about the shape.
          if (a.progress.latest !== null) a.progress.report(1, durationMs);
          if (durationMs > 0) {
            // Measured against the model before it learns from this step (that would hide the news).
            const p = this.model.predict(next.kind, step.id, complexity, meanLoad);
            const lv = this.model.levelVariance(next.kind);
            const sv = lv.global + lv.kind;
            s.finished = {
              sharedVar: sv,
              loading: sv > 0 ? Math.sqrt((p.globalShare ** 2 * lv.global + p.kindShare ** 2 * lv.kind) / sv) : 0,
              residual: Math.log(durationMs) - p.mu,
              noiseVar: Math.max(p.sigma * p.sigma - p.levelVar, 1e-4),
              globalShare: p.globalShare,
              kindShare: p.kindShare,
              mark: this.model.levelMark(next.kind),
            };
          }
          const f = a.progress.logFractions(durationMs);
          this.learn(
            { type: 'done', kind: next.kind, step: step.id, at: endedAt, complexity, durationMs, load: meanLoad, shape: f.some((v) => v !== null) ? f : undefined },
            true,
          );
        } else if (step.status === 'failed') {
          this.learn({ type: 'fail', kind: next.kind, step: step.id, at: endedAt, complexity, elapsedMs: durationMs, load: meanLoad }, true);
          s.failedAt = endedAt;
          // A failure is news the user must see at once: no smoothing across it.
          state.shownFinish = undefined;
        }
      } else if (step.status === 'failed' && s.failedAt === undefined) {
        s.failedAt = step.endedAt ?? now;
      }
    }
    if (state.queue || next.queue) {
      const followed = followQueue(state.queue, next, now);
      state.queue = followed.track;
      for (const sample of followed.samples) this.learn(sample, true);
    }
    if (isTerminal(next.status)) {
      for (const s of state.steps.values()) if (s.attempt) this.concurrency.stop(s.attempt.loadMark, s.attempt.startedAt, now);
      if (next.status === 'completed') {
        this.calibrate(state, now);
        this.learnJobEffect(state);
      }
      this.jobs.delete(next.id);
    }
  }

  estimate(job: Job, now: number): Estimate {
    // The job service may estimate a new version before it calls observe with it: bring the
    // engine's view up to date first (observe is idempotent for a version it has already seen).
    this.observe(undefined, job, now);
    if (isTerminal(job.status)) {
      return { progress: job.status === 'completed' ? 1 : this.progressOf(job, now), eta: null };
    }
    if (job.status === 'queued' && this.model.sampleCount === 0) return { progress: 0, eta: null };
    const { eta, progress } = this.run(job, now);
    if (!eta) return { progress, eta: null };
    const out: Eta = { remainingMs: eta.remainingMs, low: eta.low, high: eta.high };
    if (eta.waitMs !== undefined) out.waitMs = eta.waitMs;
    return { progress, eta: stampEta(out, now) };
  }

  changedMeaningfully(shown: Eta | null, next: Eta | null): boolean {
    return changedMeaningfully(shown, next);
  }

  /** Remaining time for any job that is not finished (the replay CLI's answer); null once finished. */
  forecast(job: Job, now: number): Forecast | null {
    this.observe(undefined, job, now);
    return isTerminal(job.status) ? null : this.run(job, now).eta;
  }

  private progressOf(job: Job, now: number): number {
    return this.run(job, now, false).progress;
  }

  private run(job: Job, now: number, record = true): { eta: Forecast | null; progress: number } {
    const state = this.jobs.get(job.id);
    const t = this.tuning;
    const ownRunning = job.steps.some((s) => s.status === 'running');
    const logLoadNow = Math.log(Math.max(1, this.concurrency.current + (ownRunning ? 0 : 1)));
    const logLoadLater =
      this.model.sampleCount > 0 ? t.futureLoadWeight * logLoadNow + (1 - t.futureLoadWeight) * this.model.typicalLogLoad : logLoadNow;
    const learned = this.model.sampleCount > 0;
    // The job's own pace (job-pace.ts): its finished steps teach the running one; those and the
    // running step's rate teach the steps still to come.
    const levels = this.model.levelVariance(job.kind);
    // Plus what jobs share beyond the levels (job-effect.ts): reaches every step in full.
    const jobVar = this.jobEffect.variance;
    const sharedVar = levels.global + levels.kind + jobVar;
    const loadingOf = (g: number, k: number): number =>
      sharedVar > 0 ? Math.sqrt((g * g * levels.global + k * k * levels.kind + jobVar) / sharedVar) : 0;
    const planned: Array<{ step: Step; key: string; dist: LogNormal; levelVar: number; loading: number; expected: Moments }> = [];
    let doneWeight = 0;
    let totalWeight = 0;
    let maxLevelVar = 0;
    for (const step of job.steps) {
      const x = Math.log(complexityOf(step, job));
      const key = state?.steps.get(step.id)?.key ?? keyOf(job.kind, step.id);
      const base = this.model.predictLog(job.kind, step.id, x, step.status === 'running' ? logLoadNow : logLoadLater, key, levels);
      // The load a step will run under is not known yet: widen by how much load varies (less for the running step).
      const loadVar = this.model.loadLogVariance * (step.status === 'running' ? t.loadUncertainty / 2 : t.loadUncertainty);
      const dist = { mu: base.mu, sigma: Math.sqrt(base.sigma * base.sigma + loadVar) };
      const expected = lognormalMoments(dist);
      const weight = learned ? expected.mean : complexityOf(step, job);
      totalWeight += weight;
      if (step.status === 'completed') doneWeight += weight;
      if (base.levelVar > maxLevelVar) maxLevelVar = base.levelVar;
      planned.push({ step, key, dist, levelVar: base.levelVar + jobVar, loading: loadingOf(base.globalShare, base.kindShare), expected });
    }
    // Where the levels are well known for every step of this job, its pace cannot move anything.
    const paceVar = maxLevelVar >= MIN_PACE_VARIANCE || jobVar >= MIN_PACE_VARIANCE ? sharedVar : 0;
    const fromFinished = new PacePosterior(paceVar);
    const fromAll = new PacePosterior(paceVar);
    if (state && paceVar > 0) {
      let mark: LevelMark | undefined;
      for (const s of state.steps.values()) {
        const f = s.finished;
        if (!f) continue;
        mark ??= this.model.levelMark(job.kind);
        // Rebase onto the levels as they are now: what the model has learned since is not news.
        const moved = mark.drift - f.mark.drift + f.globalShare * (mark.global - f.mark.global) + f.kindShare * (mark.kind - f.mark.kind);
        const evidence = { residual: f.residual - moved, noiseVar: Math.max(f.noiseVar - jobVar, 0.25 * f.noiseVar, 1e-4), loading: loadingOf(f.globalShare, f.kindShare) };
        fromFinished.add(evidence);
        fromAll.add(evidence);
      }
    }
    const parts: Moments[] = [];
    const running: Array<{ p: (typeof planned)[number]; obs: ShapePoint | null; elapsed: number }> = [];
    for (const p of planned) {
      if (p.step.status !== 'running') continue;
      const s = state?.steps.get(p.step.id);
      const startedAt = p.step.startedAt ?? s?.attempt?.startedAt ?? now;
      const elapsed = Math.max(0, now - startedAt);
      const latest = s?.attempt?.progress.latest ?? (p.step.progress > 0 ? { progress: p.step.progress, elapsedMs: elapsed } : null);
      const obs = latest ? this.shapes.durationObservation(p.key, p.step.id, latest.progress, latest.elapsedMs) : null;
      if (obs) {
        const ownVar = Math.max(p.dist.sigma * p.dist.sigma - p.levelVar, 1e-4);
        fromAll.add({ residual: obs.mean - p.dist.mu, noiseVar: obs.variance + ownVar, loading: p.loading });
      }
      running.push({ p, obs, elapsed });
    }
    for (const { p, obs, elapsed } of running) {
      const prior = fromFinished.apply(p.dist, p.levelVar, p.loading);
      const posterior: LogNormal = obs ? blendWithObservation(prior, obs) : prior;
      const rest = remainingGivenElapsed(posterior, elapsed);
      parts.push(rest);
      // Learned: the share of the step's time passed, never less than what its reported progress
      // stands for (a step started or resumed at 50% has taken no time yet, but is half done).
      const share = learned ? Math.max(elapsed / (elapsed + rest.mean || 1), this.shapes.timeFraction(p.key, p.step.id, p.step.progress)) : p.step.progress;
      doneWeight += (learned ? p.expected.mean : complexityOf(p.step, job)) * share;
    }
    // Steps still to come share the pace: summed on their own spreads, then widened by what is
    // still unknown about the pace (one factor for all of them, not independent per step).
    const future: Moments[] = [];
    let futureMean = 0;
    let futureLoading = 0;
    for (const p of planned) {
      const { step } = p;
      if (step.status !== 'pending' && step.status !== 'failed') continue;
      const paced = lognormalMoments(fromAll.shift(p.dist, p.levelVar, p.loading));
      futureMean += paced.mean;
      futureLoading += paced.mean * p.loading;
      if (step.status === 'failed') {
        const s = state?.steps.get(step.id);
        const waited = s?.failedAt !== undefined ? now - s.failedAt : 0;
        const gap = Math.max(0, this.retries.expectedGap - waited);
        future.push({ mean: paced.mean + gap, variance: paced.variance }, this.retries.overhead(p.key, paced));
      } else {
        future.push(paced, this.retries.overhead(p.key, paced));
      }
    }
    const futureSum = sumAsLogNormal(future);
    if (futureSum) {
      const l = futureMean > 0 ? futureLoading / futureMean : 0;
      parts.push(lognormalMoments({ mu: futureSum.mu, sigma: Math.sqrt(futureSum.sigma ** 2 + l * l * fromAll.variance) }));
    }
    // A job waiting in a queue: its wait comes before all of it (queue-wait.ts).
    const wait = job.status === 'queued' && state?.queue ? this.queueWaits.predict(job.kind, state.queue, now) : null;
    if (wait) parts.push(wait);
    const progressRaw = totalWeight > 0 ? Math.min(1, doneWeight / totalWeight) : 0;
    const progress = state ? (state.progress = Math.max(state.progress, progressRaw)) : progressRaw;
    const total = sumAsLogNormal(parts);
    if (!total) return { eta: { remainingMs: 0, low: 0, high: 0 }, progress };
    if (record && state) this.checkpoint(state, { at: now, mu: total.mu, sigma: total.sigma });
    const c = this.calibration;
    const low = Math.exp(total.mu + total.sigma * c.q10);
    const high = Math.exp(total.mu + total.sigma * c.q90);
    // (The calibrated q10 < q50 < q90 keep low ≤ point ≤ high before smoothing.)
    let point = Math.exp(total.mu + total.sigma * (c.q50 * t.biasCorrection + t.pointShift));
    if (state && record) {
      // Smooth the finish time the user sees so it does not jump back and forth.
      const raw = now + point;
      const shown = state.shownFinish;
      const finish =
        shown === undefined
          ? raw
          : raw > shown
            ? shown + Math.min(t.smoothLater * (raw - shown), t.maxLaterStep * (raw - now))
            : shown + t.smoothEarlier * (raw - shown);
      // Never lag so far behind that the countdown reaches zero while work is plainly left.
      state.shownFinish = Math.max(finish, now + t.minShownShare * (raw - now));
      point = state.shownFinish - now;
    }
    // A smoothed point may lag outside the fresh interval: widen the interval rather than jump.
    const eta: Forecast = { remainingMs: Math.round(point), low: Math.round(Math.min(low, point)), high: Math.round(Math.max(high, point)) };
    // The wait's share of the point: its median like the point's (a mean is pulled up by the wide
    // tail of a queue not yet known), never more than the whole.
    if (wait) eta.waitMs = Math.round(Math.min(wait.mean / Math.sqrt(1 + wait.variance / (wait.mean * wait.mean || 1)), point));
    return { eta, progress };
  }

  private checkpoint(state: JobState, cp: Checkpoint): void {
    // Keep an evenly thinned sample of the job's estimates: when full, drop every other one.
    if (state.seen++ % state.stride !== 0) return;
    state.checkpoints.push(cp);
    if (state.checkpoints.length >= this.tuning.checkpointsPerJob) {
      state.checkpoints = state.checkpoints.filter((_, i) => i % 2 === 0);
      state.stride *= 2;
    }
  }

  /**
   * A completed job's finished steps, rebased onto the levels before its first finished step taught
   * the model (later steps were predicted by a model that had learned from the earlier ones).
   */
  private learnJobEffect(state: JobState): void {
    let ref: FinishedResidual | undefined;
    const steps: Array<{ residual: number; loading: number }> = [];
    for (const s of state.steps.values()) {
      const f = s.finished;
      if (!f) continue;
      ref ??= f;
      const moved = ref.mark.drift - f.mark.drift + f.globalShare * (ref.mark.global - f.mark.global) + f.kindShare * (ref.mark.kind - f.mark.kind);
      steps.push({ residual: f.residual - moved, loading: f.loading });
    }
    if (ref) this.jobEffect.addJob(steps, ref.sharedVar);
  }

  private calibrate(state: JobState, endedAt: number): void {
    for (const cp of state.checkpoints) {
      const actual = endedAt - cp.at;
      if (actual > 0 && cp.sigma > 0) this.calibration.update((Math.log(actual) - cp.mu) / cp.sigma);
    }
  }

  private learn(sample: HistorySample, persist: boolean): void {
    if (sample.type === 'queue_slots' || sample.type === 'queue_wait') {
      this.queueWaits.learn(sample);
      if (persist) this.persist(historyKeyOf(sample.kind, QUEUE_HISTORY_STEP), sample);
      return;
    }
    const key = keyOf(sample.kind, sample.step);
    switch (sample.type) {
      case 'done': {
        const expected = lognormalMoments(this.model.predict(sample.kind, sample.step, sample.complexity, sample.load)).mean;
        this.retries.attempt(key, false, sample.durationMs, expected);
        this.model.learn(sample);
        if (sample.shape) this.shapes.learn(key, sample.step, sample.shape);
        break;
      }
      case 'fail': {
        const expected = lognormalMoments(this.model.predict(sample.kind, sample.step, sample.complexity, sample.load)).mean;
        this.retries.attempt(key, true, sample.elapsedMs, expected);
        break;
      }
      case 'gap':
        this.retries.retryGap(sample.gapMs);
        break;
    }
    if (persist) this.persist(historyKeyOf(sample.kind, sample.step), sample);
  }

  private persist(key: string, sample: HistorySample): void {
    this.history?.appendHistory(key, sample, this.maxPerKey).catch(this.onError);
  }
}

/** The complexity that drives a step's duration: its own, else the job's, else 1. */
export function complexityOf(step: Step, job: Job): number {
  const c = step.complexity ?? job.complexity;
  return typeof c === 'number' && c > 0 && Number.isFinite(c) ? c : 1;
}
