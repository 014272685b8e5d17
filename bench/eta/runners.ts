/** The runners the benchmark compares: the oracle (precomputed by the generator), the engine, three baselines. */
import { EtaEngine, type EtaEngineOptions } from '../../server/eta/eta-engine.js';
import { TraceReplayer, type TracePredictor } from '../../server/eta/trace.js';
import { EmaRateBaseline, LinearBaseline, RunningMeanBaseline } from './baselines.js';
import type { GeneratedTrace } from './generate.js';
import type { Prediction } from './metrics.js';

/** null = the oracle. */
export type Runner = (() => TracePredictor) | null;

export function makeRunners(tuning?: EtaEngineOptions['tuning']): Record<string, Runner> {
  return {
    oracle: null,
    engine: () => new EtaEngine(tuning ? { tuning } : {}),
    linear: () => new LinearBaseline(),
    'running-mean': () => new RunningMeanBaseline(),
    'ema-rate': () => new EmaRateBaseline(),
  };
}

/** Predictions after each event of the trace (null where none: job_end). */
export function runPredictor(trace: GeneratedTrace, make: Runner): Array<Prediction | null> {
  if (!make) return trace.oracle.map((o) => (o ? { remainingMs: o.remainingMs, low: o.low, high: o.high } : null));
  // The engine goes through the same replayer as the eta-replay CLI.
  const replayer = new TraceReplayer(make());
  return trace.events.map((ev) => {
    const p = replayer.apply(ev);
    return p && p.remainingMs !== null ? { remainingMs: p.remainingMs, low: p.low ?? undefined, high: p.high ?? undefined } : null;
  });
}
