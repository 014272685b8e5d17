import { LitElement, html, nothing, type TemplateResult } from 'lit';
import { property, state } from 'lit/decorators.js';
import type { Job, JobSummary } from '../protocol/index.js';
import type { PopoverKit } from './badge-popover.js';
import type { EndpointList } from './endpoints.js';
import { FeedClient } from './feed-client.js';
import { isSeenKey, isUnseen, newest, readSeen, writeSeen, type SeenState } from './feed-seen.js';
import { formatCount } from './format.js';
import { LocaleController } from './i18n/locale-controller.js';
import type { Messages } from './i18n/messages.js';
import type { ChannelOptions, TokenProvider } from './channel-types.js';
import { notifyIfHidden } from './notifications.js';
import { styles } from './notification-badge.styles.js';
import { themeStyles } from './theme.styles.js';

const title = (job: JobSummary) => job.meta?.title ?? job.kind;

/**
 * @tagname notification-badge
 * @summary Counts finished jobs the user has not seen yet: of a tag's feed (`src` + `tag`), or of the trackers on the page.
 *
 * With `src` and `tag` it keeps its own connection to the server's feed of that tag (the
 * tracker's transport chain: WebSocket → SSE → polling) and counts the jobs of the tag that
 * finished (completed, failed, canceled) and were not seen, across route changes, reloads and
 * tabs (seen state in `localStorage` per tag, synchronised between tabs; per browser). A browser
 * that never saw the feed starts at zero. Activating it opens a popover of recent jobs (a
 * disclosure: the button's `aria-expanded`, Escape or a click outside closes it and focus goes
 * back to the button) with "Mark all as seen".
 *
 * Without `src` it listens at its document for `progress-complete` and `progress-error` (job
 * failures only), from every `<progress-tracker>` or only from those matching the `for`
 * selector; activating it (click, Enter, Space) or calling `clear()` resets the count.
 *
 * @attr src - WebSocket URL of the server's `/v1/ws` (several for failover, like the tracker's).
 * @attr tag - The feed to count, e.g. `user:alice` (the token needs a grant `tag:user:alice` or `*`).
 * @attr token - Access token (`progress:read`); or set the `tokenProvider` property.
 * @attr href-template - Link of each job in the popover, `{id}` replaced by the job id (e.g. `/jobs/{id}`).
 * @attr notify - A system notification when a feed job finishes while the page is hidden (the page asks permission from a user gesture).
 * @attr for - Without `src`: count only trackers matching this CSS selector.
 * @attr lang - Language of the count, the accessible name and the relative times.
 * @attr theme - `light`, `dark` or `auto` (the OS preference); default: the page's `color-scheme`.
 *
 * @fires notification-badge-clear - The count was reset: activation without `src`, "Mark all as seen", or `clear()`.
 *
 * @slot - Icon or text before the count (default: a bell). At zero no count is shown.
 *
 * @csspart base - The button.
 * @csspart count - The count.
 * @csspart popover - The popover (with `src`).
 * @csspart list - Its list of jobs.
 * @csspart item - A job.
 * @csspart link - A job's link (with `href-template`).
 * @csspart mark-seen - The "Mark all as seen" button.
 *
 * @cssproperty --notification-badge-background - Count background.
 * @cssproperty --notification-badge-color - Count text color.
 */
export class NotificationBadge extends LitElement {
  static override styles = [themeStyles, styles];

  @property({ attribute: 'for' }) for = '';
  @property() src: EndpointList = '';
  @property() tag = '';
  @property() token = '';
  @property({ attribute: false }) tokenProvider: TokenProvider | undefined;
  @property({ attribute: 'href-template' }) hrefTemplate = '';
  @property({ type: Boolean }) notify = false;
  /** Light or dark: `light`, `dark`, `auto` (the OS preference); unset, the page's `color-scheme`. */
  @property({ reflect: true }) theme: 'light' | 'dark' | 'auto' | undefined;
  /** Transport tuning for the feed, as the tracker's `connectionOptions` (read when the client is made). */
  @property({ attribute: false }) connectionOptions: Partial<ChannelOptions> = {};
  /** Own `lang` changes re-render at once; the native property stays (a Lit `lang` would reflect `lang=""`). @internal */
  @property({ attribute: 'lang' }) protected langAttribute: string | null = null;
  /** Override any sentence (`jobsFinished`, the popover's, the notifications'). */
  @property({ attribute: false }) messages: Partial<Messages> = {};

  @state() private _count = 0;
  /** The feed's jobs, newest first; while the popover is open, the list it opened with (its order stays put). */
  @state() private jobs: JobSummary[] = [];
  @state() private shown: JobSummary[] | undefined;
  @state() private seen: SeenState | undefined;
  /** Without src: the newest `seq` counted per job, and the jobs counted since the last clear (a job counts once). */
  private readonly counted = new Map<string, number>();
  private readonly unseen = new Set<string>();
  private root: Document | undefined;
  /** The client, once `src` and `tag` are set. */
  private feed: FeedClient | undefined;
  private feedKey = '';

  /** Finished jobs not seen yet. */
  get count(): number {
    return this.feed ? this.jobs.filter((j) => isUnseen(j, this.seen)).length : this._count;
  }

  private readonly onFinished = (event: Event) => {
    const detail = (event as CustomEvent<Job | { job?: Job }>).detail;
    const job: Job | undefined = detail && 'steps' in detail ? (detail as Job) : (detail as { job?: Job })?.job;
    // progress-error also reports refused requests; only the end of a job counts.
    if (!job || this.feed) return;
    if (this.for) {
      const source = event.composedPath().find((n): n is Element => n instanceof Element && n.localName === 'progress-tracker');
      if (!source || !source.matches(this.for)) return;
    }
    // The same end heard twice, or an older one, is not news; a failed-then-retried job counts once.
    if ((this.counted.get(job.id) ?? -1) >= job.seq) return;
    this.counted.set(job.id, job.seq);
    this.unseen.add(job.id);
    this._count = this.unseen.size;
  };

  /** Another tab changed the seen state. */
  private readonly onStorage = (event: StorageEvent) => {
    if (this.feed && isSeenKey(event.key, this.tag)) this.seen = readSeen(this.tag) ?? this.seen;
  };

  override connectedCallback(): void {
    super.connectedCallback();
    this.root = this.ownerDocument;
    this.root.addEventListener('progress-complete', this.onFinished);
    this.root.addEventListener('progress-error', this.onFinished);
    addEventListener('storage', this.onStorage);
    this.feed?.open();
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.root?.removeEventListener('progress-complete', this.onFinished);
    this.root?.removeEventListener('progress-error', this.onFinished);
    removeEventListener('storage', this.onStorage);
    this.feed?.close();
  }

  /** Reset the count: without `src`, the user has looked; with it, every job is marked as seen. */
  clear(): void {
    if (!this.count) return;
    const s = this.seen && (readSeen(this.tag) ?? this.seen);
    if (s) this.seen = writeSeen(this.tag, { since: newest(this.jobs, s.since), seen: s.seen });
    this._count = 0;
    this.unseen.clear();
    this.dispatchEvent(new CustomEvent('notification-badge-clear', { bubbles: true, composed: true }));
  }

  /** A new `src` or `tag` replaces the feed client (no network until both are set). */
  protected override willUpdate(): void {
    const { src, tag } = this;
    // A string or an array (the same URLs in a new array keep the client).
    const key = src.length && tag ? `${src}\n${tag}` : '';
    if (key === this.feedKey) return;
    this.feedKey = key;
    this.feed?.close();
    this.feed = undefined;
    this.jobs = [];
    if (!key) return;
    const feed = (this.feed = new FeedClient({
      ...this.connectionOptions,
      src,
      tag,
      // Read at every connect/poll, so a new `token` or `tokenProvider` applies next time.
      tokenProvider: () => (this.tokenProvider ? this.tokenProvider() : this.token || undefined),
    }));
    this.seen = undefined;
    feed.on('jobs', (jobs, finished) => {
      if (this.feed !== feed) return;
      this.jobs = jobs;
      // First sight of the feed in this browser: what finished before does not count.
      this.seen ??= readSeen(tag) ?? writeSeen(tag, { since: newest(jobs), seen: {} });
      if (!this.notify) return;
      const m = this.m;
      for (const job of finished) {
        const say = job.status === 'completed' ? m.notificationDone : job.status === 'failed' ? m.notificationFailed : m.notificationCanceled;
        notifyIfHidden({ title: say(title(job)), body: job.error?.message, tag: job.id });
      }
    });
    if (this.isConnected) feed.open();
  }

  /** The language: `lang` here or on an ancestor (a change on `<html>` re-renders); its sentences load on first use. */
  private readonly locale = new LocaleController(this);

  private get m(): Messages {
    return this.locale.messages;
  }

  /** The popover opens (its list is taken now and keeps its order while open) or closes. */
  private readonly onToggle = (event: ToggleEvent) => {
    const open = event.newState === 'open';
    this.shown = open ? this.jobs : undefined;
    if (open) void this.loadPopover();
    // Focus inside goes back to the badge (Chromium does not restore it from a popover in a shadow
    // root); focus already elsewhere (a click outside) stays there.
    if (!open && this.shadowRoot!.activeElement) this.renderRoot.querySelector('button')!.focus();
  };

  /** A job's link was followed: it is seen; the popover closes (focus goes back to the button). */
  private follow(job: JobSummary): void {
    const s = readSeen(this.tag) ?? this.seen;
    if (s) this.seen = writeSeen(this.tag, { since: s.since, seen: { ...s.seen, [job.id]: job.updatedAt } });
    this.renderRoot.querySelector<HTMLElement>('[popover]')!.hidePopover();
  }

  /** The popover's inside: badge-popover.ts, a chunk loaded on the first hover, focus or activation of the button. */
  private popoverInside: ((list: JobSummary[], m: Messages) => TemplateResult) | undefined;
  private popoverLoad: Promise<void> | undefined;

  private readonly loadPopover = (): Promise<void> =>
    (this.popoverLoad ??= import('./badge-popover.js').then(
      ({ popoverContent }) => {
        const kit: PopoverKit = {
          html,
          title,
          unseen: (job) => isUnseen(job, this.seen),
          lang: () => this.locale.lang,
          href: (job) => this.hrefTemplate.replace(/\{id\}/g, encodeURIComponent(job.id)),
          follow: (job) => this.follow(job),
          clear: () => this.clear(),
        };
        this.popoverInside = (list, m) => popoverContent(kit, list, m);
        this.requestUpdate();
      },
      // Not loaded (offline?): the next hover, focus or opening tries again.
      () => (this.popoverLoad = undefined),
    ));

  /** While the popover's inside is on its way, `updateComplete` waits for it and the render that shows it. */
  protected override async getUpdateComplete(): Promise<boolean> {
    const done = await super.getUpdateComplete();
    if (this.popoverInside || !this.popoverLoad) return done;
    await this.popoverLoad;
    return super.getUpdateComplete();
  }

  protected override render(): TemplateResult {
    const { lang } = this.locale;
    const m = this.m;
    const count = this.count;
    const { text, plural } = formatCount(count, lang);
    const feed = !!this.feed;
    // While open, the list keeps the jobs (and order) it opened with, each in its latest state.
    const list = this.shown?.map((s) => this.jobs.find((j) => j.id === s.id) ?? s) ?? this.jobs;
    return html`<button part="base" type="button" aria-label=${m.jobsFinished(count, text, plural)} popovertarget=${feed ? 'p' : nothing} aria-expanded=${feed ? String(!!this.shown) : nothing} @click=${() => feed || this.clear()} @pointerenter=${feed ? this.loadPopover : nothing} @focus=${feed ? this.loadPopover : nothing}>
      <slot><svg viewBox="0 0 16 16" width="16" height="16" aria-hidden="true"><path d="M8 2a4 4 0 0 0-4 4v3l-1.5 2h11L12 9V6a4 4 0 0 0-4-4zM6.5 13a1.5 1.5 0 0 0 3 0" fill="none" stroke="currentColor" stroke-width="1.5"/></svg></slot
      >${count ? html`<span part="count" class="count" aria-hidden="true">${text}</span>` : nothing}
    </button>${feed
      ? html`<div id="p" part="popover" popover @beforetoggle=${this.onToggle}>${this.popoverInside?.(list, m) ?? nothing}</div>`
      : nothing}`;
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
