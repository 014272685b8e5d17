/**
 * Follows BullMQ jobs: a job created with `"source": {"type":"bullmq","queue":"render","jobId":"42"}`
 * shows what the BullMQ job does, live, through the same state machine, seq, fan-out and ETA as
 * pushed jobs.
 *
 * - Push: one QueueEvents reader per queue (a Redis stream, resumed from its last id after a
 *   reconnect) turns `active`, `progress`, `completed` and `failed` into job events at once.
 * - Poll: the poll manager still reads the BullMQ job (state, progress) now and then as a safety
 *   net, and at once after a restart or a lease takeover, so nothing missed stays missed.
 * - Progress: a worker calls `job.updateProgress({ step: 'analysis', progress: 0.4 })` (progress
 *   0..1 within the step; earlier steps complete by themselves), or `job.updateProgress(40)`: a
 *   bare number is a percentage (0..100, BullMQ's convention) of the current step.
 * - Queue position: while the BullMQ job is `waiting` and ours is queued, each poll reads how many
 *   jobs are ahead of it in the wait list (LPOS + LLEN: two O(list) Redis commands, only for
 *   waiting jobs; BullMQ LPUSHes new jobs and workers take from the right) and sends a `queued`
 *   event when that changed, so the ETA covers the wait (`eta.waitMs`). Other waiting states
 *   (delayed, prioritized, waiting-children) send `queued` without a position.
 * - Retry: retrying our job calls the BullMQ job's `retry()`; the worker runs again and should
 *   report the step it resumes from (docs/cluster.md shows a worker).
 *
 * bullmq is an optional peer dependency: it is loaded (dynamic import) only when the adapter is
 * created, so servers that do not use BullMQ never need it installed.
 */
import type { ConnectionOptions, Job as BullJob, Queue, QueueEvents } from 'bullmq';
import { clamp01, type Job, type JobEvent, type StepSpec } from '../../protocol/index.js';
import type { JobSink, PollOutcome, PolledSource, SourceAdapter } from './adapter.js';
import type { UpstreamView } from './field-map.js';
import { eventsFor } from './reconcile.js';

export interface BullmqSource {
  type: 'bullmq';
  /** The BullMQ queue name. */
  queue: string;
  /** The BullMQ job id. */
  jobId: string;
  /** Safety-net poll interval bounds (ms; default 5 s .. 30 s: QueueEvents carries the live changes). */
  minIntervalMs?: number;
  maxIntervalMs?: number;
  [key: string]: unknown;
}


export interface BullmqAdapterOptions {
  /** ioredis options or connection for BullMQ's Redis (may differ from PT_REDIS_URL). */
  connection: ConnectionOptions;
  /** BullMQ key prefix (default `bull`). */
  prefix?: string;
  /** Queues jobs may follow; default any (a job can only name queues this server can reach anyway). */
  queues?: readonly string[];
  log?: { warn(obj: object, msg: string): void };
}

/** What a BullMQ job says, as our upstream view. Exported for tests. */
export function viewOfBullmq(state: string, progress: unknown, failedReason?: string, returnvalue?: unknown): UpstreamView {
  const view: UpstreamView = {};
  switch (state) {
    case 'active':
      view.status = 'running';
      break;
    case 'completed':
      view.status = 'completed';
      if (returnvalue !== undefined && returnvalue !== null) view.result = returnvalue;
      break;
    case 'failed':
      view.status = 'failed';
      view.error = failedReason || 'the BullMQ job failed';
      break;
    default: // waiting, delayed, prioritized, waiting-children
      view.status = 'queued';
  }
  if (typeof progress === 'number' && Number.isFinite(progress)) {
    view.stepProgress = clamp01(progress / 100);
  } else if (progress && typeof progress === 'object') {
    const p = progress as { step?: unknown; progress?: unknown };
    if (typeof p.step === 'string') view.step = p.step;
    if (typeof p.progress === 'number' && Number.isFinite(p.progress)) view.stepProgress = clamp01(p.progress);
  }
  return view;
}

/** QueueEvents hands the return value over as the JSON text BullMQ stored. */
const parseMaybe = (v: unknown): unknown => {
  if (typeof v !== 'string') return v;
  try {
    return JSON.parse(v) as unknown;
  } catch {
    return v;
  }
};

interface Followed {
  ourId: string;
  source: BullmqSource;
  /** Per-job chain: pushed events are applied one at a time, on the freshest state. */
  chain: Promise<void>;
}

type BullmqModule = typeof import('bullmq');

export class BullmqAdapter implements SourceAdapter<BullmqSource> {
  readonly type = 'bullmq';
  private readonly o: BullmqAdapterOptions;
  private readonly queues = new Map<string, { queue: Queue; events: QueueEvents }>();
  /** `${queue}\n${bullJobId}` → followed job. */
  private readonly followed = new Map<string, Followed>();
  private sink?: JobSink;

  private constructor(
    private readonly bull: BullmqModule,
    options: BullmqAdapterOptions,
  ) {
    this.o = options;
  }

  static async create(options: BullmqAdapterOptions): Promise<BullmqAdapter> {
    let bull: BullmqModule;
    try {
      bull = await import('bullmq');
    } catch {
      throw new Error('the BullMQ adapter needs the bullmq package: npm install bullmq@5');
    }
    return new BullmqAdapter(bull, options);
  }

  /** Where QueueEvents changes are applied (the job service). */
  attach(sink: JobSink): void {
    this.sink = sink;
  }

  validate(source: unknown, steps: readonly StepSpec[]): string | null {
    const s = source as Partial<BullmqSource>;
    const known = ['type', 'queue', 'jobId', 'minIntervalMs', 'maxIntervalMs'];
    const extra = Object.keys(s).find((k) => !known.includes(k));
    if (extra) return `source.${extra} is not a bullmq source field (known: ${known.join(', ')})`;
    if (typeof s.queue !== 'string' || !/^[A-Za-z0-9_.:-]{1,128}$/.test(s.queue)) return 'source.queue must be a BullMQ queue name (letters, digits, _ . : -; at most 128)';
    if (this.o.queues && !this.o.queues.includes(s.queue)) return `source.queue "${s.queue}" is not one this server follows`;
    if (typeof s.jobId !== 'string' || s.jobId.length === 0 || s.jobId.length > 256) return 'source.jobId must be the BullMQ job id (a non-empty string)';
    for (const key of ['minIntervalMs', 'maxIntervalMs'] as const) {
      const v = s[key];
      if (v !== undefined && (typeof v !== 'number' || !Number.isInteger(v) || v < 100 || v > 3_600_000)) return `source.${key} must be an integer in 100..3600000`;
    }
    if (steps.length === 0) return 'a bullmq job needs at least one step';
    return null;
  }

  start(ourId: string, source: BullmqSource): PolledSource {
    const key = `${source.queue}\n${source.jobId}`;
    const entry: Followed = { ourId, source, chain: Promise.resolve() };
    this.followed.set(key, entry);
    const q = this.queue(source.queue);
    return {
      hostKey: `bullmq:${source.queue}`,
      minIntervalMs: source.minIntervalMs ?? 5000,
      maxIntervalMs: source.maxIntervalMs ?? 30_000,
      poll: async (job: Job): Promise<PollOutcome> => {
        try {
          const bullJob = await q.queue.getJob(source.jobId);
          if (!bullJob) return { ok: false, failure: { code: 'upstream_bad_response', message: `BullMQ job ${source.jobId} not found in queue ${source.queue}` } };
          const state = await bullJob.getState();
          const view = viewOfBullmq(state, bullJob.progress, bullJob.failedReason, bullJob.returnvalue);
          const events = eventsFor(job, view);
          if (view.status === 'queued' && job.status === 'queued' && events.length === 0) {
            const position = state === 'waiting' ? await waitingPosition(q.queue, source.jobId) : undefined;
            if (!job.queue || job.queue.position !== position) events.push(position === undefined ? { type: 'queued' } : { type: 'queued', position });
          }
          return { ok: true, events, ...(view.status && { upstreamStatus: view.status }) };
        } catch (err) {
          return { ok: false, failure: { code: 'upstream_unreachable', message: `BullMQ (queue ${source.queue}): ${(err as Error).message}` } };
        }
      },
      retry: async () => {
        try {
          const bullJob = await q.queue.getJob(source.jobId);
          if (!bullJob) return { ok: false, failure: { code: 'upstream_bad_response', message: `BullMQ job ${source.jobId} not found` } };
          await bullJob.retry('failed');
          return { ok: true };
        } catch (err) {
          return { ok: false, failure: { code: 'upstream_unreachable', message: `BullMQ retry refused: ${(err as Error).message}` } };
        }
      },
      stop: () => {
        if (this.followed.get(key) === entry) this.followed.delete(key);
      },
    };
  }

  async close(): Promise<void> {
    const all = [...this.queues.values()];
    this.queues.clear();
    await Promise.allSettled(all.flatMap(({ queue, events }) => [events.close(), queue.close()]));
  }

  // ------------------------------------------------------------------------------------------

  private queue(name: string): { queue: Queue; events: QueueEvents } {
    let q = this.queues.get(name);
    if (q) return q;
    const opts = { connection: this.o.connection, ...(this.o.prefix && { prefix: this.o.prefix }) };
    const queue = new this.bull.Queue(name, opts);
    const events = new this.bull.QueueEvents(name, opts);
    queue.on('error', (err) => this.o.log?.warn({ queue: name, err: err.message }, 'bullmq queue error'));
    events.on('error', (err) => this.o.log?.warn({ queue: name, err: err.message }, 'bullmq queue events error'));
    const push = (jobId: string, read: (bullJob: BullJob | undefined) => UpstreamView | undefined) => {
      const f = this.followed.get(`${name}\n${jobId}`);
      if (!f || !this.sink) return;
      f.chain = f.chain.then(async () => {
        const sink = this.sink!;
        const job = await sink.get(f.ourId);
        if (!job) return;
        const view = read(await queue.getJob(jobId).catch(() => undefined));
        if (!view) return;
        const events = eventsFor(job, view);
        if (events.length > 0) await sink.applyEvents(f.ourId, events);
      }).catch((err: unknown) => this.o.log?.warn({ jobId: f.ourId, err: (err as Error).message }, 'bullmq change not applied; the next poll catches up'));
    };
    events.on('active', ({ jobId }) => push(jobId, (j) => viewOfBullmq('active', j?.progress)));
    events.on('progress', ({ jobId, data }) => push(jobId, () => viewOfBullmq('active', data)));
    events.on('completed', ({ jobId, returnvalue }) => push(jobId, () => viewOfBullmq('completed', undefined, undefined, parseMaybe(returnvalue))));
    events.on('failed', ({ jobId, failedReason }) => push(jobId, (j) => viewOfBullmq('failed', j?.progress, failedReason)));
    q = { queue, events };
    this.queues.set(name, q);
    return q;
  }
}

/**
 * How many jobs are ahead of `jobId` in the queue's wait list (undefined when it is not there or
 * Redis is older than 6.0.6, which has no LPOS): workers take from the right end.
 */
export async function waitingPosition(queue: Queue, jobId: string): Promise<number | undefined> {
  try {
    const client = await queue.client;
    const key = queue.keys.wait!;
    const [index, length] = await Promise.all([client.lpos(key, jobId), client.llen(key)]);
    return index === null || index === undefined ? undefined : Math.max(0, length - 1 - index);
  } catch {
    return undefined;
  }
}

/** BullMQ connection options from a `redis://[:password@]host:port[/db]` (or `rediss://`) URL. */
export function bullmqConnectionFromUrl(url: string): ConnectionOptions {
  const u = new URL(url);
  const db = Number(u.pathname.replace(/^\//, '') || 0);
  return {
    host: u.hostname,
    port: Number(u.port || 6379),
    ...(u.username && { username: decodeURIComponent(u.username) }),
    ...(u.password && { password: decodeURIComponent(u.password) }),
    ...(Number.isInteger(db) && db > 0 && { db }),
    ...(u.protocol === 'rediss:' && { tls: {} }),
  };
}
