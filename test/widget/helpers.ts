// Shared helpers for the widget's browser tests: talk to the real server (through the test
// runner's server commands) and wait for user-visible conditions.
import { executeServerCommand } from '@web/test-runner-commands';
import type { Job, JobEvent } from '../../protocol/index.js';
import type { ProgressTracker } from '../../widget/progress-tracker.js';

export interface StepInput {
  id: string;
  label: string;
}

export const STEPS: StepInput[] = [
  { id: 'upload', label: 'Upload' },
  { id: 'encode', label: 'Encode' },
  { id: 'publish', label: 'Publish' },
];

let counter = 0;
export const uniqueId = (prefix = 'job') => `${prefix}-${Date.now().toString(36)}-${(counter++).toString(36)}-${Math.random().toString(36).slice(2, 6)}`;

export async function serverUrl(): Promise<string> {
  return ((await executeServerCommand('pt:info')) as { url: string }).url;
}

export const wsUrl = (httpUrl: string) => `${httpUrl.replace(/^http/, 'ws')}/v1/ws`;

export async function token(opts: { jobs?: string[]; scopes?: string[]; ttlSeconds?: number } = {}): Promise<string> {
  return (await executeServerCommand('pt:token', opts)) as string;
}

export async function createJob(steps: StepInput[] = STEPS, id = uniqueId()): Promise<Job> {
  return (await executeServerCommand('pt:create-job', { id, steps })) as Job;
}

export async function send(jobId: string, ...events: JobEvent[]): Promise<void> {
  await executeServerCommand('pt:events', { jobId, events });
}

export async function getJob(jobId: string): Promise<Job> {
  const body = (await executeServerCommand('pt:get-job', { jobId })) as Job | { job: Job };
  return 'job' in body ? body.job : body;
}

export interface ChaosProxy {
  id: string;
  port: number;
  /** ws:// URL of /v1/ws through the proxy. */
  src: string;
  /** http:// base through the proxy. */
  api: string;
  set(mode: 'up' | 'no-ws' | 'down'): Promise<ProxyCounts>;
  drop(): Promise<ProxyCounts>;
  counts(): Promise<ProxyCounts>;
  close(): Promise<void>;
}

export interface ProxyCounts {
  mode: string;
  connections: number;
  upgrades: number;
  refusedUpgrades: number;
  refused: number;
}

export async function chaosProxy(): Promise<ChaosProxy> {
  const { id, port, url } = (await executeServerCommand('pt:proxy-create')) as { id: string; port: number; url: string };
  return {
    id,
    port,
    src: wsUrl(url),
    api: url,
    set: async (mode) => (await executeServerCommand('pt:proxy', { id, mode })) as ProxyCounts,
    drop: async () => (await executeServerCommand('pt:proxy', { id, drop: true })) as ProxyCounts,
    counts: async () => (await executeServerCommand('pt:proxy', { id })) as ProxyCounts,
    close: async () => {
      await executeServerCommand('pt:proxy-close', { id });
    },
  };
}

/** Polls `check` until it returns a truthy value; fails with `what` after `timeout` ms. */
export async function waitFor<T>(check: () => T | Promise<T>, what: string, timeout = 15_000): Promise<NonNullable<T>> {
  const started = Date.now();
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
      last = v;
    } catch (err) {
      last = err;
    }
    if (Date.now() - started > timeout) throw new Error(`timed out after ${timeout} ms waiting for ${what} (last: ${String(last)})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Fast reconnect/poll tuning so network-trouble tests take seconds, not minutes. */
export const FAST = {
  minReconnectDelayMs: 150,
  maxReconnectDelayMs: 600,
  reconnectGrowFactor: 1.3,
  connectTimeoutMs: 1500,
  socketAttemptsBeforePolling: 2,
  minPollIntervalMs: 200,
  maxPollIntervalMs: 800,
};

/** The text a sighted user reads in the element's shadow root, whitespace collapsed. */
export function visibleText(el: ProgressTracker, selector: string): string {
  const node = el.shadowRoot!.querySelector(selector);
  return (node?.textContent ?? '').replace(/\s+/g, ' ').trim();
}

export function part(el: Element, name: string): HTMLElement | null {
  return el.shadowRoot!.querySelector(`[part~="${name}"]`);
}

export function parts(el: Element, name: string): HTMLElement[] {
  return [...el.shadowRoot!.querySelectorAll<HTMLElement>(`[part~="${name}"]`)];
}

/** Records every event of the given names dispatched at `target` (or bubbling through it). */
export function recordEvents(target: EventTarget, names: string[]): CustomEvent[] {
  const seen: CustomEvent[] = [];
  for (const n of names) target.addEventListener(n, (e) => seen.push(e as CustomEvent));
  return seen;
}
