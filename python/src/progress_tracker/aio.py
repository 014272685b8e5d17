"""The asyncio producer: :class:`AsyncProducer` and its :class:`AsyncJobHandle`, for FastAPI,
Starlette, aiohttp or any asyncio program. Same semantics as the threaded one; calls are
coroutines that resolve once the server accepted the event. Events queued within one turn of
the event loop, or while a request is in flight, go out together as one request.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import time
import uuid
from types import TracebackType
from typing import Any, AsyncIterator, Callable, Dict, List, Mapping, Optional, Sequence, Set, Type, Union
from contextlib import asynccontextmanager
from urllib.parse import quote

from ._ahttp import AsyncHttp, AsyncTokenProvider, Flag, Response, read_head, token_function
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
from ._http import Endpoint
from ._timing import RetryPolicy, backoff_delay
from .errors import JobCancelled, ProducerError
from .types import CancelControl, Control, Job, JobEvent, RetryControl, StepLike

__all__ = ["AsyncProducer", "AsyncJobHandle"]

log = logging.getLogger("progress_tracker")
STREAM_READ_TIMEOUT = 45.0


def _report_default(err: ProducerError) -> None:
    if err.code != "network_error":
        log.warning("progress-tracker producer: %s: %s", err.code, err.message)


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
        if callable(token) and token_provider is None:
            token_provider, token = token, None
        if token is None and token_provider is None:
            raise TypeError("AsyncProducer: give a token (a JWT string) or a token_provider (a callable returning one)")
        self._token = token_function(token if isinstance(token, str) else None, token_provider)
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
        self._max_batch = max(1, min(int(max_batch), MAX_EVENTS_PER_REQUEST))
        self._id_prefix = id_prefix
        self._on_error = on_error or _report_default
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
            if job is not None and id is not None and not (
                job.get("kind") == kind and [s.get("id") for s in job.get("steps", [])] == [s["id"] for s in body["steps"]]
            ):
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


class _Pending:
    __slots__ = ("event", "futures")

    def __init__(self, event: JobEvent, future: "asyncio.Future[int]") -> None:
        self.event = event
        self.futures = [future]


class _AsyncEventQueue:
    """One job's events in call order, one request at a time; the events of one loop turn, or
    queued while a request is in flight, go out together; progress coalesces to the latest per
    step between structural events; when the retry budget runs out, calls raise
    ``producer_gave_up`` and the job's end (``failed``, ``producer_gave_up``) is sent next (see the
    threaded ``_EventQueue``)."""

    def __init__(self, send: Callable[[List[JobEvent]], Any], max_batch: int, job_id: str = "",
                 on_give_up: Optional[Callable[[ProducerError], None]] = None,
                 on_ended: Optional[Callable[[JobEvent, int], None]] = None) -> None:
        self._send = send
        self._max_batch = max_batch
        self._job_id = job_id
        self._on_give_up = on_give_up
        self._on_ended = on_ended
        self._queue: List[_Pending] = []
        self._flushing: Optional["asyncio.Task[None]"] = None
        self._gave_up: Optional[ProducerError] = None
        self.requests = 0

    def push(self, event: JobEvent) -> "asyncio.Future[int]":
        loop = asyncio.get_running_loop()
        future: "asyncio.Future[int]" = loop.create_future()
        if self._gave_up is not None:
            future.set_exception(self._gave_up)
            return future
        replaced = False
        if event["type"] == "progress":
            for queued in reversed(self._queue):
                if queued.event["type"] != "progress":
                    break
                if queued.event.get("step") == event.get("step"):
                    queued.event = event  # never sent, so replacing it (and its eventId) is safe
                    queued.futures.append(future)
                    replaced = True
                    break
        if not replaced:
            self._queue.append(_Pending(event, future))
        if self._flushing is None:
            self._flushing = loop.create_task(self._flush())
        return future

    async def drain(self) -> None:
        while self._flushing is not None:
            await asyncio.shield(self._flushing)

    async def _flush(self) -> None:
        try:
            await asyncio.sleep(0)  # the rest of this turn joins the first event
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                try:
                    self.requests += 1
                    seq = await self._send([p.event for p in batch])
                    for p in batch:
                        _settle(p, seq, None)
                except Exception as err:
                    if len(batch) > 1 and is_event_refusal(err):
                        for i, p in enumerate(batch):
                            try:
                                self.requests += 1
                                _settle(p, await self._send([p.event]), None)
                            except Exception as one:
                                if isinstance(one, ProducerError) and one.retryable:
                                    self._give_up(batch[i:], one)
                                    break
                                _settle(p, 0, one)
                    elif isinstance(err, ProducerError) and err.retryable:
                        self._give_up(batch, err)
                    else:
                        for p in batch:
                            _settle(p, 0, err)
                except BaseException as err:  # cancelled: nothing more will be sent
                    for p in batch + self._queue:
                        _settle(p, 0, ProducerError("aborted", f"sending was cancelled: {type(err).__name__}"))
                    self._queue.clear()
                    raise
        finally:
            self._flushing = None

    def _give_up(self, batch: List[_Pending], cause: ProducerError) -> None:
        """The retry budget ran out: nothing queued can be delivered in order any more."""
        rest = batch + self._queue
        self._queue.clear()
        if self._gave_up is not None:  # the job's end could not be delivered either
            for p in rest:
                _settle(p, 0, cause)
            return
        err = ProducerError(
            "producer_gave_up",
            f"job {self._job_id}: events could not be delivered within the retry budget ({cause.message})",
            status=cause.status,
        )
        err.__cause__ = cause
        self._gave_up = err
        for p in rest:
            _settle(p, 0, err)
        if self._on_give_up is not None:
            self._on_give_up(err)
        end: JobEvent = {
            "type": "job_end",
            "status": "failed",
            "eventId": str(uuid.uuid4()),
            "error": {"code": "producer_gave_up", "message": "The producer could not reach the server within its retry budget", "retryable": False},
        }
        future: "asyncio.Future[int]" = asyncio.get_running_loop().create_future()
        on_ended, on_give_up = self._on_ended, self._on_give_up

        def done(f: "asyncio.Future[int]") -> None:
            if f.exception() is None:
                if on_ended is not None:
                    on_ended(end, f.result())
            elif on_give_up is not None and isinstance(f.exception(), ProducerError):
                on_give_up(f.exception())  # type: ignore[arg-type]

        future.add_done_callback(done)
        self._queue.append(_Pending(end, future))


def _settle(p: _Pending, seq: int, error: Optional[BaseException]) -> None:
    for f in p.futures:
        if f.done():
            continue
        if error is None:
            f.set_result(seq)
        else:
            f.set_exception(error)


class AsyncJobHandle(HandleState):
    """One job, as an asyncio producer sees it: the methods of
    :class:`progress_tracker.JobHandle` as coroutines. Calls may be fired without awaiting
    (``asyncio.create_task``): they are sent in call order, batched."""

    def __init__(self, producer: AsyncProducer, job_id: str) -> None:
        super().__init__(job_id)
        self._producer = producer
        self._queue = _AsyncEventQueue(
            lambda events: producer._post(job_id, events),
            producer._max_batch,
            job_id,
            on_give_up=producer._report,
            on_ended=self._accepted,
        )
        self._stream: Optional["asyncio.Task[None]"] = None
        self._connected = Flag()

    async def queued(self, position: Optional[int] = None) -> int:
        return await self.send(self._ev_queued(position))

    async def start_step(self, step: str, *, message: Optional[str] = None, progress: Optional[float] = None) -> int:
        return await self.send(self._ev_start(step, message, progress))

    async def progress(self, fraction: float, message: Optional[str] = None, *, step: Optional[str] = None) -> int:
        return await self.send(self._ev_progress(fraction, message, step))

    async def end_step(self, step: Optional[str] = None, *, message: Optional[str] = None) -> int:
        return await self.send(self._ev_end(step, message))

    async def fail_step(self, error: ErrorLike, *, retryable: bool = True, code: Optional[str] = None, step: Optional[str] = None) -> int:
        return await self.send(self._ev_fail_step(error, step, retryable, code))

    async def complete(self, result: Any = None, *, message: Optional[str] = None) -> int:
        return await self.send(self._ev_job_end("completed", result=result, message=message))

    async def fail(self, error: ErrorLike, *, retryable: bool = False, code: Optional[str] = None, message: Optional[str] = None) -> int:
        return await self.send(self._ev_job_end("failed", error=error, retryable=retryable, code=code, message=message))

    async def cancel(self, *, message: Optional[str] = None) -> int:
        return await self.send(self._ev_job_end("canceled", message=message))

    async def send(self, event: Mapping[str, Any]) -> int:
        if self._producer.closed:
            raise ProducerError("aborted", f"job {self.id}: the producer is closed")
        full = compact(event)
        seq = await self._queue.push(full)
        self._accepted(full, seq)
        return seq

    async def flush(self) -> None:
        await self._queue.drain()

    async def refresh(self) -> Job:
        job = await self._producer.get_job(self.id)
        self._adopt(job)
        return job

    @asynccontextmanager
    async def step(self, step: str, *, message: Optional[str] = None, retryable: bool = True) -> AsyncIterator["AsyncJobHandle"]:
        """``async with job.step("render"):`` — start, end, or fail with the exception."""
        await self.start_step(step, message=message)
        try:
            yield self
        except JobCancelled:
            if self.status not in ("completed", "failed", "canceled"):
                await self.cancel(message=self.cancel_reason)
            raise
        except self.passthrough:
            raise
        except Exception as exc:
            await self.fail_step(exc, retryable=getattr(exc, "retryable", retryable) is not False, step=step)
            raise
        else:
            await self.end_step(step)

    # ---- hearing the user -------------------------------------------------------------------

    def on_retry(self, handler: RetryHandler) -> Unsubscribe:
        """Calls ``handler(control)`` (or ``handler()``; plain or async) on every retry of this
        job. Plain handlers run on the event loop: keep them short, or start a task."""
        reg = _Registered(handler)
        self._retry_handlers.append(reg)
        self.listen()
        return lambda: self._retry_handlers.remove(reg) if reg in self._retry_handlers else None

    def on_cancel(self, handler: CancelHandler) -> Unsubscribe:
        """Calls ``handler(control)`` (or ``handler()``) once someone cancels the job — at once
        when it already is."""
        reg = _Registered(handler)
        self._cancel_handlers.append(reg)
        self.listen()
        if self._is_cancelled():
            self._run_handlers([reg], CancelControl(self.id, self.cancel_reason, True, self._tracker.last_job or self.snapshot))
        return lambda: self._cancel_handlers.remove(reg) if reg in self._cancel_handlers else None

    @property
    def cancelled(self) -> bool:
        """True once someone canceled the job (reading it starts listening)."""
        self.listen()
        return self._is_cancelled()

    async def wait_for_retry(self, timeout: Optional[float] = None) -> Optional[RetryControl]:
        """The next retry of this job, or ``None`` after ``timeout`` seconds."""
        future: "asyncio.Future[RetryControl]" = asyncio.get_running_loop().create_future()

        def heard(control: RetryControl) -> None:
            if not future.done():
                future.set_result(control)

        stop = self.on_retry(heard)
        try:
            return await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            return None
        finally:
            stop()

    def listen(self) -> None:
        """Opens the job's control stream (needs a running event loop)."""
        if self._stream is not None or self._producer.closed or self._tracker.finished:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        self._stream = self._producer._spawn(self._run_stream())

    @property
    def listening(self) -> bool:
        return self._connected.is_set()

    async def wait_listening(self, timeout: float = 10.0) -> bool:
        self.listen()
        return await self._connected.wait(timeout)

    # ---- internals --------------------------------------------------------------------------

    def _status_changed(self, status: str) -> None:
        if status in ("completed", "canceled"):
            stream, self._stream = self._stream, None
            if stream is not None and stream is not asyncio.current_task():
                stream.cancel()
            self._producer._handles.pop(self.id, None)

    async def stop_listening(self) -> None:
        """Closes the control stream."""
        await self._stop_listening()

    async def _stop_listening(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None and stream is not asyncio.current_task():
            stream.cancel()
            try:
                await stream
            except BaseException:
                pass

    def _heard(self, controls: List[Control]) -> None:
        for control in controls:
            if isinstance(control, RetryControl):
                self._on_retry_heard(control)
                self._run_handlers(list(self._retry_handlers), control)
            else:
                self._run_handlers(list(self._cancel_handlers), control)

    def _run_handlers(self, handlers: List[_Registered], control: Control) -> None:
        for reg in handlers:
            try:
                result = reg.call(control)
            except Exception as exc:
                self._handler_failed(control, exc)
                continue
            if inspect.isawaitable(result):
                self._producer._spawn(self._await_handler(result, control))

    async def _await_handler(self, awaitable: Any, control: Control) -> None:
        try:
            await awaitable
        except Exception as exc:
            self._handler_failed(control, exc)

    def _handler_failed(self, control: Control, exc: BaseException) -> None:
        self._producer._report(ProducerError("handler_error", f"{type(control).__name__} handler for job {self.id} raised {exc!r}"))

    async def _run_stream(self) -> None:
        failures = 0
        base, ceiling = self._producer._stream_backoff
        while not self._producer.closed and not self._tracker.finished:
            started = time.monotonic()
            try:
                await self._stream_once()
                failures = 0 if time.monotonic() - started > 1.0 else failures + 1
            except asyncio.CancelledError:
                raise
            except ProducerError as err:
                failures += 1
                self._producer._report(err)
                if err.status == 403:
                    return
            except Exception as exc:
                failures += 1
                self._producer._report(ProducerError("network_error", f"stream for job {self.id}: {exc!r}", retryable=True))
            finally:
                self._connected.clear()
            if failures:
                await asyncio.sleep(backoff_delay(failures - 1, base, ceiling))

    async def _stream_once(self) -> None:
        http = self._producer._http
        token = await self._producer._token()
        conn = await asyncio.wait_for(http.connect(), http.timeout)
        try:
            headers = {"Accept": "text/event-stream", "Authorization": f"Bearer {token}", "Cache-Control": "no-cache"}
            conn.writer.write(http.request_bytes("GET", f"/v1/jobs/{quote(self.id, safe='')}/stream", headers, None))
            await conn.writer.drain()
            res: Response = await asyncio.wait_for(read_head(conn, "GET"), http.timeout)
            if res.status != 200:
                raise error_from_response(res.status, res.reason, await asyncio.wait_for(res.read_body(), http.timeout))
            self._connected.set()
            parser = SseParser()
            while not self._producer.closed:
                try:
                    line = await asyncio.wait_for(res.readline(), STREAM_READ_TIMEOUT)
                except asyncio.TimeoutError:
                    return  # silent past two heartbeats: a dead path; reconnect
                if not line:
                    return
                event = parser.feed(line.decode("utf-8", "replace"))
                if event is None:
                    continue
                controls = self._tracker.on_message(event[1])
                if controls:
                    self._heard(controls)
                if self._tracker.finished:
                    return
        finally:
            conn.close()
