/**
 * Prometheus text exposition for GET /metrics. Counters are plain numbers bumped on the hot path
 * (no label maps, no allocation); gauges are read when scraped.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { JobStatus } from '../../protocol/index.js';

const LOOP_RESOLUTION_MS = 20;

export class Metrics {
  connections = 0;
  connectionsTotal = 0;
  subscriptions = 0;
  /** Open SSE streams (GET /v1/jobs/{id}/stream). */
  sseStreams = 0;
  messagesIn = 0;
  messagesOut = 0;
  /** Updates published to job topics (one per change, whatever the number of subscribers). */
  published = 0;
  /**
   * Updates a congested socket or SSE stream did not get: topic updates uWS skipped for a socket
   * (counted by seq when it drains or closes, see ws-hub.ts), direct sends it refused, and updates
   * not written to a backed-up SSE stream. Made up for by one latest-state resend on drain.
   */
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
    const out = new PrometheusText();
    const metric = out.metric;
    metric('pt_ws_connections', 'gauge', 'Open WebSocket connections.', this.connections);
    metric('pt_ws_connections_total', 'counter', 'WebSocket connections accepted since start.', this.connectionsTotal);
    metric('pt_ws_subscriptions', 'gauge', 'Active job subscriptions over all sockets.', this.subscriptions);
    metric('pt_sse_streams', 'gauge', 'Open Server-Sent Events streams (GET /v1/jobs/{id}/stream).', this.sseStreams);
    metric('pt_ws_messages_in_total', 'counter', 'WebSocket messages received from clients.', this.messagesIn);
    metric('pt_ws_messages_out_total', 'counter', 'WebSocket messages sent directly to one socket (snapshots, errors, pongs, resyncs).', this.messagesOut);
    metric('pt_ws_published_total', 'counter', 'Job updates published once to a job topic (fan-out is done by uWS).', this.published);
    metric(
      'pt_ws_dropped_backpressure_total',
      'counter',
      'Updates not sent to sockets over their backpressure limit: every job update uWS skipped for such a socket, by seq, counted when it drains or closes (congestion checks run every second and every 32 publishes or more: updates delivered up to two checks before a socket went over the limit may be included, and a congestion that starts and ends between two checks is not seen), every refused direct send, and every update not written to a backed-up SSE stream. Each gets the latest state when it drains.',
      this.droppedBackpressure,
    );
    metric('pt_ws_resyncs_total', 'counter', 'Latest-state resends to sockets that drained after congestion.', this.resyncs);
    const buffered = this.bufferedBytes();
    metric('pt_ws_buffered_bytes', 'gauge', 'Bytes queued in the server for all sockets (bounded by maxBackpressure per socket).', buffered.total);
    metric('pt_ws_buffered_bytes_max', 'gauge', 'Bytes queued for the most backed-up socket.', buffered.max);
    metric('pt_auth_failures_total', 'counter', 'Requests and upgrades refused for a missing or invalid token.', this.authFailures);
    metric('pt_origin_rejections_total', 'counter', 'WebSocket upgrades refused for a disallowed Origin.', this.originRejections);
    metric('pt_rate_limited_total', 'counter', 'Requests refused by a rate limit: WebSocket messages over the per-socket rate and upgrades over the per-address connection limit.', this.rateLimited);
    metric('pt_ws_connection_limited_total', 'counter', 'WebSocket upgrades refused with 429 by the per-address connection limit.', this.connectionLimited);
    metric('pt_ws_subscriptions_refused_total', 'counter', 'Subscribes refused with too_many_subscriptions (per-socket limit).', this.subscriptionsRefused);
    metric('pt_ws_oversized_frames_total', 'counter', 'Sockets closed with 1009 for a too large message.', this.oversizedFrames);
    metric('pt_http_requests_total', 'counter', 'HTTP requests handled.', this.httpRequests);
    metric('pt_http_errors_total', 'counter', 'HTTP requests answered with an error status.', this.httpErrors);
    metric('pt_events_accepted_total', 'counter', 'Producer events accepted (durable).', this.eventsAccepted);
    out.histogram(
      'pt_event_commit_seconds',
      'Time from the job writer handing a change made by producer events to the store to its commit (durable).',
      eventTimings.commit,
    );
    out.histogram(
      'pt_event_publish_seconds',
      'Time from the acceptance of producer events to the publish of their update to the job topic (WebSocket subscribers).',
      eventTimings.send,
    );
    metric('pt_jobs', 'gauge', 'Stored jobs by status.', Object.entries(jobs).map(([status, n]) => [`{status="${status}"}`, n]));
    // The histogram records whole timer periods: the lag is what exceeds the sampling resolution.
    const lag = (ns: number) => (this.loopDelay.count === 0 ? 0 : Math.max(0, ns / 1e9 - LOOP_RESOLUTION_MS / 1000));
    // Labelled `stat`, not `quantile`: Prometheus reserves that label for summaries (promtool check metrics).
    metric('pt_event_loop_lag_seconds', 'gauge', 'Event-loop delay since the last scrape (mean, p99, max).', [
      ['{stat="mean"}', lag(this.loopDelay.mean)],
      ['{stat="p99"}', lag(this.loopDelay.percentile(99))],
      ['{stat="max"}', lag(this.loopDelay.max)],
    ]);
    this.loopDelay.reset();
    const mem = process.memoryUsage();
    metric('pt_process_resident_memory_bytes', 'gauge', 'Resident set size.', mem.rss);
    metric('pt_process_heap_used_bytes', 'gauge', 'V8 heap in use.', mem.heapUsed);
    metric('pt_engine_native', 'gauge', '1 when the native uWebSockets.js engine runs, 0 on the ws fallback.', extra.engineNative ? 1 : 0);
    return out.toString() + this.sections.map((section) => section()).join('');
  }
}

/**
 * A Prometheus histogram with fixed buckets (upper bounds in seconds, ascending). `observe` is a
 * short scan and two increments: no allocation, cheap enough for every event.
 */
export class Histogram {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length);
  }

  /** Records one duration in seconds. */
  observe(seconds: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && seconds > b[i]!) i++;
    if (i < b.length) this.counts[i]!++;
    this.sum += seconds;
    this.count++;
  }
}

/** Buckets (seconds) of the event latency histograms: 0.5 ms to 10 s. */
export const LATENCY_BUCKETS: readonly number[] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * Event timings, measured by the job writer (server/core/job-writer.ts): one set per process
 * (several servers in one process share it).
 */
export const eventTimings = {
  /** From the writer's save call to the store's commit of a change made by producer events. */
  commit: new Histogram(LATENCY_BUCKETS),
  /** From the acceptance of producer events to the publish of their update to WebSocket subscribers. */
  send: new Histogram(LATENCY_BUCKETS),
};

/** Labels (`{a="b"}`, or '' for none) and value of one sample. */
export type Sample = [labels: string, value: number];

/**
 * Prometheus text exposition, shared by every `/metrics` section (node, polling, cluster).
 * `metric` takes a single value or labelled samples; non-finite values are written as 0.
 */
export class PrometheusText {
  private readonly lines: string[] = [];

  readonly metric = (name: string, type: 'counter' | 'gauge', help: string, value: number | readonly Sample[]): void => {
    this.lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, v] of typeof value === 'number' ? [['', value] as Sample] : value) {
      this.lines.push(`${name}${labels} ${Number.isFinite(v) ? v : 0}`);
    }
  };

  /** A histogram: cumulative `_bucket` samples (with `le="+Inf"`), `_sum` and `_count`. */
  readonly histogram = (name: string, help: string, h: Histogram): void => {
    this.lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`);
    let cumulative = 0;
    for (let i = 0; i < h.bounds.length; i++) {
      cumulative += h.counts[i]!;
      this.lines.push(`${name}_bucket{le="${h.bounds[i]}"} ${cumulative}`);
    }
    this.lines.push(`${name}_bucket{le="+Inf"} ${h.count}`, `${name}_sum ${Number.isFinite(h.sum) ? h.sum : 0}`, `${name}_count ${h.count}`);
  };

  toString(): string {
    return this.lines.length ? this.lines.join('\n') + '\n' : '';
  }
}
