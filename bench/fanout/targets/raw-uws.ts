/**
 * Ceiling target: a raw uWebSockets.js server that only publishes to topics. It speaks the same
 * subset of our protocol the benchmark uses (POST /v1/jobs, POST /v1/jobs/{id}/events,
 * /v1/ws subscribe → snapshot, then an update per change: one per request, whatever the number of
 * events in it, as ours) and sends the same JSON, but has no auth, no validation, no store and no
 * backpressure policy of its own (uWS skips a subscriber whose buffer exceeds maxBackpressure).
 */
import uWS from 'uWebSockets.js';
import type { CreateJobRequest, Job, JobEvent } from '../../../protocol/index.js';
import { applyEvent, createJob } from '../job-model.js';
import { readBody } from './http-body.js';

const jobs = new Map<string, Job>();
let nextId = 1;
const decoder = new TextDecoder();

const app = uWS.App();

function reply(res: uWS.HttpResponse, status: string, body: string): void {
  res.cork(() => {
    res.writeStatus(status).writeHeader('content-type', 'application/json').end(body);
  });
}

app.post('/v1/jobs', (res) => {
  readBody(res, (body) => {
    const request = JSON.parse(body.toString()) as CreateJobRequest;
    const id = request.id ?? `job-${nextId++}`;
    const job = createJob(request, id);
    jobs.set(id, job);
    reply(res, '201 Created', JSON.stringify(job));
  });
});

app.post('/v1/jobs/:id/events', (res, req) => {
  const id = req.getParameter(0) ?? '';
  readBody(res, (body) => {
    const job = jobs.get(id);
    if (!job) return reply(res, '404 Not Found', '{"error":{"code":"not_found","message":"no such job"}}');
    const parsed = JSON.parse(body.toString()) as JobEvent | JobEvent[];
    for (const event of Array.isArray(parsed) ? parsed : [parsed]) {
      if (!applyEvent(job, event)) return reply(res, '400 Bad Request', '{"error":{"code":"unknown_step","message":"unknown step"}}');
    }
    // A request's events make one change, published once with the resulting state (as ours does).
    app.publish(`job:${id}`, JSON.stringify({ type: 'update', job }), false);
    reply(res, '202 Accepted', `{"seq":${job.seq}}`);
  });
});

app.ws('/v1/ws', {
  compression: uWS.DISABLED,
  maxPayloadLength: 64 * 1024,
  // The same per-socket limit as our server's default (maxBackpressureBytes).
  maxBackpressure: Number(process.env.BENCH_MAX_BACKPRESSURE ?? 256 * 1024),
  idleTimeout: 120,
  message: (ws, message) => {
    const request = JSON.parse(decoder.decode(message)) as { type: string; jobId: string };
    if (request.type !== 'subscribe') return;
    const job = jobs.get(request.jobId);
    if (!job) {
      ws.send(JSON.stringify({ type: 'error', code: 'not_found', message: 'no such job', jobId: request.jobId }));
      return;
    }
    ws.subscribe(`job:${request.jobId}`);
    ws.send(JSON.stringify({ type: 'snapshot', job }));
  },
});

app.any('/*', (res) => reply(res, '404 Not Found', '{"error":{"code":"not_found","message":"no route"}}'));

app.listen('127.0.0.1', Number(process.env.PORT ?? 0), (listenSocket) => {
  if (!listenSocket) {
    console.error('raw-uws: cannot listen');
    process.exit(1);
  }
  console.log(JSON.stringify({ ready: true, port: uWS.us_socket_local_port(listenSocket) }));
});

// A normal exit on SIGTERM so `--cpu-prof` can write its profile.
process.on('SIGTERM', () => process.exit(0));
