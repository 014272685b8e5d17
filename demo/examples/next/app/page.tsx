// A server component: it renders on the server and never loads the widget's code there. The
// element itself lives in a client component (job-progress.tsx).
import { JobProgress } from './job-progress';

type SearchParams = Promise<Record<string, string | string[] | undefined>>;

const one = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);

export default async function Page({ searchParams }: { searchParams: SearchParams }) {
  const q = await searchParams;
  return (
    <main>
      <h1>Next.js (App Router)</h1>
      <p>
        The tracker below is rendered by a client component; it loads <code>@progress-tracker-kit/widget/define</code> in{' '}
        <code>useEffect</code>, so nothing touches <code>customElements</code> during server rendering.
      </p>
      <JobProgress job={one(q.job)} src={one(q.src)} token={one(q.token)} />
    </main>
  );
}
