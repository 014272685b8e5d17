"""The threaded producer: :class:`Producer` and its :class:`JobHandle`.

Calls block until the server accepted the event (a 202: it is on disk) and return its ``seq``.
Many threads may report on one job: its events go out in call order, one request at a time, and
whatever piles up while a request is in flight goes out together as the next request.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import socket
import threading
import time
import uuid
from types import TracebackType
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Type, Union
from contextlib import contextmanager
from urllib.parse import quote

from ._core import (
    MAX_EVENTS_PER_REQUEST,
    Attempts,
    RetryAttempt,
    SseParser,
    compact,
    create_body,
    creation_prefix,
    error_from_response,
    is_event_refusal,
)
from ._handle import CancelHandler, ErrorLike, HandleState, RetryHandler, Unsubscribe, _Registered
from ._http import Endpoint, SyncHttp
from ._timing import RetryPolicy, backoff_delay
from .errors import JobCancelled, ProducerError
from .types import CancelControl, Control, Job, JobEvent, RetryControl, StepLike

__all__ = ["Producer", "JobHandle", "TokenProvider"]

log = logging.getLogger("progress_tracker")

TokenProvider = Callable[[], str]

#: A stream that says nothing for this long (the server pings every 15 s) is replaced.
STREAM_READ_TIMEOUT = 45.0


def _report_default(err: ProducerError) -> None:
    if err.code != "network_error":
        log.warning("progress-tracker producer: %s: %s", err.code, err.message)


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
        if callable(token) and token_provider is None:
            token_provider, token = token, None
        if token is None and token_provider is None:
            raise TypeError("Producer: give a token (a JWT string) or a token_provider (a callable returning one)")
        fixed = token
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
        self._max_batch = max(1, min(int(max_batch), MAX_EVENTS_PER_REQUEST))
        self._id_prefix = id_prefix
        self._on_error = on_error or _report_default
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
            if job is not None and id is not None and not _same_shape(job, kind, body["steps"]):
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


def _same_shape(job: Job, kind: str, steps: Sequence[Mapping[str, Any]]) -> bool:
    return job.get("kind") == kind and [s.get("id") for s in job.get("steps", [])] == [s["id"] for s in steps]


# ---- the ordered queue of one job -------------------------------------------------------------


class _Waiter:
    __slots__ = ("done", "seq", "error")

    def __init__(self) -> None:
        self.done = False
        self.seq = 0
        self.error: Optional[BaseException] = None


class _Pending:
    __slots__ = ("event", "waiters")

    def __init__(self, event: JobEvent, waiter: _Waiter) -> None:
        self.event = event
        self.waiters = [waiter]


class _EventQueue:
    """One job's events, sent strictly in call order, one request at a time. The calling threads
    do the sending: the first one in sends, the others wait; whatever they queued meanwhile goes
    out together as the next request (an array, applied atomically by the server), and an unsent
    ``progress`` for a step replaces the one queued for it since the last structural event
    (``step_start``, ``step_end``, ``step_failed``, ``job_end``: never dropped, never reordered).
    A batch the server refuses is re-sent event by event, so one bad call fails alone. When the
    retry budget runs out, the queued calls raise ``producer_gave_up``, later calls too, and a
    background thread ends the job as ``failed`` (error code ``producer_gave_up``) once the
    server answers again (the same rules as the Node SDK)."""

    def __init__(self, send: Callable[[List[JobEvent]], int], max_batch: int, job_id: str = "",
                 on_give_up: Optional[Callable[[ProducerError], None]] = None,
                 on_ended: Optional[Callable[[JobEvent, int], None]] = None) -> None:
        self._send = send
        self._max_batch = max_batch
        self._job_id = job_id
        self._on_give_up = on_give_up
        self._on_ended = on_ended
        self._cond = threading.Condition()
        self._queue: List[_Pending] = []
        self._flushing = False
        #: Set once the retry budget ran out: every later call raises it.
        self._gave_up: Optional[ProducerError] = None
        #: The thread sending the job's end after a give-up (``drain`` waits for it).
        self._ending: Optional[threading.Thread] = None
        #: Requests sent so far (tests check batching with it).
        self.requests = 0

    def push(self, event: JobEvent) -> int:
        waiter = _Waiter()
        with self._cond:
            if self._gave_up is not None:
                raise self._gave_up
            replaced = False
            if event["type"] == "progress":
                # The latest per step: replace an unsent progress for the step since the last structural event.
                for queued in reversed(self._queue):
                    if queued.event["type"] != "progress":
                        break
                    if queued.event.get("step") == event.get("step"):
                        queued.event = event  # never sent, so replacing it (and its eventId) is safe
                        queued.waiters.append(waiter)
                        replaced = True
                        break
            if not replaced:
                self._queue.append(_Pending(event, waiter))
            while not waiter.done:
                if self._flushing:
                    self._cond.wait()
                    continue
                self._flushing = True
                try:
                    self._lead(waiter)
                finally:
                    self._flushing = False
                    self._cond.notify_all()
        if waiter.error is not None:
            raise waiter.error
        return waiter.seq

    def drain(self, timeout: Optional[float] = None) -> bool:
        """Waits until everything queued so far has been answered (after a give-up: until the
        job's end was sent, or given up on too)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._flushing and self._ending is None, timeout)

    def _lead(self, own: _Waiter) -> None:
        """Sends batches (lock held, released while sending) until this thread's own event is
        answered; a waiting thread takes over what is left."""
        while self._queue and not own.done:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            self._cond.release()
            try:
                outcome = self._send_batch(batch)
            finally:
                self._cond.acquire()
            for pending, seq, error in outcome:
                if self._gave_up is None and isinstance(error, ProducerError) and error.retryable:
                    self._give_up(error)
                if self._gave_up is not None and error is not None:
                    error = self._gave_up
                for w in pending.waiters:
                    w.seq, w.error, w.done = seq, error, True
            if self._gave_up is not None:
                for pending in self._queue:
                    for w in pending.waiters:
                        w.error, w.done = self._gave_up, True
                self._queue.clear()
            self._cond.notify_all()

    def _give_up(self, cause: ProducerError) -> None:
        """The retry budget ran out (lock held): nothing queued can be delivered in order any
        more. Every call fails with ``producer_gave_up``; the job's end goes out in the background."""
        err = ProducerError(
            "producer_gave_up",
            f"job {self._job_id}: events could not be delivered within the retry budget ({cause.message})",
            status=cause.status,
        )
        err.__cause__ = cause
        self._gave_up = err
        if self._on_give_up is not None:
            self._on_give_up(err)
        end: JobEvent = {
            "type": "job_end",
            "status": "failed",
            "eventId": str(uuid.uuid4()),
            "error": {"code": "producer_gave_up", "message": "The producer could not reach the server within its retry budget", "retryable": False},
        }

        def send_end() -> None:
            try:
                seq = self._send([end])
                if self._on_ended is not None:
                    self._on_ended(end, seq)
            except Exception as e:  # reported; nothing else can be done
                if self._on_give_up is not None and isinstance(e, ProducerError):
                    self._on_give_up(e)
            finally:
                with self._cond:
                    self._ending = None
                    self._cond.notify_all()

        self._ending = threading.Thread(target=send_end, name=f"pt-give-up-{self._job_id}", daemon=True)
        self._ending.start()

    def _send_batch(self, batch: List[_Pending]) -> "List[tuple[_Pending, int, Optional[BaseException]]]":
        try:
            self.requests += 1
            seq = self._send([p.event for p in batch])
            return [(p, seq, None) for p in batch]
        except Exception as err:
            if len(batch) > 1 and is_event_refusal(err):
                # Nothing of an atomic batch was applied: send the events one by one, so only
                # the bad call fails instead of every call in its batch.
                out: "List[tuple[_Pending, int, Optional[BaseException]]]" = []
                for p in batch:
                    try:
                        self.requests += 1
                        out.append((p, self._send([p.event]), None))
                    except Exception as one:
                        out.append((p, 0, one))
                return out
            return [(p, 0, err) for p in batch]
        except BaseException as err:  # KeyboardInterrupt, SystemExit: free the waiters, then go
            stop = ProducerError("aborted", f"interrupted: {type(err).__name__}")
            with self._cond:
                for p in batch:
                    for w in p.waiters:
                        w.error, w.done = stop, True
                self._cond.notify_all()
            raise


# ---- the job handle ---------------------------------------------------------------------------


class JobHandle(HandleState):
    """One job, as its producer sees it. Methods block until the server accepted the event
    (durably: a 202) and return its ``seq``. Methods taking an optional ``step`` default to the
    step most recently started through this handle. Thread-safe: events of concurrent calls are
    sent in call order, batched while a request is in flight.
    """

    def __init__(self, producer: Producer, job_id: str) -> None:
        super().__init__(job_id)
        self._producer = producer
        self._queue = _EventQueue(
            lambda events: producer._post(job_id, events),
            producer._max_batch,
            job_id,
            on_give_up=producer._report,
            on_ended=self._accepted,
        )
        self._stream: Optional[_ControlStream] = None
        self._listen_lock = threading.Lock()

    # ---- events -----------------------------------------------------------------------------

    def queued(self, position: Optional[int] = None) -> int:
        """The job waits in a queue before its first step: ``position`` is how many jobs are ahead
        of it (0 = next; ``None`` when unknown). Call again as it moves up; the server's ETA then
        includes the expected wait (``eta["waitMs"]``). Refused (409 ``invalid_transition``) once a
        step has started."""
        return self.send(self._ev_queued(position))

    def start_step(self, step: str, *, message: Optional[str] = None, progress: Optional[float] = None) -> int:
        """Starts (or, after a retry, restarts) a step; the first start makes the job ``running``."""
        return self.send(self._ev_start(step, message, progress))

    def progress(self, fraction: float, message: Optional[str] = None, *, step: Optional[str] = None) -> int:
        """Progress within the running step, 0..1. Cheap to call often: an unsent progress for
        the same step is replaced by the newest value."""
        return self.send(self._ev_progress(fraction, message, step))

    def end_step(self, step: Optional[str] = None, *, message: Optional[str] = None) -> int:
        """Completes a step (default: the current one)."""
        return self.send(self._ev_end(step, message))

    def fail_step(
        self,
        error: ErrorLike,
        *,
        retryable: bool = True,
        code: Optional[str] = None,
        step: Optional[str] = None,
    ) -> int:
        """Fails a step: the step and the job become ``failed``, showing the message to users,
        until someone retries (``on_retry``). ``error`` is an exception (code: its ``code``
        attribute, else ``step_failed``; message: ``str(exc)``), a message, or a
        ``{"code", "message", "retryable"?}`` dict. ``retryable`` tells users whether Retry helps."""
        return self.send(self._ev_fail_step(error, step, retryable, code))

    def complete(self, result: Any = None, *, message: Optional[str] = None) -> int:
        """Ends the job as ``completed`` (every step completes), with an optional JSON ``result``."""
        return self.send(self._ev_job_end("completed", result=result, message=message))

    def fail(self, error: ErrorLike, *, retryable: bool = False, code: Optional[str] = None, message: Optional[str] = None) -> int:
        """Ends the job as ``failed`` (a failed *step* is :meth:`fail_step`)."""
        return self.send(self._ev_job_end("failed", error=error, retryable=retryable, code=code, message=message))

    def cancel(self, *, message: Optional[str] = None) -> int:
        """Ends the job as ``canceled``: what a producer does once it stopped after a cancel."""
        return self.send(self._ev_job_end("canceled", message=message))

    def send(self, event: Mapping[str, Any]) -> int:
        """Sends a raw protocol event through this job's ordered queue (an ``eventId`` is added)."""
        if self._producer.closed:
            raise ProducerError("aborted", f"job {self.id}: the producer is closed")
        full = compact(event)
        seq = self._queue.push(full)
        self._accepted(full, seq)
        return seq

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Waits until every event sent so far has been answered."""
        return self._queue.drain(timeout)

    def refresh(self) -> Job:
        """Reads the job (``GET``) and takes its state: completed steps, a pending cancel."""
        job = self._producer.get_job(self.id)
        self._adopt(job)
        return job

    @contextmanager
    def step(self, step: str, *, message: Optional[str] = None, retryable: bool = True) -> Iterator["JobHandle"]:
        """``with job.step("render"):`` starts the step, ends it when the block finishes, and
        fails it with the exception when one escapes (then re-raises it). A
        :class:`~progress_tracker.JobCancelled` (``job.raise_if_cancelled()``) ends the job as
        ``canceled`` instead."""
        self.start_step(step, message=message)
        try:
            yield self
        except JobCancelled:
            if self.status not in ("completed", "failed", "canceled"):
                self.cancel(message=self.cancel_reason)
            raise
        except self.passthrough:
            raise
        except Exception as exc:
            self.fail_step(exc, retryable=getattr(exc, "retryable", retryable) is not False, step=step)
            raise
        else:
            self.end_step(step)

    # ---- hearing the user -------------------------------------------------------------------

    def on_retry(self, handler: RetryHandler) -> Unsubscribe:
        """Calls ``handler(control)`` (or ``handler()``) whenever someone retries this job: resume
        from ``control.step``. Plain or async callables; they run on their own thread, so they may
        block (run the job again, say). Listens on the job's SSE stream, which reconnects by
        itself and infers a retry it missed while down (``control.recovered``)."""
        reg = _Registered(handler)
        self._retry_handlers.append(reg)
        self.listen()
        return lambda: self._retry_handlers.remove(reg) if reg in self._retry_handlers else None

    def on_cancel(self, handler: CancelHandler) -> Unsubscribe:
        """Calls ``handler(control)`` (or ``handler()``) once someone cancels the job — at once
        when it already is. Stop the work, then call :meth:`cancel`."""
        reg = _Registered(handler)
        self._cancel_handlers.append(reg)
        self.listen()
        if self._is_cancelled():
            self._run_handlers([reg], CancelControl(self.id, self.cancel_reason, True, self._tracker.last_job or self.snapshot))
        return lambda: self._cancel_handlers.remove(reg) if reg in self._cancel_handlers else None

    @property
    def cancelled(self) -> bool:
        """True once someone canceled the job: check it in loops (reading it starts listening)."""
        self.listen()
        return self._is_cancelled()

    def wait_for_retry(self, timeout: Optional[float] = None) -> Optional[RetryControl]:
        """Blocks until the next retry of this job (``None`` after ``timeout`` seconds). Listen
        before failing the step when you can; a retry that lands in between is still caught."""
        got: List[RetryControl] = []
        event = threading.Event()

        def heard(control: RetryControl) -> None:
            got.append(control)
            event.set()

        stop = self.on_retry(heard)
        try:
            event.wait(timeout)
        finally:
            stop()
        return got[0] if got else None

    def listen(self) -> None:
        """Opens the job's control stream (``on_retry``, ``on_cancel`` and ``cancelled`` do)."""
        with self._listen_lock:
            if self._stream is not None or self._producer.closed or self._tracker.finished:
                return
            self._stream = _ControlStream(self._producer, self)
            self._stream.start()

    @property
    def listening(self) -> bool:
        return self._stream is not None and self._stream.connected.is_set()

    def wait_listening(self, timeout: float = 10.0) -> bool:
        """Blocks until the control stream is connected (tests, and code that must not miss a
        control message sent right after)."""
        self.listen()
        stream = self._stream
        return stream is not None and stream.connected.wait(timeout)

    # ---- internals --------------------------------------------------------------------------

    def _status_changed(self, status: str) -> None:
        if status in ("completed", "canceled"):
            self._stop_listening()
            self._producer._forget(self.id)

    def stop_listening(self) -> None:
        """Closes the control stream (``on_retry``/``on_cancel`` hear nothing more)."""
        self._stop_listening()

    def _stop_listening(self) -> None:
        with self._listen_lock:
            stream, self._stream = self._stream, None
        if stream is not None:
            stream.stop()

    def _heard(self, controls: List[Control]) -> None:
        for control in controls:
            if isinstance(control, RetryControl):
                self._on_retry_heard(control)
                self._run_handlers(list(self._retry_handlers), control)
            else:
                self._run_handlers(list(self._cancel_handlers), control)

    def _run_handlers(self, handlers: List[_Registered], control: Control) -> None:
        if not handlers:
            return

        def run() -> None:
            for reg in handlers:
                try:
                    result = reg.call(control)
                    if inspect.isawaitable(result):
                        asyncio.run(_awaited(result))
                except Exception as exc:
                    self._producer._report(
                        ProducerError("handler_error", f"{type(control).__name__} handler for job {self.id} raised {exc!r}")
                    )

        threading.Thread(target=run, name=f"progress-tracker-control-{self.id}").start()


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


# ---- the control stream (SSE) -----------------------------------------------------------------


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
                if not line:
                    return
                event = parser.feed(line.decode("utf-8", "replace"))
                if event is None:
                    continue
                controls = handle._tracker.on_message(event[1])
                if controls:
                    handle._heard(controls)
                if handle._tracker.finished:
                    return
        except (socket.timeout, OSError) as exc:
            if self._stop_event.is_set():
                return
            raise ProducerError("network_error", f"stream for job {handle.id}: {exc!r}", retryable=True) from exc
        finally:
            with self._lock:
                self._sock = None
            conn.close()
