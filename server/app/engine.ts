/**
 * Loads uWebSockets.js and tells whether the native engine really runs.
 *
 * The package we use (@trufflesuite/uws-js-unofficial, aliased as `uWebSockets.js`) has a
 * loader (src/uws.js) that, when the native binary for this platform/ABI cannot be loaded,
 * prints a console warning and silently returns a `ws`-based imitation (dist/index.js) with
 * the same API but a fraction of the performance and without uWS's backpressure semantics.
 * The only reliable signal is which module the returned exports belong to: the native addon is a
 * `.node` entry in the CommonJS cache whose exports are exactly the object we got back.
 * (The fallback also lacks native-only exports such as `getParts` and `SSLApp`; we check both.)
 */
import { createRequire } from 'node:module';
import type * as Uws from 'uWebSockets.js';

export type UwsModule = typeof Uws;

export interface Engine {
  uws: UwsModule;
  native: boolean;
  /** Human-readable: which file was loaded, or why the fallback was used. */
  description: string;
}

export class EngineError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EngineError';
  }
}

let cached: Engine | undefined;

/** Loads the engine once; later calls return the same answer. */
export function loadEngine(): Engine {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  // The loader explains a fallback through console.warn/log: capture it for our structured log.
  const said: string[] = [];
  const { warn, log } = console;
  console.warn = (...args: unknown[]) => void said.push(args.map(String).join(' '));
  console.log = (...args: unknown[]) => void said.push(args.map(String).join(' '));
  let uws: UwsModule;
  try {
    uws = require('uWebSockets.js') as UwsModule;
  } finally {
    console.warn = warn;
    console.log = log;
  }
  const nativeEntry = Object.values(require.cache).find(
    (m) => m !== undefined && m.filename.endsWith('.node') && m.exports === uws,
  );
  const hasNativeOnlyApi = typeof (uws as { getParts?: unknown }).getParts === 'function';
  const native = nativeEntry !== undefined && hasNativeOnlyApi;
  const reason = said.join(' ').replace(/\s+/g, ' ').trim();
  cached = {
    uws,
    native,
    description: native
      ? `uWebSockets.js native (${nativeEntry!.filename.split(/[\\/]/).pop()})`
      : `uWebSockets.js ws-based fallback${reason ? `: ${reason}` : ''}`,
  };
  return cached;
}
