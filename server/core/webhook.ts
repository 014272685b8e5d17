/**
 * Retry webhooks: `POST <job.webhook>` with `{type:"retry",jobId,step,seq}` so a producer that is
 * not connected over the WebSocket still learns it should resume. A few attempts with
 * exponential backoff and a per-attempt timeout; delivery runs in the background and never
 * blocks or fails the retry request itself. Any 2xx is success; 4xx other than 408/429 is final.
 *
 * Signed per Standard Webhooks (https://www.standardwebhooks.com): every attempt carries
 * `webhook-id` (one per delivery, the same on each of its attempts: receivers dedupe on it),
 * `webhook-timestamp` (the attempt's time, integer seconds) and `webhook-signature:
 * v1,<base64 HMAC-SHA256 of "id.timestamp.body">` keyed with the bytes of PT_WEBHOOK_SECRET
 * (`whsec_<base64>`). Without a secret nothing is sent unless PT_WEBHOOK_UNSIGNED allows it; the
 * HTTP API already refuses such jobs (`webhook_secret_required`), this covers jobs created
 * before a restart without the secret and embedding code that creates jobs directly.
 * Receivers verify with the producer SDK's `verifyWebhook` (producer/webhook.ts), which shares
 * no code with this file.
 *
 * `JobWebhooks` listens to the job service's `retry` and `cancel`, wired in assembly like the hub.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { sleep, type JobWebhook } from '../../protocol/index.js';
import type { Logger } from '../app/log.js';
import type { JobRecord } from '../store/store.js';
import type { CancelNotice, RetryNotice } from './job-service-events.js';

export const WEBHOOK_SECRET_PREFIX = 'whsec_';

export interface WebhookOptions {
  timeoutMs?: number;
  attempts?: number;
  /** First backoff delay; doubles each attempt. */
  backoffMs?: number;
  /** `whsec_<base64 key>`: sign every attempt. Unset: attempts go out unsigned. */
  secret?: string;
}

/**
 * The HMAC key of a `whsec_<base64>` secret: the base64-decoded bytes after the prefix. Throws
 * on anything else (config.ts has already refused such a secret with a message).
 */
export function webhookKey(secret: string): Buffer {
  const b64 = secret.startsWith(WEBHOOK_SECRET_PREFIX) ? secret.slice(WEBHOOK_SECRET_PREFIX.length) : '';
  const key = Buffer.from(b64, 'base64');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64) || key.length === 0) throw new Error('webhook secret must be whsec_ followed by base64');
  return key;
}

/** `v1,<base64 HMAC-SHA256(key, "id.timestamp.body")>`, `timestamp` in integer seconds. */
export function signWebhook(key: Buffer, id: string, timestamp: number, body: string): string {
  return `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
}

/** A fresh delivery id: `msg_` and 144 random bits, base64url (never a `.`, which the signed content uses as delimiter). */
export function newWebhookId(): string {
  return `msg_${randomBytes(18).toString('base64url')}`;
}

export async function deliverWebhook(
  url: string,
  payload: JobWebhook,
  log: Logger,
  { timeoutMs = 5000, attempts = 4, backoffMs = 500, secret }: WebhookOptions = {},
  signal?: AbortSignal,
): Promise<boolean> {
  const body = JSON.stringify(payload);
  const target = safeUrl(url);
  const key = secret !== undefined ? webhookKey(secret) : undefined;
  // One id for the delivery, kept across its attempts; the timestamp (and so the signature) is each attempt's own.
  const webhookId = newWebhookId();
  for (let attempt = 1; attempt <= attempts; attempt++) {
    if (signal?.aborted) return false;
    const timestamp = Math.floor(Date.now() / 1000);
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'progress-tracker-webhook/1',
          'webhook-id': webhookId,
          'webhook-timestamp': String(timestamp),
          ...(key && { 'webhook-signature': signWebhook(key, webhookId, timestamp, body) }),
        },
        body,
        redirect: 'manual',
        signal: signal ? AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]) : AbortSignal.timeout(timeoutMs),
      });
      await res.body?.cancel().catch(() => undefined);
      if (res.ok) {
        log.info({ jobId: payload.jobId, type: payload.type, url: target, webhookId, attempt }, `${payload.type} webhook delivered`);
        return true;
      }
      const final = res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429;
      log.warn({ jobId: payload.jobId, url: target, webhookId, attempt, status: res.status }, `${payload.type} webhook refused`);
      if (final) return false;
    } catch (err) {
      log.warn({ jobId: payload.jobId, url: target, webhookId, attempt, err: (err as Error).message }, `${payload.type} webhook failed`);
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

export interface JobWebhooksOptions extends WebhookOptions {
  /** Without `secret`: send unsigned (PT_WEBHOOK_UNSIGNED, local experiments). Otherwise nothing is sent. */
  unsigned?: boolean;
}

/** Sends each retry and cancel of a job that has a `webhook` to it; `close` ends deliveries at their current attempt. */
export class JobWebhooks {
  private readonly abort = new AbortController();
  private readonly pending = new Set<Promise<unknown>>();

  constructor(
    private readonly log: Logger,
    private readonly options: JobWebhooksOptions = {},
  ) {
    if (options.secret !== undefined) webhookKey(options.secret); // fail at start, not at the first retry
    else if (options.unsigned) log.warn('webhooks are sent unsigned (PT_WEBHOOK_UNSIGNED): receivers cannot tell them from forgeries; set PT_WEBHOOK_SECRET outside local experiments');
  }

  readonly onRetry = (notice: RetryNotice, record: Readonly<JobRecord>): void => {
    this.send(record, { type: 'retry', jobId: notice.jobId, step: notice.step, seq: notice.seq });
  };

  readonly onCancel = (notice: CancelNotice, record: Readonly<JobRecord>): void => {
    this.send(record, { type: 'cancel', jobId: notice.jobId, seq: notice.seq, ...(notice.reason !== undefined && { reason: notice.reason }) });
  };

  private send(record: Readonly<JobRecord>, payload: JobWebhook): void {
    if (!record.webhook || this.abort.signal.aborted) return;
    if (this.options.secret === undefined && !this.options.unsigned) {
      this.log.warn({ jobId: payload.jobId, url: safeUrl(record.webhook) }, `${payload.type} webhook not sent: PT_WEBHOOK_SECRET is not set (PT_WEBHOOK_UNSIGNED=1 allows unsigned delivery)`);
      return;
    }
    const delivery = deliverWebhook(record.webhook, payload, this.log, this.options, this.abort.signal);
    this.pending.add(delivery);
    void delivery.finally(() => this.pending.delete(delivery));
  }

  async close(): Promise<void> {
    this.abort.abort();
    await Promise.allSettled([...this.pending]);
  }
}
