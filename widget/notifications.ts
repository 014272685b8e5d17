/**
 * System notifications for jobs that end while the page is hidden. Permission is asked only
 * by `requestNotificationPermission()`, which must run from a user gesture (a click handler):
 * browsers block or penalize prompts that appear on their own. Denied means silence.
 */

/** Ask for permission to show notifications. Call it from a click/keypress handler. */
export async function requestNotificationPermission(): Promise<NotificationPermission> {
  if (typeof Notification === 'undefined') return 'denied';
  if (Notification.permission !== 'default') return Notification.permission;
  return Notification.requestPermission();
}

export interface JobNotification {
  title: string;
  body?: string;
  /** One notification per job: a later one replaces the earlier. */
  tag: string;
}

/**
 * Show a notification if the page is hidden and permission was granted; returns it (or
 * undefined when nothing was shown). Clicking it brings the page back.
 */
export function notifyIfHidden(n: JobNotification): Notification | undefined {
  if (typeof Notification === 'undefined' || Notification.permission !== 'granted') return undefined;
  if (typeof document === 'undefined' || document.visibilityState !== 'hidden') return undefined;
  try {
    const notification = new Notification(n.title, { body: n.body, tag: n.tag });
    notification.addEventListener('click', () => {
      window.focus();
      notification.close();
    });
    return notification;
  } catch {
    // Some browsers (Android Chrome) allow notifications only from a service worker.
    return undefined;
  }
}
