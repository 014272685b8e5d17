import { LitElement, html, type TemplateResult } from 'lit';
import { property, state } from 'lit/decorators.js';
import { defaultMessages, formatCount, type Messages } from './format.js';
import { styles } from './notification-badge.styles.js';
import type { Job } from '../protocol/index.js';

/**
 * @tagname notification-badge
 * @summary Counts finished jobs (completed or failed) the user has not looked at yet.
 *
 * Listens at its document for `progress-complete` and `progress-error` (job failures only),
 * from every `<progress-tracker>` or only from those matching the `for` selector. Activating
 * the badge (click, Enter, Space) or calling `clear()` resets the count.
 *
 * @attr for - CSS selector: count only trackers matching it.
 * @attr lang - Language of the count and its accessible name.
 *
 * @fires notification-badge-clear - The count was reset by activation or `clear()`.
 *
 * @slot - Optional icon or text before the count (e.g. a bell).
 *
 * @csspart base - The button.
 * @csspart count - The count.
 *
 * @cssproperty --notification-badge-background - Count background.
 * @cssproperty --notification-badge-color - Count text color.
 */
export class NotificationBadge extends LitElement {
  static override styles = styles;

  @property({ attribute: 'for' }) for = '';
  /**
   * Observes the native `lang` attribute (re-render on change) without replacing the native
   * property: a Lit `lang` property would reflect `lang=""` and cut the page's language off.
   * @internal
   */
  @property({ attribute: 'lang' }) protected langAttribute: string | null = null;
  /** Override the accessible-name sentence. */
  @property({ attribute: false }) messages: Partial<Pick<Messages, 'jobsFinished'>> = {};

  @state() private _count = 0;
  private readonly seen = new Set<string>();
  private root: Document | undefined;

  /** Finished jobs not looked at yet. */
  get count(): number {
    return this._count;
  }

  private readonly onFinished = (event: Event) => {
    const detail = (event as CustomEvent<Job | { job?: Job }>).detail;
    const job: Job | undefined = detail && 'steps' in detail ? (detail as Job) : (detail as { job?: Job })?.job;
    // progress-error also reports refused requests; only the end of a job counts.
    if (!job) return;
    if (this.for) {
      const source = event.composedPath().find((n): n is Element => n instanceof Element && n.localName === 'progress-tracker');
      if (!source || !source.matches(this.for)) return;
    }
    const key = `${job.id}:${job.seq}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    this._count++;
  };

  override connectedCallback(): void {
    super.connectedCallback();
    this.root = this.ownerDocument;
    this.root.addEventListener('progress-complete', this.onFinished);
    this.root.addEventListener('progress-error', this.onFinished);
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.root?.removeEventListener('progress-complete', this.onFinished);
    this.root?.removeEventListener('progress-error', this.onFinished);
  }

  /** Reset the count (the user has looked). */
  clear(): void {
    if (this._count === 0) return;
    this._count = 0;
    this.dispatchEvent(new CustomEvent('notification-badge-clear', { bubbles: true, composed: true }));
  }

  protected override render(): TemplateResult {
    const lang = (this.closest('[lang]') as HTMLElement | null)?.lang || undefined;
    const { text, plural } = formatCount(this._count, lang);
    const name = (this.messages.jobsFinished ?? defaultMessages.jobsFinished)(this._count, text, plural);
    return html`<button part="base" type="button" aria-label=${name} @click=${() => this.clear()}>
      <slot></slot><span part="count" class="count ${this._count ? '' : 'count--empty'}" aria-hidden="true">${text}</span>
    </button>`;
  }
}

declare global {
  interface HTMLElementTagNameMap {
    'notification-badge': NotificationBadge;
  }
  interface HTMLElementEventMap {
    'notification-badge-clear': CustomEvent<undefined>;
  }
}
