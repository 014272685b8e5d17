"""Celery integration: a task base class that gives every run of a task a progress-tracker job.

.. code-block:: python

    from celery import Celery
    from progress_tracker.celery import ProgressTask, configure

    app = Celery("reports", broker="redis://localhost:6379/0")
    configure(url="http://progress.internal:8080", token_provider=worker_token)

    @app.task(base=ProgressTask, bind=True, progress_steps=["fetch", "render", "upload"],
              autoretry_for=(ConnectionError,), max_retries=3)
    def build_report(self, report_id):
        job = self.progress_job
        if job.should_run("fetch"):           # False when resuming after a Retry
            with job.step("fetch"):
                ...
        with job.step("render"):
            for page in range(40):
                job.raise_if_cancelled()       # or: if job.cancelled: ...
                job.progress(page / 40, message=f"Page {page}")

What it does, per run of the task (in the worker):

- creates the job ``<prefix><task id>`` (``prefix``: ``configure(job_id_prefix=…)``, else the
  token's single ``prefix*`` grant), or attaches to it when it exists (created by
  :func:`enqueue`, or an earlier attempt of the same task id);
- on return, completes the job (``result``: the return value when it is JSON);
- on an exception, fails the running step (or the first unfinished one) with it. ``retryable``
  is true when Celery would retry that exception (``autoretry_for``, ``progress_retry_for``,
  or an exception with ``retryable = True``); while Celery itself retries (``self.retry()``,
  ``autoretry_for``), the job is not failed: the step shows the retry and restarts;
- after a retryable failure, the worker listens for the user's Retry (``progress_retry_window``,
  default 1 h) and re-enqueues the task under the same task id: the new run attaches to the job
  and ``job.should_run(step)`` skips what completed;
- on the user's Cancel, ``job.cancelled`` becomes true in the running task (cooperative: check
  it, or call ``job.raise_if_cancelled()``); the run ends the job as canceled and the task's
  state becomes ``REVOKED``. A task not running (waiting for a countdown retry) is revoked and
  its job ended as canceled at once; a task still queued skips its run.

:class:`ProgressRecorder` is a drop-in for ``celery_progress.backend.ProgressRecorder``: its
``set_progress(current, total, description)`` reports to the job (it also keeps the Celery
``PROGRESS`` state celery-progress pages read).
"""
from __future__ import annotations

import inspect
import json
import logging
import os
import threading
import uuid
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Type, TypeVar, Union

from celery import Task, shared_task, signals  # type: ignore[import]
from celery.exceptions import Ignore, Reject, Retry  # type: ignore[import]

from ._core import creation_prefix
from .client import JobHandle, Producer
from .errors import JobCancelled, ProducerError
from .types import CancelControl, RetryControl, StepLike

__all__ = [
    "configure",
    "get_producer",
    "job_id_for",
    "ProgressTask",
    "progress_task",
    "enqueue",
    "EnqueuedJob",
    "ProgressRecorder",
]

log = logging.getLogger("progress_tracker.celery")

_config: Dict[str, Any] = {}
_producer: Optional[Producer] = None
_producer_pid = 0
_lock = threading.Lock()
#: Jobs whose task runs in this process right now: job id -> task id.
_running: Dict[str, str] = {}
#: Jobs created by ProgressRecorder for tasks that are not ProgressTasks: task id -> handle.
_recorded: Dict[str, JobHandle] = {}

F = TypeVar("F", bound=Callable[..., Any])


def configure(
    url: Optional[str] = None,
    token: Union[str, Callable[[], str], None] = None,
    *,
    token_provider: Optional[Callable[[], str]] = None,
    job_id_prefix: Optional[str] = None,
    **producer_options: Any,
) -> None:
    """Where tasks report: the server's URL and a ``progress:write`` token (or a provider).
    Call it where your Celery app is defined, so workers and callers share it. Without a call,
    ``PROGRESS_TRACKER_URL`` and ``PROGRESS_TRACKER_TOKEN`` are read. ``job_id_prefix``: jobs
    are named ``<prefix><task id>`` (default: the token's single ``prefix*`` grant).
    Other options go to :class:`~progress_tracker.Producer`."""
    global _producer
    with _lock:
        _config.clear()
        _config.update(url=url, token=token, token_provider=token_provider, job_id_prefix=job_id_prefix, options=producer_options)
        old, _producer = _producer, None
    if old is not None:
        old.close(flush=True)


def get_producer() -> Producer:
    """This process's producer (one per process: a forked pool child makes its own)."""
    global _producer, _producer_pid
    with _lock:
        if _producer is not None and _producer_pid == os.getpid():
            return _producer
        url = _config.get("url") or os.environ.get("PROGRESS_TRACKER_URL")
        token = _config.get("token") or os.environ.get("PROGRESS_TRACKER_TOKEN")
        provider = _config.get("token_provider")
        if not url or (token is None and provider is None):
            raise RuntimeError(
                "progress_tracker.celery is not configured: call configure(url=..., token=...) "
                "or set PROGRESS_TRACKER_URL and PROGRESS_TRACKER_TOKEN"
            )
        _producer = Producer(url, token, token_provider=provider, **_config.get("options", {}))
        _producer_pid = os.getpid()
        return _producer


def job_id_for(task_id: str) -> str:
    """The id of the job of a task run: ``<prefix><task id>``."""
    prefix = _config.get("job_id_prefix")
    if prefix is None:
        prefix = creation_prefix(get_producer()._token())
    return f"{prefix}{task_id}"


def _jsonable(value: Any) -> Any:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        return None
    return value if len(text) <= 60_000 else None


class EnqueuedJob:
    """What :func:`enqueue` returns: the job's id (give it to the page) and Celery's result."""

    def __init__(self, job_id: str, result: Any, job: JobHandle) -> None:
        self.job_id = job_id
        self.result = result
        self.job = job

    def __repr__(self) -> str:
        return f"EnqueuedJob(job_id={self.job_id!r}, task_id={getattr(self.result, 'id', None)!r})"


def enqueue(
    task: Any,
    args: Sequence[Any] = (),
    kwargs: Optional[Mapping[str, Any]] = None,
    *,
    tags: Optional[Sequence[str]] = None,
    meta: Optional[Mapping[str, Any]] = None,
    **apply_options: Any,
) -> EnqueuedJob:
    """Creates the task's job first, then enqueues the task: the page can follow the job (and
    its ``tags`` grant it, e.g. ``user:<id>``) before a worker picks the task up.

    >>> queued = enqueue(build_report, args=(42,), tags=[f"user:{user.id}"])
    >>> queued.job_id
    """
    task_id = str(apply_options.pop("task_id", None) or uuid.uuid4())
    job_id = job_id_for(task_id)
    steps, kind = _steps_of(task), _kind_of(task)
    job = get_producer().create_job(kind, steps, tags=tags, meta=meta, id=job_id)
    result = task.apply_async(args=tuple(args), kwargs=dict(kwargs or {}), task_id=task_id, **apply_options)
    return EnqueuedJob(job_id, result, job)


def _steps_of(task: Any) -> List[StepLike]:
    steps = list(getattr(task, "progress_steps", None) or ())
    return steps or [{"id": "run", "label": str(getattr(task, "progress_label", None) or _short(task.name))}]


def _kind_of(task: Any) -> str:
    return str(getattr(task, "progress_kind", None) or _short(task.name))[:64]


def _option(task: Any, name: str) -> Any:
    """A task option as given: a function passed to ``app.task(progress_tags=...)`` becomes a
    class attribute, which attribute access would bind as a method."""
    raw = inspect.getattr_static(task, name, None)
    return raw.__func__ if isinstance(raw, (staticmethod, classmethod)) else raw


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


class ProgressTask(Task):  # type: ignore[misc]
    """Base class of tasks with a progress-tracker job: ``@app.task(base=ProgressTask,
    bind=True, progress_steps=[...])``. Options (task attributes, or ``app.task`` keywords):

    - ``progress_steps``: step ids or ``{"id", "label"?, "complexity"?}`` (default: one step);
    - ``progress_kind``: the job's kind (default: the task's short name);
    - ``progress_tags``: tags, or a callable ``(args, kwargs) -> tags`` (``["user:42"]``);
    - ``progress_meta``: meta, or a callable ``(args, kwargs) -> dict``;
    - ``progress_retry_for``: exceptions reported as retryable besides ``autoretry_for``;
    - ``progress_retry_window``: seconds to listen for a user's Retry after a failure (3600).
    """

    progress_steps: Sequence[StepLike] = ()
    progress_kind: Optional[str] = None
    progress_tags: Union[Sequence[str], Callable[[Tuple[Any, ...], Dict[str, Any]], Sequence[str]]] = ()
    progress_meta: Union[Mapping[str, Any], Callable[[Tuple[Any, ...], Dict[str, Any]], Mapping[str, Any]], None] = None
    progress_retry_for: Tuple[Type[BaseException], ...] = ()
    progress_retry_window: float = 3600.0

    @property
    def progress_job(self) -> JobHandle:
        """This run's job: the step API (``step``, ``progress``, ``cancelled``…)."""
        job = getattr(self.request, "progress_job", None)
        if job is None:
            raise RuntimeError(f"{self.name}: progress_job exists only while the task runs in a worker (or eagerly with an id)")
        assert isinstance(job, JobHandle)
        return job

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        req = self.request
        if req.called_directly or not req.id:
            return self.run(*args, **kwargs)
        job = self._progress_attach(req.id, args, kwargs)
        req.progress_job = job
        if job.status in ("completed", "canceled"):
            raise Ignore()  # ended meanwhile (the server's cancel grace, a duplicate delivery)
        if job.cancelled:
            self._progress_canceled(job, req.id)
        with _lock:
            _running[job.id] = req.id
        try:
            result = self.run(*args, **kwargs)
        except Retry as exc:
            self._progress_celery_retry(job, exc)
            raise
        except JobCancelled:
            self._progress_canceled(job, req.id)
        except (Ignore, Reject):
            job.stop_listening()
            raise
        except Exception as exc:
            self._progress_failed(job, exc, args, kwargs, req.id)
            raise
        finally:
            with _lock:
                _running.pop(job.id, None)
        if job.cancelled and job.status not in ("completed", "canceled"):
            self._progress_canceled(job, req.id)
        if job.status not in ("completed", "canceled", "failed"):
            job.complete(result=_jsonable(result))
        return result

    # ---- internals --------------------------------------------------------------------------

    def _progress_attach(self, task_id: str, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> JobHandle:
        producer = get_producer()
        job_id = job_id_for(task_id)
        tags_opt = _option(self, "progress_tags")
        tags = tags_opt(args, kwargs) if callable(tags_opt) else tags_opt
        meta_opt = _option(self, "progress_meta")
        meta = dict(meta_opt(args, kwargs) if callable(meta_opt) else (meta_opt or {}))
        try:
            job = producer.create_job(_kind_of(self), _steps_of(self), tags=list(tags) or None, meta=meta or None, id=job_id)
        except ProducerError as err:
            if err.code != "duplicate_job":
                raise
            job = producer.attach(job_id)  # created by enqueue(), or an earlier attempt
        # Exceptions leave `with job.step()` unreported: the task reports them once it knows
        # whether Celery retries (then the step restarts) or the run failed.
        job.passthrough = (Exception,)
        if not getattr(job, "_celery_cancel_hooked", False):
            job._celery_cancel_hooked = True  # type: ignore[attr-defined]
            job.on_cancel(lambda control: self._progress_cancel_heard(job, task_id, control))
        return job

    def _progress_cancel_heard(self, job: JobHandle, task_id: str, control: CancelControl) -> None:
        with _lock:
            running = job.id in _running
        if running:
            return  # the running task sees job.cancelled and stops (cooperative)
        # Not running here: waiting for a countdown retry, or its worker is gone. Revoke it so it
        # does not run again, and end the job now.
        try:
            self.app.control.revoke(task_id)
        except Exception as exc:  # pragma: no cover - broker trouble
            log.warning("could not revoke task %s: %r", task_id, exc)
        if job.status not in ("completed", "canceled", "failed"):
            job.cancel(message=control.reason)

    def _progress_canceled(self, job: JobHandle, task_id: str) -> None:
        if job.status not in ("completed", "canceled"):
            job.cancel(message=job.cancel_reason)
        try:
            self.backend.mark_as_revoked(task_id, job.cancel_reason or "canceled", request=self.request)
        except Exception:  # no result backend
            pass
        raise Ignore()

    def _progress_celery_retry(self, job: JobHandle, exc: Retry) -> None:
        """Celery runs the task again: the job is not failed; the step shows why it restarts."""
        step = job.current_step
        if step is None or job.status != "running" or step in job.completed_steps:
            return
        cause = getattr(exc, "exc", None) or exc
        when = getattr(exc, "when", None)
        note = f"Retrying{f' in {when:g} s' if isinstance(when, (int, float)) else ''} after {type(cause).__name__}: {cause}"
        try:
            job.progress(job.last_progress(step), message=note[:1000], step=step)
        except ProducerError as err:
            log.warning("could not report the retry of job %s: %s", job.id, err)
        job._inherited_running.add(step)  # the next attempt restarts it in place

    def _progress_retryable(self, exc: BaseException) -> bool:
        own = getattr(exc, "retryable", None)
        if isinstance(own, bool):
            return own
        retry_for = tuple(getattr(self, "autoretry_for", ()) or ()) + tuple(self.progress_retry_for)
        return bool(retry_for) and isinstance(exc, retry_for)

    def _progress_failed(self, job: JobHandle, exc: BaseException, args: Tuple[Any, ...], kwargs: Dict[str, Any], task_id: str) -> None:
        retryable = self._progress_retryable(exc)
        if job.status not in ("failed", "completed", "canceled"):
            step = job.current_step if job.current_step not in job.completed_steps else None
            if step is None:
                step = next((s for s in job.step_ids if s not in job.completed_steps), None)
            try:
                if step is None:  # every step completed: the job itself failed
                    job.fail(exc, retryable=retryable)
                else:
                    job.fail_step(exc, retryable=retryable, step=step)
            except ProducerError as err:
                log.warning("could not report the failure of job %s: %s", job.id, err)
                return
        if not retryable:
            job.stop_listening()
            return
        # Hear the user's Retry and run the task again under the same id, resuming.
        unsubscribe: List[Callable[[], None]] = []

        def rerun(control: RetryControl) -> None:
            for stop in unsubscribe:
                stop()
            log.info("job %s retried from %s: re-enqueuing %s[%s]", job.id, control.step, self.name, task_id)
            self.apply_async(args=args, kwargs=kwargs, task_id=task_id)

        unsubscribe.append(job.on_retry(rerun))
        timer = threading.Timer(self.progress_retry_window, lambda: [stop() for stop in unsubscribe] and None)
        timer.daemon = True
        timer.start()
        unsubscribe.append(timer.cancel)


def progress_task(
    *,
    steps: Sequence[StepLike] = (),
    kind: Optional[str] = None,
    tags: Union[Sequence[str], Callable[[Tuple[Any, ...], Dict[str, Any]], Sequence[str]]] = (),
    app: Any = None,
    **task_options: Any,
) -> Callable[[F], Any]:
    """A decorator for ``@app.task(base=ProgressTask, bind=True, progress_steps=…)``:

    >>> @progress_task(app=app, steps=["fetch", "render"], autoretry_for=(IOError,))
    ... def build(self, n): ...
    """

    def decorate(fn: F) -> Any:
        options = dict(base=ProgressTask, bind=True, progress_steps=list(steps), progress_kind=kind, progress_tags=tags, **task_options)
        if app is not None:
            return app.task(**options)(fn)
        return shared_task(**options)(fn)

    return decorate


# ---- celery-progress compatibility ----------------------------------------------------------


class ProgressRecorder:
    """Drop-in for ``celery_progress.backend.ProgressRecorder``:

    .. code-block:: python

        # from celery_progress.backend import ProgressRecorder
        from progress_tracker.celery import ProgressRecorder

        @app.task(bind=True)
        def crunch(self, n):
            recorder = ProgressRecorder(self)
            for i in range(n):
                recorder.set_progress(i + 1, n, description=f"Item {i + 1}")

    In a :class:`ProgressTask` it reports to ``self.progress_job``; in any other bound task it
    creates a one-step job for the run (``<prefix><task id>``), completed or failed with the
    task (Celery signals). It also keeps Celery's ``PROGRESS`` state as celery-progress did.
    """

    def __init__(self, task: Any) -> None:
        self.task = task

    def set_progress(self, current: float, total: float, description: str = "") -> Tuple[str, Dict[str, Any]]:
        percent = 0.0
        if total and total > 0:
            percent = round(max(0.0, min(1.0, float(current) / float(total))) * 100, 2)
        job = self._job()
        if job is not None:
            if job.current_step is None or job.current_step in job.completed_steps:
                pending = [s for s in job.step_ids if s not in job.completed_steps]
                if pending:
                    job.start_step(pending[0])
            if job.current_step is not None:
                job.progress(percent / 100, message=description or None)
        meta = {"pending": False, "current": current, "total": total, "percent": percent, "description": description}
        try:
            self.task.update_state(state="PROGRESS", meta=meta)
        except Exception:  # no result backend
            pass
        return "PROGRESS", meta

    def _job(self) -> Optional[JobHandle]:
        job = getattr(self.task.request, "progress_job", None)
        if isinstance(job, JobHandle):
            return job
        task_id = getattr(self.task.request, "id", None)
        if not task_id:
            return None
        with _lock:
            known = _recorded.get(task_id)
        if known is not None:
            return known
        producer = get_producer()
        job_id = job_id_for(task_id)
        try:
            job = producer.create_job(_kind_of(self.task), _steps_of(self.task), id=job_id)
        except ProducerError as err:
            if err.code != "duplicate_job":
                raise
            job = producer.attach(job_id)
        with _lock:
            _recorded[task_id] = job
        self.task.request.progress_job = job
        return job


@signals.task_success.connect(weak=False)  # type: ignore[misc]
def _recorded_success(sender: Any = None, result: Any = None, **_: Any) -> None:
    task_id = getattr(getattr(sender, "request", None), "id", None)
    with _lock:
        job = _recorded.pop(task_id, None) if task_id else None
    if job is not None and job.status not in ("completed", "canceled", "failed"):
        try:
            job.complete(result=_jsonable(result))
        except ProducerError as err:
            log.warning("could not complete job %s: %s", job.id, err)


@signals.task_failure.connect(weak=False)  # type: ignore[misc]
def _recorded_failure(sender: Any = None, task_id: Optional[str] = None, exception: Optional[BaseException] = None, **_: Any) -> None:
    with _lock:
        job = _recorded.pop(task_id, None) if task_id else None
    if job is None or job.status in ("completed", "canceled", "failed") or exception is None:
        return
    step = job.current_step or next(iter(job.step_ids), None)
    try:
        if step is None or step in job.completed_steps:
            job.fail(exception)
        else:
            job.fail_step(exception, retryable=False, step=step)
    except ProducerError as err:
        log.warning("could not report the failure of job %s: %s", job.id, err)
    job.stop_listening()
