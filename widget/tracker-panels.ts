/**
 * The failure panel of `<progress-tracker>`: what failed, where, and Retry (the Cancel button and
 * its confirmation are cancel-flow.ts's). Producer text
 * (step label, error message) is bidi-isolated: inside the sentences with `isolate()`, as an
 * element with `unicode-bidi: isolate` (progress-tracker.styles.ts).
 */
import { html, nothing, type TemplateResult } from 'lit';
import type { Job, Step } from '../protocol/index.js';
import { isolate, type Messages } from './i18n/messages.js';
import { stepIcon } from './step-card.js';

export function failurePanel(job: Job, failedStep: Step | undefined, m: Messages, retrying: boolean, retry: () => void): TemplateResult {
  const error = job.error ?? failedStep?.error;
  const retryable = job.status === 'failed' && error?.retryable !== false;
  const stepLabel = failedStep && isolate(failedStep.label);
  const canceled = job.status === 'canceled';
  // The server's own end of a cancel (cancel_timeout) says nothing a user needs: "Canceled".
  const message = canceled && (!error || error.code === 'cancel_timeout') ? m.canceled : (error?.message ?? m.failed);
  // Focus stays on the Retry button while the retry is under way (aria-disabled, not disabled).
  return html`<div part="error" class="error" role="group" aria-label=${canceled ? m.canceled : m.failed}>
      <span class="error-icon" aria-hidden="true">${stepIcon(canceled ? 'canceled' : 'failed')}</span>
      <div class="error-text">
        ${stepLabel ? html`<strong class="error-step">${m.failedStep(stepLabel)}</strong>` : nothing}
        <span part="error-message" class="error-message">${message}</span>
      </div>
      ${retryable
        ? html`<button
            part="retry"
            class="retry"
            type="button"
            aria-disabled=${retrying ? 'true' : 'false'}
            @click=${retry}
          >
            ${retrying ? m.retrying : stepLabel ? m.retryStep(stepLabel) : m.retry}
          </button>`
        : nothing}
    </div>`;
}
