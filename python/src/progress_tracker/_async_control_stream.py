"""The asyncio producer's control stream: one job's ``GET /v1/jobs/{id}/stream`` read by a task
on the producer's loop, feeding the handle's control tracker so ``on_retry``/``on_cancel`` hear
users. Separate from the handle for the same reason as the threaded ``_control_stream``: it is
the one long-lived connection, with its own lifecycle (reconnect with backoff, a fresh token on
every connection, replaced when silent past two heartbeats), started and cancelled by the handle."""
from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING
from urllib.parse import quote

from ._ahttp import Response, read_head
from ._core import SseParser, error_from_response
from ._timing import STREAM_READ_TIMEOUT, backoff_delay
from .errors import ProducerError

if TYPE_CHECKING:
    from ._async_job_handle import AsyncJobHandle


async def run_control_stream(handle: "AsyncJobHandle") -> None:
    """Keeps the job's stream open until the producer closes, the job finishes, or the token is refused for it."""
    failures = 0
    base, ceiling = handle._producer._stream_backoff
    while not handle._producer.closed and not handle._tracker.finished:
        started = time.monotonic()
        try:
            await _stream_once(handle)
            failures = 0 if time.monotonic() - started > 1.0 else failures + 1
        except asyncio.CancelledError:
            raise
        except ProducerError as err:
            failures += 1
            handle._producer._report(err)
            if err.status == 403:
                return
        except Exception as exc:
            failures += 1
            handle._producer._report(ProducerError("network_error", f"stream for job {handle.id}: {exc!r}", retryable=True))
        finally:
            handle._connected.clear()
        if failures:
            await asyncio.sleep(backoff_delay(failures - 1, base, ceiling))

async def _stream_once(handle: "AsyncJobHandle") -> None:
    http = handle._producer._http
    token = await handle._producer._token()
    conn = await asyncio.wait_for(http.connect(), http.timeout)
    try:
        headers = {"Accept": "text/event-stream", "Authorization": f"Bearer {token}", "Cache-Control": "no-cache"}
        conn.writer.write(http.request_bytes("GET", f"/v1/jobs/{quote(handle.id, safe='')}/stream", headers, None))
        await conn.writer.drain()
        res: Response = await asyncio.wait_for(read_head(conn, "GET"), http.timeout)
        if res.status != 200:
            raise error_from_response(res.status, res.reason, await asyncio.wait_for(res.read_body(), http.timeout))
        handle._connected.set()
        parser = SseParser()
        while not handle._producer.closed:
            try:
                line = await asyncio.wait_for(res.readline(), STREAM_READ_TIMEOUT)
            except asyncio.TimeoutError:
                return  # silent past two heartbeats: a dead path; reconnect
            if not line or handle._stream_line(parser, line):
                return
    finally:
        conn.close()
