/**
 * System load as the engine sees it: how many steps are running right now, and the time
 * integral of that count so a finished step can report the mean concurrency it ran under.
 */
export class LoadTracker {
  private running = 0;
  private integral = 0;
  private lastAt = Number.NEGATIVE_INFINITY;

  get current(): number {
    return this.running;
  }

  private advance(now: number): void {
    if (now > this.lastAt && Number.isFinite(this.lastAt)) this.integral += this.running * (now - this.lastAt);
    if (now > this.lastAt || !Number.isFinite(this.lastAt)) this.lastAt = now;
  }

  /** A step started; returns the mark `stop` needs. */
  start(now: number): number {
    this.advance(now);
    this.running++;
    return this.integral;
  }

  /** A step stopped; returns the mean number of running steps (itself included) over its life. */
  stop(mark: number, startedAt: number, now: number): number {
    this.advance(now);
    const meanLoad = now > startedAt ? (this.integral - mark) / (now - startedAt) : this.running;
    this.running = Math.max(0, this.running - 1);
    return Math.max(1, meanLoad);
  }
}
