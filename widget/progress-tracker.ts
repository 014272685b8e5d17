import { Task, TaskStatus } from '@lit/task';
import { LitElement, html, nothing, type PropertyValues, type TemplateResult } from 'lit';
import { property, state } from 'lit/decorators.js';
import { isTerminal, type Job } from '../protocol/index.js';
import type { CancelFlow } from './cancel-flow.js';
import { ConnectionController } from './connection-controller.js';
import { Incidents, reasonText } from './connection-incident.js';
import { FinishTimeSmoother, currentStepIndex } from './estimate.js';
import { emit, emitConnection } from './events.js';
import { LocaleController } from './i18n/locale-controller.js';
import { isolate, type Messages } from './i18n/messages.js';
import { isNewer } from './job-order.js';
import { LiveAnnouncer, connectionAnnouncement } from './live-announcer.js';
import { notifyIfHidden } from './notifications.js';
import type { ConnectionState, ConnectionTransport, ProgressClient, ProgressClientOptions, ProgressErrorInfo, TokenProvider } from './progress-client.js';
import { progressText } from './progress-text.js';
import { styles } from './progress-tracker.styles.js';
import { themeStyles } from './theme.styles.js';
import { sendCancel, sendRetry } from './server-answer.js';
import { stepCard } from './step-card.js';
import { stepsAttribute, stepsToShow, type StepSpec } from './steps-spec.js';
import { failurePanel } from './tracker-panels.js';

export type { StepSpec } from './steps-spec.js';

/**
 * @tagname progress-tracker
 * @summary A live, accessible view of a long-running job: step cards, an overall progress
 * bar with a steady ETA, skeleton content while running, errors with retry, and (`cancelable`)
 * a Cancel button with an inline confirmation.
 *
 * @attr job - The job id to follow.
 * @attr src - WebSocket URL of the server's `/v1/ws`; several (space- or comma-separated) for failover, tried in turn.
 * @attr api - HTTP base URL for SSE and polling (default: derived from the `src` URL in use); several are tried in turn.
 * @attr token - Access token (JWT). Prefer the `tokenProvider` property for short-lived tokens.
 * @attr steps - JSON `[{"id","label"}]` so step cards render before the first snapshot.
 * @attr label - Accessible name of the tracker (default "Job progress").
 * @attr notify - Show a system notification when the job ends while the page is hidden.
 * @attr cancelable - Show a Cancel button while the job is queued or running (the token needs `progress:cancel`).
 * @attr lang - Language for all text (default: inherited from the page).
 * @attr theme - `light`, `dark` or `auto` (the OS preference); default: the page's `color-scheme`.
 *
 * @slot - Content revealed (with a transition) when the job completes.
 * @slot skeleton - Placeholder shown while the job runs; hidden from assistive technology.
 *
 * @fires progress-update - A newer job state arrived. `detail`: the Job.
 * @fires progress-complete - The job completed. `detail`: the Job.
 * @fires progress-error - `kind` 'job': the job failed or was canceled; 'request': the server refused a request; 'connection': no server answered (once per outage, never a job failure). `detail`: {kind, code, message, status?, transport?, step?, job?} (raw text, for logs).
 * @fires progress-retry - The user pressed Retry. Cancelable: `preventDefault()` to handle the retry yourself. `detail`: {jobId, step, job}.
 * @fires progress-cancel - The user pressed Cancel. Cancelable: `preventDefault()` to confirm in your own dialog, then call `cancel()`; otherwise the inline confirmation opens. `detail`: {jobId, job}.
 * @fires progress-connection - The connection state or transport changed. `detail`: 'connecting' | 'live' | 'reconnecting' | 'polling' | 'offline' | 'closed'; the event's `transport`: 'websocket' | 'sse' | 'polling' | 'none'.
 *
 * @csspart card - The outer container.
 * @csspart header - Bar, percentage, ETA and connection row.
 * @csspart bar - The progress bar track (role=progressbar).
 * @csspart bar-indicator - The filled part of the bar.
 * @csspart percentage - The percentage text.
 * @csspart eta - The remaining-time text.
 * @csspart estimate - The "estimate" tag shown while offline.
 * @csspart connection - The connection indicator (`data-state`, `data-transport`).
 * @csspart steps - The list of step cards.
 * @csspart step - One step card (also `step-completed`, `step-running`, `step-pending`, `step-failed`; `step-canceling` on the running step while a cancel is under way, `step-canceled` on the step a cancel stopped).
 * @csspart step-number - The step's number.
 * @csspart step-icon - The step's state icon.
 * @csspart step-label - The step's label.
 * @csspart step-status - The step's visible state text.
 * @csspart step-progress - The current step's own progress bar.
 * @csspart separator - The arrow between steps.
 * @csspart error - The failure panel.
 * @csspart error-message - The server's error message.
 * @csspart retry - The Retry button.
 * @csspart cancel - The Cancel button (`cancelable`).
 * @csspart cancel-confirmation - The inline confirmation (role=group) that replaces the Cancel button.
 * @csspart cancel-question - The confirmation's question ("Cancel this job?").
 * @csspart cancel-confirm - The confirmation's button that sends the cancel.
 * @csspart cancel-keep - The confirmation's "Keep running" button.
 * @csspart cancel-error - Why the server refused the cancel, next to the Cancel button.
 * @csspart body - The region holding skeleton and content.
 * @csspart skeleton - The skeleton wrapper.
 * @csspart content - The default-slot wrapper.
 *
 * @cssproperty --progress-tracker-accent - Running state and bar color.
 * @cssproperty --progress-tracker-success - Completed state color.
 * @cssproperty --progress-tracker-danger - Failed state color.
 * @cssproperty --progress-tracker-background - Card background.
 * @cssproperty --progress-tracker-color - Text color.
 * @cssproperty --progress-tracker-muted - Secondary text color.
 * @cssproperty --progress-tracker-border - Border color.
 * @cssproperty --progress-tracker-radius - Corner radius.
 * @cssproperty --progress-tracker-gap - Spacing unit.
 * @cssproperty --progress-tracker-font - Font family.
 * @cssproperty --progress-tracker-bar-height - Height of the overall bar.
 * @cssproperty --progress-tracker-skeleton - Skeleton base color.
 * @cssproperty --progress-tracker-duration - Transition duration.
 * @cssproperty --progress-tracker-width - Preferred width in flex, grid and shrink-to-fit contexts (default 40rem; never wider than the container).
 */
export class ProgressTracker extends LitElement {
  static override styles = [themeStyles, styles];

  @property({ reflect: true }) job = '';
  /** One `/v1/ws` URL, or several for failover: a space/comma-separated string or an array. */
  // Spelled out (not `EndpointList`) so custom-elements.json tells framework tooling the real type.
  @property() src: string | readonly string[] = '';
  /** HTTP base(s) for SSE, polling and HTTP retry; default: derived from the `src` URL in use. */
  @property() api: string | readonly string[] = '';
  @property() token = '';
  /** Returns a fresh token; called before every connection attempt, every poll and every token refresh. */
  @property({ attribute: false }) tokenProvider: TokenProvider | undefined;
  @property({ converter: stepsAttribute }) steps: StepSpec[] | undefined;
  @property() label = '';
  @property({ type: Boolean, reflect: true }) notify = false;
  /** Show a Cancel button while the job is queued or running; the token decides whether the server accepts it. */
  @property({ type: Boolean, reflect: true }) cancelable = false;
  /** Light or dark: `light`, `dark`, `auto` (the OS preference); unset, the page's `color-scheme`. */
  @property({ reflect: true }) theme: 'light' | 'dark' | 'auto' | undefined;
  /** Own `lang` changes re-render at once; the native property stays (a Lit `lang` would reflect `lang=""`). @internal */
  @property({ attribute: 'lang' }) protected langAttribute: string | null = null;
  /** Override any sentence. The language follows `lang` (the element's or an ancestor's): see docs/widget.md, i18n. */
  @property({ attribute: false }) messages: Partial<Messages> = {};
  /** Tuning of the connection (reconnect delays, polling bounds…). */
  @property({ attribute: false }) connectionOptions: Partial<ProgressClientOptions> = {};
  /** The time source (ms since epoch). Replace it to freeze or drive time, e.g. in tests. */
  @property({ attribute: false }) clock: () => number = () => Date.now();

  @state() private _job: Job | undefined;
  @state() private _connection: ConnectionState = 'closed';
  @state() private _transport: ConnectionTransport = 'none';
  @state() private _notice: ProgressErrorInfo | undefined;
  @state() private _hasContent = false;
  @state() private _hasSkeleton = false;

  private readonly smoother = new FinishTimeSmoother();
  private receivedAt = 0;
  private shownProgress = 0;
  private ticker: ReturnType<typeof setInterval> | undefined;
  private readonly announcer = new LiveAnnouncer(this);
  private readonly locale = new LocaleController(this);
  private readonly incidents = new Incidents();
  /** The last render showed a local estimate (no server answering). */
  private estimated = false;
  private wasLive = false;
  /** Focus after the next render: a control by class (the confirmation's flow). */
  private focusNext: 'cancel' | 'keep' | undefined;
  /** What had focus in the shadow root before this render. */
  private hadFocus: Element | null = null;

  private readonly connection = new ConnectionController(
    this,
    {
      update: (job) => this.show(job),
      complete: (job) => {
        emit(this, 'progress-complete', job);
        this.announce(this.m.announceDone);
        if (this.notify) notifyIfHidden({ title: this.m.notificationDone(this.accessibleName), tag: job.id });
      },
      error: (info) => this.onError(info),
      connection: (state, transport) => this.onConnection(state, transport),
    },
    (client) => {
      // A snapshot given before the client existed seeds it, so `since` and the seq guard start there.
      if (this._job?.id === client.jobId) client.ingest(this._job);
    },
  );

  /** The headless client behind this element (undefined until `job` and `src` are set). */
  get client(): ProgressClient | undefined {
    return this.connection.client;
  }

  /** The connection state shown by the indicator. */
  get connectionState(): ConnectionState {
    return this._connection;
  }

  /** The transport delivering the job: 'websocket', 'sse', 'polling' or 'none'. */
  get transport(): ConnectionTransport {
    return this._transport;
  }

  /**
   * The newest job state shown. Set it to render a state you already have (server-rendered
   * page, your own transport): it is shown only if newer (`seq`) than the current one.
   */
  get snapshot(): Job | undefined {
    return this._job;
  }

  set snapshot(job: Job | undefined) {
    if (!job) return;
    const client = this.connection.client;
    // With a client for this job, the client decides (and emits); without one, the same rule here.
    if (client && client.jobId === job.id) client.ingest(job);
    else if (isNewer(job, this._job)) {
      const prev = this._job;
      this.show(job);
      if (isTerminal(job.status) && (!prev || prev.seq !== job.seq)) {
        if (job.status === 'completed') emit(this, 'progress-complete', job);
      }
    }
  }

  /** The sentences in the element's language (LocaleController), with `messages` on top. */
  private get m(): Messages {
    return this.locale.messages;
  }

  private get accessibleName(): string {
    return this.label || this.m.defaultLabel;
  }

  override connectedCallback(): void {
    super.connectedCallback();
    this.updateTicker();
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    clearInterval(this.ticker);
    this.ticker = undefined;
  }

  protected override willUpdate(changed: PropertyValues<this>): void {
    this.hadFocus = (this.renderRoot as ShadowRoot).activeElement;
    if (this.cancelable) void this.loadCancelFlow();
    // A different job: forget the old one's state. (Lit runs willUpdate before the controllers'
    // hostUpdate, so the connection's new client is seeded from the state kept here, not the old job's.)
    if (changed.has('job') && this._job && this._job.id !== this.job) {
      this._job = undefined;
      this._notice = undefined;
      this.smoother.reset();
      this.shownProgress = 0;
    }
  }

  protected override updated(): void {
    this.updateTicker();
    // Focus never falls back to the page: it goes where the confirmation flow asks, and when the
    // focused control is gone (Cancel once the cancel is under way, Retry once the job runs
    // again), to the bar, whose value says what happened.
    const root = this.renderRoot as ShadowRoot;
    const want = this.focusNext ?? (this.hadFocus && !this.hadFocus.isConnected ? 'bar' : undefined);
    this.focusNext = undefined;
    if (want) (root.querySelector<HTMLElement>(`.${want}`) ?? root.querySelector<HTMLElement>('.bar'))?.focus();
  }

  /**
   * The user's retry, from the click until the server answers: the job leaves `failed` (or the
   * request is refused, or 15 s pass). While pending the button says so and ignores clicks, so a
   * retry is never sent twice.
   */
  private readonly retryTask = new Task(this, {
    autoRun: false,
    task: ([step]: [string | undefined]) => sendRetry(this.connection.client, step),
  });

  /** The Cancel button, its confirmation and the cancel itself: cancel-flow.ts, loaded with `cancelable` or the first `cancel()`. */
  private cancelFlow: CancelFlow | undefined;
  private cancelFlowLoad: Promise<CancelFlow> | undefined;

  private loadCancelFlow(): Promise<CancelFlow> {
    return (this.cancelFlowLoad ??= import('./cancel-flow.js').then(({ CancelFlow }) => {
      this.cancelFlow = new CancelFlow(this, {
        html,
        nothing,
        Task,
        TaskStatus,
        reason: reasonText,
        focus: (control) => (this.focusNext = control),
        ask: () => emit(this, 'progress-cancel', { jobId: this.job || this._job?.id || '', job: this._job }, true),
        send: (reason) => sendCancel(this.connection.client, reason),
      });
      this.requestUpdate();
      return this.cancelFlow;
    }));
  }

  /**
   * Cancel the job without asking: what Confirm does, and what an app calls after its own
   * confirmation when it prevented `progress-cancel`. Works without `cancelable` (that only shows
   * the button); the token needs `progress:cancel`. A refusal is shown next to the Cancel button
   * and fired as `progress-error`. Resolves once the server has answered (or after 15 s).
   */
  async cancel(reason?: string): Promise<void> {
    const job = this._job;
    if (!job?.cancelRequested || isTerminal(job.status)) await (await this.loadCancelFlow()).cancel(reason);
  }

  /** Retry the failed job from its failed step (what the Retry button does). */
  retry(): void {
    if (this.retryTask.status === TaskStatus.PENDING) return;
    const job = this._job;
    const step = job?.error?.step ?? job?.steps.find((s) => s.status === 'failed')?.id;
    const proceed = emit(this, 'progress-retry', { jobId: this.job || job?.id || '', step, job }, true);
    if (!proceed) return;
    this._notice = undefined;
    void this.retryTask.run([step]);
  }

  private show(job: Job): void {
    const prev = this._job;
    const now = this.clock();
    // After a local estimate the server's state wins, even below the estimate (the bar glides back).
    if (!prev || prev.status !== job.status || job.progress < prev.progress || this.estimated) this.shownProgress = 0;
    this._job = job;
    this.receivedAt = now;
    if (isTerminal(job.status)) this.smoother.reset();
    else this.smoother.update(job.eta, now);
    if (!isTerminal(job.status)) this._notice = undefined;
    if (job.cancelRequested || isTerminal(job.status)) this.cancelFlow?.reset();
    emit(this, 'progress-update', job);
    const index = currentStepIndex(job);
    const prevIndex = prev ? currentStepIndex(prev) : 0;
    const step = stepsToShow(job, this.steps)[index - 1];
    if (job.status === 'running' && step && (index !== prevIndex || prev?.status !== 'running')) {
      this.announce(this.m.announceStep(isolate(step.label), index, job.steps.length));
    }
    if (job.cancelRequested && !prev?.cancelRequested && !isTerminal(job.status)) this.announce(this.m.canceling);
  }

  private onConnection(state: ConnectionState, transport: ConnectionTransport): void {
    const prev = this._connection;
    this._connection = state;
    this._transport = transport;
    emitConnection(this, state, transport);
    const said = connectionAnnouncement(prev, state, this.wasLive, this.m);
    if (said) this.announce(said);
    if (state === 'live') {
      this.wasLive = true;
      this._notice = undefined;
    }
    // Answering again after an estimate: show the server's state from now on, not the estimate.
    const job = this._job;
    if ((state === 'live' || state === 'polling') && this.estimated && job) {
      const now = this.clock();
      this.shownProgress = 0;
      this.receivedAt = now;
      this.smoother.reset();
      this.smoother.update(job.eta, now);
    }
    // No server answers: one progress-error per incident, the raw cause in its detail.
    const info = this.incidents.connection(state, this.connection.client?.lastFailure);
    if (info) emit(this, 'progress-error', info);
  }

  /**
   * A job failure stays one (shown, announced, evented); a refusal or a transport failure is said
   * in a short translated sentence (raw text only in the detail): next to Cancel or as a notice
   * when it answers the user's request, else once per incident (connection-incident.ts).
   */
  private onError(info: ProgressErrorInfo): void {
    const m = this.m;
    if (info.job) {
      emit(this, 'progress-error', info);
      this.announce(info.job.status === 'canceled' ? m.announceCanceled : m.announceFailed(isolate(info.message)));
      if (this.notify) notifyIfHidden({ title: m.notificationFailed(this.accessibleName), body: info.message, tag: info.job.id });
      return;
    }
    const cancel = !!this.cancelFlow?.pending;
    const asked = cancel || this.retryTask.status === TaskStatus.PENDING;
    if (!asked && !this.incidents.first(info)) return;
    emit(this, 'progress-error', info);
    // In the background, a transport failure is the connection indicator's to say.
    if (!asked && info.kind === 'connection') return;
    if (cancel) this.cancelFlow!.refused(info);
    else this._notice = info;
    this.announce(cancel ? m.cancelFailed(reasonText(info, m)) : reasonText(info, m));
  }

  private announce(text: string): void {
    this.announcer.announce(text);
  }

  /** Re-render once a second while a countdown or estimate is on screen. */
  private updateTicker(): void {
    const job = this._job;
    const needed =
      this.isConnected && !!job && ((job.status === 'running' && this.smoother.finishAt !== null) || (job.status === 'queued' && job.eta?.waitMs !== undefined));
    if (needed && !this.ticker) this.ticker = setInterval(() => this.requestUpdate(), 1000);
    else if (!needed && this.ticker) {
      clearInterval(this.ticker);
      this.ticker = undefined;
    }
  }

  private onSlotChange(e: Event): void {
    const slot = e.target as HTMLSlotElement;
    const has = slot.assignedNodes({ flatten: false }).some((n) => n.nodeType === Node.ELEMENT_NODE || (n.textContent ?? '').trim() !== '');
    if (slot.name === 'skeleton') this._hasSkeleton = has;
    else this._hasContent = has;
  }

  protected override render(): TemplateResult {
    const m = this.m;
    const { lang, dir } = this.locale;
    const job = this._job;
    const steps = stepsToShow(job, this.steps);
    const ended = !!job && isTerminal(job.status);
    const state = this._connection;
    const offline = state === 'offline';
    // No server answers (down, or only a gateway's 502/503/504): what moves is a local estimate, and says so.
    const estimating = job?.status === 'running' && (offline || state === 'reconnecting' || state === 'connecting');
    this.estimated = estimating;
    const t = progressText({
      job,
      steps,
      now: this.clock(),
      receivedAt: this.receivedAt,
      finishAt: this.smoother.finishAt,
      shownProgress: this.shownProgress,
      estimating,
      lang,
      m,
    });
    const { progress, percent, percentText, etaText, valueText, stepIndex, canceling } = t;
    if (job?.status === 'running') this.shownProgress = progress;

    const failedStep = steps.find((s) => s.status === 'failed');
    const busy = !ended;
    const connectionText = ended ? '' : offline && !job ? m.unreachable : m.connection[this._connection];

    return html`
      <div part="card" dir=${dir === 'rtl' ? dir : nothing} class="card card--${job?.status ?? 'loading'}${canceling ? ' card--canceling' : ''}">
        <div part="header" class="header">
          <div
            part="bar"
            class="bar${job ? '' : ' bar--indeterminate'}"
            role="progressbar"
            tabindex="-1"
            aria-label=${this.accessibleName}
            aria-valuemin="0"
            aria-valuemax="100"
            aria-valuenow=${job ? percent : nothing}
            aria-valuetext=${valueText}
          >
            <div part="bar-indicator" class="indicator" .style=${`transform:scaleX(${job ? progress : 0.3})`}></div>
          </div>
          <div class="meta">
            <span part="percentage" class="percentage" aria-hidden="true">${job ? percentText : ''}</span>
            <span part="eta" class="eta"
              >${etaText}${estimating
                ? html` <span part="estimate" class="estimate">${m.estimate}</span>`
                : nothing}</span
            >
            ${connectionText
              ? html`<span part="connection" class="connection" data-state=${this._connection} data-transport=${this._transport}
                  ><span class="dot" aria-hidden="true"></span>${connectionText}</span
                >`
              : nothing}
          </div>
        </div>
        ${steps.length
          ? html`<ol part="steps" class="steps">
              ${steps.map((s, i) =>
                stepCard(s, i, steps.length, job?.status === 'running' && i + 1 === stepIndex, lang, m, canceling ? 'canceling' : job?.status === 'canceled' ? 'canceled' : undefined),
              )}
            </ol>`
          : nothing}
        ${this.cancelable && job && !ended && !canceling && this.cancelFlow ? this.cancelFlow.render(m) : nothing}
        ${job && (job.status === 'failed' || job.status === 'canceled')
          ? failurePanel(job, failedStep, m, this.retryTask.status === TaskStatus.PENDING, () => this.retry())
          : nothing}
        ${this._notice && !(job && job.status === 'failed')
          ? html`<p part="error" class="notice" role="alert"><span part="error-message">${reasonText(this._notice, m)}</span></p>`
          : nothing}
        <div
          part="body"
          class="body${!this._hasContent && !this._hasSkeleton ? ' body--empty' : ''}${job?.status === 'completed' ? ' body--done' : ''}${busy ? ' body--busy' : ''}"
          aria-busy=${busy ? 'true' : 'false'}
        >
          <div part="skeleton" class="skeleton" aria-hidden="true" ?inert=${true}>
            <slot name="skeleton" @slotchange=${this.onSlotChange}
              ><div class="skeleton-default"><span></span><span></span><span></span></div
            ></slot>
          </div>
          <div part="content" class="content" ?inert=${job?.status !== 'completed'}><slot @slotchange=${this.onSlotChange}></slot></div>
        </div>
        <div class="visually-hidden" role="status" aria-live="polite" aria-atomic="true">${this.announcer.text}</div>
      </div>
    `;
  }

}

declare global {
  interface HTMLElementTagNameMap {
    'progress-tracker': ProgressTracker;
  }
}
