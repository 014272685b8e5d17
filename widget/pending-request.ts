import type { ReactiveControllerHost } from 'lit';

/**
 * A request a button sends (Retry, Cancel), pending from the press until the server answers
 * (`task` resolves): while pending the button says so and ignores presses. What the element
 * used of @lit/task's Task (its pending status), in a few lines instead of its weight in the
 * script-tag bundle.
 */
export class PendingRequest<A extends unknown[]> {
  pending = false;

  constructor(
    private readonly host: ReactiveControllerHost,
    private readonly task: (...args: A) => Promise<void>,
  ) {}

  async run(...args: A): Promise<void> {
    if (this.pending) return;
    this.pending = true;
    this.host.requestUpdate();
    try {
      await this.task(...args);
    } catch {
      // A failed request is reported by the client's `error` event; the button is usable again.
    } finally {
      this.pending = false;
      this.host.requestUpdate();
    }
  }
}
