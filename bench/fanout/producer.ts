/**
 * The producer side, identical for every target: it creates jobs and reports progress through the
 * HTTP producer API (`POST /v1/jobs`, `POST /v1/jobs/{id}/events`), one event per request (a JSON
 * array of several for the ingest batches), and writes `@bench:<tag>:<send time µs>` into the step
 * message so clients can measure latency.
 */
import { createHistogram, nowMicros, record } from './histogram.js';
import type { HttpPool } from './http-client.js';

export const STEPS = [
  { id: 's1', label: 'Initialization' },
  { id: 's2', label: 'Analysis' },
  { id: 's3', label: 'Planning' },
  { id: 's4', label: 'Implementation' },
  { id: 's5', label: 'Finalization' },
];

export interface ProducerResult {
  /** Requests written. */
  sent: number;
  /** 202 answers. */
  accepted: number;
  /** Other answers, by status (0 = transport error). */
  errors: Record<number, number>;
  firstError?: string;
  /** Highest seq answered per job id. */
  finalSeq: Map<string, number>;
  /** From the first send to the last answer. */
  elapsedMs: number;
  /** Request round trips (write → 202), µs histogram. */
  roundTrips: Uint32Array;
}

function newResult(): ProducerResult {
  return { sent: 0, accepted: 0, errors: {}, finalSeq: new Map(), elapsedMs: 0, roundTrips: createHistogram() };
}

let eventCounter = 0;
/** Progress moves forward within (0, 1) and never reaches 1, whatever the number of events. */
const progressAt = (n: number) => (0.5 + 0.49 * (1 - 1 / (1 + n / 1000))).toFixed(6);

function progressEvent(tag: number): () => string {
  const progress = progressAt(++eventCounter);
  return () => `{"type":"progress","step":"s1","progress":${progress},"message":"@bench:${tag}:${nowMicros()}"}`;
}

/**
 * One event as an object, or `count` events as an array, stamped when the request is written.
 * The events of one request share its send time and progress value (each is still applied as an
 * event of its own), so the producer's cost per event stays small next to the server's.
 */
function progressBody(tag: number, count: number): () => string {
  if (count === 1) return progressEvent(tag);
  eventCounter += count;
  const progress = progressAt(eventCounter);
  return () => {
    const event = `{"type":"progress","step":"s1","progress":${progress},"message":"@bench:${tag}:${nowMicros()}"}`;
    return `[${new Array<string>(count).fill(event).join(',')}]`;
  };
}

function account(result: ProducerResult, jobId: string, status: number, body: string, micros: number): void {
  if (status === 202) {
    result.accepted++;
    record(result.roundTrips, micros);
    const seq = Number(/"seq":(\d+)/.exec(body)?.[1] ?? 0);
    if (seq > (result.finalSeq.get(jobId) ?? 0)) result.finalSeq.set(jobId, seq);
  } else {
    result.errors[status] = (result.errors[status] ?? 0) + 1;
    result.firstError ??= `${status} ${body.slice(0, 200)}`;
  }
}

/** Creates the jobs and starts their first step (so progress events are valid). */
export async function createJobs(pool: HttpPool, jobIds: string[]): Promise<ProducerResult> {
  const result = newResult();
  const started = performance.now();
  await Promise.all(
    jobIds.map(async (id) => {
      try {
        const created = await pool.request('POST', '/v1/jobs', JSON.stringify({ id, kind: 'bench', steps: STEPS }));
        if (created.status !== 201) {
          account(result, id, created.status, created.body, 0);
          return;
        }
        const answer = await pool.request('POST', `/v1/jobs/${id}/events`, '{"type":"step_start","step":"s1","message":"started"}');
        result.sent++;
        account(result, id, answer.status, answer.body, answer.micros);
      } catch (error) {
        account(result, id, 0, String(error), 0);
      }
    }),
  );
  result.elapsedMs = performance.now() - started;
  return result;
}

/**
 * Sends `rate` progress events per second in total, round-robin over jobIds, for `durationMs`.
 * When every connection is busy the next events wait; the achieved rate is in the result.
 */
export async function sendPaced(pool: HttpPool, jobIds: string[], rate: number, durationMs: number, tag: number): Promise<ProducerResult> {
  const result = newResult();
  const started = performance.now();
  const total = Math.round((rate * durationMs) / 1000);
  const inFlight: Promise<void>[] = [];
  let next = 0;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - started) * rate) / 1000) + 1);
      // Do not pile up a queue far behind the schedule: that would only measure queueing.
      while (result.sent < due && pool.queued < 64) {
        const jobId = jobIds[next++ % jobIds.length]!;
        result.sent++;
        inFlight.push(
          pool.request('POST', `/v1/jobs/${jobId}/events`, progressEvent(tag)).then(
            (answer) => account(result, jobId, answer.status, answer.body, answer.micros),
            (error: unknown) => account(result, jobId, 0, String(error), 0),
          ),
        );
      }
      if (performance.now() - started >= durationMs || result.sent >= total) resolve();
      else setTimeout(tick, 1);
    };
    tick();
  });
  await Promise.all(inFlight);
  result.elapsedMs = performance.now() - started;
  return result;
}

/**
 * Keeps every pool connection busy with progress events for `durationMs`, `eventsPerRequest`
 * per request: ingest capacity. `accepted` counts requests (each carried eventsPerRequest events).
 */
export async function sendFlat(pool: HttpPool, jobIds: string[], lanes: number, durationMs: number, tag: number, eventsPerRequest = 1): Promise<ProducerResult> {
  const result = newResult();
  const started = performance.now();
  let next = 0;
  async function lane(): Promise<void> {
    while (performance.now() - started < durationMs) {
      const jobId = jobIds[next++ % jobIds.length]!;
      result.sent++;
      try {
        const answer = await pool.request('POST', `/v1/jobs/${jobId}/events`, progressBody(tag, eventsPerRequest));
        account(result, jobId, answer.status, answer.body, answer.micros);
      } catch (error) {
        account(result, jobId, 0, String(error), 0);
      }
    }
  }
  await Promise.all(Array.from({ length: lanes }, lane));
  result.elapsedMs = performance.now() - started;
  return result;
}
