/**
 * Latency histogram in microseconds with log buckets (2% wide): fixed size, cheap to record,
 * cheap to merge across processes (send `counts` over IPC and add them).
 */
const GROWTH = 1.02;
const LOG_GROWTH = Math.log(GROWTH);
/** 1 µs .. ~10 min. */
export const BUCKETS = 1400;

export function createHistogram(): Uint32Array {
  return new Uint32Array(BUCKETS);
}

export function record(counts: Uint32Array, micros: number): void {
  const index = micros <= 1 ? 0 : Math.min(BUCKETS - 1, Math.ceil(Math.log(micros) / LOG_GROWTH));
  counts[index]++;
}

export function merge(into: Uint32Array, from: ArrayLike<number>): void {
  for (let i = 0; i < BUCKETS; i++) into[i] += from[i] ?? 0;
}

export function total(counts: ArrayLike<number>): number {
  let n = 0;
  for (let i = 0; i < counts.length; i++) n += counts[i]!;
  return n;
}

/** The bucket's upper bound at quantile q (0..1), in milliseconds; NaN when empty. */
export function quantileMs(counts: ArrayLike<number>, q: number): number {
  const n = total(counts);
  if (n === 0) return NaN;
  const rank = Math.max(1, Math.ceil(q * n));
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    seen += counts[i]!;
    if (seen >= rank) return GROWTH ** i / 1000;
  }
  return GROWTH ** (counts.length - 1) / 1000;
}

/**
 * Send-side and receive-side clock in µs: CLOCK_MONOTONIC, shared by every process on the machine.
 * `performance.now()` reads the same clock (uv_hrtime) from a per-process origin; the offset to
 * the absolute clock is taken once, so each reading allocates nothing (unlike hrtime.bigint()).
 */
const ORIGIN_MICROS = (() => {
  // Bracket performance.now() between two absolute readings and keep the tightest of several
  // tries: a process descheduled between two readings would otherwise be off by milliseconds.
  let best = Infinity;
  let origin = 0;
  for (let i = 0; i < 50; i++) {
    const before = Number(process.hrtime.bigint()) / 1000;
    const relative = performance.now() * 1000;
    const after = Number(process.hrtime.bigint()) / 1000;
    if (after - before < best) {
      best = after - before;
      origin = (before + after) / 2 - relative;
    }
  }
  return origin;
})();
export function nowMicros(): number {
  return Math.round(ORIGIN_MICROS + performance.now() * 1000);
}
