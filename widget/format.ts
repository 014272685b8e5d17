/**
 * Human-readable text for the widget. Numbers, units, percentages and plurals come from Intl
 * in the element's `lang`; sentence templates come from `Messages` (English built in, override
 * any of them with the element's `messages` property).
 */

import type { Messages } from './i18n/messages.js';

export { defaultMessages, isolate, type Messages } from './i18n/messages.js';

// Intl.DurationFormat is in Chromium ≥129, Safari ≥16.4, Firefox ≥136; TS 5.9's lib lacks it.
type DurationFormatCtor = new (
  locale?: string,
  options?: { style?: 'long' | 'short' | 'narrow' },
) => { format(d: { hours?: number; minutes?: number; seconds?: number }): string };

const cache = new Map<string, unknown>();
function cached<T>(key: string, make: () => T): T {
  let v = cache.get(key) as T | undefined;
  if (v === undefined) {
    v = make();
    cache.set(key, v);
  }
  return v;
}

function unit(lang: string | undefined, u: 'hour' | 'minute' | 'second') {
  return cached(`u:${lang}:${u}`, () => new Intl.NumberFormat(lang || undefined, { style: 'unit', unit: u, unitDisplay: 'short' }));
}

/** "3 min", "1 hr, 20 min", "45 sec" in `lang`. */
export function formatDuration(ms: number, lang?: string, withSeconds = false): string {
  const totalSeconds = Math.max(0, Math.round(ms / 1000));
  const hours = Math.floor(totalSeconds / 3600);
  const minutes = Math.floor((totalSeconds % 3600) / 60);
  const seconds = totalSeconds % 60;
  const parts: { hours?: number; minutes?: number; seconds?: number } = {};
  if (hours) parts.hours = hours;
  if (minutes || (!hours && !withSeconds)) parts.minutes = minutes;
  if (withSeconds && (seconds || (!hours && !minutes))) parts.seconds = seconds;
  const DF = (Intl as unknown as { DurationFormat?: DurationFormatCtor }).DurationFormat;
  if (DF) return cached(`d:${lang}`, () => new DF(lang || undefined, { style: 'short' })).format(parts);
  const out: string[] = [];
  if (parts.hours) out.push(unit(lang, 'hour').format(parts.hours));
  if (parts.minutes !== undefined) out.push(unit(lang, 'minute').format(parts.minutes));
  if (parts.seconds !== undefined) out.push(unit(lang, 'second').format(parts.seconds));
  return out.join(' ');
}

/** Rounds a remaining time the way people say it: whole minutes, then 5-minute steps past an hour. */
export function roundRemaining(ms: number): number {
  const minutes = ms / 60_000;
  if (minutes < 60) return Math.round(minutes) * 60_000;
  return Math.round(minutes / 5) * 5 * 60_000;
}

/** "about 3 min left", "less than a minute left", "finishing…". */
export function formatRemaining(
  remainingMs: number,
  lang: string | undefined,
  m: Messages,
  range?: { low: number; high: number },
): string {
  if (remainingMs <= 1000) return m.finishing;
  if (remainingMs < 60_000) return m.lessThanMinute;
  const text = m.remaining(formatDuration(roundRemaining(remainingMs), lang));
  if (!range) return text;
  const lowMin = Math.max(1, Math.round(range.low / 60_000));
  const highMin = Math.round(range.high / 60_000);
  // The range is only worth showing when it says more than the rounded value itself.
  if (highMin - lowMin < 2 || highMin >= 60) return text;
  const fmt = unit(lang, 'minute') as Intl.NumberFormat & { formatRange?: (a: number, b: number) => string };
  const rangeText = fmt.formatRange ? fmt.formatRange(lowMin, highMin) : `${fmt.format(lowMin)}–${fmt.format(highMin)}`;
  return m.remainingRange(formatDuration(roundRemaining(remainingMs), lang), rangeText);
}

export function formatPercent(fraction: number, lang?: string): string {
  return cached(`p:${lang}`, () => new Intl.NumberFormat(lang || undefined, { style: 'percent', maximumFractionDigits: 0 })).format(
    Math.floor(fraction * 100) / 100,
  );
}

/** `n` in `lang` with its plural category (or, `type` 'ordinal', its ordinal one: English 3 → 'few', "3rd"). */
export function formatCount(n: number, lang?: string, type: Intl.PluralRuleType = 'cardinal'): { text: string; plural: Intl.LDMLPluralRule } {
  return {
    text: cached(`n:${lang}`, () => new Intl.NumberFormat(lang || undefined)).format(n),
    plural: cached(`pl:${lang}:${type}`, () => new Intl.PluralRules(lang || undefined, { type })).select(n),
  };
}
