import { isTerminal, type Job } from '../protocol/index.js';
import type { ProgressClient } from './progress-client.js';

/** How long the Retry and Cancel buttons wait for the server's answer before they can be pressed again. */
export const ANSWER_TIMEOUT_MS = 15_000;

/** Resolves once the server answered a request: a state `accepted` says so, a refusal or failure, or 15 s. */
export function serverAnswer(client: ProgressClient, accepted: (job: Job) => boolean): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      offs.forEach((off) => off());
      clearTimeout(timer);
      resolve();
    };
    const offs = [client.on('update', (job) => accepted(job) && done()), client.on('error', (e) => !e.job && done())];
    const timer = setTimeout(done, ANSWER_TIMEOUT_MS);
  });
}

/** Retry from `step`; resolves once the job has left `failed`, the retry was refused, or after 15 s. */
export async function sendRetry(client: ProgressClient | undefined, step: string | undefined): Promise<void> {
  if (!client) return;
  const answered = serverAnswer(client, (job) => job.status !== 'failed');
  await client.retry(step);
  await answered;
}

/** Cancel; resolves once the job carries `cancelRequested` or has ended, the cancel was refused, or after 15 s. */
export async function sendCancel(client: ProgressClient | undefined, reason: string | undefined): Promise<void> {
  if (!client) return;
  const answered = serverAnswer(client, (job) => !!job.cancelRequested || isTerminal(job.status));
  await client.cancel(reason);
  await answered;
}
