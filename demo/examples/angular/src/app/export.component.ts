import { Component, CUSTOM_ELEMENTS_SCHEMA, signal } from '@angular/core';
import '@progress-tracker-kit/widget/define';
import type { Job, ProgressRetryDetail } from '@progress-tracker-kit/widget';

@Component({
  selector: 'app-export',
  standalone: true,
  schemas: [CUSTOM_ELEMENTS_SCHEMA],
  template: `
    <h1>Angular</h1>
    @if (jobId(); as job) {
      <progress-tracker
        [src]="src"
        [job]="job"
        [steps]="steps"
        [tokenProvider]="getToken"
        label="Demo pipeline"
        (progress-complete)="onDone($event)"
        (progress-retry)="onRetry($event)"
      >
        <p>Finished: {{ finished() }}</p>
      </progress-tracker>
    } @else {
      <button type="button" (click)="start()">Start a demo job</button>
    }
  `,
})
export class ExportComponent {
  /** Through the dev server's proxy (proxy.conf.json) to the demo server. */
  readonly src = `${location.origin.replace(/^http/, 'ws')}/v1/ws`;
  readonly steps = [
    { id: 'upload', label: 'Upload' },
    { id: 'transcode', label: 'Transcode' },
    { id: 'publish', label: 'Publish' },
  ];
  readonly jobId = signal<string | undefined>(undefined);
  readonly finished = signal('');

  /** A fresh token for every connection attempt: the demo answers JSON `{token}`. */
  readonly getToken = async (): Promise<string> => {
    const res = await fetch(`/demo/token?job=${encodeURIComponent(this.jobId() ?? '')}`);
    const body = (await res.json()) as { token: string };
    return body.token;
  };

  async start(): Promise<void> {
    const res = await fetch('/demo/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    const { jobId } = (await res.json()) as { jobId: string; token: string };
    this.jobId.set(jobId);
  }

  onDone(event: Event): void {
    const job = (event as CustomEvent<Job>).detail;
    this.finished.set(new Date(job.updatedAt).toLocaleTimeString());
  }

  onRetry(event: Event): void {
    const { step } = (event as CustomEvent<ProgressRetryDetail>).detail;
    console.info('retrying from', step);
  }
}
