/**
 * Retry webhooks: `POST <job.webhook>` with `{type:"retry",jobId,step,seq}` so a producer that is
 * not connected over the WebSocket still learns it should resume. A few attempts with
 * exponential backoff and a per-attempt timeout; delivery runs in the background and never
 * blocks or fails the retry request itself. Any 2xx is success; 4xx other than 408/429 is final.
 */
import type { Logger } from '../app/log.js';
import type { RetryWebhook } from '../../protocol/index.js';

export interface WebhookOptions {
  timeoutMs?: number;
  attempts?: number;
  /** First backoff delay; doubles each attempt. */
  backoffMs?: number;
}

export async function deliverWebhook(
  url: string,
  payload: RetryWebhook,
  log: Logger,
  { timeoutMs = 5000, attempts = 4, backoffMs = 500 }: WebhookOptions = {},
  signal?: AbortSignal,
): Promise<boolean> {
  const body = JSON.stringify(payload);
  const target = safeUrl(url);
  for (let attempt = 1; attempt <= attempts; attempt++) {
    if (signal?.aborted) return false;
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'progress-tracker-webhook/1' },
        body,
        redirect: 'manual',
        signal: signal ? AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]) : AbortSignal.timeout(timeoutMs),
      });
      await res.body?.cancel().catch(() => undefined);
      if (res.ok) {
        log.info({ jobId: payload.jobId, step: payload.step, url: target, attempt }, 'retry webhook delivered');
        return true;
      }
      const final = res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429;
      log.warn({ jobId: payload.jobId, url: target, attempt, status: res.status }, 'retry webhook refused');
      if (final) return false;
    } catch (err) {
      log.warn({ jobId: payload.jobId, url: target, attempt, err: (err as Error).message }, 'retry webhook failed');
    }
    if (attempt < attempts) await sleep(backoffMs * 2 ** (attempt - 1), signal);
  }
  return false;
}

/** Origin and path only: webhook URLs may carry credentials in their query. */
function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return '[invalid url]';
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}
