"""The asyncio producer's HTTP: a small HTTP/1.1 client on ``asyncio`` streams (the standard
library has none), with keep-alive connections, JSON in and out, a fresh bearer token per attempt
and the retry loop of ``_core.Attempts``. Enough HTTP for one JSON API and one event stream:
``Content-Length``, ``chunked`` and read-to-close bodies."""
from __future__ import annotations

import asyncio
import inspect
import ssl
import time
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple, Union

from ._core import Attempts, RetryAttempt, aborted, encode, error_from_response, parse_json, request_headers
from ._http import Endpoint
from ._timing import RetryPolicy
from .errors import ProducerError

AsyncTokenProvider = Callable[[], Union[str, Awaitable[str]]]
MAX_HEADER_BYTES = 64 * 1024


class Flag:
    """``asyncio.Event`` without a loop bound at creation (Python 3.9 binds one): a producer may
    be created at import time and used in the server's loop later."""

    def __init__(self) -> None:
        self._set = False
        self._waiters: "set[asyncio.Future[None]]" = set()

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        for f in list(self._waiters):
            if not f.done():
                f.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self, timeout: Optional[float] = None) -> bool:
        """True once set; False when ``timeout`` passed first."""
        if self._set:
            return True
        loop = asyncio.get_running_loop()
        fut: "asyncio.Future[None]" = loop.create_future()
        self._waiters.add(fut)
        def expire() -> None:
            if not fut.done():
                fut.set_result(None)

        timer = None if timeout is None else loop.call_later(timeout, expire)
        try:
            await fut
        finally:
            self._waiters.discard(fut)
            if timer is not None:
                timer.cancel()
        return self._set


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def close(self) -> None:
        try:
            self.writer.close()
        except Exception:  # pragma: no cover - closing a dead transport
            pass


class Response:
    """Status line and headers of a response; the body is read by :func:`read_body` or line by
    line with :meth:`readline` (event streams)."""

    def __init__(self, conn: Connection, status: int, reason: str, headers: Dict[str, str], method: str) -> None:
        self.conn = conn
        self.status = status
        self.reason = reason
        self.headers = headers
        self.method = method
        self.chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length")
        self.length: Optional[int] = int(length) if length is not None and length.strip().isdigit() else None
        self.keep_alive = headers.get("connection", "").lower() != "close"
        self._chunk_left = 0
        self._crlf_due = False
        self._eof = False
        self._buffer = b""

    async def read_body(self) -> bytes:
        if self.method == "HEAD" or self.status in (204, 304) or 100 <= self.status < 200:
            return b""
        if self.chunked:
            parts: List[bytes] = []
            while True:
                chunk = await self._next_chunk()
                if not chunk:
                    return b"".join(parts)
                parts.append(chunk)
        if self.length is not None:
            return await self.conn.reader.readexactly(self.length)
        self.keep_alive = False
        return await self.conn.reader.read()

    async def _next_chunk(self) -> bytes:
        if self._eof:
            return b""
        reader = self.conn.reader
        if self._chunk_left == 0:
            if self._crlf_due:
                # The CRLF that ends the previous chunk: read only now, when more is wanted (a
                # server streaming events sends it with its next write).
                await reader.readline()
                self._crlf_due = False
            size_line = await reader.readline()
            if not size_line:
                raise ConnectionResetError("connection closed inside a chunked body")
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                self._eof = True
                return b""
            self._chunk_left = size
        data = await reader.read(self._chunk_left)
        if not data:
            raise ConnectionResetError("connection closed inside a chunk")
        self._chunk_left -= len(data)
        if self._chunk_left == 0:
            self._crlf_due = True
        return data

    async def readline(self) -> bytes:
        """The next line of a streamed body; ``b""`` at its end."""
        if not self.chunked:
            return await self.conn.reader.readline()
        while b"\n" not in self._buffer:
            chunk = await self._next_chunk()
            if not chunk:
                line, self._buffer = self._buffer, b""
                return line
            self._buffer += chunk
        line, _, rest = self._buffer.partition(b"\n")
        self._buffer = rest
        return line + b"\n"


async def read_head(conn: Connection, method: str) -> Response:
    reader = conn.reader
    while True:
        status_line = await reader.readline()
        if not status_line:
            raise ConnectionResetError("the server closed the connection without answering")
        parts = status_line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise ProducerError("bad_response", f"not an HTTP response: {status_line[:80]!r}")
        headers: Dict[str, str] = {}
        size = 0
        while True:
            line = await reader.readline()
            size += len(line)
            if size > MAX_HEADER_BYTES:
                raise ProducerError("bad_response", "response headers too large")
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            key = name.strip().lower()
            headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
        status = int(parts[1])
        if status == 100:
            continue
        return Response(conn, status, parts[2] if len(parts) > 2 else "", headers, method)


class AsyncHttp:
    """One async producer's HTTP client (one event loop)."""

    def __init__(
        self,
        endpoint: Endpoint,
        token: Callable[[], Awaitable[str]],
        *,
        refreshable: bool,
        policy: RetryPolicy,
        timeout: float,
        closed: Flag,
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
        self.idle_timeout = idle_timeout
        self._idle: List[Tuple[Connection, float]] = []
        self.connections_opened = 0

    async def connect(self) -> Connection:
        e = self.endpoint
        self.connections_opened += 1
        if e.scheme == "https":
            ctx = self.ssl_context or ssl.create_default_context()
            reader, writer = await asyncio.open_connection(e.host, e.port, ssl=ctx, server_hostname=e.host, limit=1 << 22)
        else:
            reader, writer = await asyncio.open_connection(e.host, e.port, limit=1 << 22)
        return Connection(reader, writer)

    def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn, _ in idle:
            conn.close()

    def request_bytes(self, method: str, path: str, headers: Dict[str, str], payload: Optional[bytes]) -> bytes:
        lines = [f"{method} {self.endpoint.prefix}{path} HTTP/1.1", f"Host: {self.endpoint.host_header}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if payload is not None or method == "POST":
            lines.append(f"Content-Length: {len(payload or b'')}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (payload or b"")

    async def request(self, method: str, path: str, body: Any = None, *, attempts: Optional[Attempts] = None) -> Tuple[int, Any]:
        """One JSON request with retries of transient failures; ``(status, parsed body)``."""
        tries = attempts or Attempts(self.policy, method, path, self.refreshable, self.on_retry_attempt)
        payload = None if body is None else encode(body)
        while True:
            if self.closed.is_set():
                raise aborted(method, path)
            retry_after: Optional[str] = None
            stale = False
            try:
                status, reason, headers, data = await self._exchange(method, path, payload)
                if 200 <= status < 300:
                    return status, parse_json(status, data)
                error = error_from_response(status, reason, data)
                retry_after = headers.get("retry-after")
            except _AttemptFailed as exc:
                error, stale = exc.error, exc.stale
            delay = tries.next_delay(error, retry_after, stale=stale)
            if delay > 0 and await self.closed.wait(delay):
                raise aborted(method, path) from error

    def _take(self) -> Optional[Connection]:
        now = time.monotonic()
        while self._idle:
            conn, since = self._idle.pop()
            if now - since < self.idle_timeout and not conn.reader.at_eof():
                return conn
            conn.close()
        return None

    async def _exchange(self, method: str, path: str, payload: Optional[bytes]) -> Tuple[int, str, Dict[str, str], bytes]:
        try:
            token = await self.token()
        except Exception as exc:
            raise ProducerError("unauthorized", f"the token provider failed: {exc!r}") from exc
        headers = request_headers(token, payload is not None)
        conn = self._take()
        reused = conn is not None
        try:
            if conn is None:
                conn = await asyncio.wait_for(self.connect(), self.timeout)
            conn.writer.write(self.request_bytes(method, path, headers, payload))

            async def answer() -> Tuple[Response, bytes]:
                assert conn is not None
                await conn.writer.drain()
                res = await read_head(conn, method)
                return res, await res.read_body()

            res, data = await asyncio.wait_for(answer(), self.timeout)
        except asyncio.TimeoutError as exc:
            if conn is not None:
                conn.close()
            error = ProducerError("timeout", f"{method} {path}: no response within {self.timeout} s", retryable=True)
            raise _AttemptFailed(error, stale=False) from exc
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            if conn is not None:
                conn.close()
            error = ProducerError("network_error", f"{method} {path}: {type(exc).__name__}: {exc}", retryable=True)
            stale = reused and isinstance(exc, (ConnectionResetError, BrokenPipeError, asyncio.IncompleteReadError))
            raise _AttemptFailed(error, stale=stale) from exc
        except BaseException:
            if conn is not None:
                conn.close()
            raise
        if res.keep_alive and not self.closed.is_set() and len(self._idle) < self.max_idle:
            self._idle.append((conn, time.monotonic()))
        else:
            conn.close()
        return res.status, res.reason, res.headers, data


class _AttemptFailed(Exception):
    def __init__(self, error: ProducerError, *, stale: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.stale = stale


def token_function(token: Optional[str], provider: Optional[AsyncTokenProvider]) -> Callable[[], Awaitable[str]]:
    if provider is None:
        fixed = str(token)

        async def constant() -> str:
            return fixed

        return constant
    call = provider

    async def provided() -> str:
        value = call()
        if inspect.isawaitable(value):
            value = await value
        return str(value)

    return provided
