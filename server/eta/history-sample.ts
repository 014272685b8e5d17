/**
 * What the engine persists through the HistoryStore, one record per finished step attempt or
 * retry wait, keyed by (kind, step), and the queue waits of jobs reported `queued` (queue-wait.ts),
 * keyed by (kind, "#queue"). Records are validated on load: the store may hold rows
 * written by an older version or damaged by hand.
 */
import type { QueueSample } from './queue-wait.js';

export type HistorySample =
  | {
      type: 'done';
      kind: string;
      step: string;
      /** Epoch ms the attempt ended (orders relearning). */
      at: number;
      complexity: number;
      durationMs: number;
      /** Mean number of steps running system-wide during the attempt. */
      load: number;
      /** log(fraction of duration) at progress 10%…90%, null where not reported. */
      shape?: Array<number | null> | undefined;
    }
  | { type: 'fail'; kind: string; step: string; at: number; complexity: number; elapsedMs: number; load: number }
  | { type: 'gap'; kind: string; step: string; at: number; gapMs: number }
  | QueueSample;

const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isStr = (v: unknown): v is string => typeof v === 'string';

export function parseHistorySample(raw: unknown): HistorySample | null {
  if (typeof raw !== 'object' || raw === null) return null;
  const r = raw as Record<string, unknown>;
  if (!isStr(r.kind) || !isNum(r.at)) return null;
  if (r.type === 'queue_slots') {
    if (!isNum(r.waitMs) || !isNum(r.slots)) return null;
    return { type: 'queue_slots', kind: r.kind, at: r.at, waitMs: r.waitMs, slots: r.slots };
  }
  if (r.type === 'queue_wait') return isNum(r.waitMs) ? { type: 'queue_wait', kind: r.kind, at: r.at, waitMs: r.waitMs } : null;
  if (!isStr(r.step)) return null;
  const base = { kind: r.kind, step: r.step, at: r.at };
  switch (r.type) {
    case 'done': {
      if (!isNum(r.complexity) || !isNum(r.durationMs) || !isNum(r.load)) return null;
      const shape = Array.isArray(r.shape) && r.shape.length === 9 && r.shape.every((v) => v === null || isNum(v)) ? (r.shape as Array<number | null>) : undefined;
      return { type: 'done', ...base, complexity: r.complexity, durationMs: r.durationMs, load: r.load, shape };
    }
    case 'fail':
      if (!isNum(r.complexity) || !isNum(r.elapsedMs) || !isNum(r.load)) return null;
      return { type: 'fail', ...base, complexity: r.complexity, elapsedMs: r.elapsedMs, load: r.load };
    case 'gap':
      if (!isNum(r.gapMs)) return null;
      return { type: 'gap', ...base, gapMs: r.gapMs };
    default:
      return null;
  }
}
