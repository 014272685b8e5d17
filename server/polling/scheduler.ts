/**
 * One scheduler for every polled job: a min-heap of due times with a single armed timer (not one
 * timer per job), an injectable clock, and a per-host limit on polls in flight so thousands of jobs
 * on one upstream never open thousands of requests at once. It knows nothing of HTTP or jobs: it
 * calls `run(id)`, which answers the delay until the next run, or null to stop.
 */
import { systemClock, type Clock } from './clock.js';
import { TimerHeap } from './timer-heap.js';

export interface SchedulerOptions {
  /** Polls one task; resolves with milliseconds until its next poll, or null to stop polling it. */
  run: (id: string) => Promise<number | null>;
  clock?: Clock;
  /** Polls in flight per host (default 16). Extra due polls wait in order for a free slot. */
  maxConcurrentPerHost?: number;
  /** Delay after `run` itself throws (a bug, not an upstream failure). Default 5 s. */
  delayAfterCrashMs?: number;
  onCrash?: (id: string, err: unknown) => void;
}

interface Task {
  host: string;
  state: 'scheduled' | 'waiting' | 'running';
  /** Set while running: poll again at once when the run ends (a retry asked for it). */
  again: boolean;
  removed: boolean;
}

export class PollScheduler {
  private readonly heap = new TimerHeap();
  private readonly tasks = new Map<string, Task>();
  private readonly inFlight = new Map<string, number>();
  private readonly waiting = new Map<string, string[]>();
  private readonly clock: Clock;
  private readonly limit: number;
  private timer: unknown = undefined;
  private timerAt = Infinity;
  private running = 0;
  private idleWaiters: Array<() => void> = [];
  private closed = false;

  constructor(private readonly opts: SchedulerOptions) {
    this.clock = opts.clock ?? systemClock;
    this.limit = Math.max(1, opts.maxConcurrentPerHost ?? 16);
  }

  /** Number of tasks being polled. */
  get size(): number {
    return this.tasks.size;
  }
  /** Polls in flight right now, across hosts. */
  get active(): number {
    return this.running;
  }
  has(id: string): boolean {
    return this.tasks.has(id);
  }
  /** When `id` is due next (undefined while it runs or waits for a slot). */
  dueAt(id: string): number | undefined {
    return this.heap.dueOf(id);
  }

  /** Starts polling `id` after `delayMs`, or moves its next poll. */
  schedule(id: string, host: string, delayMs: number): void {
    if (this.closed) return;
    let task = this.tasks.get(id);
    if (!task) {
      task = { host, state: 'scheduled', again: false, removed: false };
      this.tasks.set(id, task);
    }
    if (task.state === 'running') {
      if (delayMs <= 0) task.again = true;
      return;
    }
    if (task.state === 'waiting') return; // already first in line for a slot
    task.state = 'scheduled';
    this.heap.set(id, this.clock.now() + Math.max(0, delayMs));
    this.arm();
  }

  /** Polls `id` as soon as a slot allows (after a retry, or a new job). */
  pollNow(id: string): void {
    const task = this.tasks.get(id);
    if (task) this.schedule(id, task.host, 0);
  }

  /** Stops polling `id`; an in-flight poll finishes but is not followed by another. */
  remove(id: string): void {
    const task = this.tasks.get(id);
    if (!task) return;
    task.removed = true;
    this.tasks.delete(id);
    if (task.state === 'scheduled') {
      this.heap.delete(id);
      this.arm();
    } else if (task.state === 'waiting') {
      const queue = this.waiting.get(task.host);
      const i = queue?.indexOf(id) ?? -1;
      if (i >= 0) queue!.splice(i, 1);
    }
  }

  /** Resolves when no poll is in flight or waiting for a slot (tests and virtual time). */
  idle(): Promise<void> {
    if (this.running === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  close(): void {
    this.closed = true;
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = undefined;
    this.timerAt = Infinity;
    for (const id of [...this.tasks.keys()]) this.remove(id);
  }

  /** Keeps exactly one timer armed, for the earliest due task. */
  private arm(): void {
    const top = this.heap.peek();
    const at = top ? top.due : Infinity;
    if (at === this.timerAt) return;
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = undefined;
    this.timerAt = at;
    if (at === Infinity) return;
    this.timer = this.clock.setTimer(() => this.fire(), Math.max(0, at - this.clock.now()));
  }

  private fire(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = this.clock.now();
    for (let entry = this.heap.popDue(now); entry; entry = this.heap.popDue(now)) {
      const task = this.tasks.get(entry.id);
      if (!task) continue;
      if ((this.inFlight.get(task.host) ?? 0) < this.limit) this.start(entry.id, task);
      else {
        task.state = 'waiting';
        let queue = this.waiting.get(task.host);
        if (!queue) this.waiting.set(task.host, (queue = []));
        queue.push(entry.id);
      }
    }
    this.arm();
  }

  private start(id: string, task: Task): void {
    task.state = 'running';
    task.again = false;
    this.inFlight.set(task.host, (this.inFlight.get(task.host) ?? 0) + 1);
    this.running++;
    let run: Promise<number | null>;
    try {
      run = this.opts.run(id);
    } catch (err) {
      run = Promise.reject(err);
    }
    run.then(
      (delay) => this.finish(id, task, delay),
      (err) => {
        this.opts.onCrash?.(id, err);
        this.finish(id, task, this.opts.delayAfterCrashMs ?? 5000);
      },
    );
  }

  private finish(id: string, task: Task, delay: number | null): void {
    const host = task.host;
    const left = (this.inFlight.get(host) ?? 1) - 1;
    if (left > 0) this.inFlight.set(host, left);
    else this.inFlight.delete(host);
    this.running--;
    if (!task.removed && this.tasks.get(id) === task) {
      if (delay === null && !task.again) this.tasks.delete(id);
      else {
        task.state = 'scheduled';
        this.heap.set(id, this.clock.now() + (task.again ? 0 : Math.max(0, delay ?? 0)));
        this.arm();
      }
    }
    // A freed slot goes to the host's oldest waiting poll.
    const queue = this.waiting.get(host);
    while (queue && queue.length > 0 && (this.inFlight.get(host) ?? 0) < this.limit) {
      const next = queue.shift()!;
      const t = this.tasks.get(next);
      if (t && t.state === 'waiting') this.start(next, t);
    }
    if (queue && queue.length === 0) this.waiting.delete(host);
    if (this.running === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }
}
