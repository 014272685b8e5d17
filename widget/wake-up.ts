/**
 * The moments a connection waiting in backoff is worth retrying at once: the page becomes
 * visible again (the user is back; a sleeping laptop woke up) or the browser comes back online.
 * Waiting out a backoff that grew while the tab was hidden or the network was gone would leave
 * the user looking at a stale view for up to the longest delay.
 *
 * Only the signal lives here; the client adds the jitter (many tabs wake together) and decides
 * what to retry.
 */

/** Calls `wake` on `visibilitychange` to visible and on `online`; returns the function that stops listening. */
export function onWakeUp(wake: () => void): () => void {
  if (typeof document === 'undefined' || typeof window === 'undefined') return () => {};
  const onVisibility = () => {
    if (document.visibilityState === 'visible') wake();
  };
  document.addEventListener('visibilitychange', onVisibility);
  window.addEventListener('online', wake);
  return () => {
    document.removeEventListener('visibilitychange', onVisibility);
    window.removeEventListener('online', wake);
  };
}
