/**
 * Socket.IO 4 target: what a team would pick instead. One room per job; the same HTTP producer
 * routes on the same Node http server; the same JSON text sent as the Socket.IO `message` event
 * (`io.to(room).send(text)`, encoded once per broadcast; one broadcast per request, whatever the
 * number of events in it, as ours). WebSocket transport only (no long-polling upgrade dance), no
 * per-message compression, default `ws` engine.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { Server } from 'socket.io';
import type { CreateJobRequest, Job, JobEvent } from '../../../protocol/index.js';
import { applyEvent, createJob } from '../job-model.js';

const jobs = new Map<string, Job>();
let nextId = 1;

function reply(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function readBody(req: IncomingMessage, onBody: (body: string) => void): void {
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => onBody(Buffer.concat(chunks).toString()));
}

const http = createServer((req, res) => {
  const url = req.url ?? '/';
  if (req.method === 'POST' && url === '/v1/jobs') {
    return readBody(req, (body) => {
      const request = JSON.parse(body) as CreateJobRequest;
      const id = request.id ?? `job-${nextId++}`;
      const job = createJob(request, id);
      jobs.set(id, job);
      reply(res, 201, JSON.stringify(job));
    });
  }
  const match = req.method === 'POST' ? /^\/v1\/jobs\/([^/]+)\/events$/.exec(url) : null;
  if (match) {
    const id = decodeURIComponent(match[1]!);
    return readBody(req, (body) => {
      const job = jobs.get(id);
      if (!job) return reply(res, 404, '{"error":{"code":"not_found","message":"no such job"}}');
      const parsed = JSON.parse(body) as JobEvent | JobEvent[];
      for (const event of Array.isArray(parsed) ? parsed : [parsed]) {
        if (!applyEvent(job, event)) return reply(res, 400, '{"error":{"code":"unknown_step","message":"unknown step"}}');
      }
      // A request's events make one change, broadcast once with the resulting state (as ours does).
      io.to(`job:${id}`).emit('message', JSON.stringify({ type: 'update', job }));
      reply(res, 202, `{"seq":${job.seq}}`);
    });
  }
  reply(res, 404, '{"error":{"code":"not_found","message":"no route"}}');
});

const io = new Server(http, { transports: ['websocket'], serveClient: false, perMessageDeflate: false });

io.on('connection', (socket) => {
  socket.on('message', (text: string) => {
    const request = JSON.parse(text) as { type: string; jobId: string };
    if (request.type !== 'subscribe') return;
    const job = jobs.get(request.jobId);
    if (!job) return socket.send(JSON.stringify({ type: 'error', code: 'not_found', message: 'no such job', jobId: request.jobId }));
    void socket.join(`job:${request.jobId}`);
    socket.send(JSON.stringify({ type: 'snapshot', job }));
  });
});

http.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  const address = http.address();
  console.log(JSON.stringify({ ready: true, port: typeof address === 'object' && address ? address.port : 0 }));
});

// A normal exit on SIGTERM so `--cpu-prof` can write its profile.
process.on('SIGTERM', () => process.exit(0));
