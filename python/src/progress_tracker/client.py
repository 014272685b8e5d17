"""The threaded producer: :class:`Producer`, the connection to a progress-tracker server that
creates jobs and hands out their :class:`JobHandle` (``_job_handle``).

Calls block until the server accepted the event (a 202: it is on disk) and return its ``seq``.
Many threads may report on one job: its events go out in call order, one request at a time, and
whatever piles up while a request is in flight goes out together as the next request
(``_event_queue``); a job's control stream is ``_control_stream``; constructor arguments are
read by ``_options``, shared with the asyncio producer (``aio``).
"""
from __future__ import annotations

import threading
import time
import uuid
from types import TracebackType
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Type, Union
from urllib.parse import quote

from ._core import MAX_EVENTS_PER_REQUEST, Attempts, RetryAttempt, compact, create_body, creation_prefix, same_shape
from ._http import Endpoint, SyncHttp
from ._job_handle import JobHandle as JobHandle
from ._options import TokenProvider, batch_limit, log, report_default, token_arguments
from ._timing import STREAM_READ_TIMEOUT as STREAM_READ_TIMEOUT  # importable from here, as before
from ._timing import RetryPolicy
from .errors import ProducerError
from .types import Job, JobEvent, StepLike

__all__ = ["Producer", "JobHandle", "TokenProvider"]


class Producer:
    """A client for the progress-tracker producer API, for threaded code (Celery, Django, scripts).

    >>> producer = Producer("http://127.0.0.1:8080", token)
    >>> job = producer.create_job("report", ["collect", "render"], tags=["user:42"])
    >>> with job.step("collect"):
    ...     job.progress(0.5, message="Half way")

    ``token`` is a JWT with scope ``progress:write``, or a callable returning one (called before
    every request and every stream connection: cache inside it). Every write is safe to retry:
    jobs get a client-side id and events an ``eventId``, so the SDK retries transient failures
    itself and the server never applies an event twice. Close it with :meth:`close` (or use it as
    a context manager), which waits for queued events.
    """

    def __init__(
        self,
        url: str,
        token: Union[str, TokenProvider, None] = None,
        *,
        token_provider: Optional[TokenProvider] = None,
        retry: Optional[RetryPolicy] = None,
        timeout: float = 10.0,
        max_batch: int = MAX_EVENTS_PER_REQUEST,
        id_prefix: Optional[str] = None,
        on_error: Optional[Callable[[ProducerError], None]] = None,
        on_retry_attempt: Optional[Callable[[RetryAttempt], None]] = None,
        stream_backoff: "tuple[float, float]" = (0.25, 15.0),
    ) -> None:
        fixed, token_provider = token_arguments("Producer", token, token_provider)
        self._token: Callable[[], str] = token_provider if token_provider is not None else (lambda: str(fixed))
        self._refreshable = token_provider is not None
        self.endpoint = Endpoint(url)
        self.url = self.endpoint.base_url
        self._closed = threading.Event()
        self._http = SyncHttp(
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
        self._handles: Dict[str, JobHandle] = {}
        self._lock = threading.Lock()

    # ---- jobs -------------------------------------------------------------------------------

    def create_job(
        self,
        kind: str,
        steps: Sequence[StepLike],
        *,
        tags: Optional[Sequence[str]] = None,
        meta: Optional[Mapping[str, Any]] = None,
        webhook: Optional[str] = None,
        id: Optional[str] = None,
        complexity: Optional[float] = None,
    ) -> "JobHandle":
        """Creates a job (``POST /v1/jobs``) and returns its handle. ``steps`` are step ids or
        ``{"id", "label"?, "complexity"?}`` dicts. Without ``id``, the SDK generates one (the
        token's single ``prefix*`` grant, or ``id_prefix``, then a UUID), which makes a resent
        create safe: a 409 after a lost answer is recognised as our own job.

        Raises :class:`ProducerError` ``duplicate_job`` (409) when ``id`` is taken by another
        job, ``bad_request`` (400) for an invalid body, ``unauthorized``/``forbidden``.
        """
        prefix = self._id_prefix if self._id_prefix is not None else creation_prefix(self._token())
        job_id = id if id is not None else f"{prefix}{uuid.uuid4()}"
        body = create_body(kind, steps, job_id=job_id, tags=tags, meta=meta, webhook=webhook, complexity=complexity)
        tries = Attempts(self._http.policy, "POST", "/v1/jobs", self._refreshable, self._on_retry_attempt)
        job: Optional[Job]
        try:
            job = self._http.request("POST", "/v1/jobs", body, attempts=tries)[1]
        except ProducerError as err:
            # A 409 after a resent attempt is most likely our own first attempt: read it back.
            if not (err.status == 409 and tries.resent):
                raise
            try:
                job = self.get_job(job_id)
            except ProducerError:
                if id is not None:
                    raise err from None  # the caller's id: cannot tell whose job it is
                job = None  # our fresh UUID: certainly ours, even if this token cannot read it
            if job is not None and id is not None and not same_shape(job, kind, body["steps"]):
                raise err from None
        handle = self.job(job_id)
        if job is not None:
            handle._adopt(job)
        return handle

    def job(self, job_id: str) -> "JobHandle":
        """A handle for an existing job (one created by another process, or before a restart).
        Call :meth:`JobHandle.refresh` to load its state (completed steps, a pending cancel)."""
        with self._lock:
            handle = self._handles.get(job_id)
            if handle is None:
                handle = JobHandle(self, job_id)
                self._handles[job_id] = handle
            return handle

    def attach(self, job_id: str) -> "JobHandle":
        """A handle for an existing job with its current state loaded (``GET``)."""
        handle = self.job(job_id)
        handle.refresh()
        return handle

    def get_job(self, job_id: str) -> Job:
        """``GET /v1/jobs/{id}`` (``progress:write`` on the job, or ``progress:read``)."""
        job: Job = self._http.request("GET", f"/v1/jobs/{quote(job_id, safe='')}")[1]
        return job

    def send_events(self, job_id: str, events: Union[Mapping[str, Any], Sequence[Mapping[str, Any]]]) -> int:
        """Sends events as they are (an ``eventId`` is added where missing); returns the ``seq``.
        Prefer the handle's methods, which also keep a job's events in order."""
        items = [events] if isinstance(events, Mapping) else list(events)
        return self._post(job_id, [compact(e) for e in items])

    def retry_job(self, job_id: str, step: Optional[str] = None) -> int:
        """``POST /v1/jobs/{id}/retry`` (scope ``progress:retry``): what a user's Retry does."""
        body = {} if step is None else {"step": step}
        answer = self._http.request("POST", f"/v1/jobs/{quote(job_id, safe='')}/retry", body)[1]
        return int(answer.get("seq", 0)) if isinstance(answer, dict) else 0

    def cancel_job(self, job_id: str, reason: Optional[str] = None) -> None:
        """``POST /v1/jobs/{id}/cancel`` (scope ``progress:cancel``): what a user's Cancel does —
        asks the job's producer to stop. A producer ending its own job uses ``job.cancel()``."""
        body = {} if reason is None else {"reason": reason}
        self._http.request("POST", f"/v1/jobs/{quote(job_id, safe='')}/cancel", body)

    def close(self, flush: bool = True, timeout: Optional[float] = None) -> None:
        """Waits for everything queued to be answered (unless ``flush=False``), then stops:
        closes the streams and aborts pending retries. Later calls raise ``aborted``."""
        with self._lock:
            handles = list(self._handles.values())
        if flush:
            deadline = None if timeout is None else time.monotonic() + timeout
            for h in handles:
                h.flush(None if deadline is None else max(0.0, deadline - time.monotonic()))
        self._closed.set()
        for h in handles:
            h._stop_listening()
        self._http.close()
        with self._lock:
            self._handles.clear()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def __enter__(self) -> "Producer":
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        self.close()

    # ---- used by handles --------------------------------------------------------------------

    def _post(self, job_id: str, events: List[JobEvent]) -> int:
        body: Any = events[0] if len(events) == 1 else events
        answer = self._http.request("POST", f"/v1/jobs/{quote(job_id, safe='')}/events", body)[1]
        if not isinstance(answer, dict) or not isinstance(answer.get("seq"), int):
            raise ProducerError("bad_response", "expected {\"seq\"} from the events API", status=202)
        return int(answer["seq"])

    def _forget(self, job_id: str) -> None:
        with self._lock:
            self._handles.pop(job_id, None)

    def _report(self, err: ProducerError) -> None:
        try:
            self._on_error(err)
        except Exception:  # pragma: no cover - an on_error that throws must not kill a stream
            log.exception("progress-tracker on_error handler failed")
