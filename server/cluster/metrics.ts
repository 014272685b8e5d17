/**
 * Cluster counters for GET /metrics (Prometheus text), appended after the node's own metrics.
 */
import { PrometheusText } from '../app/metrics.js';

export class ClusterMetrics {
  /** Job channels this node is subscribed to (jobs its own clients follow). */
  channels = 0;
  subscribes = 0;
  unsubscribes = 0;
  /** Tag channels this node is subscribed to (tags whose feed its own clients follow). */
  tagChannels = 0;
  /** Changes of tagged jobs received from other nodes on tag channels (handed to the feed). */
  tagUpdates = 0;
  /** Changes received from other nodes and delivered to local sockets. */
  remoteUpdates = 0;
  /** Received changes dropped because a newer seq had already been delivered. */
  staleDropped = 0;
  /** Jobs re-read from the store after a (re)subscribe, and how many of them had moved on. */
  resyncReads = 0;
  resyncUpdates = 0;
  redisErrors = 0;
  redisReconnects = 0;
  redisRecoveries = 0;
  /** Saves that lost a race to another node and were applied again on the fresh state. */
  seqConflicts = 0;
  leasesHeld = 0;
  leasesAcquired = 0;
  leasesLost = 0;
  leasesTakenOver = 0;
  private readonly connections = new Map<string, boolean>();

  setConnection(name: string, up: boolean): void {
    this.connections.set(name, up);
  }

  isUp(name: string): boolean {
    return this.connections.get(name) === true;
  }

  render(nodeId: string): string {
    const out = new PrometheusText();
    const metric = out.metric;
    metric('pt_cluster_node_info', 'gauge', 'This node in the Redis cluster (always 1; the label names it).', [[`{node="${nodeId}"}`, 1]]);
    metric('pt_cluster_redis_up', 'gauge', 'Whether each Redis connection is ready (1) or reconnecting (0).',
      [...this.connections].map(([name, up]) => [`{connection="${name}"}`, up ? 1 : 0]));
    metric('pt_cluster_redis_errors_total', 'counter', 'Redis connection errors.', this.redisErrors);
    metric('pt_cluster_redis_reconnects_total', 'counter', 'Redis reconnection attempts.', this.redisReconnects);
    metric('pt_cluster_redis_recoveries_total', 'counter', 'Times the bus came back after a Redis outage and resynced its jobs.', this.redisRecoveries);
    metric('pt_cluster_channels', 'gauge', 'Job channels subscribed (jobs local clients follow).', this.channels);
    metric('pt_cluster_subscribes_total', 'counter', 'Job channels subscribed since start.', this.subscribes);
    metric('pt_cluster_unsubscribes_total', 'counter', 'Job channels released since start.', this.unsubscribes);
    metric('pt_cluster_tag_channels', 'gauge', 'Tag channels subscribed (tags whose feed local clients follow).', this.tagChannels);
    metric('pt_cluster_tag_updates_total', 'counter', 'Changes of tagged jobs from other nodes handed to the local tag feeds.', this.tagUpdates);
    metric('pt_cluster_remote_updates_total', 'counter', 'Job changes from other nodes delivered to local sockets.', this.remoteUpdates);
    metric('pt_cluster_stale_dropped_total', 'counter', 'Received changes ignored because a newer seq was already delivered.', this.staleDropped);
    metric('pt_cluster_resync_reads_total', 'counter', 'Jobs re-read from Redis after a (re)subscribe.', this.resyncReads);
    metric('pt_cluster_resync_updates_total', 'counter', 'Resync reads that found a newer state than local clients had.', this.resyncUpdates);
    metric('pt_cluster_seq_conflicts_total', 'counter', 'Saves that lost a race to another node and were re-applied on the fresh state.', this.seqConflicts);
    metric('pt_cluster_poll_leases', 'gauge', 'Polled jobs this node holds the lease of (and polls).', this.leasesHeld);
    metric('pt_cluster_poll_leases_acquired_total', 'counter', 'Poll leases acquired.', this.leasesAcquired);
    metric('pt_cluster_poll_leases_taken_over_total', 'counter', 'Poll leases taken over from a node that stopped renewing them.', this.leasesTakenOver);
    metric('pt_cluster_poll_leases_lost_total', 'counter', 'Poll leases this node lost (renewal failed or another node holds it).', this.leasesLost);
    return out.toString();
  }
}
