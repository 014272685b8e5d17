/**
 * Every sentence the widgets show or announce, as typed keys: strings, or functions of their
 * parameters (numbers and durations come in already formatted by Intl in the element's language,
 * with the plural or ordinal category where a sentence depends on it). English is built in; each
 * other language is a module in ./locales/ exporting a complete `Messages` table (the type
 * checker says when a key is missing), loaded on first use.
 *
 * Producer-supplied text (step labels, job titles, error messages) reaches these functions
 * bidi-isolated (`isolate()`), so a Hebrew label inside a German sentence, or a Latin label
 * inside an Arabic one, keeps its own direction.
 */

export interface Messages {
  /** "about 3 min left" — `duration` is already localized. */
  remaining: (duration: string) => string;
  /** "about 3 min left (2–5 min)" */
  remainingRange: (duration: string, range: string) => string;
  lessThanMinute: string;
  finishing: string;
  /** Total time once done: "Done in 4 min 12 sec". */
  doneIn: (duration: string) => string;
  done: string;
  failed: string;
  canceled: string;
  waiting: string;
  /** Running, but the server has no estimate yet. */
  estimating: string;
  /** The producer has been silent (`job.stalled`): "No update for 5 min" — `duration` is already localized. */
  stalled: (duration: string) => string;
  /** Offline before any state arrived: nothing to estimate from. */
  unreachable: string;
  /** Shown next to the ETA while the server cannot be reached. */
  estimate: string;
  stepOf: (current: number, total: number) => string;
  stepState: { completed: string; running: string; pending: string; failed: string };
  connection: { connecting: string; live: string; reconnecting: string; polling: string; offline: string; closed: string };
  /** Live-region sentences. */
  announceStep: (label: string, current: number, total: number) => string;
  announceDone: string;
  announceFailed: (message: string) => string;
  announceConnectionLost: string;
  announceConnectionRestored: string;
  announceOffline: string;
  retry: string;
  retryStep: (label: string) => string;
  /** The Retry button while the server has not answered yet. */
  retrying: string;
  failedStep: (label: string) => string;
  /** The Cancel button (`cancelable`). */
  cancel: string;
  /** The bar, the running step and the Cancel button while the cancel is under way. */
  canceling: string;
  /** The inline confirmation: its question and its two buttons. */
  cancelQuestion: string;
  cancelConfirm: string;
  cancelKeep: string;
  /** The server refused the cancel (e.g. a token without `progress:cancel`). */
  cancelFailed: (message: string) => string;
  /** Live region: the job ended canceled. */
  announceCanceled: string;
  defaultLabel: string;
  /** `<notification-badge>` accessible name. */
  jobsFinished: (count: number, formatted: string, plural: Intl.LDMLPluralRule) => string;
  notificationDone: (label: string) => string;
  notificationFailed: (label: string) => string;
  notificationCanceled: (label: string) => string;
  /** `<notification-badge>`'s popover (with `src`): the list's name, an empty list, a job not yet seen, the button. */
  recentJobs: string;
  noJobs: string;
  unseen: string;
  markAllSeen: string;
  /** A queued job's place: "Next in line", "3rd in line" — `place` is 1 + the jobs ahead, `formatted` in `lang`, `ordinal` its Intl.PluralRules ordinal category. */
  inLine: (place: number, formatted: string, ordinal: Intl.LDMLPluralRule) => string;
  /** The waiting part of a queued job's ETA: "starts in about 2 min" — `duration` is already localized. */
  startsIn: (duration: string) => string;
  /** The wait is almost over. */
  startsSoon: string;
  /** A request (retry, cancel) could not reach the server: said instead of the network error. */
  requestUnreachable: string;
  /** The server refused a request for lack of rights (unauthorized, forbidden). */
  notAllowed: string;
  /** The job is not known to the server. */
  notFound: string;
  /** Any other refusal (the server's own text goes in the event's detail). */
  requestRefused: string;
}

const EN_ORDINAL: Partial<Record<Intl.LDMLPluralRule, string>> = { one: 'st', two: 'nd', few: 'rd' };

/** English, built in (the other languages are loaded when used: locale-controller.ts). */
export const defaultMessages: Messages = {
  remaining: (d) => `about ${d} left`,
  remainingRange: (d, r) => `about ${d} left (${r})`,
  lessThanMinute: 'less than a minute left',
  finishing: 'finishing…',
  doneIn: (d) => `Done in ${d}`,
  done: 'Done',
  failed: 'Failed',
  canceled: 'Canceled',
  waiting: 'Waiting for progress…',
  estimating: 'Estimating time left…',
  stalled: (duration) => `No update for ${duration}`,
  unreachable: 'Cannot reach the progress server, retrying…',
  estimate: 'estimate',
  stepOf: (c, t) => `Step ${c} of ${t}`,
  stepState: { completed: 'completed', running: 'in progress', pending: 'not started', failed: 'failed' },
  connection: {
    connecting: 'Connecting…',
    live: 'Live',
    reconnecting: 'Connection lost, reconnecting…',
    polling: 'Live connection unavailable, checking periodically',
    offline: 'Offline: showing an estimate',
    closed: '',
  },
  announceStep: (label, c, t) => `Step ${c} of ${t}: ${label}`,
  announceDone: 'Job completed',
  announceFailed: (m) => `Job failed: ${m}`,
  announceConnectionLost: 'Connection lost, reconnecting',
  announceConnectionRestored: 'Connection restored',
  announceOffline: 'Server unreachable, showing an estimate',
  retry: 'Retry',
  retryStep: (label) => `Retry from “${label}”`,
  retrying: 'Retrying…',
  failedStep: (label) => `Failed at “${label}”`,
  cancel: 'Cancel',
  canceling: 'Canceling…',
  cancelQuestion: 'Cancel this job?',
  cancelConfirm: 'Cancel job',
  cancelKeep: 'Keep running',
  cancelFailed: (m) => `Could not cancel: ${m}`,
  announceCanceled: 'Job canceled',
  defaultLabel: 'Job progress',
  // Starts with the visible count, so the accessible name matches what is seen (WCAG 2.5.3).
  jobsFinished: (_count, formatted, plural) => `${formatted} ${plural === 'one' ? 'job' : 'jobs'} finished`,
  notificationDone: (label) => `${label}: done`,
  notificationFailed: (label) => `${label}: failed`,
  notificationCanceled: (label) => `${label}: canceled`,
  recentJobs: 'Recent jobs',
  noJobs: 'No jobs yet',
  unseen: 'new',
  markAllSeen: 'Mark all as seen',
  inLine: (place, n, ordinal) => (place === 1 ? 'Next in line' : `${n}${EN_ORDINAL[ordinal] ?? 'th'} in line`),
  startsIn: (d) => `starts in about ${d}`,
  startsSoon: 'starts in less than a minute',
  requestUnreachable: 'Cannot reach the server. Try again.',
  notAllowed: 'Not allowed',
  notFound: 'This job no longer exists',
  requestRefused: 'The server refused the request',
};

/** First-strong isolate: `text` keeps its own direction inside a sentence of another (U+2068 … U+2069). */
export const isolate = (text: string): string => `\u2068${text}\u2069`;
