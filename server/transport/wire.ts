/**
 * The server's messages as text, built once per change and shared by every transport: the
 * WebSocket hub publishes them to topics, the SSE streams write them as `data:` lines. A job's
 * JSON (JobView.json) is spliced in, never serialized again.
 */
import type { ControlMessage } from '../../protocol/index.js';
import type { JobView } from '../core/job-view.js';

export const updateMessage = (view: JobView): string => `{"type":"update","job":${view.json}}`;
export const snapshotMessage = (view: JobView): string => `{"type":"snapshot","job":${view.json}}`;
export const controlMessage = (msg: ControlMessage): string => JSON.stringify(msg);
