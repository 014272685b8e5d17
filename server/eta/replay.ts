/**
 * `progress-tracker eta-replay`: a streaming filter from a trace (JSON Lines) to one prediction
 * per event (except job_end), computed by the engine with the trace's clock.
 *
 * Each chunk read is answered (and written) before the next is read, so a caller feeding one
 * event at a time gets each answer at once; output backpressure pauses the input, and finished
 * jobs are forgotten, so memory stays bounded on traces of any length.
 */
import { EtaEngine, type EtaEngineOptions } from './eta-engine.js';
import { parseTraceEvent, TraceError, TraceReplayer } from './trace.js';

/** Longest accepted line (bytes); a longer one is reported and skipped. */
export const MAX_TRACE_LINE = 1024 * 1024;

export async function runEtaReplay(
  input: NodeJS.ReadableStream,
  output: NodeJS.WritableStream,
  errors: NodeJS.WritableStream,
  options: EtaEngineOptions = {},
): Promise<number> {
  const replayer = new TraceReplayer(new EtaEngine(options));
  let lineNo = 0;
  let pending = '';
  let skipping = false; // inside an over-long line

  const handleLine = (line: string, out: string[]): void => {
    lineNo++;
    if (line.endsWith('\r')) line = line.slice(0, -1);
    if (line.trim() === '') return;
    try {
      const p = replayer.apply(parseTraceEvent(line));
      if (p) out.push(`{"t":${p.t},"jobId":${JSON.stringify(p.jobId)},"remainingMs":${p.remainingMs},"low":${p.low},"high":${p.high}}\n`);
    } catch (err) {
      if (!(err instanceof TraceError)) throw err;
      errors.write(`eta-replay: line ${lineNo}: ${err.message}; skipped\n`);
    }
  };

  input.setEncoding?.('utf8');
  return new Promise<number>((resolve, reject) => {
    const onData = (chunk: Buffer | string): void => {
      const text = typeof chunk === 'string' ? chunk : chunk.toString('utf8');
      const out: string[] = [];
      let start = 0;
      for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n', start)) {
        const piece = text.slice(start, nl);
        start = nl + 1;
        if (skipping) {
          skipping = false;
          pending = '';
          continue;
        }
        const line = pending + piece;
        pending = '';
        handleLine(line, out);
      }
      if (!skipping) {
        pending += text.slice(start);
        if (pending.length > MAX_TRACE_LINE) {
          lineNo++;
              errors.write(`eta-replay: line ${lineNo}: longer than ${MAX_TRACE_LINE} bytes; skipped\n`);
          skipping = true;
          pending = '';
        }
      }
      if (out.length > 0 && !output.write(out.join(''))) {
        input.pause();
        output.once('drain', () => input.resume());
      }
    };
    const onEnd = (): void => {
      const out: string[] = [];
      if (!skipping && pending !== '') handleLine(pending, out);
      const finish = (): void => resolve(0);
      if (out.length > 0) output.write(out.join(''), finish);
      else finish();
    };
    input.on('data', (chunk: Buffer | string) => {
      try {
        onData(chunk);
      } catch (err) {
        reject(err);
      }
    });
    input.once('end', onEnd);
    input.once('error', reject);
  });
}
