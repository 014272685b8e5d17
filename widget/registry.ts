import { NotificationBadge } from './notification-badge.js';
import { ProgressTracker } from './progress-tracker.js';

/**
 * Register `<progress-tracker>` and `<notification-badge>`. Safe to call more than once and
 * when another copy (a second bundle, a micro-frontend) already defined the tags: the first
 * definition wins instead of throwing "name already used".
 */
export function defineProgressTracker(registry: CustomElementRegistry = customElements): void {
  if (!registry.get('progress-tracker')) registry.define('progress-tracker', ProgressTracker);
  if (!registry.get('notification-badge')) registry.define('notification-badge', NotificationBadge);
}
