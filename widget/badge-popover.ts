/**
 * The inside of `<notification-badge>`'s popover (with `src`): the recent jobs, newest first, each
 * with its state in words, how long ago, "new" while unseen and (with `href-template`) a link;
 * then "Mark all as seen".
 *
 * Only needed once the popover opens, so it is its own chunk of the script-tag bundle, loaded on
 * the first sign of use (the button hovered, focused or activated; the badge's `updateComplete`
 * waits for it while the popover opens). Like cancel-flow.ts it imports nothing at run time — Lit's
 * `html`, the badge's state and actions come in through `PopoverKit` — so the chunk never pulls in
 * a second copy of the bundle.
 */
import type { TemplateResult, html as litHtml } from 'lit';
import type { JobSummary } from '../protocol/index.js';
import type { Messages } from './i18n/messages.js';

export interface PopoverKit {
  html: typeof litHtml;
  /** The job's title (its `meta.title`, else its kind). */
  title: (job: JobSummary) => string;
  /** Finished and not seen yet. */
  unseen: (job: JobSummary) => boolean;
  /** The badge's language. */
  lang: () => string | undefined;
  /** `href-template` with the job's id, or '' for no link. */
  href: (job: JobSummary) => string;
  /** The job's link was followed. */
  follow: (job: JobSummary) => void;
  /** "Mark all as seen". */
  clear: () => void;
}

const ICONS: Record<string, string> = { completed: '✓', failed: '✕', canceled: '■' };
const relative = new Map<string | undefined, Intl.RelativeTimeFormat>();

/** "now", "3 minutes ago", "yesterday" in `lang`, for a time `ms` in the past (a future time, from a fast server clock, reads "now"). */
export function formatAgo(ms: number, lang?: string): string {
  const s = Math.max(0, ms / 1000);
  const [n, unit]: [number, Intl.RelativeTimeFormatUnit] = s < 60 ? [0, 'second'] : s < 3600 ? [s / 60, 'minute'] : s < 86400 ? [s / 3600, 'hour'] : [s / 86400, 'day'];
  let format = relative.get(lang);
  if (!format) relative.set(lang, (format = new Intl.RelativeTimeFormat(lang || undefined, { numeric: 'auto' })));
  return format.format(-Math.floor(n), unit);
}

export function popoverContent(kit: PopoverKit, list: JobSummary[], m: Messages): TemplateResult {
  const { html } = kit;
  const now = Date.now();
  const lang = kit.lang();
  const item = (job: JobSummary) => {
    const href = kit.href(job);
    const title = kit.title(job);
    const status = { completed: m.done, failed: m.failed, canceled: m.canceled, queued: m.stepState.pending, running: m.stepState.running }[job.status];
    // The state in words too (not by icon or color alone); the icon is decoration.
    return html`<li part="item"><span aria-hidden="true">${ICONS[job.status]}</span> <bdi>${href ? html`<a part="link" href=${href} @click=${() => kit.follow(job)}>${title}</a>` : title}</bdi><br /><small>${status} · ${formatAgo(now - job.updatedAt, lang)}${kit.unseen(job) ? ` · ${m.unseen}` : ''}</small></li>`;
  };
  return html`<ul part="list" aria-label=${m.recentJobs}>${list.length ? list.map(item) : html`<li>${m.noJobs}</li>`}</ul><button part="mark-seen" type="button" @click=${kit.clear}>${m.markAllSeen}</button>`;
}
