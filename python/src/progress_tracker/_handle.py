"""What a job handle is, whether threaded or asyncio: the events its methods send, what it
knows of the job (status, current step, completed steps), and its retry/cancel handlers."""
from __future__ import annotations

import inspect
import threading
from typing import Any, Callable, Dict, List, Mapping, Optional, Set, Tuple, Type, Union

from ._core import ControlTracker, SseParser, check_progress, failure
from .errors import JobCancelled, ProducerError
from .types import CancelControl, Control, Job, RetryControl

#: An ``on_retry`` handler: ``fn(control)`` or ``fn()``, plain or async.
RetryHandler = Union[Callable[[RetryControl], Any], Callable[[], Any]]
#: An ``on_cancel`` handler: ``fn(control)`` or ``fn()``, plain or async.
CancelHandler = Union[Callable[[CancelControl], Any], Callable[[], Any]]
Unsubscribe = Callable[[], None]
ErrorLike = Union[BaseException, str, Mapping[str, Any]]


def wants_argument(fn: Callable[..., Any]) -> bool:
    """Whether a handler takes the control notice (``fn(control)``) or nothing (``fn()``)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    for p in params:
        if p.kind in (p.VAR_POSITIONAL,):
            return True
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            return True
    return False


class _Registered:
    __slots__ = ("fn", "with_arg")

    def __init__(self, fn: Callable[..., Any]) -> None:
        if not callable(fn):
            raise TypeError("a handler must be callable")
        self.fn = fn
        self.with_arg = wants_argument(fn)

    def call(self, control: Control) -> Any:
        return self.fn(control) if self.with_arg else self.fn()


class HandleState:
    """State and event building shared by :class:`~progress_tracker.JobHandle` and
    :class:`~progress_tracker.AsyncJobHandle`."""

    id: str
    #: The job as the server returned it at creation or attachment (``None`` for ``producer.job(id)``).
    snapshot: Optional[Job]
    #: The step most recently started through this handle.
    current_step: Optional[str]
    #: What this handle last reported: ``queued`` until the first step starts.
    status: str
    #: ``seq`` of the latest accepted event.
    last_seq: int
    #: Exceptions that leave ``with job.step(...)`` without failing the step (control flow, such
    #: as Celery's ``Retry``: the step restarts on the next attempt).
    passthrough: Tuple[Type[BaseException], ...] = ()

    def __init__(self, job_id: str) -> None:
        self.id = job_id
        self.snapshot = None
        self.current_step = None
        self.status = "queued"
        self.last_seq = 0
        self._state_lock = threading.Lock()
        self._completed: Set[str] = set()
        #: The latest progress reported per step.
        self._progress: Dict[str, float] = {}
        #: Steps found running when attaching (a worker's earlier attempt): restarted with progress 0.
        self._inherited_running: Set[str] = set()
        self._retry_handlers: List[_Registered] = []
        self._cancel_handlers: List[_Registered] = []
        self._tracker = ControlTracker(job_id)

    # ---- what the handle knows -----------------------------------------------------------

    def _adopt(self, job: Job) -> None:
        """Takes the server's view of the job (creation, attachment)."""
        self.snapshot = job
        self.status = job.get("status", self.status)
        self.last_seq = max(self.last_seq, int(job.get("seq", 0)))
        steps = job.get("steps", [])
        self._completed = {s["id"] for s in steps if s.get("status") == "completed"}
        self._inherited_running = {s["id"] for s in steps if s.get("status") == "running"}
        running = [s["id"] for s in steps if s.get("status") == "running"]
        if running:
            self.current_step = running[-1]
        self._tracker.note_status(self.status)
        self._tracker.last_attempts = int(job.get("attempts") or 0)
        requested = job.get("cancelRequested")
        if isinstance(requested, dict) and self.status not in ("completed", "failed", "canceled"):
            # Canceled before this handle existed (a task still queued when the user canceled).
            self._tracker.cancel_heard = True
            reason = requested.get("reason")
            self._tracker.cancel_reason = reason if isinstance(reason, str) else None

    @property
    def completed_steps(self) -> Set[str]:
        """Steps completed as far as this handle knows (the snapshot and its own ``end_step`` s)."""
        return set(self._completed)

    @property
    def step_ids(self) -> List[str]:
        """The job's step ids in order (known from the snapshot; empty for ``producer.job(id)``
        until ``refresh()``)."""
        return [s["id"] for s in self.snapshot["steps"]] if self.snapshot is not None else []

    def should_run(self, step: str) -> bool:
        """False for a step an earlier attempt completed: after a retry, skip it and resume from
        the failed one (``if job.should_run("render"): ...``)."""
        return step not in self._completed

    def last_progress(self, step: Optional[str] = None) -> float:
        """The progress last reported for a step (default: the current one), 0 when none."""
        sid = step if step is not None else self.current_step
        return self._progress.get(sid, 0.0) if sid is not None else 0.0

    @property
    def cancel_reason(self) -> Optional[str]:
        """The reason given with the cancel, if any."""
        return self._tracker.cancel_reason

    def _is_cancelled(self) -> bool:
        return self._tracker.cancel_heard

    def raise_if_cancelled(self) -> None:
        """Raises :class:`~progress_tracker.JobCancelled` once someone canceled the job: call it
        inside loops (``with job.step(...)`` turns it into ``job.cancel()``)."""
        if self.cancelled:
            raise JobCancelled(self.id, self.cancel_reason)

    @property
    def cancelled(self) -> bool:  # overridden: reading it starts listening
        return self._is_cancelled()

    # ---- events ----------------------------------------------------------------------------

    def _ev_queued(self, position: Optional[int]) -> Dict[str, Any]:
        if position is None:
            return {"type": "queued"}
        # The server's rule (FIELD_LIMITS.maxQueuePosition), refused at the call like progress.
        if isinstance(position, bool) or not isinstance(position, int) or not 0 <= position <= 1_000_000_000:
            raise ProducerError("bad_request", f"position must be an integer from 0 to 1000000000 (jobs ahead), got {position!r}")
        return {"type": "queued", "position": position}

    def _ev_start(self, step: str, message: Optional[str], progress: Optional[float]) -> Dict[str, Any]:
        if progress is not None:
            check_progress(progress)
        self.current_step = step
        self.status = "running"
        if step in self._inherited_running:
            # Started by an earlier attempt of this job that stopped without ending it: restart
            # it in place (a second step_start of a running step would be refused).
            self._inherited_running.discard(step)
            return {"type": "progress", "step": step, "progress": progress or 0.0, "message": message}
        return {"type": "step_start", "step": step, "message": message, "progress": progress}

    def _ev_progress(self, fraction: float, message: Optional[str], step: Optional[str]) -> Dict[str, Any]:
        return {"type": "progress", "step": self._step_of(step), "progress": check_progress(fraction), "message": message}

    def _ev_end(self, step: Optional[str], message: Optional[str]) -> Dict[str, Any]:
        return {"type": "step_end", "step": self._step_of(step), "message": message}

    def _ev_fail_step(self, error: ErrorLike, step: Optional[str], retryable: Optional[bool], code: Optional[str]) -> Dict[str, Any]:
        err = failure(error, code=code, retryable=retryable, default_code="step_failed")
        err.setdefault("retryable", True)
        return {"type": "step_failed", "step": self._step_of(step), "error": err}

    def _ev_job_end(
        self,
        status: str,
        *,
        result: Any = None,
        message: Optional[str] = None,
        error: Optional[ErrorLike] = None,
        code: Optional[str] = None,
        retryable: Optional[bool] = None,
    ) -> Dict[str, Any]:
        event: Dict[str, Any] = {"type": "job_end", "status": status, "message": message, "result": result}
        if error is not None:
            event["error"] = failure(error, code=code, retryable=retryable, default_code="job_failed")
        return event

    def _step_of(self, step: Optional[str]) -> str:
        sid = step if step is not None else self.current_step
        if sid is None:
            raise ProducerError("step_not_running", f"job {self.id}: no step given and none started")
        return sid

    def _accepted(self, event: Mapping[str, Any], seq: int) -> None:
        """An event was accepted: what the handle now knows."""
        with self._state_lock:
            self.last_seq = max(self.last_seq, seq)
            kind = event.get("type")
            if kind in ("step_start", "progress") and isinstance(event.get("step"), str):
                self._progress[str(event["step"])] = float(event.get("progress") or 0.0)
            if kind == "step_end":
                self._completed.add(str(event.get("step")))
            elif kind == "step_failed":
                self._set_status("failed")
            elif kind == "job_end":
                self._set_status(str(event.get("status", "completed")))

    def _set_status(self, status: str) -> None:
        self.status = status
        self._tracker.note_status(status)
        self._status_changed(status)

    def _status_changed(self, status: str) -> None:
        """Hook: the transport stops listening once the job completed or was canceled."""

    # ---- retry/cancel handlers: registered and dispatched alike; run by the transport --------

    def listen(self) -> None:
        """Hook: the transport opens the job's control stream."""
        raise NotImplementedError

    def _run_handlers(self, handlers: List[_Registered], control: Control) -> None:
        """Hook: the transport runs handlers (threads, or the event loop)."""
        raise NotImplementedError

    def _add_retry_handler(self, handler: RetryHandler) -> Unsubscribe:
        reg = _Registered(handler)
        self._retry_handlers.append(reg)
        self.listen()
        return lambda: self._retry_handlers.remove(reg) if reg in self._retry_handlers else None

    def _add_cancel_handler(self, handler: CancelHandler) -> Unsubscribe:
        reg = _Registered(handler)
        self._cancel_handlers.append(reg)
        self.listen()
        if self._is_cancelled():
            self._run_handlers([reg], CancelControl(self.id, self.cancel_reason, True, self._tracker.last_job or self.snapshot))
        return lambda: self._cancel_handlers.remove(reg) if reg in self._cancel_handlers else None

    def _stream_line(self, parser: SseParser, line: bytes) -> bool:
        """One line of the job's control stream (both transports read it the same way): a
        complete event goes through the tracker to the handlers. True once the job has ended and
        the stream has nothing more to say."""
        event = parser.feed(line.decode("utf-8", "replace"))
        if event is not None:
            controls = self._tracker.on_message(event[1])
            if controls:
                self._heard(controls)
        return self._tracker.finished

    def _heard(self, controls: List[Control]) -> None:
        """Control notices from the stream: a retry resets the steps first; each goes to its handlers."""
        for control in controls:
            if isinstance(control, RetryControl):
                self._on_retry_heard(control)
                self._run_handlers(list(self._retry_handlers), control)
            else:
                self._run_handlers(list(self._cancel_handlers), control)

    def _on_retry_heard(self, control: RetryControl) -> None:
        self.status = "queued"
        self.current_step = None
        self._inherited_running.clear()
        source = control.job or self.snapshot
        ids = [s["id"] for s in source.get("steps", [])] if source else []
        if control.step in ids:
            # It and the later steps are pending again; the earlier ones stay completed.
            self._completed -= set(ids[ids.index(control.step):])
        else:
            self._completed.discard(control.step)
