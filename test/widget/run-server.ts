// Runs the real server from its TypeScript sources for the browser tests (started by
// server-plugin.mjs with PT_JWT_SECRET, PT_DB=:memory:, PORT=0 in the environment). It uses the
// public CLI entry, exactly as `progress-tracker serve` does, so it prints its URL on stdout.
import { main } from '../../server/app/cli.js';

const code = await main(['serve']);
if (typeof code === 'number' && code !== 0) process.exit(code);
