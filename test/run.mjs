#!/usr/bin/env node
// `npm test`: provisions what the tests need (Debian's Chromium, Redis, nginx, openssl and the Python
// packages of python/tests), builds,
// then runs every suite against the real server. Each suite runs even when an earlier one fails;
// the exit code is non-zero when any failed.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const SYSTEM_DEPS = [
  { bin: '/usr/bin/chromium', pkg: 'chromium', why: 'browser tests (@web/test-runner)' },
  { bin: '/usr/bin/redis-server', pkg: 'redis-server', why: 'Redis store and cluster tests' },
  { bin: '/usr/sbin/nginx', pkg: 'nginx', why: 'the reverse-proxy test (test/reliability/nginx.test.ts)' },
  { bin: '/usr/bin/openssl', pkg: 'openssl', why: "the reverse-proxy test's self-signed certificate" },
  { bin: '/usr/bin/promtool', pkg: 'prometheus', why: '`promtool check metrics` on /metrics (test/server/observability.test.ts)' },
  // The Python producer SDK's suite (python/tests): Debian's Python 3 packages, never pip.
  ...[
    ['pytest', 'python3-pytest'],
    ['celery', 'python3-celery'],
    ['redis', 'python3-redis'],
    ['fastapi', 'python3-fastapi'],
    ['uvicorn', 'python3-uvicorn'],
    ['httpx', 'python3-httpx'],
    ['mypy', 'python3-mypy'],
    ['setuptools', 'python3-setuptools'],
    ['wheel', 'python3-wheel'],
  ].map(([mod, pkg]) => ({ bin: `/usr/lib/python3/dist-packages/${mod}/__init__.py`, pkg, why: 'the Python SDK tests (python/tests)' })),
  { bin: '/usr/lib/python3.11/ensurepip/__init__.py', pkg: 'python3-venv', why: "the Python SDK's offline pip install test" },
];

const SUITES = [
  ['server', 'npm', ['run', 'test:server']],
  ['widget (Chromium)', 'npm', ['run', 'test:widget']],
  ['reliability', 'npm', ['run', 'test:reliability']],
  // The published packages: npm pack + install into fresh projects (npm registry), React/Vue typings.
  ['frontend packages', 'npm', ['run', 'test:frontend']],
  ['python', '/usr/bin/python3', ['-m', 'pytest', '-q', 'python/tests']],
];

function run(cmd, args, opts = {}) {
  const res = spawnSync(cmd, args, { stdio: 'inherit', ...opts });
  return res.status ?? 1;
}

function provision() {
  const missing = SYSTEM_DEPS.filter((d) => !existsSync(d.bin));
  if (missing.length === 0) return;
  const names = missing.map((d) => d.pkg);
  const isRoot = process.getuid?.() === 0;
  if (!isRoot || !existsSync('/usr/bin/apt-get')) {
    console.error(
      `\nnpm test needs Debian packages that are not installed: ${names.join(', ')}\n` +
        missing.map((d) => `  ${d.pkg}: ${d.why}`).join('\n') +
        `\nInstall them with:  sudo apt-get install -y ${names.join(' ')}\n`,
    );
    process.exit(2);
  }
  console.log(`[test] installing ${names.join(', ')} with apt-get…`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () => run('apt-get', ['install', '-y', '--no-install-recommends', ...names], { env });
  if (install() !== 0 && (run('apt-get', ['update'], { env }) !== 0 || install() !== 0)) {
    console.error(`[test] apt-get could not install ${names.join(', ')}`);
    process.exit(2);
  }
}

provision();
if (run('npm', ['run', 'build']) !== 0) {
  console.error('[test] build failed');
  process.exit(1);
}

const results = SUITES.map(([name, cmd, args]) => {
  console.log(`\n[test] ── ${name} ──`);
  const started = Date.now();
  const code = run(cmd, args);
  return { name, code, seconds: Math.round((Date.now() - started) / 1000) };
});

console.log('\n[test] summary');
for (const r of results) console.log(`  ${r.code === 0 ? 'pass' : 'FAIL'}  ${r.name} (${r.seconds}s)`);
process.exit(results.some((r) => r.code !== 0) ? 1 : 0);
