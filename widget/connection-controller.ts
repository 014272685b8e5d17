/**
 * Ties a ProgressClient's lifetime to an element's: the socket opens on hostConnected and
 * closes on hostDisconnected, so an element removed from the page leaves no network activity
 * behind. A change of job/src/api replaces the client.
 */
import type { ReactiveController, ReactiveControllerHost } from 'lit';
import type { Unsubscribe } from 'nanoevents';
import { parseEndpoints, type EndpointList } from './endpoints.js';
import { ProgressClient, type ProgressClientEvents, type ProgressClientOptions, type TokenProvider } from './progress-client.js';

export interface ConnectionSource {
  job: string;
  src: EndpointList;
  api: EndpointList;
  token: string;
  tokenProvider: TokenProvider | undefined;
  connectionOptions: Partial<ProgressClientOptions>;
}

export class ConnectionController implements ReactiveController {
  private _client: ProgressClient | undefined;
  private unbind: Unsubscribe[] = [];
  private key = '';
  private connected = false;

  constructor(
    private readonly host: ReactiveControllerHost & ConnectionSource,
    private readonly listeners: ProgressClientEvents,
    /** Called with a new client before it opens, so the host can seed it (snapshot). */
    private readonly onClient: (client: ProgressClient) => void,
  ) {
    host.addController(this);
  }

  get client(): ProgressClient | undefined {
    return this._client;
  }

  hostConnected(): void {
    this.connected = true;
    this.sync();
  }

  hostDisconnected(): void {
    this.connected = false;
    this._client?.close();
  }

  /** Re-read the host's configuration: replace the client when the job or endpoint changed. */
  sync(): void {
    const { job } = this.host;
    const src = parseEndpoints(this.host.src);
    const api = parseEndpoints(this.host.api);
    // Compared as lists: a new array with the same URLs keeps the connection.
    const key = job && src.length > 0 ? `${job}\n${src.join(' ')}\n${api.join(' ')}` : '';
    if (key !== this.key) {
      this.dispose();
      this.key = key;
      if (key) {
        const host = this.host;
        const client = new ProgressClient({
          ...host.connectionOptions,
          jobId: job,
          src,
          ...(api.length > 0 ? { api } : {}),
          // Read at every connect/poll, so a new `token` or `tokenProvider` applies next time.
          tokenProvider: () => (host.tokenProvider ? host.tokenProvider() : host.token || undefined),
        });
        const l = this.listeners;
        this.unbind = [
          client.on('update', l.update),
          client.on('complete', l.complete),
          client.on('error', l.error),
          client.on('connection', l.connection),
        ];
        this._client = client;
        this.onClient(client);
      }
    }
    if (this.connected) this._client?.open();
  }

  private dispose(): void {
    this._client?.close();
    for (const off of this.unbind) off();
    this.unbind = [];
    this._client = undefined;
  }
}
