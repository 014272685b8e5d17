import type { Job } from '../protocol/index.js';
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
