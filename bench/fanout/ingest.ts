/**
 * Producer ingest: how many events per second a target accepts over HTTP, and how long a request
 * takes from write to 202, with 1, 10 and 100 events per request (CONFIG.ingest.eventsPerRequest)
 * on one fresh server process, no subscribers. For ours every 202 follows a durable commit
 * (SQLite `synchronous=FULL`, or Redis with `appendfsync always`), so the round trip is the
 * commit latency as the producer sees it; raw uWS and Socket.IO keep events in memory: their
 * figures are the HTTP ceiling of their stack in the same run.
 */
import { CONFIG } from './config.js';
import { CoreMeter, describeClientCore } from './core-meter.js';
import { quantileMs, total } from './histogram.js';
import { createJobs, sendFlat } from './producer.js';
import type { Log } from './scenarios.js';
import { withTarget } from './target-session.js';
import type { TargetName } from './targets.js';

export interface IngestBatch {
  eventsPerRequest: number;
  seconds: number;
  /** Requests answered 202, and the events they carried. */
  requests: number;
  events: number;
  eventsPerSecond: number;
  requestsPerSecond: number;
  /** Request round trip, write → 202 (ours: the commit), ms. */
  p50Ms: number;
  p99Ms: number;
  errors: Record<number, number>;
  firstError?: string;
  serverCoreBusy: number;
  clientCoreBusy: number;
  loadGeneratorBusy: number;
  limitedByLoadGenerator: boolean;
  /** Server CPU per accepted event, µs; the store process's (Redis) apart. */
  serverCpuMicrosPerEvent: number;
  /** The part of it spent on the server's event loop (main thread). */
  serverLoopCpuMicrosPerEvent: number;
  storeCpuMicrosPerEvent: number;
  /** Runner CPU (the producer) per request, µs. */
  producerCpuMicrosPerRequest: number;
}

export interface IngestResult {
  connections: number;
  jobs: number;
  batches: IngestBatch[];
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function runIngest(name: TargetName, log: Log): Promise<IngestResult> {
  const config = CONFIG.ingest;
  return withTarget(
    name,
    async (target, pool) => {
      const jobIds = Array.from({ length: config.jobs }, (_, i) => `in-${i}`);
      const setup = await createJobs(pool, jobIds);
      if (setup.accepted !== jobIds.length) throw new Error(`only ${setup.accepted} of ${jobIds.length} jobs started: ${setup.firstError}`);
      const batches: IngestBatch[] = [];
      for (const [index, eventsPerRequest] of config.eventsPerRequest.entries()) {
        const meter = await CoreMeter.start(target.pid, target.storePid);
        const produced = await sendFlat(pool, jobIds, config.connections, config.seconds * 1000, index + 1, eventsPerRequest);
        const use = await meter.stop();
        const seconds = produced.elapsedMs / 1000;
        const events = produced.accepted * eventsPerRequest;
        const batch: IngestBatch = {
          eventsPerRequest,
          seconds,
          requests: produced.accepted,
          events,
          eventsPerSecond: events / seconds,
          requestsPerSecond: produced.accepted / seconds,
          p50Ms: quantileMs(produced.roundTrips, 0.5),
          p99Ms: quantileMs(produced.roundTrips, 0.99),
          errors: produced.errors,
          serverCoreBusy: use.serverCoreBusy,
          clientCoreBusy: use.clientCoreBusy,
          loadGeneratorBusy: use.loadGeneratorBusy,
          limitedByLoadGenerator: use.limitedByLoadGenerator,
          serverCpuMicrosPerEvent: use.serverCpuMicros / Math.max(1, events),
          serverLoopCpuMicrosPerEvent: use.serverLoopCpuMicros / Math.max(1, events),
          storeCpuMicrosPerEvent: use.storeCpuMicros / Math.max(1, events),
          producerCpuMicrosPerRequest: use.runnerCpuMicros / Math.max(1, produced.sent),
        };
        if (produced.firstError) batch.firstError = produced.firstError;
        batches.push(batch);
        log(
          `${eventsPerRequest} event${eventsPerRequest === 1 ? '' : 's'}/request: ${batch.eventsPerSecond.toFixed(0)} events/s accepted (${batch.requestsPerSecond.toFixed(0)} requests/s), ` +
            `request p50 ${batch.p50Ms.toFixed(2)} ms p99 ${batch.p99Ms.toFixed(2)} ms, server core ${(batch.serverCoreBusy * 100).toFixed(0)}% ` +
            `(${batch.serverCpuMicrosPerEvent.toFixed(2)} µs/event, event loop ${batch.serverLoopCpuMicrosPerEvent.toFixed(2)}${batch.storeCpuMicrosPerEvent > 0 ? `, Redis ${batch.storeCpuMicrosPerEvent.toFixed(2)} µs/event` : ''}), ` +
            `${describeClientCore(use)} (producer ${batch.producerCpuMicrosPerRequest.toFixed(0)} µs/req)` +
            `${total(Object.values(batch.errors)) ? `, errors ${JSON.stringify(batch.errors)} (${batch.firstError})` : ''}`,
        );
        await sleep(500);
      }
      return { connections: config.connections, jobs: config.jobs, batches };
    },
    config.connections,
    0,
  );
}
