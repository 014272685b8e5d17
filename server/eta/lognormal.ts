/**
 * Log-normal arithmetic for durations. Step durations are modelled as log-normal (errors are
 * multiplicative: a step is "twice as slow", not "ten seconds slower"); the remaining time of a
 * job is a sum of them, approximated by one log-normal (Fenton–Wilkinson: match mean and variance).
 */

/** Mean and variance of a positive duration, in ms and ms². */
export interface Moments {
  mean: number;
  variance: number;
}

/** A log-normal: log(X) ~ N(mu, sigma²). */
export interface LogNormal {
  mu: number;
  sigma: number;
}

/** Standard normal CDF (erfc approximation, |error| < 1.2e-7). */
export function normCdf(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.5 * x);
  const erfc =
    t *
    Math.exp(
      -x * x -
        1.26551223 +
        t *
          (1.00002368 +
            t *
              (0.37409196 +
                t *
                  (0.09678418 +
                    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return z >= 0 ? 1 - 0.5 * erfc : 0.5 * erfc;
}

/** Standard normal quantile (Acklam's rational approximation, relative error < 1.2e-9). */
export function normQuantile(p: number): number {
  if (p <= 0) return -Infinity;
  if (p >= 1) return Infinity;
  const a = [-39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716, 2.506628277459239];
  const b = [-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572];
  const c = [-0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const plow = 0.02425;
  if (p < plow) {
    const q = Math.sqrt(-2 * Math.log(p));
    return (((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) / ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
  }
  if (p > 1 - plow) return -normQuantile(1 - p);
  const q = p - 0.5;
  const r = q * q;
  return ((((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * q) /
    (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1);
}

export function lognormalMoments({ mu, sigma }: LogNormal): Moments {
  const s2 = sigma * sigma;
  const mean = Math.exp(mu + s2 / 2);
  return { mean, variance: mean * mean * Math.expm1(s2) };
}

/**
 * Moments of the time still to run, D − elapsed, given that D > elapsed (the step has already
 * run that long without finishing): the survival-style conditional a silent step needs.
 */
export function remainingGivenElapsed(dist: LogNormal, elapsed: number): Moments {
  if (!(elapsed > 0)) return lognormalMoments(dist);
  const { mu, sigma } = dist;
  const a = (Math.log(elapsed) - mu) / sigma;
  const survival = normCdf(-a);
  if (survival < 1e-9 || a > 6) {
    // Far in the tail: the log-normal's mean residual life is ≈ elapsed·σ²/(ln elapsed − μ).
    const mean = (elapsed * sigma * sigma) / Math.max(Math.log(elapsed) - mu, sigma * sigma);
    return { mean, variance: mean * mean };
  }
  const s2 = sigma * sigma;
  const m1 = (Math.exp(mu + s2 / 2) * normCdf(sigma - a)) / survival;
  const m2 = (Math.exp(2 * mu + 2 * s2) * normCdf(2 * sigma - a)) / survival;
  const mean = Math.max(m1 - elapsed, 0);
  const variance = Math.max(m2 - m1 * m1, (0.05 * mean) ** 2);
  return { mean, variance };
}

/** One log-normal with the same mean and variance as the sum of independent parts. */
export function sumAsLogNormal(parts: readonly Moments[]): LogNormal | null {
  let mean = 0;
  let variance = 0;
  for (const p of parts) {
    mean += p.mean;
    variance += p.variance;
  }
  if (!(mean > 0)) return null;
  const s2 = Math.log1p(variance / (mean * mean));
  return { mu: Math.log(mean) - s2 / 2, sigma: Math.sqrt(s2) };
}
