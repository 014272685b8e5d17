"""The threaded producer's HTTP: ``http.client`` connections kept alive in a small pool, JSON in
and out, a fresh bearer token per attempt, and the retry loop of ``_core.Attempts``."""
from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import urlsplit

from ._core import Attempts, RetryAttempt, aborted, encode, error_from_response, parse_json, request_headers
from ._timing import RetryPolicy
from .errors import ProducerError

_STALE = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, http.client.BadStatusLine)


class Endpoint:
    """A base URL split into what connections need."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url must be an absolute http(s) URL, got {url!r}")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.prefix = parts.path.rstrip("/")
        self.base_url = f"{parts.scheme}://{parts.netloc}{self.prefix}"
        self.host_header = parts.netloc


class SyncHttp:
    """One producer's HTTP client (thread-safe)."""

    def __init__(
        self,
        endpoint: Endpoint,
        token: Callable[[], str],
        *,
        refreshable: bool,
        policy: RetryPolicy,
        timeout: float,
        closed: threading.Event,
        on_retry_attempt: Optional[Callable[[RetryAttempt], None]] = None,
        ssl_context: Optional[ssl.SSLContext] = None,
        max_idle: int = 8,
        idle_timeout: float = 4.0,
    ) -> None:
        self.endpoint = endpoint
        self.token = token
        self.refreshable = refreshable
        self.policy = policy
        self.timeout = timeout
        self.closed = closed
        self.on_retry_attempt = on_retry_attempt
        self.ssl_context = ssl_context
        self.max_idle = max_idle
        #: Idle connections older than this are closed rather than reused: servers close idle
        #: keep-alive connections after a few seconds (uWebSockets.js after 10).
        self.idle_timeout = idle_timeout
        self._idle: List[Tuple[http.client.HTTPConnection, float]] = []
        self._lock = threading.Lock()
        #: Connections opened so far (tests check keep-alive with it).
        self.connections_opened = 0

    # ---- connections ----------------------------------------------------------------------

    def connect(self, timeout: Optional[float]) -> http.client.HTTPConnection:
        e = self.endpoint
        with self._lock:
            self.connections_opened += 1
        if e.scheme == "https":
            ctx = self.ssl_context or ssl.create_default_context()
            return http.client.HTTPSConnection(e.host, e.port, timeout=timeout, context=ctx)
        return http.client.HTTPConnection(e.host, e.port, timeout=timeout)

    def _take(self) -> Tuple[http.client.HTTPConnection, bool]:
        now = time.monotonic()
        with self._lock:
            while self._idle:
                conn, since = self._idle.pop()
                if now - since < self.idle_timeout:
                    return conn, True
                conn.close()
        return self.connect(self.timeout), False

    def _give(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if not self.closed.is_set() and len(self._idle) < self.max_idle:
                self._idle.append((conn, time.monotonic()))
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn, _ in idle:
            conn.close()

    # ---- requests -------------------------------------------------------------------------

    def request(
        self, method: str, path: str, body: Any = None, *, attempts: Optional[Attempts] = None
    ) -> Tuple[int, Any]:
        """One JSON request with retries of transient failures; ``(status, parsed body)``.
        Only for requests that are safe to repeat (the producer makes its writes so)."""
        tries = attempts or Attempts(self.policy, method, path, self.refreshable, self.on_retry_attempt)
        payload = None if body is None else encode(body)
        while True:
            if self.closed.is_set():
                raise aborted(method, path)
            retry_after: Optional[str] = None
            stale = False
            try:
                status, reason, headers, data = self._exchange(method, path, payload)
                if 200 <= status < 300:
                    return status, parse_json(status, data)
                error = error_from_response(status, reason, data)
                retry_after = headers.get("retry-after")
            except AttemptFailed as exc:
                error, stale = exc.error, exc.stale
            delay = tries.next_delay(error, retry_after, stale=stale)
            if delay > 0 and self.closed.wait(delay):
                raise aborted(method, path) from error

    def _exchange(self, method: str, path: str, payload: Optional[bytes]) -> Tuple[int, str, Dict[str, str], bytes]:
        try:
            token = self.token()
        except Exception as exc:
            raise ProducerError("unauthorized", f"the token provider failed: {exc!r}") from exc
        headers = request_headers(token, payload is not None)
        conn, reused = self._take()
        try:
            conn.request(method, self.endpoint.prefix + path, body=payload, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except socket.timeout as exc:
            conn.close()
            error = ProducerError("timeout", f"{method} {path}: no response within {self.timeout} s", retryable=True)
            raise AttemptFailed(error, stale=False) from exc
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            error = ProducerError("network_error", f"{method} {path}: {type(exc).__name__}: {exc}", retryable=True)
            raise AttemptFailed(error, stale=reused and isinstance(exc, _STALE)) from exc
        except BaseException:
            conn.close()
            raise
        if resp.will_close:
            conn.close()
        else:
            self._give(conn)
        return resp.status, resp.reason, {k.lower(): v for k, v in resp.getheaders()}, data


class AttemptFailed(Exception):
    """One attempt got no HTTP answer. ``stale``: it failed on a reused keep-alive connection the
    server had closed, so it is resent at once on a fresh one."""

    def __init__(self, error: ProducerError, *, stale: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.stale = stale
