// Builds dist/progress-tracker.js: one minified, self-contained ES module (lit, partysocket and
// nanoevents inlined) for <script type="module">. The unbundled ESM + .d.ts for npm come from
// `tsc` (npm run build:server compiles widget/ into dist/widget/). Also writes
// custom-elements.json with @custom-elements-manifest/analyzer, and builds the framework
// examples (demo/examples/build.mjs → dist/examples/).
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import nodeResolve from '@rollup/plugin-node-resolve';
import terser from '@rollup/plugin-terser';
import { transform, transformSync } from 'esbuild';
import ts from 'typescript';

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

/**
 * TypeScript → JS with esbuild (type checking is tsc's job in build:server): seconds instead of
 * a full program check. `.js` import specifiers are resolved to the `.ts` sources.
 */
function typescriptByEsbuild() {
  return {
    name: 'typescript-esbuild',
    async resolveId(source, importer) {
      if (!importer || !source.startsWith('.') || !source.endsWith('.js')) return null;
      const resolved = await this.resolve(source.replace(/\.js$/, '.ts'), importer, { skipSelf: true });
      return resolved ?? null;
    },
    async transform(code, id) {
      if (!id.endsWith('.ts')) return null;
      const out = await transform(collapseLiterals(code, id), {
        loader: 'ts',
        target: 'es2022',
        sourcemap: true,
        sourcefile: id,
        tsconfigRaw: { compilerOptions: { experimentalDecorators: true, useDefineForClassFields: false } },
      });
      return { code: out.code, map: out.map };
    },
  };
}

/**
 * Collapses the whitespace of html``, svg`` and css`` literals before esbuild: indentation goes,
 * and in css`` the spaces around punctuation and comments too. Every newline is kept, so lines
 * (and the source map) stay where they were; a run of spaces between words stays one space, so
 * rendered text is unchanged. (Like @lit-labs/rollup-plugin-minify-html-literals, without its
 * native dependencies.)
 */
function collapseLiterals(code, id) {
  if (!/\b(html|svg|css)`/.test(code)) return code;
  const file = ts.createSourceFile(id, code, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const edits = [];
  const visit = (node) => {
    if (ts.isTaggedTemplateExpression(node) && ts.isIdentifier(node.tag) && ['html', 'svg', 'css'].includes(node.tag.text)) {
      const isCss = node.tag.text === 'css';
      const t = node.template;
      const parts = ts.isNoSubstitutionTemplateLiteral(t) ? [t] : [t.head, ...t.templateSpans.map((s) => s.literal)];
      for (const p of parts) {
        // Between the delimiters: ` or } at the start, ` or ${ at the end.
        const start = p.getStart(file) + 1;
        const end = p.end - (p.kind === ts.SyntaxKind.TemplateHead || p.kind === ts.SyntaxKind.TemplateMiddle ? 2 : 1);
        edits.push([start, end, isCss]);
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(file);
  let out = code;
  for (const [start, end, isCss] of edits.sort((a, b) => b[0] - a[0])) {
    let text = out.slice(start, end);
    // A whole stylesheet (no ${} inside, no escapes): esbuild's CSS minifier.
    if (isCss && code[start - 1] === '`' && code[end] === '`' && !/[\\`]/.test(text)) {
      text = transformSync(text, { loader: 'css', minify: true }).code.trim();
    } else if (isCss) {
      text = text.replace(/\/\*[\s\S]*?\*\//g, (c) => c.replace(/[^\n]/g, ''));
      // Not before ':' (".a :hover" is not ".a:hover").
      text = text.replace(/[ \t]*([{};,>])[ \t]*/g, '$1').replace(/:[ \t]+/g, ':').replace(/;(\s*)}/g, '$1}');
    }
    text = text.replace(/[ \t]*\n\s*/g, (ws) => '\n'.repeat(ws.split('\n').length - 1)).replace(/[ \t]{2,}/g, ' ');
    out = out.slice(0, start) + text + out.slice(end);
  }
  return out;
}

/** The React 19 and Vue 3 examples (dist/examples/), so `npm start` serves them too. */
function frameworkExamples() {
  return {
    name: 'framework-examples',
    writeBundle() {
      execFileSync(process.execPath, ['demo/examples/build.mjs'], { stdio: ['ignore', 'ignore', 'inherit'] });
    },
  };
}

/**
 * dist/progress-tracker.files.json: every file this build wrote (the entry, lazily loaded chunks,
 * their source maps), so scripts/assemble-packages.mjs copies exactly the bundle's files into
 * @progress-tracker-kit/widget without guessing chunk names.
 */
function bundleFileList() {
  return {
    name: 'bundle-file-list',
    writeBundle(options, bundle) {
      const files = Object.keys(bundle).sort();
      writeFileSync(`${options.dir ?? 'dist'}/progress-tracker.files.json`, JSON.stringify(files, null, 2) + '\n');
    },
  };
}

export default {
  input: 'widget/define.ts',
  // Lazily loaded parts (a language's sentences) are chunks next to the bundle, named after it.
  output: { dir: 'dist', entryFileNames: 'progress-tracker.js', chunkFileNames: 'progress-tracker-[name].js', format: 'es', sourcemap: true },
  plugins: [
    typescriptByEsbuild(),
    nodeResolve({ browser: true }),
    terser({ ecma: 2022, module: true, compress: { pure_funcs: ['this._debug', 'console.error', 'console.warn'] }, format: { comments: false } }),
    sizeBudget(),
    bundleFileList(),
    customElementsManifest(),
    frameworkExamples(),
  ],
};
