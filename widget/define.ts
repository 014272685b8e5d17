/**
 * Define entry: registers `<progress-tracker>` and `<notification-badge>` (guarded against
 * double definition) and re-exports everything. This is also the script-tag bundle's entry.
 */
import { defineProgressTracker } from './registry.js';

export * from './index.js';

defineProgressTracker();
