// Where the framework examples find their job: ?src=&job=&token= (the browser tests pass these),
// or, on the demo server (`progress-tracker serve --demo`), a fresh demo job.
export async function demoConfig() {
  const params = new URLSearchParams(location.search);
  const src = params.get('src') ?? `${location.origin.replace(/^http/, 'ws')}/v1/ws`;
  let job = params.get('job');
  let token = params.get('token');
  if (!job) {
    const res = await fetch('/demo/jobs', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' });
    ({ jobId: job, token } = await res.json());
    const jobId = job;
    return { src, job, tokenProvider: async () => (await (await fetch(`/demo/token?job=${encodeURIComponent(jobId)}`)).json()).token };
  }
  return { src, job, tokenProvider: async () => token };
}
