#!/usr/bin/env node
// The `progress-tracker` command of the progress-tracker-kit package: `serve`, `eta-replay`.
// Same as the repository's bin/progress-tracker.js; dist/ here is assembled by `npm run build`
// (scripts/assemble-packages.mjs).
import { main } from '../dist/server/app/cli.js';

main(process.argv.slice(2)).then(
  (code) => {
    if (typeof code === 'number') process.exitCode = code;
  },
  (err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 1;
  },
);
