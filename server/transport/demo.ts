/**
 * Demo mode (PT_DEMO=1, `serve --demo`, `npm start`): the demo page and its helpers on the same
 * port as the API.
 *
 * - `GET /` and `GET /<file>` serve demo/, `GET /dist/<file>` serves the built bundles;
 * - `POST /demo/jobs` `{"fail"?}` starts the simulated pipeline (dist/demo/pipeline.js, which
 *   uses only the producer SDK) with a write+retry token minted for that job, and answers
 *   `{jobId, token}` with a short-lived read+retry token for the browser;
 * - `GET /demo/token?job=ID` mints a fresh read+retry token for a demo job (reconnects).
 *
 * These endpoints hand out tokens to anyone who asks, which is the point of a demo and the
 * reason they exist only in demo mode and only for `demo-` job ids.
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { dirname, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { TemplatedApp } from 'uWebSockets.js';
import { mintToken } from './auth.js';
import { ApiError, badRequest, JOB_ID_PATTERN, notFound } from '../../protocol/index.js';
import { parseJson, route, type HttpContext } from './uws-http.js';

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
  '.woff2': 'font/woff2',
};

/** Browser token lifetime; the page asks /demo/token again on reconnect. */
const BROWSER_TOKEN_SECONDS = 10 * 60;
const PRODUCER_TOKEN_SECONDS = 15 * 60;
/** Every demo job carries this tag; `/demo/token?tag=user:demo` reads its feed. */
const DEMO_TAG = 'user:demo';

/** The package root: the nearest folder above this module with a package.json. */
export function packageRoot(from = dirname(fileURLToPath(import.meta.url))): string {
  let dir = from;
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) return from;
    dir = up;
  }
}

export interface DemoOptions {
  secret: string;
  baseUrl: () => string;
  /** Aborted at shutdown: running demo pipelines stop. */
  signal: AbortSignal;
  root?: string;
}

interface DemoPipelineModule {
  startDemoJob(opts: {
    baseUrl: string;
    token: string;
    tokenProvider?: () => Promise<string>;
    fail?: boolean;
    jobId?: string;
    tags?: string[];
    title?: string;
    signal?: AbortSignal;
    onError?: (err: unknown) => void;
  }): Promise<{ jobId: string }>;
}

export function registerDemo(app: TemplatedApp, ctx: HttpContext, options: DemoOptions): void {
  const { config, log } = ctx;
  const root = options.root ?? packageRoot();
  const demoDir = resolve(root, 'demo');
  const distDir = resolve(root, 'dist');
  const mint = (scopes: Parameters<typeof mintToken>[0]['scopes'], jobId: string, ttlSeconds: number, subject: string) =>
    mintToken({
      secret: options.secret,
      audience: config.jwtAudience,
      ...(config.jwtIssuer !== undefined && { issuer: config.jwtIssuer }),
      scopes,
      jobs: [jobId],
      ttlSeconds,
      subject,
    });

  let pipeline: Promise<DemoPipelineModule> | undefined;
  const loadPipeline = () =>
    (pipeline ??= import(pathToFileURL(join(distDir, 'demo', 'pipeline.js')).href).catch((err: unknown) => {
      pipeline = undefined;
      log.error({ err: (err as Error).message }, 'demo pipeline not available');
      throw new ApiError(501, 'internal', 'the demo pipeline is not built: run `npm run build` (dist/demo/pipeline.js is missing)');
    }) as Promise<DemoPipelineModule>);

  app.post(
    '/demo/jobs',
    route(ctx, { body: true }, async (_info, body) => {
      let fail = false;
      if (body && body.length > 0) {
        const parsed = parseJson(body) as { fail?: unknown } | null;
        if (typeof parsed !== 'object' || parsed === null) throw badRequest('body must be {"fail"?: boolean}');
        if (parsed.fail !== undefined && typeof parsed.fail !== 'boolean') throw badRequest('fail must be a boolean');
        fail = parsed.fail === true;
      }
      const { startDemoJob } = await loadPipeline();
      const jobId = `demo-${randomUUID()}`;
      const producerToken = () => mint(['progress:write', 'progress:retry'], jobId, PRODUCER_TOKEN_SECONDS, 'demo-producer');
      const started = await startDemoJob({
        baseUrl: options.baseUrl(),
        token: await producerToken(),
        tokenProvider: producerToken,
        fail,
        jobId,
        tags: [DEMO_TAG],
        title: 'Generation',
        signal: options.signal,
        onError: (err) => log.warn({ jobId, err: err instanceof Error ? err.message : String(err) }, 'demo pipeline error'),
      });
      const token = await mint(['progress:read', 'progress:retry', 'progress:cancel'], started.jobId, BROWSER_TOKEN_SECONDS, 'demo-browser');
      log.info({ jobId: started.jobId, fail }, 'demo job started');
      return { status: 201, body: { jobId: started.jobId, token }, headers: { 'Cache-Control': 'no-store' } };
    }),
  );

  app.get(
    '/demo/token',
    route(ctx, {}, async (info) => {
      const query = new URLSearchParams(info.query);
      if (query.has('tag')) {
        // The demo user's feed (the page's bell): read-only, that one tag.
        if (query.get('tag') !== DEMO_TAG) throw badRequest(`tag must be ${DEMO_TAG}`);
        const token = await mint(['progress:read'], `tag:${DEMO_TAG}`, BROWSER_TOKEN_SECONDS, 'demo-browser');
        return { status: 200, body: { token, expiresIn: BROWSER_TOKEN_SECONDS }, headers: { 'Cache-Control': 'no-store' } };
      }
      const jobId = query.get('job') ?? '';
      if (!JOB_ID_PATTERN.test(jobId) || !jobId.startsWith('demo-')) throw badRequest('job must be a demo job id (demo-...)');
      const token = await mint(['progress:read', 'progress:retry', 'progress:cancel'], jobId, BROWSER_TOKEN_SECONDS, 'demo-browser');
      return { status: 200, body: { token, expiresIn: BROWSER_TOKEN_SECONDS }, headers: { 'Cache-Control': 'no-store' } };
    }),
  );

  app.get(
    '/*',
    route(ctx, {}, async (info) => {
      let path: string;
      try {
        path = decodeURIComponent(info.url);
      } catch {
        throw badRequest('bad URL encoding');
      }
      if (path.includes('\0')) throw badRequest('bad path');
      const [base, rel] = path === '/dist' || path.startsWith('/dist/') ? [distDir, path.slice(5)] : [demoDir, path];
      let file = resolve(base, '.' + (rel === '' || rel.endsWith('/') ? `${rel}index.html` : rel));
      // No escaping the folder, whatever the dots and slashes.
      if (file !== base && !file.startsWith(base + sep)) throw notFound(`no file ${info.url}`);
      let info2 = await stat(file).catch(() => undefined);
      if (info2?.isDirectory()) {
        file = join(file, 'index.html');
        info2 = await stat(file).catch(() => undefined);
      }
      if (!info2?.isFile()) throw notFound(`no file ${info.url}`);
      const body = await readFile(file);
      return {
        status: 200,
        body,
        contentType: CONTENT_TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream',
        headers: { 'Cache-Control': 'no-cache', 'X-Content-Type-Options': 'nosniff' },
      };
    }),
  );
}
