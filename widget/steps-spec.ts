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

/** The job's steps, or before its first state the announced ones (all pending). */
export function stepsToShow(job: Job | undefined, specs: StepSpec[] | undefined): Step[] {
  if (job && job.steps.length) return job.steps;
  return (specs ?? []).map((s) => ({ id: s.id, label: s.label, status: 'pending' as const, progress: 0 }));
}
