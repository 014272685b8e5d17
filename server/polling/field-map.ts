/**
 * Reads an upstream's JSON status document through a `SourceMap` (docs/polling.md) and gives a
 * normalized `UpstreamView`: our statuses, our step ids, fractions in 0..1. Pure: no I/O, no clock.
 *
 * Missing or null values mean "the upstream says nothing about this" (an `error` field is usually
 * absent until something fails). Values that are present but unusable (a percentage that is not a
 * number, a status nobody mapped, a step id the job does not have) throw `UpstreamBadResponse`
 * with the path that failed, so the job can show `upstream_bad_response` with a precise cause.
 */
import {
  JOB_STATUSES,
  STEP_STATUSES,
  type FieldMap,
  type JobStatus,
  type SourceMap,
  type StepsMap,
  type StepSpec,
  type StepStatus,
} from '../../protocol/index.js';

/** A present but unusable value in the upstream's response. */
export class UpstreamBadResponse extends Error {
  constructor(
    /** The path in the upstream document that failed (`""` is the whole document). */
    readonly path: string,
    message: string,
  ) {
    super(message);
    this.name = 'UpstreamBadResponse';
  }
}

export interface UpstreamStepView {
  id: string;
  status?: StepStatus;
  progress?: number;
}

/** What the upstream said, in our terms. Every field is optional: absent = not said. */
export interface UpstreamView {
  status?: JobStatus;
  /** Id of the current step (one of the job's steps). */
  step?: string;
  /** 0..1 within the current step. */
  stepProgress?: number;
  /** 0..1 overall (used to place the job on its steps when the upstream names no step). */
  progress?: number;
  error?: string;
  result?: unknown;
  steps?: UpstreamStepView[];
}

/** Limits on what we take from an upstream (documented in docs/polling.md). */
export const MAP_LIMITS = {
  maxPathLength: 256,
  maxPathSegments: 32,
  maxErrorChars: 1000,
  maxResultBytes: 64 * 1024,
} as const;

/** Common upstream words, so simple services work without a `values` table. Checked lower-cased. */
const JOB_STATUS_WORDS: Record<string, JobStatus> = {
  queued: 'queued', pending: 'queued', waiting: 'queued', scheduled: 'queued', created: 'queued', submitted: 'queued',
  running: 'running', in_progress: 'running', 'in-progress': 'running', inprogress: 'running', processing: 'running',
  started: 'running', active: 'running', working: 'running',
  completed: 'completed', complete: 'completed', done: 'completed', succeeded: 'completed', success: 'completed',
  successful: 'completed', finished: 'completed', ok: 'completed',
  failed: 'failed', failure: 'failed', error: 'failed', errored: 'failed',
  canceled: 'canceled', cancelled: 'canceled', aborted: 'canceled',
};
const STEP_STATUS_WORDS: Record<string, StepStatus> = {
  pending: 'pending', queued: 'pending', waiting: 'pending', scheduled: 'pending', not_started: 'pending',
  running: 'running', in_progress: 'running', 'in-progress': 'running', inprogress: 'running', processing: 'running',
  started: 'running', active: 'running', working: 'running',
  completed: 'completed', complete: 'completed', done: 'completed', succeeded: 'completed', success: 'completed',
  successful: 'completed', finished: 'completed', skipped: 'completed', ok: 'completed',
  failed: 'failed', failure: 'failed', error: 'failed', errored: 'failed',
};

const pathOf = (f: FieldMap): string => (typeof f === 'string' ? f : f.path);
const join = (base: string, rel: string): string => (base === '' ? rel : rel === '' ? base : `${base}.${rel}`);

/** Splits a dot path; `""` is the document itself. */
function segments(path: string): string[] {
  return path === '' ? [] : path.split('.');
}

/**
 * Reads a dot path with numeric indexes (`stages.0.name`). A negative index counts from the end
 * (`stages.-1` is the last). Returns undefined when any segment is missing.
 */
export function readPath(doc: unknown, path: string): unknown {
  let node: unknown = doc;
  for (const seg of segments(path)) {
    if (node === null || typeof node !== 'object') return undefined;
    if (Array.isArray(node)) {
      if (!/^-?\d+$/.test(seg)) return undefined;
      const i = Number(seg);
      node = node[i < 0 ? node.length + i : i];
    } else {
      if (!Object.prototype.hasOwnProperty.call(node, seg)) return undefined;
      node = (node as Record<string, unknown>)[seg];
    }
  }
  return node;
}

function toNumber(value: unknown, path: string): number {
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isFinite(n)) {
    throw new UpstreamBadResponse(path, `expected a number at '${path}', got ${describe(value)}`);
  }
  return n;
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** Applies `values` to a primitive; undefined when the value is absent. */
function mapped(value: unknown, field: FieldMap): unknown {
  if (typeof field === 'string' || !field.values || value === undefined || value === null) return value;
  if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') return value;
  const key = String(value);
  return Object.prototype.hasOwnProperty.call(field.values, key) ? field.values[key] : value;
}

/** A fraction in 0..1: `(path / of) * scale`, clamped (upstreams overshoot 100% by rounding). */
function readFraction(doc: unknown, field: FieldMap, base = ''): number | undefined {
  const path = join(base, pathOf(field));
  const raw = mapped(readPath(doc, path), field);
  if (raw === undefined || raw === null) return undefined;
  let n = toNumber(raw, path);
  if (typeof field !== 'string' && field.of !== undefined) {
    const ofPath = join(base, field.of);
    const total = readPath(doc, ofPath);
    if (total === undefined || total === null) return undefined;
    const d = toNumber(total, ofPath);
    n = d === 0 ? 0 : n / d;
  }
  if (typeof field !== 'string' && field.scale !== undefined) n *= field.scale;
  if (n < -1e-9 || n > 1 + 0.05) {
    throw new UpstreamBadResponse(path, `value at '${path}' is ${describe(n)} after mapping, outside 0..1 (check scale/of)`);
  }
  return Math.min(1, Math.max(0, n));
}

function readWord<T extends string>(
  doc: unknown,
  field: FieldMap,
  ours: readonly T[],
  words: Record<string, T>,
  what: string,
  base = '',
): T | undefined {
  const path = join(base, pathOf(field));
  const raw = mapped(readPath(doc, path), field);
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw === 'string') {
    if ((ours as readonly string[]).includes(raw)) return raw as T;
    const known = words[raw.toLowerCase()];
    if (known) return known;
  }
  throw new UpstreamBadResponse(
    path,
    `unknown ${what} ${describe(raw)} at '${path}'; map it with "values" to one of ${ours.join(', ')}`,
  );
}

/** A step id, by id (after `values`) or by 0-based position when `index: true`. */
function readStepId(doc: unknown, field: FieldMap, steps: readonly StepSpec[], base = ''): string | undefined {
  const path = join(base, pathOf(field));
  const raw = mapped(readPath(doc, path), field);
  if (raw === undefined || raw === null) return undefined;
  if (typeof field !== 'string' && field.index) {
    const i = toNumber(raw, path);
    if (!Number.isInteger(i) || i < 0 || i >= steps.length) {
      throw new UpstreamBadResponse(path, `step index ${describe(raw)} at '${path}' is not in 0..${steps.length - 1}`);
    }
    return steps[i]!.id;
  }
  const id = typeof raw === 'number' ? String(raw) : raw;
  if (typeof id === 'string' && steps.some((s) => s.id === id)) return id;
  throw new UpstreamBadResponse(
    path,
    `unknown step ${describe(raw)} at '${path}'; the job's steps are ${steps.map((s) => s.id).join(', ')} (map others with "values")`,
  );
}

function readError(doc: unknown, field: FieldMap): string | undefined {
  const path = pathOf(field);
  const raw = mapped(readPath(doc, path), field);
  if (raw === undefined || raw === null || raw === '' || raw === false) return undefined;
  let text: string;
  if (typeof raw === 'string') text = raw;
  else if (typeof raw === 'object' && typeof (raw as { message?: unknown }).message === 'string') {
    text = (raw as { message: string }).message;
  } else text = JSON.stringify(raw);
  return text.length > MAP_LIMITS.maxErrorChars ? `${text.slice(0, MAP_LIMITS.maxErrorChars - 3)}...` : text;
}

function readResult(doc: unknown, field: FieldMap): unknown {
  const path = pathOf(field);
  const raw = mapped(readPath(doc, path), field);
  if (raw === undefined) return undefined;
  const size = Buffer.byteLength(JSON.stringify(raw) ?? '');
  if (size > MAP_LIMITS.maxResultBytes) {
    throw new UpstreamBadResponse(path, `result at '${path}' is ${size} bytes, over the ${MAP_LIMITS.maxResultBytes} byte limit`);
  }
  return raw;
}

function readSteps(doc: unknown, map: StepsMap, steps: readonly StepSpec[]): UpstreamStepView[] | undefined {
  const list = readPath(doc, map.path);
  if (list === undefined || list === null) return undefined;
  if (!Array.isArray(list)) {
    throw new UpstreamBadResponse(map.path, `expected a list at '${map.path}', got ${describe(list)}`);
  }
  const out: UpstreamStepView[] = [];
  list.forEach((_, i) => {
    const base = join(map.path, String(i));
    // Without an `id` mapping, the upstream's stages match the job's steps by position.
    const id = map.id !== undefined ? readStepId(doc, map.id, steps, base) : steps[i]?.id;
    if (id === undefined) {
      if (map.id === undefined) throw new UpstreamBadResponse(base, `'${map.path}' lists more stages than the job's ${steps.length} steps`);
      throw new UpstreamBadResponse(join(base, pathOf(map.id)), `missing step id at '${join(base, pathOf(map.id))}'`);
    }
    const view: UpstreamStepView = { id };
    if (map.status !== undefined) {
      const status = readWord(doc, map.status, STEP_STATUSES, STEP_STATUS_WORDS, 'step status', base);
      if (status !== undefined) view.status = status;
    }
    if (map.progress !== undefined) {
      const p = readFraction(doc, map.progress, base);
      if (p !== undefined) view.progress = p;
    }
    out.push(view);
  });
  return out;
}

/** Maps one upstream document. Throws `UpstreamBadResponse` (with the failing path) on unusable values. */
export function mapResponse(doc: unknown, map: SourceMap, steps: readonly StepSpec[]): UpstreamView {
  if (doc === null || typeof doc !== 'object') {
    throw new UpstreamBadResponse('', `expected a JSON object or array, got ${describe(doc)}`);
  }
  const view: UpstreamView = {};
  if (map.status !== undefined) {
    const status = readWord(doc, map.status, JOB_STATUSES, JOB_STATUS_WORDS, 'status');
    if (status === undefined) {
      // Without a status we cannot tell running from finished: that is a broken response.
      throw new UpstreamBadResponse(pathOf(map.status), `missing status at '${pathOf(map.status)}'`);
    }
    view.status = status;
  }
  if (map.step !== undefined) {
    const step = readStepId(doc, map.step, steps);
    if (step !== undefined) view.step = step;
  }
  if (map.stepProgress !== undefined) {
    const p = readFraction(doc, map.stepProgress);
    if (p !== undefined) view.stepProgress = p;
  }
  if (map.progress !== undefined) {
    const p = readFraction(doc, map.progress);
    if (p !== undefined) view.progress = p;
  }
  if (map.error !== undefined) {
    const e = readError(doc, map.error);
    if (e !== undefined) view.error = e;
  }
  if (map.result !== undefined) {
    const r = readResult(doc, map.result);
    if (r !== undefined) view.result = r;
  }
  if (map.steps !== undefined) {
    const s = readSteps(doc, map.steps, steps);
    if (s !== undefined) view.steps = s;
  }
  return view;
}

// ---------------------------------------------------------------------------------------------
// Validation of a map at job creation (a 400 with a precise message, before any polling)
// ---------------------------------------------------------------------------------------------

const FIELD_KEYS = ['status', 'step', 'stepProgress', 'progress', 'error', 'result', 'steps'] as const;

function checkPath(path: unknown, where: string): string | null {
  if (typeof path !== 'string') return `${where} must be a dot path string`;
  if (path.length > MAP_LIMITS.maxPathLength) return `${where} is longer than ${MAP_LIMITS.maxPathLength} characters`;
  const segs = segments(path);
  if (segs.length > MAP_LIMITS.maxPathSegments) return `${where} has more than ${MAP_LIMITS.maxPathSegments} segments`;
  if (segs.some((s) => s === '')) return `${where} has an empty segment ('${path}')`;
  return null;
}

function checkField(field: unknown, where: string, allowRoot = false): string | null {
  if (typeof field === 'string') return field === '' && !allowRoot ? `${where} must not be empty` : checkPath(field, where);
  if (field === null || typeof field !== 'object' || Array.isArray(field)) return `${where} must be a path string or {"path", ...}`;
  const f = field as Record<string, unknown>;
  for (const key of Object.keys(f)) {
    if (!['path', 'values', 'scale', 'of', 'index'].includes(key)) return `${where} has an unknown key '${key}'`;
  }
  const bad = checkPath(f.path, `${where}.path`);
  if (bad) return bad;
  if (f.values !== undefined) {
    if (f.values === null || typeof f.values !== 'object' || Array.isArray(f.values)) return `${where}.values must be an object of strings`;
    for (const [k, v] of Object.entries(f.values)) {
      if (typeof v !== 'string') return `${where}.values.${k} must be a string`;
    }
  }
  if (f.scale !== undefined && (typeof f.scale !== 'number' || !Number.isFinite(f.scale) || f.scale === 0)) {
    return `${where}.scale must be a non-zero number`;
  }
  if (f.of !== undefined) {
    const badOf = checkPath(f.of, `${where}.of`);
    if (badOf) return badOf;
  }
  if (f.index !== undefined && typeof f.index !== 'boolean') return `${where}.index must be true or false`;
  return null;
}

/** Checks a `map` (shape only; values are checked against real responses). Returns a message or null. */
export function validateSourceMap(map: unknown, steps: readonly StepSpec[]): string | null {
  if (map === null || typeof map !== 'object' || Array.isArray(map)) return 'source.map must be an object';
  const m = map as Record<string, unknown>;
  const keys = Object.keys(m);
  for (const key of keys) {
    if (!(FIELD_KEYS as readonly string[]).includes(key)) return `source.map has an unknown field '${key}' (known: ${FIELD_KEYS.join(', ')})`;
  }
  if (!keys.some((k) => k === 'status' || k === 'step' || k === 'progress' || k === 'steps' || k === 'stepProgress')) {
    return 'source.map must map at least one of status, step, stepProgress, progress, steps';
  }
  for (const key of FIELD_KEYS) {
    if (key === 'steps' || m[key] === undefined) continue;
    const bad = checkField(m[key], `source.map.${key}`, key === 'result');
    if (bad) return bad;
  }
  if (m.steps !== undefined) {
    const s = m.steps as Record<string, unknown>;
    if (s === null || typeof s !== 'object' || Array.isArray(s)) return 'source.map.steps must be {"path", "id"?, "status"?, "progress"?}';
    for (const key of Object.keys(s)) {
      if (!['path', 'id', 'status', 'progress'].includes(key)) return `source.map.steps has an unknown key '${key}'`;
    }
    const bad =
      (s.path === '' ? null : checkPath(s.path, 'source.map.steps.path')) ??
      (s.id !== undefined ? checkField(s.id, 'source.map.steps.id', true) : null) ??
      (s.status !== undefined ? checkField(s.status, 'source.map.steps.status', true) : null) ??
      (s.progress !== undefined ? checkField(s.progress, 'source.map.steps.progress', true) : null);
    if (bad) return bad;
  }
  if (steps.length === 0 && (m.step !== undefined || m.steps !== undefined)) {
    return 'source.map maps steps but the job has none';
  }
  return null;
}
