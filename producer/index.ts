/**
 * The producer SDK: a small typed Node client that backend jobs use to report progress to a
 * progress-tracker server and to hear about retries and cancels. See docs/producer.md.
 *
 * @example
 * import { createProducer } from '@progress-tracker-kit/producer';
 * const producer = createProducer({ url: 'http://localhost:8080', token });
 * const job = await producer.createJob({ kind: 'export', steps: [{ id: 'collect' }, { id: 'upload' }] });
 */
export { createProducer, Producer, type ProducerOptions } from './client.js';
export { JobHandle, type Failure } from './job-handle.js';
export { ProducerError, isProducerError, type ClientErrorCode } from './errors.js';
export type {
  RetryControl,
  RetryHandler,
  CancelControl,
  CancelHandler,
  ConnectionState,
  Unsubscribe,
} from './control.js';
export type { RetryPolicy } from './retry-policy.js';
export {
  verifyWebhook,
  WebhookVerificationError,
  isWebhookVerificationError,
  WEBHOOK_TOLERANCE_SECONDS,
  type WebhookVerificationReason,
  type WebhookHeaders,
  type VerifyWebhookOptions,
} from './webhook.js';
export type { RetryAttempt } from './http.js';
export type {
  CreateJobRequest,
  EventsAccepted,
  Job,
  JobEvent,
  Step,
  StepSpec,
  JobStatus,
  ErrorCode,
  RetryWebhook,
  CancelWebhook,
  JobWebhook,
  CancelRequest,
} from '../protocol/index.js';
