// Browser tests for widget/: real Chromium (Debian's /usr/bin/chromium), TypeScript through
// esbuild, and the REAL server started by test/fixtures/widget-server-plugin.mjs (with a chaos proxy per
// test for network trouble). One browser page at a time: the machine has 2 shared cores.
import { esbuildPlugin } from '@web/dev-server-esbuild';
import { chromeLauncher } from '@web/test-runner-chrome';
import { progressServerPlugin } from './test/fixtures/widget-server-plugin.mjs';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from './test/fixtures/chromium.mjs';

export default {
  rootDir: '.',
  files: ['test/widget/**/*.test.ts'],
  nodeResolve: { exportConditions: ['browser', 'production'] },
  concurrency: 1,
  concurrentBrowsers: 1,
  testsFinishTimeout: 10 * 60_000,
  browserStartTimeout: 60_000,
  testFramework: { config: { timeout: 30_000 } },
  browsers: [
    chromeLauncher({
      launchOptions: {
        executablePath: CHROMIUM_PATH,
        headless: true,
        args: [
          ...CHROMIUM_ARGS,
          // Background tabs must keep running timers at full rate for the visibility tests.
          '--disable-background-timer-throttling',
          '--disable-renderer-backgrounding',
          '--disable-backgrounding-occluded-windows',
        ],
      },
    }),
  ],
  plugins: [esbuildPlugin({ ts: true, tsconfig: 'tsconfig.base.json', target: 'es2022' }), progressServerPlugin()],
};
