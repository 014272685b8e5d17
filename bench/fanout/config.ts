/** Benchmark parameters. `BENCH_QUICK=1` shrinks everything for a smoke run. */
import { cpus } from 'node:os';

const quick = process.env.BENCH_QUICK === '1';
const clientCore = 1;

export const CONFIG = {
  quick,
  /** The server under test runs alone on this core; producer, runner and clients share the other. */
  serverCore: 0,
  clientCore,
  /**
   * Redis of the "ours + Redis" target: a third core when there is one, else the client core (on
   * 2 cores, never the server's: the server's core measures the server alone). Its CPU is then
   * part of the client core's busy time, and reported apart.
   */
  redisCore: cpus().length > 2 ? 2 : clientCore,
  /** Load-generator processes. */
  workers: 4,
  fdLimit: 65_536,
  producerConnections: 32,
  /**
   * `lean` (default): every scenario connects with the raw-socket client of lean-websocket.ts (no
   * WebSocket library work per message), so the figures are the server's, not the client's;
   * `library`: `ws` / `socket.io-client`. BENCH_FANOUT_CLIENT is the older name of the switch.
   */
  client: (process.env.BENCH_CLIENT ?? process.env.BENCH_FANOUT_CLIENT) === 'library' ? ('library' as const) : ('lean' as const),
  /**
   * A measurement whose client core was at least this busy (fraction of the core, all processes
   * on it) is marked "limited by the load generator": the clients, the producer (and Redis when it
   * shares the core) may have set the figure, not the server.
   */
  clientCoreLimit: 0.9,
  fanout: {
    subscribers: quick ? 200 : 2000,
    /** Updates/s for the CPU-per-delivery reading: 25 × 2,000 = 50k deliveries/s. */
    moderateRate: 25,
    moderateSeconds: 4,
    stepSeconds: 3,
    startRate: 50,
    maxRate: 3200,
    /** Extra steps between the last passing and the first failing rate. */
    bisectSteps: 2,
    p99LimitMs: 100,
  },
  /** 10,000 events/s over HTTP: more producer connections, each carries one request at a time. */
  manyJobs: { jobs: quick ? 500 : 5000, updatesPerJobPerSecond: 2, seconds: 6, producerConnections: 128 },
  idle: { connections: quick ? 1000 : 10_000, settleMs: 3000 },
  /**
   * Producer ingest, no subscribers: `connections` requests in flight back to back for `seconds`
   * per batch size, each request carrying `eventsPerRequest` events (a JSON array above 1).
   */
  ingest: { jobs: 64, connections: 64, seconds: quick ? 2 : 5, eventsPerRequest: process.env.BENCH_INGEST_BATCHES ? process.env.BENCH_INGEST_BATCHES.split(',').map(Number) : [1, 10, 100] },
  /** Longest wait for deliveries still in flight after the producer stops. */
  drainTimeoutMs: 5000,
};
