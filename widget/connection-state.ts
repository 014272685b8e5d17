/**
 * The connection state a channel reports, and how it follows from what works. A pure function of
 * the transports' situation (no timers, no I/O), so every transport change ends in one place that
 * decides what the user is told: the best working transport wins (socket, stream, polling), and
 * "offline" is said only once polling has found no server — never merely because a push
 * transport dropped (that is `reconnecting`, or `connecting` before anything ever worked).
 */

/**
 * - `connecting`: first attempt under way.
 * - `live`: updates are pushed (WebSocket or SSE: see `ConnectionTransport`).
 * - `reconnecting`: the live transport dropped; trying again.
 * - `polling`: no push transport works; HTTP polling keeps the view current.
 * - `offline`: nothing reaches the server (a job's tracker then shows a local estimate).
 * - `closed`: not connected (not opened yet, closed, or the job has ended).
 */
export type ConnectionState = 'connecting' | 'live' | 'reconnecting' | 'polling' | 'offline' | 'closed';

/**
 * Which transport delivers: `websocket` and `sse` while `live`, `polling` while `polling`,
 * `none` otherwise (connecting, reconnecting, offline, closed).
 */
export type ConnectionTransport = 'websocket' | 'sse' | 'polling' | 'none';

/** What the last poll found: nothing yet, a server answering, or no base reachable. */
export type PollReach = 'pending' | 'reachable' | 'unreachable';

/** The situation of a channel's transports, as `deriveConnection` reads it. */
export interface TransportSituation {
  opened: boolean;
  /** The socket is authenticated and subscribed. */
  socketLive: boolean;
  /** The event stream delivers. */
  sseLive: boolean;
  /** Polling runs, and what it last found. */
  polling: boolean;
  pollReach: PollReach;
  /** Some push transport worked since `open()`. */
  everLive: boolean;
}

/**
 * The state and transport follow from what works, best first: the socket, the stream,
 * polling (answering or not), else waiting for a first or renewed connection.
 */
export function deriveConnection(s: TransportSituation): [ConnectionState, ConnectionTransport] {
  if (!s.opened) return ['closed', 'none'];
  if (s.socketLive) return ['live', 'websocket'];
  if (s.sseLive) return ['live', 'sse'];
  if (s.polling && s.pollReach === 'reachable') return ['polling', 'polling'];
  if (s.polling && s.pollReach === 'unreachable') return ['offline', 'none'];
  return [s.everLive ? 'reconnecting' : 'connecting', 'none'];
}
