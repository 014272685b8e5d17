/**
 * The demo producer: a simulated five-stage generation pipeline that reports its progress with
 * the producer SDK only (no server internals), exactly as a backend team would. The demo server
 * calls `startDemoJob` from `POST /demo/jobs`. A user's Cancel stops it at once: every wait of
 * the work loop listens to `job.signal`, and the run then ends the job as `canceled`.
 */
import { createProducer, isProducerError, type JobHandle, type RetryControl } from '../producer/index.js';

interface Stage {
  id: string;
  label: string;
  complexity: number;
  /** Duration range in seconds at speed 1. */
  seconds: [number, number];
  /** Sub-tasks shown as the step's message; each gets a random share of the work and the time. */
  tasks: string[];
}

/** The five stages of the demo's generation job. */
export const DEMO_STAGES: readonly Stage[] = [
  {
    id: 'initialization',
    label: 'Initialization',
    complexity: 1,
    seconds: [2, 4],
    tasks: ['Loading project settings', 'Preparing the workspace', 'Warming up the models'],
  },
  {
    id: 'analysis',
    label: 'Analysis',
    complexity: 3,
    seconds: [6, 11],
    tasks: ['Reading sources', 'Indexing symbols', 'Mapping dependencies', 'Summarizing findings'],
  },
  {
    id: 'planning',
    label: 'Planning',
    complexity: 2,
    seconds: [4, 8],
    tasks: ['Drafting the plan', 'Estimating effort', 'Ordering the work'],
  },
  {
    id: 'implementation',
    label: 'Implementation',
    complexity: 5,
    seconds: [12, 22],
    tasks: [
      'Generating module 1 of 5',
      'Generating module 2 of 5',
      'Generating module 3 of 5',
      'Generating module 4 of 5',
      'Generating module 5 of 5',
      'Running checks',
    ],
  },
  {
    id: 'finalization',
    label: 'Finalization',
    complexity: 1,
    seconds: [3, 6],
    tasks: ['Formatting the output', 'Writing the report', 'Publishing results'],
  },
];

/** The stage the `fail` option breaks, part-way through. */
export const DEMO_FAILING_STAGE = 'implementation';

export interface DemoJobOptions {
  /** The server's HTTP base URL (the demo server passes its own address). */
  baseUrl: string;
  /** A token with `progress:write` for this job; valid for the job's whole life, retry wait included. */
  token: string;
  /** Used instead of `token` when given: returns a fresh token (for long waits for a retry). */
  tokenProvider?: () => string | Promise<string>;
  /** Fail one stage part-way with a retryable error, then wait for a retry and resume from it. */
  fail?: boolean;
  /** Time multiplier: 20 runs twenty times faster (tests). Default 1 (about 30–50 s in all). */
  speed?: number;
  /** Job id; default `demo-<uuid>`. */
  jobId?: string;
  /** Tags of the job (e.g. `['user:demo']`: the demo user's feed). */
  tags?: string[];
  /** `meta.title`: the job's name in lists and feeds. */
  title?: string;
  /** Stops the simulation (server shutdown). The job is left as it is. */
  signal?: AbortSignal;
  /** How long a failed job waits for Retry before the demo stops watching it. Default 15 min. */
  retryWaitMs?: number;
  /** Where background failures go. Default: console.error. */
  onError?: (err: unknown) => void;
}

/**
 * How the background run ended: `canceled` when someone canceled the job (the run stopped and
 * ended it as canceled), `aborted` when `signal` stopped it (the job is left as it is).
 */
export type DemoOutcome = 'completed' | 'canceled' | 'abandoned' | 'aborted' | 'error';

export interface DemoJob {
  jobId: string;
  /** Settles (never rejects) when the background run ends. */
  done: Promise<DemoOutcome>;
}

/**
 * Creates a `generation` job and resolves as soon as the server has it; the pipeline then runs
 * in the background. With `fail`, the implementation stage fails part-way with a retryable
 * error, and the run resumes from that stage when someone retries. When someone cancels the
 * job, the run stops at once and ends it as `canceled`.
 */
export async function startDemoJob(opts: DemoJobOptions): Promise<DemoJob> {
  const speed = opts.speed ?? 1;
  if (!(speed > 0)) throw new RangeError('speed must be > 0');
  const onError = opts.onError ?? ((err: unknown) => console.error('[demo pipeline]', err));
  const producer = createProducer({
    url: opts.baseUrl,
    ...(opts.tokenProvider ? { tokenProvider: opts.tokenProvider } : { token: opts.token }),
    onError: (err) => {
      if (err.code !== 'network_error') onError(err);
    },
  });
  let job: JobHandle;
  try {
    job = await producer.createJob({
      id: opts.jobId ?? `demo-${crypto.randomUUID()}`,
      kind: 'generation',
      steps: DEMO_STAGES.map(({ id, label, complexity }) => ({ id, label, complexity })),
      meta: { demo: true, failureInjected: Boolean(opts.fail), ...(opts.title && { title: opts.title }) },
      ...(opts.tags && { tags: opts.tags }),
    });
  } catch (err) {
    await producer.close();
    throw err;
  }
  const done = run(job, { ...opts, speed }).then(
    async (outcome) => {
      await producer.close().catch(() => undefined);
      return outcome;
    },
    async (err: unknown) => {
      const aborted = opts.signal?.aborted || isProducerError(err, 'aborted');
      // On abort (server shutdown) drop what is queued rather than retrying against a closing server.
      await producer.close({ flush: !aborted }).catch(() => undefined);
      if (aborted) return 'aborted' as const;
      onError(err);
      return 'error' as const;
    },
  );
  return { jobId: job.id, done };
}

async function run(job: JobHandle, opts: DemoJobOptions & { speed: number }): Promise<DemoOutcome> {
  const { speed } = opts;
  // Reading job.signal starts listening for a cancel right away (and catches one made already).
  // A retry starts a new run with a new signal, so it is read again for every stretch of work.
  const working = () => (opts.signal ? AbortSignal.any([opts.signal, job.signal]) : job.signal);
  let signal = working();
  const stopWaiting = new AbortController();
  let failurePending = Boolean(opts.fail);
  let from = 0;
  try {
    while (from < DEMO_STAGES.length) {
      const stage = DEMO_STAGES[from]!;
      const failAt = failurePending && stage.id === DEMO_FAILING_STAGE ? between(0.35, 0.65) : undefined;
      // Listen before failing, so the retry cannot slip past us.
      const retry = failAt === undefined ? undefined : waitForRetry(job, opts, AbortSignal.any([stopWaiting.signal, signal]));
      const reached = await runStage(job, stage, speed, failAt, signal);
      if (reached === 'done') {
        from++;
        continue;
      }
      failurePending = false;
      await job.failStep({
        code: 'model_timeout',
        message: `The code model did not answer in time while ${reached.toLowerCase()}. Retrying usually helps.`,
        retryable: true,
      });
      const control = await retry!;
      signal.throwIfAborted(); // a cancel that came before the failure, heard while waiting
      if (!control) return 'abandoned';
      const index = DEMO_STAGES.findIndex((s) => s.id === control.step);
      from = index >= 0 ? index : from;
      signal = working();
    }
    signal.throwIfAborted(); // canceled during the last step's end: honour it rather than complete
    await job.complete({
      message: 'Generation finished',
      result: { files: 5 + Math.floor(Math.random() * 8), summary: 'Generated, checked and published.' },
    });
    return 'completed';
  } catch (err) {
    if (!isProducerError(err, 'canceled') || opts.signal?.aborted) throw err;
    // Someone canceled the job: the work stopped at its current wait; tell the server it stopped.
    const reason = job.cancelRequested?.reason;
    await job.cancel({ message: reason ? `Canceled: ${reason}` : 'Canceled' }).catch((e: unknown) => {
      if (!isProducerError(e, 'job_finished')) throw e; // already ended (the server's grace period ran out)
    });
    return 'canceled';
  } finally {
    stopWaiting.abort();
  }
}

/** Resolves with the retry, or undefined when the wait times out, the run stops or is aborted. */
function waitForRetry(job: JobHandle, opts: DemoJobOptions, stop: AbortSignal): Promise<RetryControl | undefined> {
  const timeout = AbortSignal.timeout(opts.retryWaitMs ?? 15 * 60_000);
  const signal = AbortSignal.any([stop, timeout, ...(opts.signal ? [opts.signal] : [])]);
  return job.nextRetry({ signal }).catch(() => undefined);
}

/**
 * Runs one stage: its tasks take random shares of the work and of the time, so progress speeds
 * up and slows down like a real pipeline's, with an occasional stall. Returns 'done', or the
 * task it was on when it reached `failAt`; rejects with `signal`'s reason as soon as it aborts
 * (a cancel, or the server shutting down).
 */
async function runStage(
  job: JobHandle,
  stage: Stage,
  speed: number,
  failAt: number | undefined,
  signal: AbortSignal | undefined,
): Promise<'done' | string> {
  const totalMs = (between(...stage.seconds) * 1000) / speed;
  const work = shares(stage.tasks.length);
  const time = shares(stage.tasks.length);
  signal?.throwIfAborted();
  await job.startStep(stage.id, { message: stage.tasks[0] });
  let done = 0;
  for (const [i, task] of stage.tasks.entries()) {
    const taskMs = totalMs * time[i]!;
    let elapsed = 0;
    while (elapsed < taskMs) {
      const tick = Math.min(between(250, 700) / speed, taskMs - elapsed);
      const stall = Math.random() < 0.08 ? tick * 2 : 0; // a dependency being slow
      await sleep(Math.max(tick + stall, 5), signal);
      elapsed += tick;
      const p = done + work[i]! * easeInOut(Math.min(elapsed / taskMs, 1));
      if (failAt !== undefined && p >= failAt) {
        await job.progress(failAt, { message: task });
        return task;
      }
      void job.progress(round(p), { message: task }).catch(() => undefined); // the step's end reports errors
    }
    done += work[i]!;
  }
  await job.endStep(stage.id, { message: `${stage.label} done` });
  return 'done';
}

const between = (low: number, high: number): number => low + Math.random() * (high - low);
const round = (p: number): number => Math.min(1, Math.round(p * 1000) / 1000);
const easeInOut = (t: number): number => (t < 0.5 ? 2 * t * t : 1 - (-2 * t + 2) ** 2 / 2);

/** n random positive shares summing to 1 (none tiny). */
function shares(n: number): number[] {
  const raw = Array.from({ length: n }, () => 0.5 + Math.random());
  const sum = raw.reduce((a, b) => a + b, 0);
  return raw.map((r) => r / sum);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
