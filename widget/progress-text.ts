/**
 * What `<progress-tracker>` says about where the job is, as text: the ETA line ("about 3 min
 * left", "3rd in line · starts in about 2 min", "Done in 4 min"), the percentage, and the progress
 * bar's `aria-valuetext`. Pure: time, the last state and the sentences come in as arguments.
 */
import { isTerminal, type Job, type Step } from '../protocol/index.js';
import { currentStepIndex, estimateProgress, jobDuration } from './estimate.js';
import { formatCount, formatDuration, formatPercent, formatRemaining, roundRemaining, type Messages } from './format.js';

export interface ProgressTextInput {
  job: Job | undefined;
  steps: Step[];
  now: number;
  /** When the shown state arrived, and the finish time shown (FinishTimeSmoother). */
  receivedAt: number;
  finishAt: number | null;
  /** The highest progress shown since the last reset (the bar does not wobble backwards). */
  shownProgress: number;
  /** No server answers: the progress is a local estimate (no server range is shown). */
  estimating: boolean;
  lang: string | undefined;
  m: Messages;
}

export interface ProgressText {
  /** 0..1 as shown. */
  progress: number;
  percent: number;
  percentText: string;
  etaText: string;
  valueText: string;
  stepIndex: number;
  canceling: boolean;
}

/** A queued job's wait: "3rd in line · starts in about 2 min", counting down from `eta.waitMs`. */
export function queueText(job: Job, elapsedMs: number, lang: string | undefined, m: Messages): string | undefined {
  const parts: string[] = [];
  const position = job.queue?.position;
  if (typeof position === 'number' && position >= 0) {
    const { text, plural } = formatCount(position + 1, lang, 'ordinal');
    parts.push(m.inLine(position + 1, text, plural));
  }
  const waitMs = job.eta?.waitMs;
  if (typeof waitMs === 'number') {
    const left = Math.max(0, waitMs - elapsedMs);
    parts.push(left < 60_000 ? m.startsSoon : m.startsIn(formatDuration(roundRemaining(left), lang)));
  }
  return parts.length ? parts.join(' · ') : undefined;
}

export function progressText(i: ProgressTextInput): ProgressText {
  const { job, m, lang, now } = i;
  const ended = !!job && isTerminal(job.status);
  // Asked to cancel, still running: the producer is stopping, so the bar no longer glides on.
  const canceling = !!job?.cancelRequested && !ended;
  let progress = 0;
  let remainingMs: number | null = null;
  if (job) {
    const est = estimateProgress(job, i.receivedAt, i.finishAt, now);
    progress = job.status === 'completed' ? 1 : Math.max(i.shownProgress, canceling ? job.progress : est.progress);
    remainingMs = est.remainingMs;
  }
  const percentText = formatPercent(progress, lang);

  let etaText: string;
  if (!job) etaText = m.waiting;
  else if (job.status === 'completed') {
    const took = jobDuration(job);
    etaText = took >= 1000 ? m.doneIn(formatDuration(took, lang, true)) : m.done;
  } else if (job.status === 'failed') etaText = m.failed;
  else if (job.status === 'canceled') etaText = m.canceled;
  else if (canceling) etaText = m.canceling;
  else if (job.stalled) {
    const silent = Math.max(0, now - job.stalled.since);
    etaText = m.stalled(formatDuration(silent, lang, silent < 60_000));
  } else if (job.status === 'queued') etaText = queueText(job, now - i.receivedAt, lang, m) ?? m.waiting;
  else if (remainingMs === null) etaText = m.estimating;
  else {
    const eta = job.eta;
    // The server's 80% range, shifted by the time since it was received (not for a local estimate).
    const elapsed = now - i.receivedAt;
    const range =
      eta && eta.low !== undefined && eta.high !== undefined && !i.estimating
        ? { low: Math.max(0, eta.low - elapsed), high: Math.max(0, eta.high - elapsed) }
        : undefined;
    etaText = formatRemaining(remainingMs, lang, m, range);
  }

  const stepIndex = job ? currentStepIndex(job) : 0;
  const valueText = [
    i.steps.length && job && !ended ? m.stepOf(stepIndex, i.steps.length) : '',
    job ? percentText : '',
    job && job.status === 'completed' ? m.done : etaText,
    job?.status === 'running' && i.estimating ? m.estimate : '',
  ]
    .filter(Boolean)
    .join(', ');
  return { progress, percent: Math.floor(progress * 100), percentText, etaText, valueText: valueText || m.waiting, stepIndex, canceling };
}
