#!/usr/bin/env node
// Builds the framework examples into dist/examples/ (react.js, vue.js) with esbuild, from the
// npm packages react/react-dom 19 and vue 3. `@progress-tracker-kit/widget/define` — what an
// app imports — is aliased to the widget's sources, so the examples exercise the current code
// (the built package, packages/widget/dist, is assembled only after this build).
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

await build({
  absWorkingDir: root,
  entryPoints: { react: 'demo/examples/react/main.jsx', vue: 'demo/examples/vue/main.js' },
  outdir: 'dist/examples',
  bundle: true,
  format: 'esm',
  target: 'es2022',
  minify: true,
  sourcemap: true,
  jsx: 'automatic',
  tsconfig: 'tsconfig.json',
  plugins: [
    {
      // The define entry registers the elements: a side effect, which package.json's
      // `sideEffects` declares for dist/widget/define.js, not for its TypeScript source.
      name: 'define-entry-from-source',
      setup(b) {
        b.onResolve({ filter: /^@progress-tracker-kit\/widget\/define$/ }, () => ({ path: `${root}widget/define.ts`, sideEffects: true }));
      },
    },
  ],
  alias: {
    // The build with the template compiler: the example uses an in-DOM-style template string.
    vue: 'vue/dist/vue.esm-bundler.js',
  },
  define: {
    'process.env.NODE_ENV': '"production"',
    __VUE_OPTIONS_API__: 'true',
    __VUE_PROD_DEVTOOLS__: 'false',
    __VUE_PROD_HYDRATION_MISMATCH_DETAILS__: 'false',
  },
  logLevel: 'info',
});
