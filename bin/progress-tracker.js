#!/usr/bin/env node
// The `progress-tracker` command: `serve`, `eta-replay`. The code lives in dist/ (built by `npm run build`).
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
