// Builds dist/progress-tracker.js: one minified, self-contained ES module (lit, partysocket and
// nanoevents inlined) for <script type="module">. The unbundled ESM + .d.ts for npm come from
// `tsc` (npm run build:server compiles widget/ into dist/widget/). Also writes
// custom-elements.json with @custom-elements-manifest/analyzer.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import nodeResolve from '@rollup/plugin-node-resolve';
import terser from '@rollup/plugin-terser';
import typescript from '@rollup/plugin-typescript';

const BUDGET_BYTES = 25 * 1024;

/** Prints the bundle's gzip size against the budget; fails the build when over it. */
function sizeBudget() {
  return {
    name: 'size-budget',
    writeBundle(options, bundle) {
      for (const [name, chunk] of Object.entries(bundle)) {
        if (chunk.type !== 'chunk') continue;
        const raw = readFileSync(`${options.dir ?? 'dist'}/${name}`);
        const gz = gzipSync(raw, { level: 9 }).length;
        const pct = ((gz / BUDGET_BYTES) * 100).toFixed(0);
        const line = `${name}: ${(raw.length / 1024).toFixed(1)} KB minified, ${(gz / 1024).toFixed(1)} KB gzip (budget ${BUDGET_BYTES / 1024} KB, ${pct}%)`;
        console.log(line);
        if (gz > BUDGET_BYTES) this.error(`${name} is over its gzip budget: ${line}`);
      }
    },
  };
}

/** custom-elements.json, analyzed from the TypeScript sources (JSDoc headers are the API). */
function customElementsManifest() {
  return {
    name: 'custom-elements-manifest',
    writeBundle() {
      execFileSync(
        process.execPath,
        ['node_modules/@custom-elements-manifest/analyzer/cem.js', 'analyze', '--litelement', '--globs', 'widget/progress-tracker.ts', 'widget/notification-badge.ts', 'widget/index.ts', '--outdir', '.'],
        { stdio: ['ignore', 'ignore', 'inherit'] },
      );
    },
  };
}

export default {
  input: 'widget/define.ts',
  output: { dir: 'dist', entryFileNames: 'progress-tracker.js', format: 'es', sourcemap: true },
  plugins: [
    typescript({
      tsconfig: false,
      include: ['widget/**/*.ts', 'server/protocol.ts'],
      compilerOptions: {
        target: 'ES2022',
        module: 'ESNext',
        moduleResolution: 'Bundler',
        lib: ['ES2023', 'DOM', 'DOM.Iterable'],
        strict: true,
        experimentalDecorators: true,
        useDefineForClassFields: false,
        skipLibCheck: true,
        declaration: false,
        sourceMap: true,
        types: [],
      },
    }),
    nodeResolve({ browser: true }),
    terser({ ecma: 2022, module: true, format: { comments: false } }),
    sizeBudget(),
    customElementsManifest(),
  ],
};
