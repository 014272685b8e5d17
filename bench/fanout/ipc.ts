/** Messages between the runner and its load-generator worker processes (node IPC channel). */

/** Library clients (`ws`, `socket.io-client`) or the lean client of lean-websocket.ts. */
export type ClientKind = 'ws' | 'socket.io' | 'lean-ws' | 'lean-socket.io';

export type WorkerCommand =
  | { cmd: 'connect'; kind: ClientKind; url: string; jobIds: string[]; concurrency: number }
  | { cmd: 'stats'; tags: number[] }
  | { cmd: 'close' };

export interface TagStats {
  /** Updates received that carried this tag and advanced the client's seq (snapshots excluded). */
  count: number;
  /** Bytes of every update of this tag, duplicates included. */
  bytes: number;
  /** Seq numbers skipped before a message of this tag arrived. */
  gaps: number;
  /** Updates whose seq the client already had (resends), not counted in `count`. */
  duplicates: number;
  /** Updates the server made on its own (ours: ETA revisions), not counted in `count`. */
  revisions: number;
  /** Latency histogram counts (see histogram.ts). */
  histogram: number[];
  /** hrtime µs of the first and last receipt. */
  firstAt: number;
  lastAt: number;
}

export type WorkerReply =
  | { cmd: 'connected'; opened: number; failed: number; errors: string[] }
  | {
      cmd: 'stats';
      tags: Record<number, TagStats>;
      /** Last seq seen per connection, in the order of the jobIds given to `connect`. */
      lastSeqs: number[];
      /** Connections closed by the peer since connect. */
      closed: number;
      cpuMicros: number;
    }
  | { cmd: 'closed' };
