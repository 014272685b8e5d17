#!/usr/bin/env node
// Assembles the published packages (packages/*/dist, packages/server/demo) from the root build
// output (`tsc -b` → dist/, rollup → dist/progress-tracker.js + chunks). Part of `npm run build`.
//
// Why copying: the sources keep ONE tree (protocol/, widget/, producer/, server/, demo/ at the
// root, with relative imports such as '../protocol/index.js' between them), and each package gets
// its own compiled copy of what it needs under the same layout as the root dist/ — so
// dist/widget/*.js still finds ../protocol/index.js inside @progress-tracker-kit/widget, and no
// package depends on another only to reach the protocol. The widget and the producer install
// without the server's native modules (uWebSockets.js, better-sqlite3).
//
// The tsc source maps (*.js.map, *.d.ts.map) point at .ts sources that no package ships: they
// are left out and their sourceMappingURL comments removed. The script-tag bundle's maps embed
// their sources and are kept. scripts/generate-framework-types.mjs then adds the manifest and
// the React/Vue typings to packages/widget/dist.
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = join(root, 'dist');

function fail(message) {
  console.error(`assemble-packages: ${message}`);
  process.exit(1);
}

/** Copies dist/<dir>/ into <pkg>/dist/<dir>/ without tsc's source maps. */
function copyCompiled(pkg, dir) {
  const from = join(dist, dir);
  if (!existsSync(from)) fail(`${relative(root, from)} is missing: run \`npm run build:server\` first`);
  const to = join(pkg, 'dist', dir);
  cpSync(from, to, { recursive: true, filter: (src) => statSync(src).isDirectory() || !src.endsWith('.map') });
  stripMapComments(to);
}

function stripMapComments(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) stripMapComments(path);
    else if (/\.(js|d\.ts)$/.test(entry.name)) {
      const text = readFileSync(path, 'utf8');
      const stripped = text.replace(/\n\/\/# sourceMappingURL=\S+\s*$/, '\n');
      if (stripped !== text) writeFileSync(path, stripped);
    }
  }
}

/** The script-tag bundle: every file rollup wrote (entry, lazily loaded chunks, maps). */
function copyBundle(pkg) {
  const listPath = join(dist, 'progress-tracker.files.json');
  if (!existsSync(listPath)) fail('dist/progress-tracker.files.json is missing: run `npm run build:widget` first');
  const files = JSON.parse(readFileSync(listPath, 'utf8'));
  for (const file of files) {
    const to = join(pkg, 'dist', file);
    mkdirSync(dirname(to), { recursive: true });
    cpSync(join(dist, file), to);
  }
  return files;
}

function fresh(pkg, ...dirs) {
  for (const d of ['dist', ...dirs]) rmSync(join(pkg, d), { recursive: true, force: true });
  mkdirSync(join(pkg, 'dist'), { recursive: true });
}

// @progress-tracker-kit/widget: the elements, the headless client, the protocol, the bundle.
const widget = join(root, 'packages/widget');
fresh(widget);
copyCompiled(widget, 'widget');
copyCompiled(widget, 'protocol');
const bundleFiles = copyBundle(widget);

// @progress-tracker-kit/producer: the Node producer SDK and the protocol.
const producer = join(root, 'packages/producer');
fresh(producer);
copyCompiled(producer, 'producer');
copyCompiled(producer, 'protocol');

// progress-tracker-kit: the server and its CLI, with the protocol, the producer SDK (the demo's
// pipeline uses it) and the demo (its page, the bundle and the framework examples it serves).
const server = join(root, 'packages/server');
fresh(server, 'demo');
for (const dir of ['server', 'protocol', 'producer', 'demo']) copyCompiled(server, dir);
copyBundle(server);
if (existsSync(join(dist, 'examples'))) cpSync(join(dist, 'examples'), join(server, 'dist/examples'), { recursive: true });
cpSync(join(root, 'demo'), join(server, 'demo'), {
  recursive: true,
  // The demo's static files only: its TypeScript is compiled into dist/demo, the examples' sources into dist/examples.
  // The Angular and Next.js examples are apps of their own (docs), not part of the served demo.
  filter: (src) => !/[\\/]examples[\\/](angular|next)$/.test(src) && (statSync(src).isDirectory() || !/(\.ts|tsconfig\.json|build\.mjs|\.jsx)$/.test(src)),
});

console.log(`assemble-packages: packages/widget (bundle: ${bundleFiles.filter((f) => f.endsWith('.js')).join(', ')}), packages/producer, packages/server`);
