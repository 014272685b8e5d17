/**
 * Retry webhooks: `POST <job.webhook>` with `{type:"retry",jobId,step,seq}` so a producer that is
 * not connected over the WebSocket still learns it should resume. A few attempts with
 * exponential backoff and a per-attempt timeout; delivery runs in the background and never
 * blocks or fails the retry request itself. Any 2xx is success; 4xx other than 408/429 is final.
 *
 * `RetryWebhooks` is a `retry` listener of the job service, wired in assembly like the hub.
 */
import { sleep, type RetryWebhook } from '../../protocol/index.js';
import type { Logger } from '../app/log.js';
import type { JobRecord } from '../store/store.js';
import type { RetryNotice } from './job-service.js';

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
    if (attempt < attempts) await sleep(backoffMs * 2 ** (attempt - 1), signal).catch(() => undefined);
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

/** Sends each retry of a job that has a `webhook` to it; `close` ends deliveries at their current attempt. */
export class RetryWebhooks {
  private readonly abort = new AbortController();
  private readonly pending = new Set<Promise<unknown>>();

  constructor(
    private readonly log: Logger,
    private readonly options: WebhookOptions = {},
  ) {}

  readonly onRetry = (notice: RetryNotice, record: Readonly<JobRecord>): void => {
    if (!record.webhook || this.abort.signal.aborted) return;
    const payload: RetryWebhook = { type: 'retry', jobId: notice.jobId, step: notice.step, seq: notice.seq };
    const delivery = deliverWebhook(record.webhook, payload, this.log, this.options, this.abort.signal);
    this.pending.add(delivery);
    void delivery.finally(() => this.pending.delete(delivery));
  };

  async close(): Promise<void> {
    this.abort.abort();
    await Promise.allSettled([...this.pending]);
  }
}
