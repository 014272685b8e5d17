/**
 * Follows jobs whose progress lives in another service: one poll loop per job, however many
 * browsers watch it (Centrifugo's "shared poll"), through one scheduler for all jobs. What a poll
 * sees becomes ordinary producer events applied by the job service, so polled jobs share the
 * state machine, `seq`, persistence, fan-out and ETA of pushed jobs.
 *
 * Upstream trouble is visible, not a frozen bar:
 * - unreachable (network error, timeout, 5xx, 429) for `unreachableAfterMs` → the job fails with a
 *   retryable `upstream_unreachable` error; polling goes on with backoff, and when the upstream
 *   answers again the job is resumed by itself (a retry through the service) and catches up;
 * - an unusable answer (malformed JSON, a value a map cannot read) → `upstream_bad_response`
 *   at once, naming the failing path; recovery is the same.
 * A retry by a user POSTs the source's `retryUrl` (when the failure was the upstream's own),
 * then polling resumes at once.
 */
import { backoffDelay, isTerminal, type Job, type JobError, type JobEvent, type JobSource, type StepSpec } from '../../protocol/index.js';
import type { PollFailure, PolledSource, SourceAdapter } from './adapter.js';
import { nextPollDelay, type CadenceLimits } from './cadence.js';
import { systemClock, type Clock } from './clock.js';
import { HttpAdapter } from './http-adapter.js';
import { PollScheduler } from './scheduler.js';

/** Errors this module puts on jobs; a job failed with one of them is still polled and recovers by itself. */
export const POLLING_ERRORS = ['upstream_unreachable', 'upstream_bad_response'] as const;
const isPollingError = (e: JobError | undefined): boolean => !!e && (POLLING_ERRORS as readonly string[]).includes(e.code);

/** What the poll manager needs from the job service. */
export interface PolledJobService {
  /** The job, or undefined when it was deleted or has expired (polling stops). */
  get(id: string): Promise<Job | undefined>;
  /** Applies events through the state machine (persisted and published). Rejects when refused. */
  applyEvents(id: string, events: JobEvent[]): Promise<Job>;
  /** Retries a failed job (same path as a user's retry). */
  retry(id: string, step?: string): Promise<Job>;
}

export interface PollLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface PollManagerOptions {
  service: PolledJobService;
  adapters?: SourceAdapter[];
  clock?: Clock;
  /** Default interval bounds when a source gives none (1 s, 30 s). */
  minIntervalMs?: number;
  maxIntervalMs?: number;
  /** Polls in flight per upstream host (16). */
  maxConcurrentPerHost?: number;
  /** Failing this long in a row shows `upstream_unreachable` (30 s). */
  unreachableAfterMs?: number;
  /** Backoff after failures: base (1 s) doubling up to max (60 s), with jitter. */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** Longest `Retry-After` honored (10 min). */
  maxRetryAfterMs?: number;
  /** After a retry, an upstream still saying "failed" is ignored this long (60 s). */
  retryGraceMs?: number;
  /** A job still not finished this long after polling began is failed as expired (24 h). */
  maxPollingMs?: number;
  random?: () => number;
  log?: PollLogger;
}

interface Followed {
  source: JobSource;
  handle: PolledSource;
  limits: CadenceLimits;
  since: number;
  failures: number;
  failingSince?: number;
  /** Ignore an upstream "failed" until then (a retry was just sent). */
  graceUntil?: number;
  /** The service is applying a retry we asked for ourselves (recovery): not a user's retry. */
  selfRetry: boolean;
  /** We failed the job on upstream trouble (not the upstream's own failure report). */
  failedByPolling: boolean;
  /** When the running step's progress last changed (ETA ticks move updatedAt without new progress). */
  progressSeenAt?: number;
  polls: number;
}

/** Counters for metrics and the benchmark. */
export interface PollStats {
  followed: number;
  polls: number;
  failures: number;
  eventsApplied: number;
}

export class PollManager {
  private readonly adapters = new Map<string, SourceAdapter>();
  private readonly followed = new Map<string, Followed>();
  private readonly scheduler: PollScheduler;
  private readonly clock: Clock;
  private readonly service: PolledJobService;
  private readonly o: Required<Omit<PollManagerOptions, 'service' | 'adapters' | 'clock' | 'log' | 'random'>>;
  private readonly random: () => number;
  private readonly log: PollLogger | undefined;
  readonly stats: PollStats = { followed: 0, polls: 0, failures: 0, eventsApplied: 0 };

  constructor(opts: PollManagerOptions) {
    this.service = opts.service;
    this.clock = opts.clock ?? systemClock;
    this.random = opts.random ?? Math.random;
    this.log = opts.log;
    this.o = {
      minIntervalMs: opts.minIntervalMs ?? 1000,
      maxIntervalMs: opts.maxIntervalMs ?? 30_000,
      maxConcurrentPerHost: opts.maxConcurrentPerHost ?? 16,
      unreachableAfterMs: opts.unreachableAfterMs ?? 30_000,
      backoffBaseMs: opts.backoffBaseMs ?? 1000,
      backoffMaxMs: opts.backoffMaxMs ?? 60_000,
      maxRetryAfterMs: opts.maxRetryAfterMs ?? 600_000,
      retryGraceMs: opts.retryGraceMs ?? 60_000,
      maxPollingMs: opts.maxPollingMs ?? 24 * 3600_000,
    };
    for (const a of opts.adapters ?? [new HttpAdapter()]) this.adapters.set(a.type, a);
    this.scheduler = new PollScheduler({
      clock: this.clock,
      maxConcurrentPerHost: this.o.maxConcurrentPerHost,
      run: (id) => this.pollOnce(id),
      onCrash: (id, err) => this.log?.warn({ jobId: id, err: String(err) }, 'polling crashed; will try again'),
    });
  }

  /** Checks a `source` at job creation: a message for a 400, or null. */
  validate(source: unknown, steps: readonly StepSpec[]): string | null {
    if (source === null || typeof source !== 'object' || Array.isArray(source)) return 'source must be an object';
    const type = (source as { type?: unknown }).type;
    const adapter = typeof type === 'string' ? this.adapters.get(type) : undefined;
    if (!adapter) return `source.type must be one of: ${[...this.adapters.keys()].join(', ')}`;
    return adapter.validate(source, steps);
  }

  /** Starts (or resumes, after a restart) following a job. The first poll happens at once. */
  follow(jobId: string, source: JobSource, opts: { pollNow?: boolean } = {}): void {
    if (this.followed.has(jobId)) return;
    const adapter = this.adapters.get(source.type);
    if (!adapter) throw new Error(`no polling adapter for source type "${source.type}"`);
    const handle = adapter.start(jobId, source);
    const min = handle.minIntervalMs ?? this.o.minIntervalMs;
    const max = Math.max(min, handle.maxIntervalMs ?? this.o.maxIntervalMs);
    this.followed.set(jobId, { source, handle, limits: { minIntervalMs: min, maxIntervalMs: max }, since: this.clock.now(), failures: 0, selfRetry: false, failedByPolling: false, polls: 0 });
    this.stats.followed = this.followed.size;
    if (opts.pollNow !== false) this.scheduler.schedule(jobId, handle.hostKey, 0);
  }

  /** Stops following a job (deleted, expired, or the server no longer cares). */
  unfollow(jobId: string): void {
    const f = this.followed.get(jobId);
    if (!f) return;
    f.handle.stop();
    this.followed.delete(jobId);
    this.scheduler.remove(jobId);
    this.stats.followed = this.followed.size;
  }

  isFollowing(jobId: string): boolean {
    return this.followed.has(jobId);
  }
  /** Jobs with a poll scheduled or in flight. */
  get activeCount(): number {
    return this.scheduler.size;
  }
  /** Polls made for one job so far (tests, metrics). */
  pollsOf(jobId: string): number {
    return this.followed.get(jobId)?.polls ?? 0;
  }
  /** When the job is due next (virtual-time tests). */
  dueAt(jobId: string): number | undefined {
    return this.scheduler.dueAt(jobId);
  }
  /** Resolves when no poll or retry is in flight. */
  async idle(): Promise<void> {
    while (this.retries.size > 0) await Promise.allSettled([...this.retries]);
    await this.scheduler.idle();
  }

  /**
   * The job service calls this after it accepted a retry of `jobId`. For a failure the upstream
   * reported, the upstream is asked to retry (`retryUrl`); then polling resumes at once.
   */
  onRetry(jobId: string, step: string | undefined, source?: JobSource): Promise<void> {
    const work = this.handleRetry(jobId, step, source).catch((err) => {
      this.log?.warn({ jobId, err: (err as Error).message }, 'polled job retry failed');
    });
    this.retries.add(work);
    void work.finally(() => this.retries.delete(work));
    return work;
  }

  private readonly retries = new Set<Promise<void>>();

  private async handleRetry(jobId: string, step: string | undefined, source?: JobSource): Promise<void> {
    if (!this.followed.has(jobId) && source) this.follow(jobId, source, { pollNow: false });
    const f = this.followed.get(jobId);
    if (!f || f.selfRetry) return;
    f.failures = 0;
    delete f.failingSince;
    f.since = this.clock.now();
    if (!f.failedByPolling) {
      const job = await this.service.get(jobId);
      if (!job) return this.unfollow(jobId);
      const res = await f.handle.retry(job, step);
      if (!res.ok) {
        this.log?.warn({ jobId, code: res.failure.code, reason: res.failure.message }, 'upstream refused the retry');
        await this.failJob(jobId, { ...res.failure, message: `retry not accepted: ${res.failure.message}` });
        f.failedByPolling = false; // the upstream's failure stands: the next retry asks it again
        return;
      }
      f.graceUntil = this.clock.now() + this.o.retryGraceMs;
    }
    if (this.followed.get(jobId) === f) this.scheduler.schedule(jobId, f.handle.hostKey, 0);
  }

  private readonly closers: Array<() => void | Promise<void>> = [];
  /** Runs `fn` on close (detaching service listeners, releasing leases). */
  onClose(fn: () => void | Promise<void>): void {
    this.closers.push(fn);
  }

  /** Stops every poll; resolves once the `onClose` functions have finished. */
  async close(): Promise<void> {
    const closers = this.closers.splice(0);
    for (const f of this.followed.values()) f.handle.stop();
    this.followed.clear();
    this.scheduler.close();
    for (const fn of closers) await fn();
    await Promise.allSettled([...this.adapters.values()].map((a) => a.close?.()));
  }

  /** One poll of one job; answers the delay until the next, or null to stop. */
  private async pollOnce(jobId: string): Promise<number | null> {
    const f = this.followed.get(jobId);
    if (!f) return null;
    let job = await this.service.get(jobId);
    if (!job) {
      this.unfollow(jobId);
      return null;
    }
    // After a restart the flag is gone: the job's error code tells the same.
    const failedByPolling = job.status === 'failed' && (f.failedByPolling || isPollingError(job.error));
    if (isTerminal(job.status) && !failedByPolling) return this.park(jobId, job);
    const now = this.clock.now();
    if (now - f.since > this.o.maxPollingMs) {
      await this.expire(jobId, job);
      return this.park(jobId, job);
    }

    f.polls++;
    this.stats.polls++;
    const outcome = await f.handle.poll(job);
    if (this.followed.get(jobId) !== f) return null; // unfollowed while the request was out
    const after = this.clock.now();

    if (!outcome.ok) {
      this.stats.failures++;
      f.failures++;
      f.failingSince ??= now;
      const failure = outcome.failure;
      const show = failure.code === 'upstream_bad_response' || after - f.failingSince >= this.o.unreachableAfterMs;
      if (show && !isTerminal(job.status)) await this.failJob(jobId, failure);
      const backoff = backoffDelay(f.failures - 1, { baseMs: Math.max(this.o.backoffBaseMs, f.limits.minIntervalMs), maxMs: this.o.backoffMaxMs, random: this.random });
      if (failure.retryAfterMs !== undefined) return Math.max(f.limits.minIntervalMs, Math.min(this.o.maxRetryAfterMs, failure.retryAfterMs));
      return backoff;
    }

    f.failures = 0;
    delete f.failingSince;
    if (failedByPolling) {
      // The upstream answers again: resume the job ourselves and read its state right away.
      f.selfRetry = true;
      try {
        await this.service.retry(jobId);
        f.failedByPolling = false;
        this.log?.info({ jobId }, 'upstream answers again; polling resumed');
      } catch (err) {
        this.log?.warn({ jobId, err: (err as Error).message }, 'could not resume the polled job');
      } finally {
        f.selfRetry = false;
      }
      return 0;
    }

    let events = outcome.events;
    if (f.graceUntil !== undefined) {
      // Right after a retry the upstream may still report the old failure: do not fail again yet.
      if (outcome.upstreamStatus === 'failed' && after < f.graceUntil) events = events.filter((e) => e.type !== 'step_failed' && !(e.type === 'job_end' && e.status === 'failed'));
      else if (outcome.upstreamStatus !== 'failed') delete f.graceUntil;
    }
    if (events.length > 0) {
      try {
        job = await this.service.applyEvents(jobId, events);
        this.stats.eventsApplied += events.length;
        f.progressSeenAt = after;
      } catch (err) {
        // The job changed under us (a retry, a producer event): read it again soon.
        this.log?.warn({ jobId, err: (err as Error).message }, 'polled events refused');
        return f.limits.minIntervalMs;
      }
    }
    if (isTerminal(job.status)) return this.park(jobId, job);
    return nextPollDelay(job, after, f.limits, f.progressSeenAt);
  }

  /** Stops polling a finished job; a failed one stays known so a retry can resume it. */
  private park(jobId: string, job: Job): null {
    if (job.status !== 'failed') {
      const f = this.followed.get(jobId);
      f?.handle.stop();
      this.followed.delete(jobId);
      this.stats.followed = this.followed.size;
    }
    return null;
  }

  private async failJob(jobId: string, failure: PollFailure): Promise<void> {
    const job = await this.service.get(jobId);
    if (!job || isTerminal(job.status)) return;
    const error = { code: failure.code, message: failure.message, retryable: true };
    const running = job.steps.find((s) => s.status === 'running');
    const event: JobEvent = running ? { type: 'step_failed', step: running.id, error } : { type: 'job_end', status: 'failed', error };
    try {
      await this.service.applyEvents(jobId, [event]);
      const f = this.followed.get(jobId);
      if (f) f.failedByPolling = true;
      this.log?.warn({ jobId, code: failure.code, path: failure.path, reason: failure.message }, 'polled job failed on upstream trouble');
    } catch (err) {
      this.log?.warn({ jobId, err: (err as Error).message }, 'could not mark polled job failed');
    }
  }

  private async expire(jobId: string, job: Job): Promise<void> {
    if (isTerminal(job.status)) return;
    const hours = Math.round(this.o.maxPollingMs / 360_000) / 10;
    const error = { code: 'upstream_unreachable', message: `the upstream did not finish the job within ${hours} h of polling; retry to poll again`, retryable: true };
    try {
      await this.service.applyEvents(jobId, [{ type: 'job_end', status: 'failed', error }]);
    } catch {
      // already finished by someone else
    }
  }
}
