'use client';
// The element in a client component. Server rendering emits <progress-tracker> with its string
// attributes (job, src, token, label); the define entry loads in useEffect (browser only: it
// touches customElements), the element upgrades and keeps those attributes. Values that only work
// as properties (steps, tokenProvider) are passed once the element is defined — React 19 sets a
// prop as a property only when the element has it. `onprogress-*` handlers are event listeners
// from the start; their types come from @progress-tracker-kit/widget/react.
import { useEffect, useState } from 'react';
import type {} from '@progress-tracker-kit/widget/react';
import type { Job, StepSpec } from '@progress-tracker-kit/widget';

const steps: StepSpec[] = [
  { id: 'fetch', label: 'Fetch' },
  { id: 'transform', label: 'Transform' },
  { id: 'upload', label: 'Upload' },
];

const DEFAULT_WS = process.env.NEXT_PUBLIC_PROGRESS_WS ?? 'ws://127.0.0.1:8080/v1/ws';

interface Props {
  job?: string | undefined;
  src?: string | undefined;
  token?: string | undefined;
}

interface DemoJob {
  job: string;
  tokenProvider: () => Promise<string>;
}

/** Without ?job=&token=: a fresh job from the demo server (`npm start`, proxied by next.config.mjs). */
async function demoJob(): Promise<DemoJob> {
  const res = await fetch('/demo/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  const { jobId } = (await res.json()) as { jobId: string; token: string };
  const tokenProvider = async () => {
    const fresh = await fetch(`/demo/token?job=${encodeURIComponent(jobId)}`);
    return ((await fresh.json()) as { token: string }).token;
  };
  return { job: jobId, tokenProvider };
}

export function JobProgress({ job, src = DEFAULT_WS, token }: Props) {
  const [defined, setDefined] = useState(false);
  const [demo, setDemo] = useState<DemoJob>();
  const [finished, setFinished] = useState<Job>();
  const [connection, setConnection] = useState('');
  const given = job !== undefined && token !== undefined;

  useEffect(() => {
    let active = true;
    void import('@progress-tracker-kit/widget/define').then(() => active && setDefined(true));
    if (!given) void demoJob().then((d) => active && setDemo(d));
    return () => {
      active = false;
    };
  }, [given]);

  const jobId = given ? job : demo?.job;
  return (
    <section>
      {jobId ? (
        <progress-tracker
          job={jobId}
          src={src}
          token={given ? token : undefined}
          label="Export"
          steps={defined ? steps : undefined}
          tokenProvider={defined ? demo?.tokenProvider : undefined}
          onprogress-complete={(e) => setFinished(e.detail)}
          onprogress-connection={(e) => setConnection(e.detail)}
        >
          <p>Your export is ready.</p>
        </progress-tracker>
      ) : (
        <p>Creating a demo job…</p>
      )}
      <p data-testid="status">
        {finished ? `Finished: ${finished.id}` : 'Running'}
        {connection && ` (connection: ${connection})`}
      </p>
    </section>
  );
}
