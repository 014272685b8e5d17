// Failover between several servers listed in `src` (and `api`). Two server processes on one
// SQLite file would not be safe, so "two nodes" here are two chaos proxies in front of the same
// real server: taking one proxy fully down is, to the browser, a node going away.
import { expect, fixture, fixtureCleanup, html } from '@open-wc/testing';
import '../../widget/define.js';
import type { Job } from '../../protocol/index.js';
import { parseEndpoints } from '../../widget/endpoints.js';
import { ProgressClient, type ConnectionState } from '../../widget/progress-client.js';
import type { ProgressTracker } from '../../widget/progress-tracker.js';
import { FAST, STEPS, chaosProxy, createJob, part, send, token, waitFor, type ChaosProxy } from '../fixtures/widget-page.js';

const increasing = (seqs: number[]) => seqs.every((s, i) => i === 0 || s > seqs[i - 1]!);

describe('failover: several URLs in `src` / `api`', () => {
  describe('parsing the lists', () => {
    afterEach(() => fixtureCleanup());

    it('splits a space- or comma-separated attribute and accepts arrays, in order, without blanks or duplicates', () => {
      expect(parseEndpoints('wss://a.example/v1/ws')).to.deep.equal(['wss://a.example/v1/ws']);
      expect(parseEndpoints(' wss://a/v1/ws  wss://b/v1/ws ')).to.deep.equal(['wss://a/v1/ws', 'wss://b/v1/ws']);
      expect(parseEndpoints('wss://a/v1/ws,wss://b/v1/ws, wss://c/v1/ws')).to.deep.equal(['wss://a/v1/ws', 'wss://b/v1/ws', 'wss://c/v1/ws']);
      expect(parseEndpoints('wss://a/v1/ws,\n  wss://b/v1/ws,')).to.deep.equal(['wss://a/v1/ws', 'wss://b/v1/ws']);
      expect(parseEndpoints(['wss://a/v1/ws', ' wss://b/v1/ws ', '', 'wss://a/v1/ws'])).to.deep.equal(['wss://a/v1/ws', 'wss://b/v1/ws']);
      expect(parseEndpoints('')).to.deep.equal([]);
      expect(parseEndpoints(undefined)).to.deep.equal([]);
    });

    it('the client derives each HTTP base from the socket URL in use; `api` lists its own bases', () => {
      const derived = new ProgressClient({ jobId: 'j', src: 'ws://127.0.0.1:1/v1/ws, wss://b.invalid/base/v1/ws' });
      expect(derived.currentSrc).to.equal('ws://127.0.0.1:1/v1/ws');
      expect(derived.apiBase).to.equal('http://127.0.0.1:1');
      const single = new ProgressClient({ jobId: 'j', src: 'wss://b.invalid/base/v1/ws' });
      expect(single.currentSrc).to.equal('wss://b.invalid/base/v1/ws');
      expect(single.apiBase).to.equal('https://b.invalid/base');
      const given = new ProgressClient({ jobId: 'j', src: ['wss://a.invalid/v1/ws', 'wss://b.invalid/v1/ws'], api: 'https://api-1.invalid/ https://api-2.invalid' });
      expect(given.apiBase).to.equal('https://api-1.invalid');
    });

    it('the element parses the `src` attribute as a list and accepts an array property', async () => {
      // No WebSocket, no SSE and slow polls: only the parsing is under test here.
      const el = await fixture<ProgressTracker>(html`
        <progress-tracker job="parse-only" src="ws://127.0.0.1:1/v1/ws, ws://127.0.0.1:2/v1/ws" .connectionOptions=${{ WebSocket: null, EventSource: null, minPollIntervalMs: 60_000, maxPollIntervalMs: 60_000 }}></progress-tracker>
      `);
      const first = el.client!;
      expect(first.currentSrc).to.equal('ws://127.0.0.1:1/v1/ws');

      // The property form: an array. A new endpoint list replaces the client…
      el.src = ['ws://127.0.0.1:2/v1/ws', 'ws://127.0.0.1:1/v1/ws'];
      await el.updateComplete;
      expect(el.client).to.not.equal(first);
      const second = el.client!;
      expect(second.currentSrc).to.equal('ws://127.0.0.1:2/v1/ws');
      // …the same URLs in a new array (or as a string) keep it.
      el.src = ['ws://127.0.0.1:2/v1/ws', 'ws://127.0.0.1:1/v1/ws'];
      await el.updateComplete;
      expect(el.client).to.equal(second);
      el.setAttribute('src', 'ws://127.0.0.1:2/v1/ws ws://127.0.0.1:1/v1/ws');
      await el.updateComplete;
      expect(el.client).to.equal(second);
    });
  });

  describe('against the real server through two proxies', () => {
    let a: ChaosProxy;
    let b: ChaosProxy;
    beforeEach(async () => {
      a = await chaosProxy();
      b = await chaosProxy();
    });
    afterEach(async () => {
      fixtureCleanup();
      await a.close();
      await b.close();
    });

    it('moves to the second URL when the first goes fully down mid-job, with a fresh token, and ends on the correct final state', async () => {
      const job = await createJob();
      const tok = await token();
      let tokensAsked = 0;
      const seqs: number[] = [];
      const states: ConnectionState[] = [];
      const el = await fixture<ProgressTracker>(html`
        <progress-tracker
          .connectionOptions=${FAST}
          .tokenProvider=${async () => {
            tokensAsked++;
            return tok;
          }}
          .steps=${STEPS}
          label="Export"
          src="${a.src}, ${b.src}"
          job=${job.id}
          @progress-update=${(e: CustomEvent<Job>) => seqs.push(e.detail.seq)}
          @progress-connection=${(e: CustomEvent<ConnectionState>) => states.push(e.detail)}
        ></progress-tracker>
      `);
      await waitFor(() => el.connectionState === 'live' && el.snapshot, 'live on the first URL');
      expect(el.client!.currentSrc).to.equal(a.src);
      expect((await b.counts()).upgrades, 'the second URL is not used while the first works').to.equal(0);
      await send(job.id, { type: 'step_start', step: 'upload' }, { type: 'progress', step: 'upload', progress: 0.3 });
      await waitFor(() => el.snapshot?.steps[0]?.progress === 0.3, 'progress on the first URL');

      const asked = tokensAsked;
      await a.set('down');
      // The job moves on while the client is between servers.
      await send(job.id, { type: 'step_end', step: 'upload' }, { type: 'step_start', step: 'encode' }, { type: 'progress', step: 'encode', progress: 0.5 });
      await waitFor(() => el.connectionState === 'live' && el.client!.currentSrc === b.src, 'live on the second URL', 20_000);
      expect((await b.counts()).upgrades).to.be.at.least(1);
      expect(tokensAsked, 'a fresh token for the new server').to.be.greaterThan(asked);
      // Resynced from the second server's snapshot: the missed events are there.
      await waitFor(() => el.snapshot?.steps[1]?.progress === 0.5, 'the missed progress, from the second URL');

      await send(job.id, { type: 'step_end', step: 'encode' }, { type: 'step_start', step: 'publish' }, { type: 'step_end', step: 'publish' }, { type: 'job_end', status: 'completed' });
      await waitFor(() => el.snapshot?.status === 'completed', 'the final state', 20_000);
      await el.updateComplete;
      expect(part(el, 'bar')!.getAttribute('aria-valuenow')).to.equal('100');
      expect(el.snapshot!.steps.map((s) => s.status)).to.deep.equal(['completed', 'completed', 'completed']);
      expect(states).to.include('reconnecting');
      expect(increasing(seqs), `seqs ${seqs.join(',')}`).to.equal(true);
      // Straight to the second socket: no detour through HTTP polling.
      expect(states, `states ${states.join(',')}`).to.not.include('polling');
    });

    it('headless client: an unreachable first URL is skipped from the start; polling uses the `api` list in turn', async () => {
      const job = await createJob();
      const tok = await token();
      await a.set('down');
      const client = new ProgressClient({ ...FAST, jobId: job.id, src: [a.src, b.src], token: tok });
      const seqs: number[] = [];
      client.on('update', (j) => seqs.push(j.seq));
      client.open();
      try {
        await waitFor(() => client.state === 'live' && client.currentSrc === b.src && client.job, 'live on the second URL');
        expect((await a.counts()).refused).to.be.at.least(1);
        await send(job.id, { type: 'step_start', step: 'upload' });
        await waitFor(() => client.job?.status === 'running', 'an update through the second URL');
        expect(increasing(seqs), `seqs ${seqs.join(',')}`).to.equal(true);
      } finally {
        client.close();
      }

      // No WebSocket or event stream anywhere: polling starts on the first `api` base, which is down, and moves on.
      await b.set('no-stream');
      const polled = new ProgressClient({ ...FAST, jobId: job.id, src: [a.src, b.src], api: [a.api, b.api], token: tok });
      const states: ConnectionState[] = [];
      polled.on('connection', (s) => states.push(s));
      polled.open();
      try {
        await waitFor(() => polled.state === 'polling' && polled.job?.status === 'running', 'the job by polling the second base', 20_000);
        expect(polled.apiBase).to.equal(b.api);
        await send(job.id, { type: 'progress', step: 'upload', progress: 0.7 });
        await waitFor(() => polled.job?.steps[0]?.progress === 0.7, 'progress by polling');
        expect(states, `states ${states.join(',')}`).to.include('polling');
      } finally {
        polled.close();
      }
    });
  });
});
