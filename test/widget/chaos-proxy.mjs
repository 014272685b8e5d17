// A test-only TCP proxy between the browser and the real server, to cause the network trouble
// the widget must survive:
//   'up'      forward everything;
//   'no-ws'   forward HTTP but answer WebSocket upgrades with 503 (a proxy that blocks them);
//   'down'    refuse everything: connections are reset as soon as they arrive.
// dropAll() resets every open connection (server restart, network blip).
import net from 'node:net';

const HEADER_END = Buffer.from('\r\n\r\n');
const MAX_HEADER_BYTES = 64 * 1024;

export async function startChaosProxy(targetPort, targetHost = '127.0.0.1') {
  let mode = 'up';
  const sockets = new Set();
  const counts = { connections: 0, upgrades: 0, refusedUpgrades: 0, refused: 0 };

  const server = net.createServer((client) => {
    counts.connections++;
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => {});
    if (mode === 'down') {
      counts.refused++;
      client.resetAndDestroy();
      return;
    }
    // Read the request head to tell a WebSocket upgrade from plain HTTP.
    let head = Buffer.alloc(0);
    const onData = (chunk) => {
      head = Buffer.concat([head, chunk]);
      if (head.indexOf(HEADER_END) < 0 && head.length < MAX_HEADER_BYTES) return;
      client.off('data', onData);
      client.pause();
      const isUpgrade = /^upgrade:\s*websocket/im.test(head.toString('latin1'));
      if (isUpgrade) counts.upgrades++;
      if (mode === 'down') {
        counts.refused++;
        client.resetAndDestroy();
        return;
      }
      if (isUpgrade && mode === 'no-ws') {
        counts.refusedUpgrades++;
        client.end('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
        return;
      }
      const upstream = net.connect(targetPort, targetHost);
      sockets.add(upstream);
      upstream.on('close', () => {
        sockets.delete(upstream);
        client.destroy();
      });
      upstream.on('error', () => client.destroy());
      client.on('close', () => upstream.destroy());
      upstream.write(head);
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    };
    client.on('data', onData);
  });

  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = server.address().port;

  return {
    port,
    counts,
    get mode() {
      return mode;
    },
    /** Switch mode; 'down' and 'no-ws' also cut existing connections so they take effect now. */
    setMode(next) {
      mode = next;
      if (next !== 'up') this.dropAll();
    },
    dropAll() {
      for (const s of sockets) s.resetAndDestroy();
      sockets.clear();
    },
    close() {
      this.dropAll();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
