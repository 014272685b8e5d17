"""The threaded producer's control stream: one job's ``GET /v1/jobs/{id}/stream`` read on a
daemon thread, feeding the handle's control tracker so ``on_retry``/``on_cancel`` hear users.
Separate from the handle because it is the producer's only long-lived connection, with its own
lifecycle (reconnect with backoff, a fresh token on every connection, stop from any thread),
while the handle's event methods are plain request/answer calls."""
from __future__ import annotations

import socket
import threading
import time
from typing import TYPE_CHECKING, Optional
from urllib.parse import quote

from ._core import SseParser, error_from_response
from ._timing import STREAM_READ_TIMEOUT, backoff_delay
from .errors import ProducerError

if TYPE_CHECKING:
    from ._job_handle import JobHandle
    from .client import Producer


class _ControlStream:
    """``GET /v1/jobs/{id}/stream`` with the producer's token: the job's snapshots and updates,
    and ``control`` messages (retry, cancel). Reconnects with backoff and a fresh token, at once
    when the stream ended because its token expired."""

    def __init__(self, producer: Producer, handle: JobHandle) -> None:
        self._producer = producer
        self._job = handle
        self._thread = threading.Thread(target=self.run, name=f"progress-tracker-stream-{handle.id}", daemon=True)
        self._stop_event = threading.Event()
        self._sock: Optional[socket.socket] = None
        self._lock = threading.Lock()
        self.connected = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()
        with self._lock:
            sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if threading.current_thread() is not self._thread and self._thread.is_alive():
            self._thread.join(2.0)

    def start(self) -> None:
        self._thread.start()

    def run(self) -> None:
        failures = 0
        base, ceiling = self._producer._stream_backoff
        tracker = self._job._tracker
        while not self._stop_event.is_set() and not tracker.finished:
            started = time.monotonic()
            try:
                self._once()
                # Ended by the server (its token expired, or it is going away): reconnect at once
                # unless that keeps happening.
                failures = 0 if time.monotonic() - started > 1.0 else failures + 1
            except ProducerError as err:
                failures += 1
                if not self._stop_event.is_set():
                    self._producer._report(err)
                if err.status == 403:
                    return  # the token does not grant this job: nothing will change that
            except Exception as exc:  # network trouble
                failures += 1
                if not self._stop_event.is_set():
                    self._producer._report(ProducerError("network_error", f"stream for job {self._job.id}: {exc!r}", retryable=True))
            finally:
                self.connected.clear()
            if failures:
                self._stop_event.wait(backoff_delay(failures - 1, base, ceiling))

    def _once(self) -> None:
        handle = self._job
        token = self._producer._token()
        conn = self._producer._http.connect(STREAM_READ_TIMEOUT)
        try:
            conn.connect()
            with self._lock:
                self._sock = conn.sock
            if self._stop_event.is_set():
                return
            path = f"{self._producer.endpoint.prefix}/v1/jobs/{quote(handle.id, safe='')}/stream"
            conn.request("GET", path, headers={"Accept": "text/event-stream", "Authorization": f"Bearer {token}", "Cache-Control": "no-cache"})
            resp = conn.getresponse()
            if resp.status != 200:
                raise error_from_response(resp.status, resp.reason, resp.read())
            self.connected.set()
            parser = SseParser()
            while not self._stop_event.is_set():
                line = resp.readline()
                if not line or handle._stream_line(parser, line):
                    return
        except (socket.timeout, OSError) as exc:
            if self._stop_event.is_set():
                return
            raise ProducerError("network_error", f"stream for job {handle.id}: {exc!r}", retryable=True) from exc
        finally:
            with self._lock:
                self._sock = None
            conn.close()
