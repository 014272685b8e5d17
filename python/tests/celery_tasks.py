"""The Celery app the integration tests run in a real worker (`celery -A celery_tasks worker`).
Broker and result backend: the test's redis-server (CELERY_BROKER_URL); the progress server:
PROGRESS_TRACKER_URL / PROGRESS_TRACKER_TOKEN. Tasks record what they ran in Redis so the
tests can tell which steps a resumed run skipped."""
from __future__ import annotations

import os
import time
from typing import Any, Dict

import redis
from celery import Celery

from progress_tracker.celery import ProgressRecorder, ProgressTask, configure, progress_task

BROKER = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
app = Celery("celery_tasks", broker=BROKER, backend=BROKER)
app.conf.update(task_acks_late=False, worker_prefetch_multiplier=1, broker_connection_retry_on_startup=True)
configure()  # PROGRESS_TRACKER_URL and PROGRESS_TRACKER_TOKEN

store = redis.Redis.from_url(BROKER)


def ran(run_id: str, what: str) -> None:
    store.rpush(f"ran:{run_id}", what)


class FlakyRenderer(Exception):
    """A failure worth retrying: the user's Retry button helps."""

    retryable = True


@app.task(base=ProgressTask, bind=True, progress_steps=[{"id": "fetch", "label": "Fetching"}, {"id": "render", "complexity": 3}, "publish"],
          progress_tags=lambda args, kwargs: [f"user:{kwargs.get('user', 'anon')}"])
def report(self: ProgressTask, pages: int, user: str = "anon") -> Dict[str, Any]:
    job = self.progress_job
    with job.step("fetch"):
        job.progress(0.5, message="Half the sources")
    with job.step("render"):
        for page in range(pages):
            job.progress((page + 1) / pages, message=f"Page {page + 1} of {pages}")
    with job.step("publish"):
        pass
    return {"pages": pages}


@app.task(base=ProgressTask, bind=True, progress_steps=["fetch", "render", "publish"])
def flaky(self: ProgressTask, run_id: str) -> str:
    job = self.progress_job
    for step in job.step_ids:
        if not job.should_run(step):
            ran(run_id, f"skip:{step}")
            continue
        with job.step(step):
            ran(run_id, step)
            if step == "render" and store.incr(f"fail:{run_id}") == 1:
                raise FlakyRenderer("The renderer crashed on page 12")
    return "done"


@app.task(base=ProgressTask, bind=True, progress_steps=["call"], autoretry_for=(ConnectionError,), max_retries=2, default_retry_delay=0.2)
def upstream(self: ProgressTask, run_id: str, failures: int) -> str:
    with self.progress_job.step("call"):
        self.progress_job.progress(0.3, message="Calling upstream")
        if store.incr(f"attempt:{run_id}") <= failures:
            raise ConnectionError("upstream refused the connection")
    return "ok"


@app.task(base=ProgressTask, bind=True)
def bad_input(self: ProgressTask) -> None:
    raise ValueError("column 'total' is missing")


@app.task(base=ProgressTask, bind=True, progress_steps=["crunch"])
def long_running(self: ProgressTask, run_id: str) -> str:
    job = self.progress_job
    with job.step("crunch"):
        for i in range(2000):
            job.raise_if_cancelled()
            if i == 0:
                store.set(f"started:{run_id}", 1)
            time.sleep(0.01)
            if i % 20 == 0:
                job.progress(i / 2000)
    return "finished"


@app.task(bind=True)
def celery_progress_style(self: Any, total: int) -> int:
    recorder = ProgressRecorder(self)
    for i in range(total):
        recorder.set_progress(i + 1, total, description=f"Item {i + 1}")
    return total


@progress_task(app=app, steps=["only"], kind="decorated")
def decorated(self: ProgressTask, x: int) -> int:
    with self.progress_job.step("only"):
        return x * 2


@app.task(bind=True)
def celery_progress_fails(self: Any, total: int) -> int:
    recorder = ProgressRecorder(self)
    recorder.set_progress(1, total, description="Item 1")
    raise KeyError("item 2 is missing")


@app.task(base=ProgressTask, bind=True, progress_steps=["a"])
def fails_after_the_last_step(self: ProgressTask) -> None:
    with self.progress_job.step("a"):
        pass
    raise RuntimeError("could not save the result")
