/**
 * A job's `source`: where a polling adapter finds the state of a job that lives in another
 * service, and how its JSON maps onto ours (docs/polling.md). Checked in depth by the server's
 * adapters (server/polling/field-map.ts), which know their own source types.
 */

/** Where a field lives in the upstream's JSON: a dot path (`stages.0.name`) or a rich mapping. */
export type FieldMap =
  | string
  | {
      path: string;
      /** Upstream string → our value. */
      values?: Record<string, string>;
      /** Multiply a number (0.01 for percent). */
      scale?: number;
      /** Second path to divide by (`{"path":"progress.current","of":"progress.total"}`). */
      of?: string;
      /** The value is the step's position (0-based) rather than its id. */
      index?: boolean;
    };

export interface StepsMap {
  path: string;
  /** The element's step id (relative to the element). Omitted: elements match the job's steps by position. */
  id?: FieldMap;
  status?: FieldMap;
  progress?: FieldMap;
}

export interface SourceMap {
  status?: FieldMap;
  step?: FieldMap;
  stepProgress?: FieldMap;
  progress?: FieldMap;
  error?: FieldMap;
  result?: FieldMap;
  steps?: StepsMap;
}

export interface HttpJobSource {
  type: 'http';
  url: string;
  method?: 'GET' | 'POST';
  /** JSON body for `method: "POST"` status endpoints (default `{}`). */
  body?: unknown;
  /** Sent upstream; never returned by the API nor logged. */
  headers?: Record<string, string>;
  map: SourceMap;
  retryUrl?: string;
  minIntervalMs?: number;
  maxIntervalMs?: number;
}

export type JobSource = HttpJobSource | { type: string; [key: string]: unknown };
