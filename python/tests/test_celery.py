"""progress_tracker.celery end to end: a real Celery worker process on a real Redis broker,
reporting to the real server. Success, enqueue() before a worker, a failed step resumed by the
user's Retry, Celery's own retries, a final failure, cooperative cancel (running and queued),
the celery-progress shim."""
from __future__ import annotations

import gc
import os
import subprocess
import sys
import time
import uuid
from typing import Any, Dict, Iterator, List

import pytest

from conftest import HERE, PYTHON_DIR, RedisServer, Server, start_redis, wait_for
from progress_tracker import Job, Producer

WORKER_START_TIMEOUT = 30


class Worker:
    def __init__(self, proc: "subprocess.Popen[str]", log_path: str) -> None:
        self.proc = proc
        self.log_path = log_path

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()


@pytest.fixture(scope="module")
def celery_env(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dict[str, Any]]:
    redis_server: RedisServer = start_redis()
    env = {
        "CELERY_BROKER_URL": redis_server.url,
        "PROGRESS_TRACKER_URL": server.url,
        "PROGRESS_TRACKER_TOKEN": server.token("progress:write", ["celery-*"], ttl=3600),
    }
    os.environ.update(env)
    log_path = str(tmp_path_factory.mktemp("celery") / "worker.log")
    full_env = {**os.environ, **env, "PYTHONPATH": os.pathsep.join([str(PYTHON_DIR / "src"), str(HERE)])}
    log_file = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "celery_tasks", "worker", "--pool=threads", "--concurrency=4",
         "--loglevel=INFO", "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"pt-test-{uuid.uuid4().hex[:6]}@%h"],
        cwd=str(HERE), env=full_env, stdout=log_file, stderr=subprocess.STDOUT, text=True,
    )
    worker = Worker(proc, log_path)
    try:
        wait_for(lambda: "ready." in worker.log() or proc.poll() is not None, WORKER_START_TIMEOUT, "the Celery worker")
        if proc.poll() is not None:
            pytest.fail(f"the Celery worker exited:\n{worker.log()}")
        import celery_tasks

        reader = Producer(server.url, server.token("progress:read progress:retry progress:cancel", ["*"], ttl=3600))
        yield {"tasks": celery_tasks, "reader": reader, "worker": worker, "redis": redis_server}
        reader.close()
        gc.collect()  # AsyncResults unsubscribe from the result backend while Redis is still up
        celery_tasks.app.close()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log_file.close()
        redis_server.stop()
        for k in env:
            os.environ.pop(k, None)


def job_of(env: Dict[str, Any], task_id: str) -> Job:
    from progress_tracker.celery import job_id_for

    job: Job = env["reader"].get_job(job_id_for(task_id))
    return job


def settled(env: Dict[str, Any], task_id: str, status: str, timeout: float = 20) -> Job:
    def probe() -> Any:
        try:
            job = job_of(env, task_id)
        except Exception:
            return None
        return job if job["status"] == status else None

    try:
        return wait_for(probe, timeout, f"job of {task_id} to be {status}", 0.05)  # type: ignore[no-any-return]
    except AssertionError:
        print(env["worker"].log()[-4000:])
        raise


def state(env: Dict[str, Any], task_id: str) -> str:
    """The task's Celery state now (a fresh AsyncResult: a settled one caches its state)."""
    return str(env["tasks"].app.AsyncResult(task_id).state)


def ran(env: Dict[str, Any], run_id: str) -> List[str]:
    return [x.decode() for x in env["tasks"].store.lrange(f"ran:{run_id}", 0, -1)]


def test_a_task_run_is_a_job_completed_with_its_result(celery_env: Dict[str, Any]) -> None:
    tasks = celery_env["tasks"]
    res = tasks.report.apply_async(args=(3,), kwargs={"user": "u1"})
    assert res.get(timeout=20) == {"pages": 3}
    job = settled(celery_env, res.id, "completed")
    assert job["id"] == f"celery-{res.id}"
    assert job["kind"] == "report" and job["tags"] == ["user:u1"]
    assert [(s["id"], s["label"], s["status"]) for s in job["steps"]] == [
        ("fetch", "Fetching", "completed"), ("render", "render", "completed"), ("publish", "publish", "completed")]
    assert job["steps"][1]["message"] == "Page 3 of 3"
    assert job["result"] == {"pages": 3}


def test_enqueue_creates_the_job_before_a_worker_runs_it(celery_env: Dict[str, Any]) -> None:
    from progress_tracker.celery import enqueue

    tasks = celery_env["tasks"]
    queued = enqueue(tasks.report, args=(2,), kwargs={"user": "u2"}, tags=["user:u2", "org:acme"], countdown=0.5)
    first = celery_env["reader"].get_job(queued.job_id)
    assert first["status"] == "queued" and first["tags"] == ["user:u2", "org:acme"]
    assert queued.result.get(timeout=20) == {"pages": 2}
    assert settled(celery_env, queued.result.id, "completed")["tags"] == ["user:u2", "org:acme"]


def test_a_failed_step_is_resumed_by_the_users_retry(celery_env: Dict[str, Any]) -> None:
    tasks = celery_env["tasks"]
    run_id = uuid.uuid4().hex
    res = tasks.flaky.delay(run_id)
    failed = settled(celery_env, res.id, "failed")
    assert failed["error"] == {"code": "step_failed", "message": "The renderer crashed on page 12", "retryable": True, "step": "render"}
    assert [s["status"] for s in failed["steps"]] == ["completed", "failed", "pending"]
    wait_for(lambda: state(celery_env, res.id) == "FAILURE", 10, "the Celery FAILURE state")

    celery_env["reader"].retry_job(failed["id"])  # the user's Retry button
    done = settled(celery_env, res.id, "completed")
    assert done["attempts"] == 1
    assert ran(celery_env, run_id) == ["fetch", "render", "skip:fetch", "render", "publish"], "resumed from the failed step"
    wait_for(lambda: state(celery_env, res.id) == "SUCCESS", 10, "the re-enqueued run's SUCCESS")
    assert done["steps"][0]["endedAt"] == failed["steps"][0]["endedAt"], "fetch was not run again"


def test_celerys_own_retries_do_not_fail_the_job(celery_env: Dict[str, Any]) -> None:
    tasks = celery_env["tasks"]
    res = tasks.upstream.delay(uuid.uuid4().hex, 1)  # fails once, autoretry_for runs it again
    assert res.get(timeout=20) == "ok"
    job = settled(celery_env, res.id, "completed")
    assert "error" not in job and "attempts" not in job or job.get("attempts") in (None, 0)


def test_retries_exhausted_is_a_retryable_failure_and_a_bad_input_is_not(celery_env: Dict[str, Any]) -> None:
    tasks = celery_env["tasks"]
    res = tasks.upstream.delay(uuid.uuid4().hex, 99)
    job = settled(celery_env, res.id, "failed")
    assert job["error"]["retryable"] is True and job["error"]["step"] == "call"
    assert job["error"]["message"] == "upstream refused the connection"

    bad = tasks.bad_input.delay()
    job = settled(celery_env, bad.id, "failed")
    assert job["steps"][0]["id"] == "run" and job["steps"][0]["label"] == "bad_input"
    assert job["error"] == {"code": "step_failed", "message": "column 'total' is missing", "retryable": False, "step": "run"}


def test_cancel_stops_a_running_task_cooperatively(celery_env: Dict[str, Any]) -> None:
    tasks = celery_env["tasks"]
    run_id = uuid.uuid4().hex
    res = tasks.long_running.delay(run_id)
    wait_for(lambda: tasks.store.get(f"started:{run_id}"), 15, "the task to start")
    time.sleep(0.3)  # its job's control stream is open
    from progress_tracker.celery import job_id_for

    started = time.monotonic()
    celery_env["reader"].cancel_job(job_id_for(res.id), reason="user left")
    job = settled(celery_env, res.id, "canceled", timeout=10)
    assert time.monotonic() - started < 5, "stopped by the task, not by the server's grace period"
    assert "error" not in job and job["cancelRequested"]["reason"] == "user left"
    wait_for(lambda: state(celery_env, res.id) == "REVOKED", 10, "the Celery REVOKED state")


def test_a_task_canceled_while_queued_never_runs(celery_env: Dict[str, Any]) -> None:
    from progress_tracker.celery import enqueue

    tasks = celery_env["tasks"]
    run_id = uuid.uuid4().hex
    queued = enqueue(tasks.long_running, args=(run_id,), countdown=1.5)
    celery_env["reader"].cancel_job(queued.job_id)
    job = settled(celery_env, queued.result.id, "canceled", timeout=15)
    assert "error" not in job, "ended by the worker, not by the server's grace period"
    assert tasks.store.get(f"started:{run_id}") is None, "the body never ran"
    wait_for(lambda: state(celery_env, queued.result.id) == "REVOKED", 10, "the Celery REVOKED state")


def test_celery_progress_users_switch_in_one_line(celery_env: Dict[str, Any]) -> None:
    tasks = celery_env["tasks"]
    res = tasks.celery_progress_style.delay(5)
    assert res.get(timeout=20) == 5
    job = settled(celery_env, res.id, "completed")
    assert job["kind"] == "celery_progress_style" and job["result"] == 5
    assert job["steps"][0]["message"] == "Item 5"

    dec = tasks.decorated.delay(21)
    assert dec.get(timeout=20) == 42
    assert settled(celery_env, dec.id, "completed")["kind"] == "decorated"


def test_failures_outside_a_step(celery_env: Dict[str, Any]) -> None:
    tasks = celery_env["tasks"]
    res = tasks.celery_progress_fails.delay(3)
    job = settled(celery_env, res.id, "failed")
    assert job["error"]["message"] == "'item 2 is missing'" and job["error"]["retryable"] is False
    assert job["steps"][0]["status"] == "failed"

    res = tasks.fails_after_the_last_step.delay()
    job = settled(celery_env, res.id, "failed")
    assert job["error"]["message"] == "could not save the result"
    assert job["steps"][0]["status"] == "completed", "a failure after the last step fails the job, not a step"
