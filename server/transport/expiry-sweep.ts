/**
 * Deadlines for many connections with one timer: items are filed in buckets by the whole second
 * they fall due (JWT `exp` is in seconds), and one timer, ticking just after each whole second,
 * hands the due buckets to `onDue`. An idle connection costs no timer or closure of its own —
 * idle memory per connection is a benchmarked figure. The item keeps its bucket key itself
 * (`slot`), so no per-item map is needed either.
 */
export interface ExpirySlot {
  /** Key of the bucket the item sits in (0 = none). */
  expirySecond: number;
}

export class ExpirySweep<T> {
  private readonly buckets = new Map<number, Set<T>>();
  /** Every bucket up to this second has been handed over. */
  private swept = Math.floor(Date.now() / 1000);
  private timer?: NodeJS.Timeout;
  private stopped = false;

  constructor(
    private readonly slot: (item: T) => ExpirySlot,
    private readonly onDue: (item: T) => void,
  ) {}

  start(): void {
    this.timer = setTimeout(() => this.sweep(), 1000 - (Date.now() % 1000));
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /** (Re)files `item` to fall due at `atMs`; one already past it goes on the next tick. */
  at(item: T, atMs: number): void {
    this.remove(item);
    const slot = this.slot(item);
    slot.expirySecond = Math.max(Math.ceil(atMs / 1000), this.swept + 1);
    let bucket = this.buckets.get(slot.expirySecond);
    if (!bucket) this.buckets.set(slot.expirySecond, (bucket = new Set()));
    bucket.add(item);
  }

  remove(item: T): void {
    const { expirySecond } = this.slot(item);
    const bucket = this.buckets.get(expirySecond);
    if (bucket?.delete(item) && bucket.size === 0) this.buckets.delete(expirySecond);
  }

  private sweep(): void {
    const now = Math.floor(Date.now() / 1000);
    while (this.swept < now) {
      const second = ++this.swept;
      const bucket = this.buckets.get(second);
      if (!bucket) continue;
      // Detached first: `onDue` (closing a socket) finds no bucket to edit while we iterate this one.
      this.buckets.delete(second);
      for (const item of bucket) this.onDue(item);
    }
    if (!this.stopped) this.start();
  }
}
