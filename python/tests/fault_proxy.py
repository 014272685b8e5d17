"""An HTTP proxy between the SDK and the real server that injects faults on cue: answer with a
status of its own (429/503 with Retry-After), lose the server's answer after the server handled
the request (the connection drops), or cut the event streams. It records every request it
forwards and counts client connections (keep-alive)."""
from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Deque, Dict, List, Optional


class Recorded:
    def __init__(self, method: str, path: str, body: bytes, at: float) -> None:
        self.method = method
        self.path = path
        self.raw = body
        self.at = at

    @property
    def json(self) -> Any:
        return json.loads(self.raw) if self.raw else None

    def __repr__(self) -> str:
        return f"{self.method} {self.path} {self.raw[:120]!r}"


class FaultProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        #: Actions for the next matching requests, in order: ("status", code, headers, body),
        #: ("lose",) forward then drop the answer, ("drop",) drop without forwarding.
        self.script: Deque[tuple] = deque()
        self.match: Callable[[str, str], bool] = lambda method, path: True
        self.requests: List[Recorded] = []
        self.injected: List[Recorded] = []
        self.connections = 0
        self._streams: List[socket.socket] = []
        self._clients: List[socket.socket] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with proxy._lock:
                    proxy.connections += 1
                    proxy._clients.append(self.connection)

            def finish(self) -> None:
                with proxy._lock:
                    if self.connection in proxy._clients:
                        proxy._clients.remove(self.connection)
                super().finish()

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._handle()

            def do_POST(self) -> None:
                self._handle()

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                rec = Recorded(self.command, self.path, body, time.monotonic())
                action = None
                with proxy._lock:
                    if proxy.script and proxy.match(self.command, self.path):
                        action = proxy.script.popleft()
                if action is not None and action[0] == "status":
                    proxy.injected.append(rec)
                    _, status, headers, payload = action
                    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                if action is not None and action[0] == "drop":
                    proxy.injected.append(rec)
                    self._drop()
                    return
                with proxy._lock:
                    proxy.requests.append(rec)
                upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                upstream.request(self.command, self.path, body=body or None, headers=headers)
                res = upstream.getresponse()
                if res.getheader("Content-Type", "").startswith("text/event-stream"):
                    self._relay_stream(res)
                    upstream.close()
                    return
                data = res.read()
                upstream.close()
                if action is not None and action[0] == "lose":
                    proxy.injected.append(rec)
                    self._drop()
                    return
                self.send_response(res.status, res.reason)
                for k, v in res.getheaders():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection", "date"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _drop(self) -> None:
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

            def _relay_stream(self, res: http.client.HTTPResponse) -> None:
                self.close_connection = True
                self.send_response(res.status, res.reason)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                with proxy._lock:
                    proxy._streams.append(self.connection)
                try:
                    while True:
                        line = res.readline()
                        if not line:
                            return
                        self.wfile.write(line)
                        self.wfile.flush()
                except OSError:
                    return
                finally:
                    with proxy._lock:
                        if self.connection in proxy._streams:
                            proxy._streams.remove(self.connection)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def respond(self, status: int, headers: Optional[Dict[str, str]] = None, body: Any = None, times: int = 1) -> None:
        payload = body if body is not None else {"error": {"code": "rate_limited" if status == 429 else "internal", "message": f"injected {status}"}}
        for _ in range(times):
            self.script.append(("status", status, headers or {}, payload))

    def lose(self, times: int = 1) -> None:
        for _ in range(times):
            self.script.append(("lose",))

    def cut_streams(self) -> int:
        with self._lock:
            streams, self._streams = list(self._streams), []
        for s in streams:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        return len(streams)

    def close_idle_clients(self) -> int:
        """Closes the client connections kept alive between requests, as a server's keep-alive
        timeout does."""
        with self._lock:
            clients = [c for c in self._clients if c not in self._streams]
        for c in clients:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        return len(clients)

    def events_requests(self, job_id: Optional[str] = None) -> List[Recorded]:
        return [r for r in self.requests if r.path.endswith("/events") and (job_id is None or f"/{job_id}/" in r.path)]

    def close(self) -> None:
        self.cut_streams()
        self._server.shutdown()
        self._server.server_close()
