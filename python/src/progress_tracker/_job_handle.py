"""The threaded producer's job handle (:class:`JobHandle`, importable from
``progress_tracker`` and ``progress_tracker.client``): the calls a worker makes on one job and
how it hears the user's Retry and Cancel. Separate from the :class:`~progress_tracker.Producer`
(which holds the connection, the token and the handles) because a handle is one job's view:
its events go through its own ordered queue (``_event_queue``), its control messages arrive on
its own stream (``_control_stream``) and its handlers run on their own threads."""
from __future__ import annotations

import asyncio
import inspect
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator, List, Mapping, Optional

from ._control_stream import _ControlStream
from ._core import compact
from ._event_queue import _EventQueue
from ._handle import CancelHandler, ErrorLike, HandleState, RetryHandler, Unsubscribe, _Registered
from .errors import JobCancelled, ProducerError
from .types import Control, Job, RetryControl

if TYPE_CHECKING:
    from .client import Producer


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
        return self._add_retry_handler(handler)

    def on_cancel(self, handler: CancelHandler) -> Unsubscribe:
        """Calls ``handler(control)`` (or ``handler()``) once someone cancels the job — at once
        when it already is. Stop the work, then call :meth:`cancel`."""
        return self._add_cancel_handler(handler)

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

