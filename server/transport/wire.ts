/**
 * The server's messages as text, built once per change and shared by every transport: the
 * WebSocket hub publishes them to topics, the SSE streams write them as `data:` lines. A job's
 * JSON (JobView.json), or its summary's (core/feed.ts), is spliced in, never serialized again.
 */
import type { ControlMessage } from '../../protocol/index.js';
import type { JobView } from '../core/job-view.js';

export const updateMessage = (view: JobView): string => `{"type":"update","job":${view.json}}`;
export const snapshotMessage = (view: JobView): string => `{"type":"snapshot","job":${view.json}}`;
export const controlMessage = (msg: ControlMessage): string => JSON.stringify(msg);
/** A tag feed's first message, from summaries already serialized (core/feed.ts). */
export const feedMessage = (tag: string, summaries: readonly string[]): string => `{"type":"feed","tag":${JSON.stringify(tag)},"jobs":[${summaries.join(',')}]}`;
export const feedUpdateMessage = (tag: string, summary: string): string => `{"type":"feed_update","tag":${JSON.stringify(tag)},"job":${summary}}`;
