/**
 * The Cancel flow of `<progress-tracker>` (`cancelable`): the button fires `progress-cancel`
 * (cancelable: an app may confirm in its own dialog, then call `cancel()`), else the inline
 * confirmation opens; Confirm sends the cancel and the button says "Canceling…" until the
 * server answers (the job carries `cancelRequested` or has ended, a refusal, or 15 s); a refusal
 * is said next to the button, in words. Focus moves where the flow asks.
 *
 * The cancel runs as a @lit/task `Task` hosted by the element (`autoRun: false`, `run()` on
 * Confirm): its PENDING status is what the button shows and what makes a second press send nothing.
 *
 * Loaded on demand (the element's `cancelable`, or a first `cancel()`), as its own chunk of the
 * script-tag bundle: it imports nothing at run time — Lit's `html`, @lit/task's `Task` (the main
 * bundle's, which Retry uses too) and the element's services come in through `CancelKit` — so the
 * chunk never pulls in a second copy of the bundle.
 */
import type { Task as LitTask, TaskStatus as LitTaskStatus } from '@lit/task';
import type { ReactiveControllerHost, TemplateResult, html as litHtml, nothing as litNothing } from 'lit';
import type { Messages } from './i18n/messages.js';
import type { ProgressErrorInfo } from './progress-client.js';

export interface CancelKit {
  html: typeof litHtml;
  nothing: typeof litNothing;
  /** @lit/task's Task and TaskStatus, the main bundle's copy. */
  Task: typeof LitTask;
  TaskStatus: typeof LitTaskStatus;
  /** Sends the cancel; resolves once the server has answered (or after 15 s). */
  send: (reason: string | undefined) => Promise<void>;
  /** Fires `progress-cancel`; false when the app prevented it (it confirms on its own). */
  ask: () => boolean;
  /** A refusal in words. */
  reason: (info: ProgressErrorInfo, m: Messages) => string;
  focus: (control: 'cancel' | 'keep') => void;
}

export class CancelFlow {
  /** The inline confirmation is open. */
  confirming = false;
  /** The server's refusal of the last cancel (said in words next to the button). */
  refusal: ProgressErrorInfo | undefined;
  /** The cancel, from Confirm (or `cancel()`) until the server answers (see `CancelKit.send`). */
  private readonly task: LitTask<[string | undefined], void>;

  constructor(
    private readonly host: ReactiveControllerHost,
    private readonly kit: CancelKit,
  ) {
    this.task = new kit.Task(host, { autoRun: false, task: ([reason]: [string | undefined]) => kit.send(reason) });
  }

  /** Sent, not answered yet: the button says "Canceling…" and ignores presses. */
  get pending(): boolean {
    return this.task.status === this.kit.TaskStatus.PENDING;
  }

  /** Cancel without asking (Confirm, or the app after its own confirmation). Resolves once answered. */
  async cancel(reason?: string): Promise<void> {
    if (this.pending) return;
    this.set(false, undefined);
    await this.task.run([reason]);
  }

  /** The job is being canceled or has ended: nothing left to confirm or refuse. */
  reset(): void {
    this.set(false, undefined);
  }

  refused(info: ProgressErrorInfo): void {
    this.set(this.confirming, info);
  }

  /** The Cancel button: `progress-cancel`, then (not prevented) the inline confirmation. */
  private readonly ask = (): void => {
    if (this.pending) return;
    this.set(false, undefined);
    if (this.kit.ask()) {
      this.set(true, undefined);
      this.kit.focus('keep');
    }
  };

  private readonly confirm = (): void => {
    this.kit.focus('cancel');
    void this.cancel();
  };

  private readonly keep = (): void => {
    this.set(false, this.refusal);
    this.kit.focus('cancel');
  };

  private readonly onKey = (e: KeyboardEvent): void => {
    if (e.key !== 'Escape') return;
    // Consumed: an Escape meant for the confirmation must not also close a dialog around it.
    e.preventDefault();
    e.stopPropagation();
    this.keep();
  };

  private set(confirming: boolean, refusal: ProgressErrorInfo | undefined): void {
    this.confirming = confirming;
    this.refusal = refusal;
    this.host.requestUpdate();
  }

  /** The Cancel button (with the server's refusal, if any), or in its place the inline confirmation. */
  render(m: Messages): TemplateResult {
    const { html, nothing } = this.kit;
    if (this.confirming) {
      return html`<div part="cancel-confirmation" class="actions" role="group" aria-labelledby="cancel-question" @keydown=${this.onKey}
        ><span part="cancel-question" id="cancel-question">${m.cancelQuestion}</span
        ><button part="cancel-confirm" class="confirm" type="button" @click=${this.confirm}>${m.cancelConfirm}</button
        ><button part="cancel-keep" class="keep" type="button" @click=${this.keep}>${m.cancelKeep}</button></div
      >`;
    }
    // Focus stays on the button while the cancel is under way (aria-disabled, not disabled).
    const pending = this.pending;
    const refusal = this.refusal && this.kit.reason(this.refusal, m);
    return html`<div class="actions"
      >${refusal ? html`<span part="cancel-error" id="cancel-error" class="cancel-error">${m.cancelFailed(refusal)}</span>` : nothing}<button
        part="cancel" class="cancel" type="button" aria-disabled=${pending ? 'true' : 'false'} aria-describedby=${refusal ? 'cancel-error' : nothing} @click=${this.ask}
      >${pending ? m.canceling : m.cancel}</button></div
    >`;
  }
}
