/**
 * One last-in-first-out closer for everything the server opens: each resource registers its
 * close right after it opens, so a failed start and a shutdown undo exactly what was done, in
 * reverse order (stop accepting → sockets → polling → in-flight changes → store), once.
 */
import type { Logger } from './log.js';

export class Closer {
  private readonly steps: Array<{ what: string; close: () => unknown }> = [];
  private closing: Promise<void> | undefined;

  constructor(private readonly log: Logger) {}

  /** Registers `close` to run at shutdown, before everything registered earlier. */
  defer(what: string, close: () => unknown): void {
    this.steps.push({ what, close });
  }

  /** Runs every registered close, newest first; a failing one is logged and the rest still run. */
  close(): Promise<void> {
    return (this.closing ??= (async () => {
      for (const { what, close } of this.steps.splice(0).reverse()) {
        try {
          await close();
        } catch (err) {
          this.log.error({ err, what }, 'error while closing');
        }
      }
    })());
  }
}
