// React 19 passes known props as properties to custom elements (arrays and functions included)
// and listens to custom events with `on` + the exact event name: `onprogress-complete`.
import { StrictMode, useCallback, useState } from 'react';
import { createRoot } from 'react-dom/client';
import '@progress-tracker-kit/widget/define';
import { demoConfig } from '../config.js';

const steps = [
  { id: 'fetch', label: 'Fetch' },
  { id: 'transform', label: 'Transform' },
  { id: 'upload', label: 'Upload' },
];

function Export({ src, job, tokenProvider }) {
  const [status, setStatus] = useState('waiting');
  const [update, setUpdate] = useState({ progress: 0, seq: 0 });
  const [retries, setRetries] = useState(0);
  const onUpdate = useCallback((e) => setUpdate({ progress: e.detail.progress, seq: e.detail.seq }), []);
  const onRetry = useCallback(() => setRetries((n) => n + 1), []);
  return (
    <>
      <progress-tracker
        src={src}
        job={job}
        steps={steps}
        tokenProvider={tokenProvider}
        label="React export"
        onprogress-update={onUpdate}
        onprogress-complete={(e) => setStatus(`completed ${e.detail.id}`)}
        onprogress-error={(e) => setStatus(`error ${e.detail.code}`)}
        onprogress-retry={onRetry}
      >
        <p>All done, from React.</p>
      </progress-tracker>
      <p id="status" data-progress={update.progress} data-seq={update.seq} data-retries={retries}>
        {status}
      </p>
    </>
  );
}

const { src, job, tokenProvider } = await demoConfig();
createRoot(document.getElementById('root')).render(
  <StrictMode>
    <Export src={src} job={job} tokenProvider={tokenProvider} />
  </StrictMode>,
);
