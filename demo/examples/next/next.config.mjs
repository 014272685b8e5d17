// The Next.js App Router example (demo/examples/next). The widget comes from the workspace
// package @progress-tracker-kit/widget (packages/widget, built by `npm run build`).
import { fileURLToPath } from 'node:url';

/** The progress server whose demo endpoints make a job when the page has no ?job= (npm start). */
const server = process.env.PROGRESS_SERVER ?? 'http://127.0.0.1:8080';

/** @type {import('next').NextConfig} */
const nextConfig = {
  // The repository root holds the lockfile and node_modules.
  turbopack: { root: fileURLToPath(new URL('../../..', import.meta.url)) },
  outputFileTracingRoot: fileURLToPath(new URL('../../..', import.meta.url)),
  async rewrites() {
    return [{ source: '/demo/:path*', destination: `${server}/demo/:path*` }];
  },
};

export default nextConfig;
