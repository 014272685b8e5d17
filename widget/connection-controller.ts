/**
 * Ties a ProgressClient's lifetime to an element's, driven by the host's lifecycle alone (the
 * host never calls in): the socket opens on hostConnected and closes on hostDisconnected, so an
 * element removed from the page leaves no network activity behind; hostUpdate (before each host
 * update, after the host's willUpdate) re-reads job/src/api and replaces the client when they
 * name another job or other servers.
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

  /**
   * Before every host update: a new job or other servers replace the client. Only then — an
   * update for anything else (a tick of the countdown, a new state) leaves the client alone;
   * in particular it does not reopen one that closed itself because the job ended.
   */
  hostUpdate(): void {
    if (this.configKey() !== this.key) this.sync();
  }

  /**
   * Re-read the host's configuration: replace the client when the job or endpoint changed, and
   * open it while the host is connected. hostConnected and hostUpdate call it; a host never
   * needs to (it stays public for existing callers).
   */
  sync(): void {
    const key = this.configKey();
    if (key !== this.key) {
      this.dispose();
      this.key = key;
      if (key) {
        const host = this.host;
        const { job } = host;
        const src = parseEndpoints(host.src);
        const api = parseEndpoints(host.api);
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

  /** Job and endpoint lists, compared as lists: a new array with the same URLs keeps the connection. '' = nothing to follow. */
  private configKey(): string {
    const { job } = this.host;
    const src = parseEndpoints(this.host.src);
    return job && src.length > 0 ? `${job}\n${src.join(' ')}\n${parseEndpoints(this.host.api).join(' ')}` : '';
  }

  private dispose(): void {
    this._client?.close();
    for (const off of this.unbind) off();
    this.unbind = [];
    this._client = undefined;
  }
}
