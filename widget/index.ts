/**
 * Side-effect-free entry: classes, the headless client and helpers. Nothing is registered;
 * import `@progress-tracker-kit/widget/define` (or call `defineProgressTracker()`) for the tags.
 */
export { ProgressTracker, type StepSpec } from './progress-tracker.js';
export { NotificationBadge } from './notification-badge.js';
export {
  ProgressClient,
  deriveApiBase,
  parseEndpoints,
  type EndpointList,
  type ConnectionState,
  type ConnectionTransport,
  type ProgressClientEvents,
  type ProgressClientOptions,
  type ProgressErrorInfo,
  type TokenProvider,
} from './progress-client.js';
export { FeedClient, type FeedClientEvents, type FeedClientOptions } from './feed-client.js';
export type { ChannelOptions } from './channel-types.js';
export { ConnectionController } from './connection-controller.js';
export { FinishTimeSmoother, estimateProgress, MAX_ESTIMATED_PROGRESS } from './estimate.js';
export { defaultMessages, formatDuration, formatRemaining, type Messages } from './format.js';
export { requestNotificationPermission, notifyIfHidden } from './notifications.js';
export type { ProgressCancelDetail, ProgressConnectionEvent, ProgressEventDetails, ProgressRetryDetail } from './events.js';
export { defineProgressTracker } from './registry.js';
export type { Job, JobSummary, Step, Eta, JobStatus, StepStatus } from '../protocol/index.js';
