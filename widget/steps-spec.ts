import type { Job, Step } from '../protocol/index.js';

/** A step announced before the first snapshot (`steps` attribute or property). */
export interface StepSpec {
  id: string;
  label: string;
}

/** The `steps` attribute: JSON `[{"id","label"}]`; anything else reads as no steps. */
export const stepsAttribute = {
  fromAttribute: (v: string | null): StepSpec[] | undefined => {
    if (!v) return undefined;
    try {
      return JSON.parse(v) as StepSpec[];
    } catch {
      return undefined;
    }
  },
};

/**
 * The job's steps, or before its first state the announced ones (all pending). Once the job is
 * there, a step the app announced keeps the app's label: the page owns its wording (its own
 * language, its product's names), whether the snapshot or the `steps` property arrived first.
 */
export function stepsToShow(job: Job | undefined, specs: StepSpec[] | undefined): Step[] {
  if (!job || !job.steps.length) return (specs ?? []).map((s) => ({ id: s.id, label: s.label, status: 'pending' as const, progress: 0 }));
  if (!specs?.length) return job.steps;
  return job.steps.map((step) => {
    const label = specs.find((s) => s.id === step.id)?.label;
    return label === undefined || label === step.label ? step : { ...step, label };
  });
}
