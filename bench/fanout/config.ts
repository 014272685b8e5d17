/** Benchmark parameters. `BENCH_QUICK=1` shrinks everything for a smoke run. */
const quick = process.env.BENCH_QUICK === '1';

export const CONFIG = {
  quick,
  /** The server under test runs alone on this core; producer, runner and clients share the other. */
  serverCore: 0,
  clientCore: 1,
  /** Load-generator processes. */
  workers: 4,
  fdLimit: 65_536,
  producerConnections: 32,
  fanout: {
    subscribers: quick ? 200 : 2000,
    /**
     * `lean` (default): the minimal client of lean-websocket.ts, so the ramp finds the server's
     * limit, not the client's; `library`: `ws` / `socket.io-client` as in the other scenarios.
     */
    client: process.env.BENCH_FANOUT_CLIENT === 'library' ? ('library' as const) : ('lean' as const),
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
  ingest: { jobs: 64, connections: 64, seconds: 5 },
  /** Longest wait for deliveries still in flight after the producer stops. */
  drainTimeoutMs: 5000,
};
