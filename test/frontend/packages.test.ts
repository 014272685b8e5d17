/**
 * The published packages as a frontend (or producer) developer gets them: `npm pack` each one,
 * install the tarballs into fresh projects outside this repository (dependencies from the npm
 * registry), and check what the install brings, what importing it in Node does, and that the
 * shipped React 19 and Vue 3 typings type-check a small app — and catch its mistakes
 * (test/frontend/fixtures: each @ts-expect-error / @vue-expect-error must be used).
 *
 * Needs `npm run build` first (npm test builds before the suites).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('../..', import.meta.url));
const fixtures = join(root, 'test/frontend/fixtures');
const MB = 1024 * 1024;
/** Lit and its own packages: the budget is "at most 3 MB besides Lit". */
const LIT = new Set(['lit', 'lit-html', 'lit-element', '@lit/reactive-element', '@lit-labs/ssr-dom-shim']);

interface Packed {
  file: string;
  size: number;
  unpackedSize: number;
  files: string[];
}

function npm(args: string[], cwd: string): string {
  return execFileSync('npm', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, npm_config_fund: 'false', npm_config_audit: 'false', npm_config_update_notifier: 'false' } });
}

function pack(pkgDir: string, dest: string): Packed {
  const [info] = JSON.parse(npm(['pack', '--json', '--pack-destination', dest], join(root, pkgDir))) as { filename: string; size: number; unpackedSize: number; files: { path: string }[] }[];
  return { file: join(dest, info.filename), size: info.size, unpackedSize: info.unpackedSize, files: info.files.map((f) => f.path) };
}

interface InstalledPackage {
  name: string;
  dir: string;
  bytes: number;
  installScripts: string[];
  nativeFiles: string[];
}

/** Every package under node_modules (nested ones too), with its size, install scripts and .node files. */
function installTree(project: string): InstalledPackage[] {
  const found: InstalledPackage[] = [];
  const walkPackage = (dir: string) => {
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name: string; scripts?: Record<string, string> };
    const scripts = pkg.scripts ?? {};
    const installScripts = ['preinstall', 'install', 'postinstall'].filter((s) => scripts[s]);
    // npm runs `node-gyp rebuild` for a package with a binding.gyp and no install script.
    if (existsSync(join(dir, 'binding.gyp'))) installScripts.push('binding.gyp');
    const entry: InstalledPackage = { name: pkg.name, dir, bytes: 0, installScripts, nativeFiles: [] };
    found.push(entry);
    const walkFiles = (d: string) => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        const p = join(d, e.name);
        if (e.isDirectory()) {
          if (e.name === 'node_modules') walkModules(p);
          else walkFiles(p);
        } else if (e.isFile()) {
          entry.bytes += lstatSync(p).size;
          if (e.name.endsWith('.node')) entry.nativeFiles.push(p);
        }
      }
    };
    walkFiles(dir);
  };
  const walkModules = (nm: string) => {
    for (const e of readdirSync(nm, { withFileTypes: true })) {
      if (e.name.startsWith('.')) continue;
      const p = join(nm, e.name);
      if (e.name.startsWith('@')) {
        for (const s of readdirSync(p, { withFileTypes: true })) if (existsSync(join(p, s.name, 'package.json'))) walkPackage(join(p, s.name));
      } else if (existsSync(join(p, 'package.json'))) walkPackage(p);
    }
  };
  walkModules(join(project, 'node_modules'));
  return found;
}

/** A fresh project outside the repository (no node_modules above it) with the tarballs installed. */
function project(base: string, name: string, tarballs: string[]): string {
  const dir = join(base, name);
  mkdirSync(dir);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, private: true, type: 'module' }, null, 2));
  npm(['install', '--prefer-offline', '--no-save', ...tarballs], dir);
  return dir;
}

function runNode(cwd: string, code: string): { status: number | null; stdout: string; stderr: string } {
  const res = spawnSync(process.execPath, ['--input-type=module', '-e', code], { cwd, encoding: 'utf8' });
  return { status: res.status, stdout: res.stdout, stderr: res.stderr };
}

function report(what: string, packed: Packed, tree: InstalledPackage[]) {
  const total = tree.reduce((n, p) => n + p.bytes, 0);
  const besidesLit = tree.filter((p) => !LIT.has(p.name)).reduce((n, p) => n + p.bytes, 0);
  console.log(
    `${what}: tarball ${(packed.size / 1024).toFixed(0)} KB (${packed.files.length} files, ${(packed.unpackedSize / 1024).toFixed(0)} KB unpacked); ` +
      `install ${tree.length} packages, ${(total / MB).toFixed(2)} MB (${(besidesLit / MB).toFixed(2)} MB besides Lit): ${tree.map((p) => p.name).sort().join(', ')}`,
  );
  return { total, besidesLit };
}

let base: string;
const packed: Record<'widget' | 'producer' | 'server', Packed> = {} as never;
let widgetProject: string;
let producerProject: string;

before(() => {
  for (const p of ['widget', 'producer', 'server']) {
    assert.ok(existsSync(join(root, 'packages', p, 'dist')), `packages/${p}/dist is missing: run \`npm run build\` first`);
  }
  base = mkdtempSync(join(tmpdir(), 'pt-frontend-'));
  const tarballs = join(base, 'tarballs');
  mkdirSync(tarballs);
  packed.widget = pack('packages/widget', tarballs);
  packed.producer = pack('packages/producer', tarballs);
  packed.server = pack('packages/server', tarballs);
  widgetProject = project(base, 'widget-app', [packed.widget.file]);
  producerProject = project(base, 'producer-app', [packed.producer.file]);
});

after(() => {
  if (base) rmSync(base, { recursive: true, force: true });
});

describe('@progress-tracker-kit/widget', () => {
  test('installs Lit, @lit/task, partysocket and nanoevents only: no install script, no native module, ≤ 3 MB besides Lit', () => {
    const tree = installTree(widgetProject);
    const { besidesLit } = report('@progress-tracker-kit/widget', packed.widget, tree);
    const names = new Set(tree.map((p) => p.name));
    for (const forbidden of ['progress-tracker-kit', 'uWebSockets.js', 'better-sqlite3', 'ioredis', 'pino', 'ws', 'react', 'vue']) {
      assert.ok(!names.has(forbidden), `${forbidden} must not be installed with the widget`);
    }
    for (const needed of ['@progress-tracker-kit/widget', 'lit', '@lit/task', 'partysocket', 'nanoevents']) assert.ok(names.has(needed), `${needed} is installed`);
    assert.deepEqual(tree.filter((p) => p.installScripts.length).map((p) => `${p.name}: ${p.installScripts.join(', ')}`), []);
    assert.deepEqual(tree.flatMap((p) => p.nativeFiles), []);
    assert.ok(besidesLit <= 3 * MB, `${(besidesLit / MB).toFixed(2)} MB besides Lit`);
    assert.ok(packed.widget.files.includes('LICENSE') && packed.widget.files.includes('README.md'));
    assert.ok(!packed.widget.files.some((f) => f.endsWith('.ts') && !f.endsWith('.d.ts')), 'no TypeScript sources in the tarball');
  });

  test('"." loads in Node (server-side rendering) without defining the elements; "./define" defines them', () => {
    const index = runNode(
      widgetProject,
      `const m = await import('@progress-tracker-kit/widget');
       const p = await import('@progress-tracker-kit/widget/protocol');
       console.log(JSON.stringify({ tracker: typeof m.ProgressTracker, client: typeof m.ProgressClient, terminal: p.isTerminal('completed'),
         defined: globalThis.customElements?.get('progress-tracker') !== undefined || globalThis.customElements?.get('notification-badge') !== undefined }));`,
    );
    assert.equal(index.status, 0, index.stderr);
    const seen = JSON.parse(index.stdout.trim().split('\n').pop()!);
    assert.deepEqual(seen, { tracker: 'function', client: 'function', terminal: true, defined: false });
    // The control: the define entry does register (in Lit's Node shim registry), so the check above can fail.
    const define = runNode(widgetProject, `await import('@progress-tracker-kit/widget/define'); console.log(customElements.get('progress-tracker')?.name, customElements.get('notification-badge')?.name);`);
    assert.equal(define.status, 0, define.stderr);
    assert.equal(define.stdout.trim(), 'ProgressTracker NotificationBadge');
  });

  test('"./bundle" is the script-tag bundle and every chunk it imports is in the package', async () => {
    const pkgDir = join(widgetProject, 'node_modules/@progress-tracker-kit/widget');
    const resolved = runNode(widgetProject, `const { fileURLToPath } = await import('node:url'); console.log(fileURLToPath(import.meta.resolve('@progress-tracker-kit/widget/bundle')));`);
    assert.equal(resolved.status, 0, resolved.stderr);
    assert.equal(resolved.stdout.trim(), join(pkgDir, 'dist/progress-tracker.js'));
    // esbuild parses the shipped bundle and follows its static and dynamic imports (lazily loaded
    // chunks): every chunk must be in the package (or the build throws), and no import may name a package.
    const bare: string[] = [];
    const result = await build({
      entryPoints: [join(pkgDir, 'dist/progress-tracker.js')],
      bundle: true,
      write: false,
      metafile: true,
      format: 'esm',
      logLevel: 'silent',
      plugins: [{ name: 'no-packages', setup: (b) => b.onResolve({ filter: /^[^./]/ }, (a) => (bare.push(a.path), { path: a.path, external: true })) }],
    });
    assert.deepEqual(bare, [], 'the bundle imports no package (self-contained for a script tag)');
    const seen = Object.keys(result.metafile.inputs).map((f) => relative(join(pkgDir, 'dist'), resolve(root, f)));
    assert.ok(seen.includes('progress-tracker.js'));
    // (A chunk missing from the package fails the build above: esbuild cannot resolve it.)
    console.log(`bundle files loaded: ${seen.join(', ')}`);
  });

  test('custom-elements.json points at shipped files and types the events', () => {
    const pkgDir = join(widgetProject, 'node_modules/@progress-tracker-kit/widget');
    const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as { customElements: string };
    const manifest = JSON.parse(readFileSync(join(pkgDir, pkg.customElements), 'utf8')) as {
      modules: { path: string; typeDefinitionPath?: string; declarations?: { tagName?: string; events?: { name: string; type?: { text: string } }[] }[] }[];
    };
    for (const mod of manifest.modules) {
      assert.ok(existsSync(join(pkgDir, mod.path)), `${mod.path} is shipped`);
      assert.ok(mod.typeDefinitionPath && existsSync(join(pkgDir, mod.typeDefinitionPath)), `${mod.typeDefinitionPath} is shipped`);
    }
    const tracker = manifest.modules.flatMap((m) => m.declarations ?? []).find((d) => d.tagName === 'progress-tracker');
    const events = Object.fromEntries((tracker?.events ?? []).map((e) => [e.name, e.type?.text]));
    assert.equal(events['progress-complete'], 'CustomEvent<Job>');
    assert.equal(events['progress-error'], 'CustomEvent<ProgressErrorInfo>');
    assert.equal(events['progress-retry'], 'CustomEvent<ProgressRetryDetail>');
  });
});

describe('framework typings', () => {
  let typesProject: string;
  before(() => {
    // The app's own React and Vue (what `npm install react @types/react vue` would add), from this
    // repository's devDependencies; the widget comes from its tarball.
    typesProject = widgetProject;
    for (const name of ['react', '@types/react', 'csstype', 'vue', '@vue']) {
      const to = join(typesProject, 'node_modules', name);
      if (existsSync(to)) continue;
      mkdirSync(join(to, '..'), { recursive: true });
      symlinkSync(join(root, 'node_modules', name), to, 'dir');
    }
    cpSync(fixtures, typesProject, { recursive: true });
  });

  const tsc = (dir: string) => spawnSync(process.execPath, [join(root, 'node_modules/typescript/lib/tsc.js'), '-p', 'tsconfig.json'], { cwd: dir, encoding: 'utf8' });
  const vueTsc = (dir: string) => spawnSync(process.execPath, [join(root, 'node_modules/vue-tsc/bin/vue-tsc.js'), '-p', 'tsconfig.json'], { cwd: dir, encoding: 'utf8' });

  test('React 19: the app type-checks and every @ts-expect-error (misspelled attribute, wrong value, wrong handler) is needed', () => {
    const dir = join(typesProject, 'react-app');
    const res = tsc(dir);
    assert.equal(res.status, 0, res.stdout + res.stderr);
    // Without the typings the same app fails: the check depends on them.
    writeFileSync(join(dir, 'app.tsx'), readFileSync(join(dir, 'app.tsx'), 'utf8').replace("import type {} from '@progress-tracker-kit/widget/react';", ''));
    const without = tsc(dir);
    assert.notEqual(without.status, 0);
    assert.match(without.stdout, /Property 'progress-tracker' does not exist on type 'JSX.IntrinsicElements'/);
  });

  test('Vue 3 (vue-tsc, strictTemplates): the SFC type-checks and every @vue-expect-error is needed', () => {
    const dir = join(typesProject, 'vue-app');
    const res = vueTsc(dir);
    assert.equal(res.status, 0, res.stdout + res.stderr);
    writeFileSync(join(dir, 'env.d.ts'), 'export {};\n');
    const without = vueTsc(dir);
    assert.notEqual(without.status, 0);
    assert.match(without.stdout, /progress-tracker/);
  });
});

describe('@progress-tracker-kit/producer', () => {
  test('installs ws only: no uWebSockets.js, no SQLite, no install script, no native module', () => {
    const tree = installTree(producerProject);
    report('@progress-tracker-kit/producer', packed.producer, tree);
    assert.deepEqual(tree.map((p) => p.name).sort(), ['@progress-tracker-kit/producer', 'ws']);
    assert.deepEqual(tree.flatMap((p) => p.nativeFiles), []);
    assert.deepEqual(tree.filter((p) => p.installScripts.length).map((p) => p.name), []);
  });

  test('imports in Node without uWebSockets.js present, and runs (webhook verification refuses an unsigned request)', () => {
    const res = runNode(
      producerProject,
      `const m = await import('@progress-tracker-kit/producer');
       let uws = 'absent'; try { await import('uWebSockets.js'); uws = 'present'; } catch {}
       let refused = '';
       try { m.verifyWebhook('whsec_' + Buffer.from('secret').toString('base64'), {}, '{}'); } catch (err) { refused = m.isWebhookVerificationError(err) ? err.reason : String(err); }
       console.log(JSON.stringify({ createProducer: typeof m.createProducer, refused, uws }));`,
    );
    assert.equal(res.status, 0, res.stderr);
    assert.deepEqual(JSON.parse(res.stdout.trim()), { createProducer: 'function', refused: 'missing_header', uws: 'absent' });
  });
});

describe('progress-tracker-kit (server)', () => {
  test('ships the bin, the server, the producer, the protocol, the demo and the bundle it serves', () => {
    const files = new Set(packed.server.files);
    for (const f of ['bin/progress-tracker.js', 'dist/server/app/cli.js', 'dist/server/index.d.ts', 'dist/producer/index.js', 'dist/protocol/index.js', 'dist/demo/pipeline.js', 'demo/index.html', 'demo/app.js', 'dist/progress-tracker.js', 'LICENSE', 'README.md']) {
      assert.ok(files.has(f), `${f} is in progress-tracker-kit`);
    }
    assert.ok(![...files].some((f) => f.startsWith('dist/widget/')), 'no widget ESM in the server package');
    const pkg = JSON.parse(readFileSync(join(root, 'packages/server/package.json'), 'utf8')) as { bin: Record<string, string>; dependencies: Record<string, string> };
    assert.equal(pkg.bin['progress-tracker'], 'bin/progress-tracker.js');
    console.log(`progress-tracker-kit: tarball ${(packed.server.size / 1024).toFixed(0)} KB (${packed.server.files.length} files, ${(packed.server.unpackedSize / 1024).toFixed(0)} KB unpacked); dependencies ${Object.keys(pkg.dependencies).join(', ')}`);
  });
});
