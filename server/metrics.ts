/**
 * Prometheus text exposition for GET /metrics. Counters are plain numbers bumped on the hot path
 * (no label maps, no allocation); gauges are read when scraped.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { JobStatus } from './protocol.js';

const LOOP_RESOLUTION_MS = 20;

export class Metrics {
  connections = 0;
  connectionsTotal = 0;
  subscriptions = 0;
  messagesIn = 0;
  messagesOut = 0;
  /** Updates published to job topics (one per change, whatever the number of subscribers). */
  published = 0;
  /** Updates a congested socket skipped, made up for by one latest-state resend on drain. */
  droppedBackpressure = 0;
  resyncs = 0;
  authFailures = 0;
  originRejections = 0;
  rateLimited = 0;
  /** WebSocket upgrades refused by the per-address connection limit (also counted in rateLimited). */
  connectionLimited = 0;
  /** Subscribes refused with too_many_subscriptions. */
  subscriptionsRefused = 0;
  oversizedFrames = 0;
  httpRequests = 0;
  httpErrors = 0;
  eventsAccepted = 0;
  /** Set by the WebSocket hub: bytes queued in uWS for slow sockets (total and largest). */
  bufferedBytes: () => { total: number; max: number } = () => ({ total: 0, max: 0 });
  private readonly loopDelay = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });

  /** More Prometheus text appended to the output (the cluster's metrics when PT_REDIS_URL is set). */
  readonly sections: Array<() => string> = [];

  constructor() {
    this.loopDelay.enable();
  }

  stop(): void {
    this.loopDelay.disable();
  }

  render(jobs: Record<JobStatus, number>, extra: { engineNative: boolean }): string {
    const lines: string[] = [];
    const metric = (name: string, type: 'counter' | 'gauge', help: string, samples: Array<[string, number]>) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, value] of samples) lines.push(`${name}${labels} ${Number.isFinite(value) ? value : 0}`);
    };
    const one = (v: number): Array<[string, number]> => [['', v]];
    metric('pt_ws_connections', 'gauge', 'Open WebSocket connections.', one(this.connections));
    metric('pt_ws_connections_total', 'counter', 'WebSocket connections accepted since start.', one(this.connectionsTotal));
    metric('pt_ws_subscriptions', 'gauge', 'Active job subscriptions over all sockets.', one(this.subscriptions));
    metric('pt_ws_messages_in_total', 'counter', 'WebSocket messages received from clients.', one(this.messagesIn));
    metric('pt_ws_messages_out_total', 'counter', 'WebSocket messages sent directly to one socket (snapshots, errors, pongs, resyncs).', one(this.messagesOut));
    metric('pt_ws_published_total', 'counter', 'Job updates published once to a job topic (fan-out is done by uWS).', one(this.published));
    metric('pt_ws_dropped_backpressure_total', 'counter', 'Updates skipped for congested sockets (each socket then gets the latest state when it drains).', one(this.droppedBackpressure));
    metric('pt_ws_resyncs_total', 'counter', 'Latest-state resends to sockets that drained after congestion.', one(this.resyncs));
    const buffered = this.bufferedBytes();
    metric('pt_ws_buffered_bytes', 'gauge', 'Bytes queued in the server for all sockets (bounded by maxBackpressure per socket).', one(buffered.total));
    metric('pt_ws_buffered_bytes_max', 'gauge', 'Bytes queued for the most backed-up socket.', one(buffered.max));
    metric('pt_auth_failures_total', 'counter', 'Requests and upgrades refused for a missing or invalid token.', one(this.authFailures));
    metric('pt_origin_rejections_total', 'counter', 'WebSocket upgrades refused for a disallowed Origin.', one(this.originRejections));
    metric('pt_rate_limited_total', 'counter', 'Requests refused by a rate limit: WebSocket messages over the per-socket rate and upgrades over the per-address connection limit.', one(this.rateLimited));
    metric('pt_ws_connection_limited_total', 'counter', 'WebSocket upgrades refused with 429 by the per-address connection limit.', one(this.connectionLimited));
    metric('pt_ws_subscriptions_refused_total', 'counter', 'Subscribes refused with too_many_subscriptions (per-socket limit).', one(this.subscriptionsRefused));
    metric('pt_ws_oversized_frames_total', 'counter', 'Sockets closed with 1009 for a too large message.', one(this.oversizedFrames));
    metric('pt_http_requests_total', 'counter', 'HTTP requests handled.', one(this.httpRequests));
    metric('pt_http_errors_total', 'counter', 'HTTP requests answered with an error status.', one(this.httpErrors));
    metric('pt_events_accepted_total', 'counter', 'Producer events accepted (durable).', one(this.eventsAccepted));
    metric('pt_jobs', 'gauge', 'Stored jobs by status.', Object.entries(jobs).map(([status, n]) => [`{status="${status}"}`, n]));
    // The histogram records whole timer periods: the lag is what exceeds the sampling resolution.
    const lag = (ns: number) => (this.loopDelay.count === 0 ? 0 : Math.max(0, ns / 1e9 - LOOP_RESOLUTION_MS / 1000));
    metric('pt_event_loop_lag_seconds', 'gauge', 'Event-loop delay since the last scrape (mean, p99, max).', [
      ['{quantile="mean"}', lag(this.loopDelay.mean)],
      ['{quantile="0.99"}', lag(this.loopDelay.percentile(99))],
      ['{quantile="max"}', lag(this.loopDelay.max)],
    ]);
    this.loopDelay.reset();
    const mem = process.memoryUsage();
    metric('pt_process_resident_memory_bytes', 'gauge', 'Resident set size.', one(mem.rss));
    metric('pt_process_heap_used_bytes', 'gauge', 'V8 heap in use.', one(mem.heapUsed));
    metric('pt_engine_native', 'gauge', '1 when the native uWebSockets.js engine runs, 0 on the ws fallback.', one(extra.engineNative ? 1 : 0));
    return lines.join('\n') + '\n' + this.sections.map((section) => section()).join('');
  }
}

/** One Prometheus sample per line, for the extra `/metrics` sections (polling, cluster). */
export function renderCounters(entries: ReadonlyArray<[name: string, type: 'counter' | 'gauge', help: string, value: number]>): string {
  return entries.map(([name, type, help, value]) => `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n${name} ${value}\n`).join('');
}
