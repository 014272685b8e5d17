/**
 * Live connections per client address, one count for every transport (WebSocket and SSE), so a
 * client cannot exceed PT_MAX_CONNECTIONS_PER_IP by mixing them.
 */
export class AddressLimit {
  private readonly counts = new Map<string, number>();

  constructor(private readonly max: number) {}

  /** Whether a new connection from `remote` would exceed the limit. */
  full(remote: string): boolean {
    return (this.counts.get(remote) ?? 0) >= this.max;
  }

  add(remote: string): void {
    this.counts.set(remote, (this.counts.get(remote) ?? 0) + 1);
  }

  remove(remote: string): void {
    const left = (this.counts.get(remote) ?? 1) - 1;
    if (left <= 0) this.counts.delete(remote);
    else this.counts.set(remote, left);
  }
}
