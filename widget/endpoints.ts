/**
 * Server endpoints: `src` (and `api`) may name several servers for failover, as a space- or
 * comma-separated string (the attribute form) or an array (the property form). These helpers
 * turn either into a clean list and map a socket URL to its HTTP base.
 */

/** A single URL, a space/comma-separated list of URLs, or an array of them. */
export type EndpointList = string | readonly string[];

/**
 * Splits `src`/`api` into URLs, in order: `"wss://a/v1/ws, wss://b/v1/ws"` → two URLs.
 * Blank entries and duplicates are dropped (a duplicate would only retry the same server).
 */
export function parseEndpoints(value: EndpointList | null | undefined): string[] {
  if (value === null || value === undefined) return [];
  const parts = typeof value === 'string' ? value.split(/[\s,]+/) : value.flatMap((v) => String(v).split(/[\s,]+/));
  const seen = new Set<string>();
  const urls: string[] = [];
  for (const raw of parts) {
    const url = raw.trim();
    if (!url || seen.has(url)) continue;
    seen.add(url);
    urls.push(url);
  }
  return urls;
}

const pageBase = () => (typeof location !== 'undefined' ? location.href : 'http://localhost/');

/** Maps the socket URL to the HTTP base: wss://h/v1/ws → https://h. */
export function deriveApiBase(src: string): string {
  const url = new URL(src, pageBase());
  url.protocol = url.protocol === 'wss:' ? 'https:' : url.protocol === 'ws:' ? 'http:' : url.protocol;
  url.pathname = url.pathname.replace(/\/v1\/ws\/?$/, '') || '/';
  url.search = '';
  url.hash = '';
  return url.href.replace(/\/$/, '');
}

/** http(s): → ws(s):, relative URLs against the page. */
export function toSocketUrl(src: string): URL {
  const url = new URL(src, pageBase());
  if (url.protocol === 'https:') url.protocol = 'wss:';
  else if (url.protocol === 'http:') url.protocol = 'ws:';
  return url;
}
