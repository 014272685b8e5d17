import { Task, TaskStatus } from '@lit/task';
import { LitElement, html, nothing, type PropertyValues, type TemplateResult } from 'lit';
import { property, state } from 'lit/decorators.js';
import { classMap } from 'lit/directives/class-map.js';
import { styleMap } from 'lit/directives/style-map.js';
import { isTerminal, type Job, type Step } from '../protocol/index.js';
import { ConnectionController } from './connection-controller.js';
import { FinishTimeSmoother, currentStepIndex, estimateProgress, jobDuration } from './estimate.js';
import { emit, emitConnection } from './events.js';
import { defaultMessages, formatDuration, formatPercent, formatRemaining, type Messages } from './format.js';
import { isNewer } from './job-order.js';
import { LiveAnnouncer } from './live-announcer.js';
import { notifyIfHidden } from './notifications.js';
import type { ConnectionState, ConnectionTransport, ProgressClient, ProgressClientOptions, ProgressErrorInfo, TokenProvider } from './progress-client.js';
import { styles } from './progress-tracker.styles.js';
import { stepCard, stepIcon } from './step-card.js';

/** How long the Retry and Cancel buttons wait for the server's answer before they can be pressed again. */
const ANSWER_TIMEOUT_MS = 15_000;

export interface StepSpec {
  id: string;
  label: string;
}

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
 * @fires progress-error - The job failed or was canceled, or the server refused a request. `detail`: {code, message, step?, job?}.
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
  static override styles = styles;

  @property({ reflect: true }) job = '';
  /** One `/v1/ws` URL, or several for failover: a space/comma-separated string or an array. */
  // Spelled out (not `EndpointList`) so custom-elements.json tells framework tooling the real type.
  @property() src: string | readonly string[] = '';
  /** HTTP base(s) for SSE, polling and HTTP retry; default: derived from the `src` URL in use. */
  @property() api: string | readonly string[] = '';
  @property() token = '';
  /** Returns a fresh token; called before every connection attempt, every poll and every token refresh. */
  @property({ attribute: false }) tokenProvider: TokenProvider | undefined;
  @property({
    converter: {
      fromAttribute: (v: string | null) => {
        if (!v) return undefined;
        try {
          return JSON.parse(v) as StepSpec[];
        } catch {
          return undefined;
        }
      },
    },
  })
  steps: StepSpec[] | undefined;
  @property() label = '';
  @property({ type: Boolean, reflect: true }) notify = false;
  /** Show a Cancel button while the job is queued or running; the token decides whether the server accepts it. */
  @property({ type: Boolean, reflect: true }) cancelable = false;
  /** Light or dark: `light`, `dark`, `auto` (the OS preference); unset, the page's `color-scheme`. */
  @property({ reflect: true }) theme: 'light' | 'dark' | 'auto' | undefined;
  /**
   * Observes the native `lang` attribute (re-render on change) without replacing the native
   * property: a Lit `lang` property would reflect `lang=""` and cut the page's language off.
   * @internal
   */
  @property({ attribute: 'lang' }) protected langAttribute: string | null = null;
  /** Override any sentence (localization). Numbers and units follow `lang` through Intl. */
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
  /** The inline cancel confirmation is open. */
  @state() private _confirming = false;
  /** The server's refusal of the last cancel, shown next to the Cancel button. */
  @state() private _cancelError: string | undefined;

  private readonly smoother = new FinishTimeSmoother();
  private receivedAt = 0;
  private shownProgress = 0;
  private ticker: ReturnType<typeof setInterval> | undefined;
  private readonly announcer = new LiveAnnouncer(this);
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
      error: (info) => {
        const m = this.m;
        // A refusal while a cancel awaits its answer is the cancel's: shown next to its button.
        const cancelRefused = !info.job && this.cancelTask.status === TaskStatus.PENDING;
        if (cancelRefused) this._cancelError = info.message;
        else if (!info.job) this._notice = info;
        emit(this, 'progress-error', info);
        this.announce(
          cancelRefused ? m.cancelFailed(info.message) : info.job?.status === 'canceled' ? m.announceCanceled : m.announceFailed(info.message),
        );
        if (info.job && this.notify) notifyIfHidden({ title: this.m.notificationFailed(this.accessibleName), body: info.message, tag: info.job.id });
      },
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

  private get m(): Messages {
    return { ...defaultMessages, ...this.messages };
  }

  private get effectiveLang(): string | undefined {
    return (this.closest('[lang]') as HTMLElement | null)?.lang || undefined;
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

  /** Resolves once the server answered a request: a state `accepted` says so, a refusal, or 15 s. */
  private answered(client: ProgressClient, accepted: (job: Job) => boolean, signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        offs.forEach((off) => off());
        clearTimeout(timer);
        resolve();
      };
      const offs = [client.on('update', (job) => accepted(job) && done()), client.on('error', (e) => !e.job && done())];
      const timer = setTimeout(done, ANSWER_TIMEOUT_MS);
      signal.addEventListener('abort', done, { once: true });
    });
  }

  /**
   * The user's retry, from the click until the server answers: the job leaves `failed` (or the
   * request is refused, or 15 s pass). While pending the button says so and ignores clicks, so a
   * retry is never sent twice.
   */
  private readonly retryTask = new Task(this, {
    autoRun: false,
    task: async ([step]: [string | undefined], { signal }) => {
      const client = this.connection.client;
      if (!client) return;
      const answered = this.answered(client, (job) => job.status !== 'failed', signal);
      await client.retry(step);
      await answered;
    },
  });

  /**
   * The cancel, from Confirm (or `cancel()`) until the server answers: the job carries
   * `cancelRequested` or has ended, or the request is refused, or 15 s pass. While pending the
   * Cancel button says "Canceling…" and ignores presses.
   */
  private readonly cancelTask = new Task(this, {
    autoRun: false,
    task: async ([reason]: [string | undefined], { signal }) => {
      const client = this.connection.client;
      if (!client) return;
      const answered = this.answered(client, (job) => !!job.cancelRequested || isTerminal(job.status), signal);
      await client.cancel(reason);
      await answered;
    },
  });

  /**
   * Cancel the job without asking: what Confirm does, and what an app calls after its own
   * confirmation when it prevented `progress-cancel`. Works without `cancelable` (that only shows
   * the button); the token needs `progress:cancel`. A refusal is shown next to the Cancel button
   * and fired as `progress-error`. Resolves once the server has answered (or after 15 s).
   */
  async cancel(reason?: string): Promise<void> {
    const job = this._job;
    if (this.cancelTask.status === TaskStatus.PENDING || (job?.cancelRequested && !isTerminal(job.status))) return;
    this._confirming = false;
    this._cancelError = undefined;
    await this.cancelTask.run([reason]);
  }

  /** The Cancel button: `progress-cancel`, then (not prevented) the inline confirmation. */
  private askCancel(): void {
    if (this.cancelTask.status === TaskStatus.PENDING) return;
    const job = this._job;
    this._cancelError = undefined;
    if (emit(this, 'progress-cancel', { jobId: this.job || job?.id || '', job }, true)) {
      this._confirming = true;
      this.focusNext = 'keep';
    }
  }

  private confirmCancel(): void {
    this.focusNext = 'cancel';
    void this.cancel();
  }

  private keepRunning(): void {
    this._confirming = false;
    this.focusNext = 'cancel';
  }

  private onConfirmationKey(e: KeyboardEvent): void {
    if (e.key !== 'Escape') return;
    // Consumed: an Escape meant for the confirmation must not also close a dialog around it.
    e.preventDefault();
    e.stopPropagation();
    this.keepRunning();
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
    if (!prev || prev.status !== job.status || job.progress < prev.progress) this.shownProgress = 0;
    this._job = job;
    this.receivedAt = now;
    if (isTerminal(job.status)) this.smoother.reset();
    else this.smoother.update(job.eta, now);
    if (!isTerminal(job.status)) this._notice = undefined;
    if (job.cancelRequested || isTerminal(job.status)) {
      this._confirming = false;
      this._cancelError = undefined;
    }
    emit(this, 'progress-update', job);
    const index = currentStepIndex(job);
    const prevIndex = prev ? currentStepIndex(prev) : 0;
    const step = job.steps[index - 1];
    if (job.status === 'running' && step && (index !== prevIndex || prev?.status !== 'running')) {
      this.announce(this.m.announceStep(step.label, index, job.steps.length));
    }
    if (job.cancelRequested && !prev?.cancelRequested && !isTerminal(job.status)) this.announce(this.m.canceling);
  }

  private onConnection(state: ConnectionState, transport: ConnectionTransport): void {
    const prev = this._connection;
    this._connection = state;
    this._transport = transport;
    emitConnection(this, state, transport);
    const m = this.m;
    if (state === 'live') {
      if (this.wasLive && prev !== 'live' && prev !== 'connecting') this.announce(m.announceConnectionRestored);
      this.wasLive = true;
      this._notice = undefined;
    } else if (state === 'reconnecting' && prev === 'live') this.announce(m.announceConnectionLost);
    else if (state === 'offline') this.announce(m.announceOffline);
    else if (state === 'polling' && (prev === 'offline' || prev === 'live' || prev === 'reconnecting') && this.wasLive) {
      this.announce(m.connection.polling);
    }
  }

  private announce(text: string): void {
    this.announcer.announce(text);
  }

  /** Re-render once a second while a countdown or estimate is on screen. */
  private updateTicker(): void {
    const job = this._job;
    const needed = this.isConnected && !!job && job.status === 'running' && this.smoother.finishAt !== null;
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

  private stepsToShow(): Step[] {
    if (this._job && this._job.steps.length) return this._job.steps;
    return (this.steps ?? []).map((s) => ({ id: s.id, label: s.label, status: 'pending' as const, progress: 0 }));
  }

  protected override render(): TemplateResult {
    const m = this.m;
    const lang = this.effectiveLang;
    const job = this._job;
    const steps = this.stepsToShow();
    const now = this.clock();
    const ended = !!job && isTerminal(job.status);
    const offline = this._connection === 'offline';
    // Asked to cancel, still running: the producer is stopping, so the bar no longer glides on.
    const canceling = !!job?.cancelRequested && !ended;

    let progress = 0;
    let remainingMs: number | null = null;
    if (job) {
      const est = estimateProgress(job, this.receivedAt, this.smoother.finishAt, now);
      progress = job.status === 'completed' ? 1 : Math.max(this.shownProgress, canceling ? job.progress : est.progress);
      if (job.status === 'running') this.shownProgress = progress;
      remainingMs = est.remainingMs;
    }
    const percent = Math.floor(progress * 100);
    const percentText = formatPercent(progress, lang);

    let etaText: string;
    if (!job) etaText = m.waiting;
    else if (job.status === 'completed') {
      const took = jobDuration(job);
      etaText = took >= 1000 ? m.doneIn(formatDuration(took, lang, true)) : m.done;
    }
    else if (job.status === 'failed') etaText = m.failed;
    else if (job.status === 'canceled') etaText = m.canceled;
    else if (canceling) etaText = m.canceling;
    else if (job.stalled) {
      const silent = Math.max(0, now - job.stalled.since);
      etaText = m.stalled(formatDuration(silent, lang, silent < 60_000));
    }
    else if (remainingMs === null) etaText = job.status === 'queued' ? m.waiting : m.estimating;
    else {
      const eta = job.eta;
      // The server's 80% range, shifted by the time since it was received.
      const elapsed = now - this.receivedAt;
      const range =
        eta && eta.low !== undefined && eta.high !== undefined && !offline
          ? { low: Math.max(0, eta.low - elapsed), high: Math.max(0, eta.high - elapsed) }
          : undefined;
      etaText = formatRemaining(remainingMs, lang, m, range);
    }

    const stepIndex = job ? currentStepIndex(job) : 0;
    const valueText = [
      steps.length && job && !ended ? m.stepOf(stepIndex, steps.length) : '',
      job ? percentText : '',
      job && job.status === 'completed' ? m.done : etaText,
    ]
      .filter(Boolean)
      .join(', ');

    const failedStep = steps.find((s) => s.status === 'failed');
    const busy = !ended;
    const running = job?.status === 'running';
    const connectionText = ended ? '' : offline && !job ? m.unreachable : m.connection[this._connection];

    return html`
      <div part="card" class=${classMap({ card: true, [`card--${job?.status ?? 'loading'}`]: true, 'card--canceling': canceling })}>
        <div part="header" class="header">
          <div
            part="bar"
            class=${classMap({ bar: true, 'bar--indeterminate': !job })}
            role="progressbar"
            tabindex="-1"
            aria-label=${this.accessibleName}
            aria-valuemin="0"
            aria-valuemax="100"
            aria-valuenow=${job ? percent : nothing}
            aria-valuetext=${valueText || m.waiting}
          >
            <div part="bar-indicator" class="indicator" style=${styleMap({ transform: `scaleX(${job ? progress : 0.3})` })}></div>
          </div>
          <div class="meta">
            <span part="percentage" class="percentage" aria-hidden="true">${job ? percentText : ''}</span>
            <span part="eta" class="eta"
              >${etaText}${offline && running
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
        ${this.cancelable && job && !ended && !canceling ? this.renderCancel() : nothing}
        ${job && (job.status === 'failed' || job.status === 'canceled') ? this.renderFailure(job, failedStep) : nothing}
        ${this._notice && !(job && job.status === 'failed')
          ? html`<p part="error" class="notice" role="alert"><span part="error-message">${this._notice.message}</span></p>`
          : nothing}
        <div
          part="body"
          class=${classMap({ body: true, 'body--empty': !this._hasContent && !this._hasSkeleton, 'body--done': job?.status === 'completed', 'body--busy': busy })}
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

  private renderFailure(job: Job, failedStep: Step | undefined): TemplateResult {
    const m = this.m;
    const error = job.error ?? failedStep?.error;
    const retryable = job.status === 'failed' && error?.retryable !== false;
    const stepLabel = failedStep?.label;
    // Focus stays on the button while the retry is under way (aria-disabled, not disabled).
    const retrying = this.retryTask.status === TaskStatus.PENDING;
    const canceled = job.status === 'canceled';
    // The server's own end of a cancel (cancel_timeout) says nothing a user needs: "Canceled".
    const message = canceled && (!error || error.code === 'cancel_timeout') ? m.canceled : (error?.message ?? m.failed);
    return html`<div part="error" class="error" role="group" aria-label=${canceled ? m.canceled : m.failed}>
      <span class="error-icon" aria-hidden="true">${stepIcon(canceled ? 'canceled' : 'failed')}</span>
      <div class="error-text">
        ${stepLabel ? html`<strong class="error-step">${m.failedStep(stepLabel)}</strong>` : nothing}
        <span part="error-message" class="error-message">${message}</span>
      </div>
      ${retryable
        ? html`<button
            part="retry"
            class="retry"
            type="button"
            aria-disabled=${retrying ? 'true' : 'false'}
            @click=${() => this.retry()}
          >
            ${retrying ? m.retrying : stepLabel ? m.retryStep(stepLabel) : m.retry}
          </button>`
        : nothing}
    </div>`;
  }

  /** The Cancel button (with the server's refusal, if any), or in its place the inline confirmation. */
  private renderCancel(): TemplateResult {
    const m = this.m;
    // Kept on few lines: whitespace inside templates is not minified and the bundle has a budget.
    if (this._confirming) {
      return html`<div part="cancel-confirmation" class="actions" role="group" aria-labelledby="cancel-question" @keydown=${this.onConfirmationKey}
        ><span part="cancel-question" id="cancel-question">${m.cancelQuestion}</span
        ><button part="cancel-confirm" class="confirm" type="button" @click=${this.confirmCancel}>${m.cancelConfirm}</button
        ><button part="cancel-keep" class="keep" type="button" @click=${this.keepRunning}>${m.cancelKeep}</button></div
      >`;
    }
    // Focus stays on the button while the cancel is under way (aria-disabled, not disabled).
    const pending = this.cancelTask.status === TaskStatus.PENDING;
    const refusal = this._cancelError;
    return html`<div class="actions"
      >${refusal ? html`<span part="cancel-error" id="cancel-error" class="cancel-error">${m.cancelFailed(refusal)}</span>` : nothing}<button
        part="cancel" class="cancel" type="button" aria-disabled=${pending ? 'true' : 'false'} aria-describedby=${refusal ? 'cancel-error' : nothing} @click=${this.askCancel}
      >${pending ? m.canceling : m.cancel}</button></div
    >`;
  }
}

declare global {
  interface HTMLElementTagNameMap {
    'progress-tracker': ProgressTracker;
  }
}
