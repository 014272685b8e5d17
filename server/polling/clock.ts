/**
 * Time for the polling scheduler, injectable so tests can run hours of polling in milliseconds.
 * The scheduler keeps at most one timer armed through this interface, whatever the number of jobs.
 */
export interface Clock {
  now(): number;
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref?.(); // polling never keeps a process alive on its own
    return t;
  },
  clearTimer: (h) => clearTimeout(h as NodeJS.Timeout),
};

/** A clock that only moves when told to. Timers fire in time order during `advanceTo`/`runNext`. */
export class VirtualClock implements Clock {
  private time: number;
  private timers: Array<{ at: number; fn: () => void; id: number }> = [];
  private nextId = 1;

  constructor(start = 0) {
    this.time = start;
  }
  now(): number {
    return this.time;
  }
  setTimer(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.push({ at: this.time + Math.max(0, ms), fn, id });
    return id;
  }
  clearTimer(handle: unknown): void {
    this.timers = this.timers.filter((t) => t.id !== handle);
  }
  /** Number of armed timers (the scheduler should never have more than one). */
  get pending(): number {
    return this.timers.length;
  }
  /** Time of the earliest armed timer, if any. */
  get nextAt(): number | undefined {
    return this.timers.reduce<number | undefined>((m, t) => (m === undefined || t.at < m ? t.at : m), undefined);
  }
  /** Moves to the earliest timer (not beyond `limit`) and fires it. Returns false when none is due by `limit`. */
  runNext(limit = Infinity): boolean {
    const at = this.nextAt;
    if (at === undefined || at > limit) return false;
    const i = this.timers.findIndex((t) => t.at === at);
    const [timer] = this.timers.splice(i, 1);
    this.time = Math.max(this.time, at);
    timer!.fn();
    return true;
  }
  /** Moves time forward without firing anything (timers due by then fire on the next runNext). */
  set(time: number): void {
    this.time = Math.max(this.time, time);
  }
}
