/**
 * Three baselines as used in practice, each behind the same interface as the engine:
 *  - linear: extrapolate the overall fraction done over the job's elapsed time;
 *  - running mean: per-step mean duration of past runs, minus time already spent;
 *  - EMA rate: exponential moving average of the overall progress rate.
 * Before they have anything to go on they answer the mean job duration seen so far.
 */
import type { Eta, Job } from '../../protocol/index.js';
import type { TracePredictor } from '../../server/eta/trace.js';

const DEFAULT_MS = 60_000;

/** Overall fraction done, steps weighted by complexity (what a progress bar shows). */
function fractionDone(job: Job): number {
  let done = 0;
  let total = 0;
  for (const s of job.steps) {
    const w = s.complexity ?? job.complexity ?? 1;
    total += w;
    if (s.status === 'completed') done += w;
    else if (s.status === 'running') done += w * s.progress;
  }
  return total > 0 ? done / total : 0;
}

abstract class Baseline implements TracePredictor {
  private jobSum = 0;
  private jobCount = 0;
  observe(_prev: Job | undefined, next: Job, now: number): void {
    if (next.status === 'completed') {
      this.jobSum += now - next.createdAt;
      this.jobCount++;
    }
  }
  protected meanJobMs(job: Job, now: number): number {
    const mean = this.jobCount > 0 ? this.jobSum / this.jobCount : DEFAULT_MS;
    return Math.max(mean - (now - job.createdAt), 0);
  }
  abstract forecast(job: Job, now: number): Eta | null;
}

export class LinearBaseline extends Baseline {
  forecast(job: Job, now: number): Eta {
    const f = fractionDone(job);
    const elapsed = now - job.createdAt;
    if (f <= 0 || elapsed <= 0) return { remainingMs: this.meanJobMs(job, now) };
    return { remainingMs: (elapsed * (1 - f)) / f };
  }
}

export class RunningMeanBaseline extends Baseline {
  private readonly byKey = new Map<string, { sum: number; n: number }>();
  private readonly byStep = new Map<string, { sum: number; n: number }>();
  private all = { sum: 0, n: 0 };

  override observe(prev: Job | undefined, next: Job, now: number): void {
    super.observe(prev, next, now);
    if (!prev) return;
    next.steps.forEach((s, i) => {
      const before = prev.steps[i];
      if (s.status === 'completed' && before?.status === 'running' && s.startedAt !== undefined && s.endedAt !== undefined) {
        const d = s.endedAt - s.startedAt;
        for (const [map, key] of [[this.byKey, `${next.kind}\u0000${s.id}`], [this.byStep, s.id]] as const) {
          const m = map.get(key) ?? { sum: 0, n: 0 };
          m.sum += d;
          m.n++;
          map.set(key, m);
        }
        this.all.sum += d;
        this.all.n++;
      }
    });
  }

  private mean(kind: string, step: string): number {
    const m = this.byKey.get(`${kind}\u0000${step}`) ?? this.byStep.get(step) ?? (this.all.n > 0 ? this.all : null);
    return m ? m.sum / m.n : DEFAULT_MS / 4;
  }

  forecast(job: Job, now: number): Eta {
    let rest = 0;
    for (const s of job.steps) {
      if (s.status === 'completed') continue;
      const m = this.mean(job.kind, s.id);
      rest += s.status === 'running' ? Math.max(m - (now - (s.startedAt ?? now)), 0) : m;
    }
    return { remainingMs: rest };
  }
}

export class EmaRateBaseline extends Baseline {
  private readonly last = new Map<string, { t: number; f: number; rate: number | null }>();
  constructor(private readonly alpha = 0.3) {
    super();
  }

  override observe(prev: Job | undefined, next: Job, now: number): void {
    super.observe(prev, next, now);
    if (next.status === 'completed' || next.status === 'failed' || next.status === 'canceled') {
      this.last.delete(next.id);
      return;
    }
    const f = fractionDone(next);
    const l = this.last.get(next.id);
    if (!l) {
      this.last.set(next.id, { t: now, f, rate: null });
      return;
    }
    if (now > l.t) {
      const r = Math.max(f - l.f, 0) / (now - l.t);
      l.rate = l.rate === null ? r : this.alpha * r + (1 - this.alpha) * l.rate;
      l.t = now;
      l.f = f;
    }
  }

  forecast(job: Job, now: number): Eta {
    const l = this.last.get(job.id);
    const f = fractionDone(job);
    if (!l || l.rate === null || l.rate <= 0) return { remainingMs: this.meanJobMs(job, now) };
    return { remainingMs: (1 - f) / l.rate };
  }
}
