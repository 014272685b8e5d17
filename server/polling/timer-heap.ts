/**
 * A binary min-heap of (id, due time) with O(log n) insert, update and removal by id: the single
 * timer structure behind all polled jobs (one armed timer for the earliest entry, not one per job).
 */
export interface HeapEntry {
  id: string;
  due: number;
  /** Insertion order breaks ties so equal due times run first-in first-out. */
  order: number;
}

export class TimerHeap {
  private items: HeapEntry[] = [];
  private positions = new Map<string, number>();
  private counter = 0;

  get size(): number {
    return this.items.length;
  }
  has(id: string): boolean {
    return this.positions.has(id);
  }
  peek(): HeapEntry | undefined {
    return this.items[0];
  }
  dueOf(id: string): number | undefined {
    const i = this.positions.get(id);
    return i === undefined ? undefined : this.items[i]!.due;
  }

  /** Adds `id` or moves it to a new due time. */
  set(id: string, due: number): void {
    const i = this.positions.get(id);
    if (i !== undefined) {
      const entry = this.items[i]!;
      const earlier = due < entry.due;
      entry.due = due;
      entry.order = this.counter++;
      if (earlier) this.up(i);
      else this.down(i);
      return;
    }
    this.items.push({ id, due, order: this.counter++ });
    this.positions.set(id, this.items.length - 1);
    this.up(this.items.length - 1);
  }

  delete(id: string): boolean {
    const i = this.positions.get(id);
    if (i === undefined) return false;
    const last = this.items.pop()!;
    this.positions.delete(id);
    if (i < this.items.length) {
      this.items[i] = last;
      this.positions.set(last.id, i);
      this.down(i);
      this.up(i);
    }
    return true;
  }

  /** Removes and returns the earliest entry if it is due by `now`. */
  popDue(now: number): HeapEntry | undefined {
    const top = this.items[0];
    if (!top || top.due > now) return undefined;
    this.delete(top.id);
    return top;
  }

  private less(a: HeapEntry, b: HeapEntry): boolean {
    return a.due < b.due || (a.due === b.due && a.order < b.order);
  }
  private swap(i: number, j: number): void {
    const a = this.items[i]!;
    const b = this.items[j]!;
    this.items[i] = b;
    this.items[j] = a;
    this.positions.set(b.id, i);
    this.positions.set(a.id, j);
  }
  private up(i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(this.items[i]!, this.items[parent]!)) break;
      this.swap(i, parent);
      i = parent;
    }
  }
  private down(i: number): void {
    const n = this.items.length;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < n && this.less(this.items[l]!, this.items[m]!)) m = l;
      if (r < n && this.less(this.items[r]!, this.items[m]!)) m = r;
      if (m === i) return;
      this.swap(i, m);
      i = m;
    }
  }
}
