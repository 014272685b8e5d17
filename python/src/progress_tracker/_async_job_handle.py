"""The asyncio producer's job handle (:class:`AsyncJobHandle`, importable from
``progress_tracker`` and ``progress_tracker.aio``): the coroutines a worker awaits on one job and
how it hears the user's Retry and Cancel. Separate from the
:class:`~progress_tracker.AsyncProducer` (the connection, the token, the handles and their
tasks) because a handle is one job's view: its events go through its own ordered queue
(``_async_event_queue``), its control messages arrive on its own stream task
(``_async_control_stream``) and its handlers run on the loop."""
from __future__ import annotations

import asyncio
import inspect
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, AsyncIterator, List, Mapping, Optional

from ._ahttp import Flag
from ._async_control_stream import run_control_stream
from ._async_event_queue import _AsyncEventQueue
from ._core import compact
from ._handle import CancelHandler, ErrorLike, HandleState, RetryHandler, Unsubscribe, _Registered
from .errors import JobCancelled, ProducerError
from .types import Control, Job, RetryControl

if TYPE_CHECKING:
    from .aio import AsyncProducer


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
        self._connected: Flag = Flag()

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
        return self._add_retry_handler(handler)

    def on_cancel(self, handler: CancelHandler) -> Unsubscribe:
        """Calls ``handler(control)`` (or ``handler()``) once someone cancels the job — at once
        when it already is."""
        return self._add_cancel_handler(handler)

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
        self._stream = self._producer._spawn(run_control_stream(self))

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
