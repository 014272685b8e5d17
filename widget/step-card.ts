import { html, nothing, svg, type SVGTemplateResult, type TemplateResult } from 'lit';
import type { Step, StepStatus } from '../protocol/index.js';
import { formatPercent, type Messages } from './format.js';

/**
 * One step card of `<progress-tracker>`: number, icon, label, and the state told three ways —
 * icon shape, visible text, and visually hidden words for screen readers — never by color alone.
 * Its accessible name is its label and state; the producer's `message` is its description.
 * `cancel`: the job's cancel is under way (`canceling`: the running step says so) or done
 * (`canceled`: the step the cancel interrupted shows "Canceled" and a stop icon).
 */
export function stepCard(
  step: Step,
  index: number,
  total: number,
  current: boolean,
  lang: string | undefined,
  m: Messages,
  cancel?: 'canceling' | 'canceled',
): TemplateResult {
  const canceled = cancel === 'canceled' && step.status === 'running';
  const status: CardStatus = canceled ? 'canceled' : step.status;
  const running = status === 'running';
  const canceling = running && cancel === 'canceling';
  const percent = formatPercent(step.progress, lang);
  const visible = canceled ? m.canceled : status === 'completed' ? m.done : status === 'failed' ? m.failed : canceling ? m.canceling : running ? percent : '';
  const spoken = canceled ? m.canceled : running ? `${m.stepState.running}, ${percent}${canceling ? `, ${m.canceling}` : ''}` : m.stepState[step.status];
  // Named by its label and state ("Encode, in progress, 50%"); the producer's message describes it.
  return html`<li part="step step-${status}${canceling ? ' step-canceling' : ''}" class="step step--${status}" aria-current=${current ? 'step' : nothing} aria-labelledby="n${index}" aria-describedby=${step.message ? `d${index}` : nothing}>
    <span part="step-number" class="step-number">${index + 1}</span>
    <span part="step-icon" class="step-icon" aria-hidden="true">${stepIcon(status)}</span>
    <span id="n${index}" class="name"><span part="step-label" class="step-label">${step.label}</span><span class="visually-hidden">, ${spoken}</span></span>
    <span part="step-status" class="step-status" aria-hidden="true">${visible}</span>
    ${step.message ? html`<span id="d${index}" class="visually-hidden">${step.message}</span>` : nothing}
    ${running
      ? html`<span part="step-progress" class="step-progress" aria-hidden="true"
          ><span .style=${`transform:scaleX(${step.progress})`}></span
        ></span>`
      : nothing}
    ${index < total - 1 ? html`<span part="separator" class="separator" aria-hidden="true">▶</span>` : nothing}
  </li>`;
}

/** A step's state as shown: a stopped step of a canceled job is `canceled`. */
export type CardStatus = StepStatus | 'canceled';

/** Distinct shapes per state: check, cross, spinning arc, empty circle, stop square. */
export function stepIcon(status: CardStatus): TemplateResult {
  return html`<svg class=${status === 'running' ? 'spin' : ''} viewBox="0 0 16 16" width="16" height="16">${ICONS[status]}</svg>`;
}

const ICONS: Record<CardStatus, SVGTemplateResult> = {
  completed: svg`<path d="M3 8.5l3 3 7-7" fill="none" stroke="currentColor" stroke-width="2" />`,
  failed: svg`<path d="M4 4l8 8M12 4l-8 8" fill="none" stroke="currentColor" stroke-width="2" />`,
  running: svg`<circle cx="8" cy="8" r="6" fill="none" stroke="currentColor" stroke-width="2" stroke-dasharray="28 10" />`,
  pending: svg`<circle cx="8" cy="8" r="5.5" fill="none" stroke="currentColor" stroke-width="1.5" />`,
  canceled: svg`<rect x="3.5" y="3.5" width="9" height="9" rx="1.5" fill="currentColor" />`,
};
