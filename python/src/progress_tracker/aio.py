"""The asyncio producer: :class:`AsyncProducer`, the connection to a progress-tracker server that
creates jobs and hands out their :class:`AsyncJobHandle` (``_async_job_handle``), for FastAPI,
Starlette, aiohttp or any asyncio program. Same semantics as the threaded one; calls are
coroutines that resolve once the server accepted the event. Events queued within one turn of
the event loop, or while a request is in flight, go out together as one request
(``_async_event_queue``); a job's control stream is ``_async_control_stream``; constructor
arguments are read by ``_options``, shared with the threaded producer (``client``).
"""
from __future__ import annotations

import asyncio
import uuid
from types import TracebackType
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Set, Type, Union
from urllib.parse import quote

from ._ahttp import AsyncHttp, AsyncTokenProvider, Flag, token_function
from ._async_job_handle import AsyncJobHandle as AsyncJobHandle
from ._core import MAX_EVENTS_PER_REQUEST, Attempts, RetryAttempt, compact, create_body, creation_prefix, same_shape
from ._http import Endpoint
from ._options import batch_limit, log, report_default, token_arguments
from ._timing import STREAM_READ_TIMEOUT as STREAM_READ_TIMEOUT  # importable from here, as before
from ._timing import RetryPolicy
from .errors import ProducerError
from .types import Job, JobEvent, StepLike

__all__ = ["AsyncProducer", "AsyncJobHandle"]


class AsyncProducer:
    """A client for the progress-tracker producer API, for asyncio code.

    >>> producer = AsyncProducer("http://127.0.0.1:8080", token)
    >>> job = await producer.create_job("report", ["collect", "render"], tags=["user:42"])
    >>> async with job.step("collect"):
    ...     await job.progress(0.5, message="Half way")
    >>> await producer.aclose()

    ``token`` is a JWT, or a callable (plain or async) returning one, called before every request
    and stream connection. Use it from one event loop; ``aclose()`` (or ``async with``) waits
    for queued events.
    """

    def __init__(
        self,
        url: str,
        token: Union[str, AsyncTokenProvider, None] = None,
        *,
        token_provider: Optional[AsyncTokenProvider] = None,
        retry: Optional[RetryPolicy] = None,
        timeout: float = 10.0,
        max_batch: int = MAX_EVENTS_PER_REQUEST,
        id_prefix: Optional[str] = None,
        on_error: Optional[Callable[[ProducerError], None]] = None,
        on_retry_attempt: Optional[Callable[[RetryAttempt], None]] = None,
        stream_backoff: "tuple[float, float]" = (0.25, 15.0),
    ) -> None:
        given, token_provider = token_arguments("AsyncProducer", token, token_provider)
        self._token = token_function(given if isinstance(given, str) else None, token_provider)
        self._refreshable = token_provider is not None
        self.endpoint = Endpoint(url)
        self.url = self.endpoint.base_url
        self._closed = Flag()
        self._http = AsyncHttp(
            self.endpoint,
            self._token,
            refreshable=self._refreshable,
            policy=retry or RetryPolicy(),
            timeout=timeout,
            closed=self._closed,
            on_retry_attempt=on_retry_attempt,
        )
        self._on_retry_attempt = on_retry_attempt
        self._max_batch = batch_limit(max_batch)
        self._id_prefix = id_prefix
        self._on_error = on_error or report_default
        self._stream_backoff = stream_backoff
        self._handles: Dict[str, AsyncJobHandle] = {}
        self._tasks: Set["asyncio.Task[Any]"] = set()

    async def create_job(
        self,
        kind: str,
        steps: Sequence[StepLike],
        *,
        tags: Optional[Sequence[str]] = None,
        meta: Optional[Mapping[str, Any]] = None,
        webhook: Optional[str] = None,
        id: Optional[str] = None,
        complexity: Optional[float] = None,
    ) -> "AsyncJobHandle":
        """Creates a job (``POST /v1/jobs``); see :meth:`progress_tracker.Producer.create_job`."""
        prefix = self._id_prefix if self._id_prefix is not None else creation_prefix(await self._token())
        job_id = id if id is not None else f"{prefix}{uuid.uuid4()}"
        body = create_body(kind, steps, job_id=job_id, tags=tags, meta=meta, webhook=webhook, complexity=complexity)
        tries = Attempts(self._http.policy, "POST", "/v1/jobs", self._refreshable, self._on_retry_attempt)
        job: Optional[Job]
        try:
            job = (await self._http.request("POST", "/v1/jobs", body, attempts=tries))[1]
        except ProducerError as err:
            if not (err.status == 409 and tries.resent):
                raise
            try:
                job = await self.get_job(job_id)
            except ProducerError:
                if id is not None:
                    raise err from None
                job = None
            if job is not None and id is not None and not same_shape(job, kind, body["steps"]):
                raise err from None
        handle = self.job(job_id)
        if job is not None:
            handle._adopt(job)
        return handle

    def job(self, job_id: str) -> "AsyncJobHandle":
        """A handle for an existing job (``await handle.refresh()`` loads its state)."""
        handle = self._handles.get(job_id)
        if handle is None:
            handle = AsyncJobHandle(self, job_id)
            self._handles[job_id] = handle
        return handle

    async def attach(self, job_id: str) -> "AsyncJobHandle":
        """A handle for an existing job with its current state loaded."""
        handle = self.job(job_id)
        await handle.refresh()
        return handle

    async def get_job(self, job_id: str) -> Job:
        job: Job = (await self._http.request("GET", f"/v1/jobs/{quote(job_id, safe='')}"))[1]
        return job

    async def send_events(self, job_id: str, events: Union[Mapping[str, Any], Sequence[Mapping[str, Any]]]) -> int:
        items = [events] if isinstance(events, Mapping) else list(events)
        return await self._post(job_id, [compact(e) for e in items])

    async def retry_job(self, job_id: str, step: Optional[str] = None) -> int:
        body = {} if step is None else {"step": step}
        answer = (await self._http.request("POST", f"/v1/jobs/{quote(job_id, safe='')}/retry", body))[1]
        return int(answer.get("seq", 0)) if isinstance(answer, dict) else 0

    async def cancel_job(self, job_id: str, reason: Optional[str] = None) -> None:
        body = {} if reason is None else {"reason": reason}
        await self._http.request("POST", f"/v1/jobs/{quote(job_id, safe='')}/cancel", body)

    async def aclose(self, flush: bool = True) -> None:
        """Waits for everything queued (unless ``flush=False``), then closes the streams and
        aborts pending retries. Later calls raise ``aborted``."""
        handles = list(self._handles.values())
        if flush:
            await asyncio.gather(*(h.flush() for h in handles), return_exceptions=True)
        self._closed.set()
        for h in handles:
            await h._stop_listening()
        self._http.close()
        self._handles.clear()
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()

    close = aclose

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def __aenter__(self) -> "AsyncProducer":
        return self

    async def __aexit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        await self.aclose()

    # ---- used by handles --------------------------------------------------------------------

    async def _post(self, job_id: str, events: List[JobEvent]) -> int:
        body: Any = events[0] if len(events) == 1 else events
        answer = (await self._http.request("POST", f"/v1/jobs/{quote(job_id, safe='')}/events", body))[1]
        if not isinstance(answer, dict) or not isinstance(answer.get("seq"), int):
            raise ProducerError("bad_response", "expected {\"seq\"} from the events API", status=202)
        return int(answer["seq"])

    def _spawn(self, coro: Any) -> "asyncio.Task[Any]":
        task: "asyncio.Task[Any]" = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _report(self, err: ProducerError) -> None:
        try:
            self._on_error(err)
        except Exception:  # pragma: no cover
            log.exception("progress-tracker on_error handler failed")
