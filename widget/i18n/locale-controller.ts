/**
 * The language of an element, as a Lit ReactiveController: `lang` on the element or its nearest
 * ancestor (crossing shadow roots), re-read before every update; a change of `lang` anywhere in
 * the document (`<html lang>` switched by the page) re-renders every element that uses one.
 * The sentences come from the best table for that language — `de-CH` → `de` → English — each
 * loaded on first use with a dynamic import (a separate chunk next to the script-tag bundle;
 * English is built in). Until a table has loaded the element keeps the one it had.
 */
import type { ReactiveController, ReactiveControllerHost } from 'lit';
import { defaultMessages, type Messages } from './messages.js';

type Loader = () => Promise<{ default: Messages }>;

/** The languages with a table, by primary subtag (or full tag, e.g. a future `zh-hant`). */
const LOADERS: Record<string, Loader> = {
  ar: () => import('./locales/ar.js'),
  de: () => import('./locales/de.js'),
  es: () => import('./locales/es.js'),
  fr: () => import('./locales/fr.js'),
  he: () => import('./locales/he.js'),
  it: () => import('./locales/it.js'),
  ja: () => import('./locales/ja.js'),
  ko: () => import('./locales/ko.js'),
  nl: () => import('./locales/nl.js'),
  pl: () => import('./locales/pl.js'),
  pt: () => import('./locales/pt.js'),
  zh: () => import('./locales/zh.js'),
};

/** Languages written right to left (primary subtags). */
const RTL = /^(ar|he|fa|ur|ps|yi|dv|ckb|ug)\b/i;

/** Loaded tables, and loads under way (a failed one is forgotten, so the next update tries again). */
const tables: Record<string, Messages | Promise<unknown> | undefined> = { en: defaultMessages };

/**
 * The table key for a language tag: the longest prefix of it with a table — `de-CH-1996` →
 * `de-ch-1996`, `de-ch`, `de` — else English.
 */
export function resolveLocale(tag: string | undefined): string {
  let t = (tag ?? '').toLowerCase();
  while (t && !(t in LOADERS)) t = t.replace(/[-_]?[^-_]*$/, '');
  return t || 'en';
}

/** `lang` of `el` or its nearest ancestor, crossing shadow roots; undefined when nobody says. */
export function effectiveLang(el: Element): string | undefined {
  let node: Element | null = el;
  while (node) {
    const withLang = node.closest<HTMLElement>('[lang]');
    if (withLang) return withLang.lang || undefined;
    const root = node.getRootNode();
    node = root instanceof ShadowRoot ? root.host : null;
  }
  return undefined;
}

const hosts = new Set<ReactiveControllerHost>();
let observer: MutationObserver | undefined;

export class LocaleController implements ReactiveController {
  /** The element's language tag for Intl (numbers, durations, plurals), as written. */
  lang: string | undefined;
  private table: Messages = defaultMessages;

  constructor(private readonly host: ReactiveControllerHost & HTMLElement & { messages: Partial<Messages> }) {
    host.addController(this);
  }

  /** The sentences in the element's language, with the app's `messages` overrides on top. */
  get messages(): Messages {
    return { ...this.table, ...this.host.messages };
  }

  /** Writing direction of the language. */
  get dir(): 'ltr' | 'rtl' {
    return RTL.test(this.lang ?? '') ? 'rtl' : 'ltr';
  }

  /**
   * One observer for every element: `lang` anywhere in the document, and on each element itself
   * (which may live in a shadow root the document's subtree does not reach). The native `lang`
   * property stays untouched (a Lit `lang` property would reflect `lang=""` and cut the page's
   * language off).
   */
  hostConnected(): void {
    hosts.add(this.host);
    if (typeof MutationObserver === 'undefined') return;
    const options = { attributes: true, attributeFilter: ['lang'], subtree: true };
    if (!observer) {
      observer = new MutationObserver(() => hosts.forEach((h) => h.requestUpdate()));
      observer.observe(this.host.ownerDocument, options);
    }
    observer.observe(this.host, options);
  }

  hostDisconnected(): void {
    hosts.delete(this.host);
    if (!hosts.size) {
      observer?.disconnect();
      observer = undefined;
    }
  }

  /** Before every update: the language may have changed (own attribute, an ancestor's, the page's). */
  hostUpdate(): void {
    this.lang = effectiveLang(this.host);
    const locale = resolveLocale(this.lang);
    const table = tables[locale];
    if (table && !(table instanceof Promise)) this.table = table;
    else if (!table) {
      // Loading: the current table stays until this one is here, then every element re-renders.
      tables[locale] = LOADERS[locale]!().then(
        (mod) => {
          tables[locale] = mod.default;
          hosts.forEach((h) => h.requestUpdate());
        },
        () => (tables[locale] = undefined),
      );
    }
  }
}
