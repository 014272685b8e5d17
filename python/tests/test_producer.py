"""The threaded Producer against the real server: lifecycle, typed errors, resends applied once,
ordering under 8 threads, 429/503 with Retry-After, keep-alive, close() flushing."""
from __future__ import annotations

import threading
import time
import uuid
from typing import List

import pytest

from conftest import Server, api
from fault_proxy import FaultProxy
from progress_tracker import JobCancelled, Producer, ProducerError, RetryAttempt, RetryPolicy

FAST = RetryPolicy(retries=4, min_delay=0.02, max_delay=0.2)
STEPS = [{"id": "fetch", "label": "Fetch"}, {"id": "build", "label": "Build", "complexity": 3}, "ship"]


@pytest.fixture()
def producer(server: Server, write_token: str):
    p = Producer(server.url, write_token, retry=FAST)
    yield p
    p.close(flush=False)


def test_lifecycle_with_ids_and_dicts_tags_and_meta(producer: Producer, server: Server) -> None:
    job = producer.create_job("report", STEPS, tags=["user:42", "org:acme"], meta={"project": "acme"})
    assert job.snapshot is not None and job.snapshot["status"] == "queued"
    assert [s["id"] for s in job.snapshot["steps"]] == ["fetch", "build", "ship"]
    assert job.snapshot["steps"][0]["label"] == "Fetch"
    assert job.snapshot["steps"][1]["complexity"] == 3
    assert job.snapshot.get("tags") == ["user:42", "org:acme"]
    assert job.snapshot.get("meta") == {"project": "acme"}

    assert job.start_step("fetch", message="Connecting") == 2
    assert job.progress(0.5, message="Half way") == 3
    assert job.end_step() == 4
    with job.step("build"):
        job.progress(0.25)
    job.start_step("ship")
    seq = job.complete(result={"url": "/r/1.pdf"}, message="Done")
    assert job.status == "completed"

    final = producer.get_job(job.id)
    assert final["status"] == "completed" and final["seq"] == seq
    assert final["result"] == {"url": "/r/1.pdf"}
    assert [s["status"] for s in final["steps"]] == ["completed"] * 3
    assert final["steps"][0]["message"] == "Half way"


def test_step_context_manager_fails_the_step_with_the_exception(producer: Producer) -> None:
    job = producer.create_job("ctx", ["a", "b"])
    with job.step("a"):
        pass

    class QuotaExceeded(Exception):
        code = "quota_exceeded"

    with pytest.raises(QuotaExceeded):
        with job.step("b"):
            raise QuotaExceeded("Monthly quota reached")
    failed = producer.get_job(job.id)
    assert failed["status"] == "failed"
    assert failed["steps"][1]["status"] == "failed"
    assert failed["error"] == {"code": "quota_exceeded", "message": "Monthly quota reached", "retryable": True, "step": "b"}
    assert job.status == "failed"

    other = producer.create_job("ctx", ["a"])
    with pytest.raises(ValueError):
        with other.step("a", retryable=False):
            raise ValueError()
    err = producer.get_job(other.id)["error"]
    assert err == {"code": "step_failed", "message": "ValueError", "retryable": False, "step": "a"}


def test_fail_step_forms_fail_and_producer_side_cancel(producer: Producer) -> None:
    job = producer.create_job("forms", ["a"])
    job.start_step("a")
    job.fail_step({"code": "model_timeout", "message": "The model did not answer"}, retryable=False)
    assert producer.get_job(job.id)["error"]["retryable"] is False
    job.fail("Gave up", code="gave_up")
    failed = producer.get_job(job.id)
    assert failed["status"] == "failed" and failed["error"]["code"] == "gave_up"

    canceled = producer.create_job("forms", ["a"])
    canceled.start_step("a")
    canceled.cancel(message="Stopped by the producer")
    assert producer.get_job(canceled.id)["status"] == "canceled"
    assert canceled.status == "canceled"


def test_typed_errors_carry_the_server_code_and_status(producer: Producer, server: Server) -> None:
    job = producer.create_job("errors", ["a"])
    with pytest.raises(ProducerError) as info:
        job.start_step("nope")
    assert (info.value.code, info.value.status, info.value.retryable) == ("unknown_step", 400, False)

    with pytest.raises(ProducerError) as info:
        job.progress(0.5, step="a")
    assert (info.value.code, info.value.status) == ("step_not_running", 409)

    with pytest.raises(ProducerError) as info:
        job.progress(1.5, step="a")
    assert (info.value.code, info.value.status) == ("progress_out_of_range", 0), "checked before sending"

    with pytest.raises(ProducerError) as info:
        producer.create_job("errors", ["a"], id=job.id)
    assert (info.value.code, info.value.status) == ("duplicate_job", 409)

    reader = Producer(server.url, server.token("progress:write", ["mine-*"]), retry=FAST)
    with pytest.raises(ProducerError) as info:
        reader.create_job("errors", ["a"], id="theirs-1")
    assert (info.value.code, info.value.status) == ("forbidden", 403)
    generated = reader.create_job("errors", ["a"])
    assert generated.id.startswith("mine-"), "ids are generated under the token's prefix grant"
    reader.close()

    bad = Producer(server.url, "not.a.token", retry=FAST)
    with pytest.raises(ProducerError) as info:
        bad.get_job(job.id)
    assert (info.value.code, info.value.status) == ("unauthorized", 401)
    bad.close()


def test_a_lost_answer_is_resent_with_the_same_event_id_and_applied_once(server: Server, write_token: str, proxy: FaultProxy) -> None:
    attempts: List[RetryAttempt] = []
    p = Producer(proxy.url, write_token, retry=FAST, on_retry_attempt=attempts.append)
    proxy.lose()  # the create reaches the server; its answer is lost: the 409 must be recognised as ours
    job = p.create_job("flaky", STEPS)
    assert job.snapshot is not None and job.snapshot["seq"] == 1

    proxy.lose()
    assert job.start_step("fetch") == 2
    proxy.lose(2)
    assert job.progress(0.5) == 3
    assert p.get_job(job.id)["seq"] == 3, "each event was applied exactly once"

    posts = proxy.events_requests(job.id)
    start_posts = [r for r in posts + proxy.injected if r.json and isinstance(r.json, dict) and r.json.get("type") == "step_start"]
    assert len({r.json["eventId"] for r in start_posts}) == 1, "the resend carried the same eventId"
    assert len(attempts) == 4 and all(a.error.code == "network_error" for a in attempts)

    # With the caller's own id, a resent create is ours only when the job has the same shape.
    proxy.lose()
    own = p.create_job("flaky", STEPS, id=f"{job.id}-own")
    assert own.snapshot is not None and own.snapshot["seq"] == 1
    proxy.lose()
    with pytest.raises(ProducerError) as info:
        p.create_job("something-else", ["x"], id=job.id)
    assert info.value.code == "duplicate_job"
    p.close()


def test_eight_threads_on_one_job_keep_their_order_and_share_requests(server: Server, write_token: str, proxy: FaultProxy) -> None:
    p = Producer(proxy.url, write_token, retry=FAST)
    steps = [f"part-{i}" for i in range(8)]
    job = p.create_job("parallel", steps)
    errors: List[BaseException] = []
    barrier = threading.Barrier(8)

    def worker(i: int) -> None:
        try:
            barrier.wait()
            step = f"part-{i}"
            job.start_step(step)
            for k in range(1, 11):
                job.progress(k / 10, message=f"{step}: {k}/10", step=step)
            job.end_step(step, message=f"{step} done")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    final = p.get_job(job.id)
    assert [s["status"] for s in final["steps"]] == ["completed"] * 8
    assert [s["message"] for s in final["steps"]] == [f"part-{i} done" for i in range(8)]

    # What the server received, in order: per thread, start < progress… < end, never interleaved wrongly.
    sent = []
    for r in proxy.events_requests(job.id):
        body = r.json
        sent += body if isinstance(body, list) else [body]
    for i in range(8):
        mine = [e for e in sent if e.get("step") == f"part-{i}"]
        assert mine[0]["type"] == "step_start" and mine[-1]["type"] == "step_end"
        values = [e["progress"] for e in mine if e["type"] == "progress"]
        assert values == sorted(values) and values[-1] == 1.0
    requests = len(proxy.events_requests(job.id))
    assert requests < 8 * 12, f"calls made while a request was in flight were batched ({requests} requests for {8 * 12} calls)"
    assert final["seq"] == 1 + len(sent)
    p.close()


def test_429_and_503_wait_as_retry_after_says(server: Server, write_token: str, proxy: FaultProxy) -> None:
    attempts: List[RetryAttempt] = []
    p = Producer(proxy.url, write_token, retry=FAST, on_retry_attempt=attempts.append)
    job = p.create_job("throttled", ["a"])
    proxy.match = lambda method, path: path.endswith("/events")
    proxy.respond(429, {"Retry-After": "1"})
    proxy.respond(503, {"Retry-After": "0.3"}, {"error": {"code": "internal", "message": "shutting down"}})
    proxy.respond(503)  # no Retry-After: ordinary backoff
    started = time.monotonic()
    assert job.start_step("a") == 2
    waited = time.monotonic() - started
    assert [(a.error.code, a.error.status) for a in attempts] == [("rate_limited", 429), ("internal", 503), ("internal", 503)]
    assert attempts[0].delay == 1.0 and attempts[1].delay == 0.3
    assert attempts[2].delay <= 0.2
    assert waited >= 1.3
    assert p.get_job(job.id)["seq"] == 2

    # Past the retry budget: a job's call gives the job up (producer_gave_up, the server's status),
    # the server's own error is its cause; a call on the producer raises that error itself.
    proxy.respond(429, {"Retry-After": "0"}, times=FAST.retries + 1)
    with pytest.raises(ProducerError) as info:
        job.progress(0.5)
    assert (info.value.code, info.value.status) == ("producer_gave_up", 429)
    cause = info.value.__cause__
    assert isinstance(cause, ProducerError) and (cause.code, cause.status, cause.retryable) == ("rate_limited", 429, True)
    assert job.flush(timeout=10), "the job's end went out once the server answered"
    proxy.match = lambda method, path: method == "GET"
    proxy.respond(429, {"Retry-After": "0"}, times=FAST.retries + 1)
    with pytest.raises(ProducerError) as direct:
        p.get_job(job.id)
    assert (direct.value.code, direct.value.status, direct.value.retryable) == ("rate_limited", 429, True)
    p.close()


def test_connections_are_kept_alive(server: Server, write_token: str, proxy: FaultProxy) -> None:
    p = Producer(proxy.url, write_token, retry=FAST)
    job = p.create_job("keepalive", ["a"])
    job.start_step("a")
    for k in range(1, 20):
        job.progress(k / 20)
    job.complete()
    assert proxy.connections == 1, f"{proxy.connections} connections for 22 requests"
    p.close()


def test_a_kept_alive_connection_the_server_closed_is_replaced_at_once(server: Server, write_token: str, proxy: FaultProxy) -> None:
    attempts: List[RetryAttempt] = []
    p = Producer(proxy.url, write_token, retry=FAST, on_retry_attempt=attempts.append)
    job = p.create_job("stale", ["a"])
    assert proxy.close_idle_clients() == 1
    time.sleep(0.1)
    assert job.start_step("a") == 2
    assert [(a.error.code, a.delay) for a in attempts] == [("network_error", 0.0)], "resent at once, no backoff"
    assert proxy.connections == 2
    assert p.get_job(job.id)["seq"] == 2
    p.close()


def test_close_flushes_what_threads_queued_then_refuses(server: Server, write_token: str) -> None:
    p = Producer(server.url, write_token, retry=FAST)
    job = p.create_job("closing", [f"s{i}" for i in range(4)])
    threads = [threading.Thread(target=lambda i=i: job.end_step(f"s{i}")) for i in range(4)]
    for t in threads:
        t.start()
    p.close()
    for t in threads:
        t.join(10)
    check = Producer(server.url, write_token)
    assert [s["status"] for s in check.get_job(job.id)["steps"]] == ["completed"] * 4
    check.close()
    with pytest.raises(ProducerError) as info:
        job.progress(0.1, step="s0")
    assert info.value.code == "aborted"


def test_send_events_and_raw_events(producer: Producer) -> None:
    job = producer.create_job("raw", ["a", "b"])
    seq = producer.send_events(job.id, [{"type": "step_start", "step": "a"}, {"type": "step_end", "step": "a"}])
    assert seq == 3
    assert job.send({"type": "step_end", "step": "b"}) == 4


def test_raise_if_cancelled_in_a_step_cancels_the_job(producer: Producer, server: Server) -> None:
    job = producer.create_job("coop", ["a"])
    assert job.wait_listening()
    canceler = Producer(server.url, server.token("progress:cancel", [job.id]))
    with pytest.raises(JobCancelled):
        with job.step("a"):
            canceler.cancel_job(job.id, reason="changed my mind")
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                job.raise_if_cancelled()
                time.sleep(0.02)
    final = producer.get_job(job.id)
    assert final["status"] == "canceled"
    assert final["cancelRequested"]["reason"] == "changed my mind"
    canceler.close()


def test_tag_grants_cover_tagged_jobs_only(producer: Producer, server: Server) -> None:
    user = uuid.uuid4().hex[:8]
    mine = producer.create_job("tagged", ["a"], tags=[f"user:{user}"])
    other = producer.create_job("tagged", ["a"], tags=["user:someone-else"])
    browser = server.token("progress:read", [f"tag:user:{user}"])
    status, body = api(server, "GET", f"/v1/jobs/{mine.id}", browser)
    assert status == 200 and body["tags"] == [f"user:{user}"]
    status, body = api(server, "GET", f"/v1/jobs/{other.id}", browser)
    assert status in (403, 404)


def test_retry_budget_is_a_time_whichever_ends_first() -> None:
    defaults = RetryPolicy()
    assert defaults.max_retry_time == 600.0 and defaults.retries == float("inf"), "10 minutes, no count"
    attempts: List[RetryAttempt] = []
    p = Producer("http://127.0.0.1:9", "x.y.z", retry=RetryPolicy(max_retry_time=0.6, min_delay=0.05, max_delay=0.1),
                 on_retry_attempt=attempts.append)
    try:
        started = time.monotonic()
        with pytest.raises(ProducerError) as info:
            p.get_job("nope")
        took = time.monotonic() - started
        assert info.value.code == "network_error" and info.value.retryable
        assert 0.55 <= took < 2.0, f"gave up after {took:.2f} s (budget 0.6 s)"
        assert len(attempts) > 4, "retried for the whole budget, not a count"
        # A count still ends it first when reached first.
        attempts.clear()
        p2 = Producer("http://127.0.0.1:9", "x.y.z", retry=RetryPolicy(max_retry_time=60, retries=2, min_delay=0.01, max_delay=0.02),
                      on_retry_attempt=attempts.append)
        with pytest.raises(ProducerError):
            p2.get_job("nope")
        assert len(attempts) == 2
        p2.close(flush=False)
    finally:
        p.close(flush=False)


def test_when_the_budget_runs_out_calls_raise_producer_gave_up_and_the_job_is_marked_failed(
        server: Server, write_token: str, proxy: FaultProxy) -> None:
    errors: List[ProducerError] = []
    p = Producer(proxy.url, write_token, retry=RetryPolicy(max_retry_time=0.6, min_delay=0.02, max_delay=0.1),
                 on_error=errors.append)
    try:
        job = p.create_job("give-up", ["a", "b"])
        job.start_step("a")
        proxy.match = lambda method, path: method == "POST" and path.endswith("/events")
        for _ in range(1000):  # the server is "away" for the events API
            proxy.respond(503, body={"error": {"code": "unavailable", "message": "down"}})
        started = time.monotonic()
        with pytest.raises(ProducerError) as info:
            job.progress(0.5)
        assert info.value.code == "producer_gave_up"
        assert 0.55 <= time.monotonic() - started < 3.0
        assert isinstance(info.value.__cause__, ProducerError) and info.value.__cause__.status == 503
        with pytest.raises(ProducerError) as later:
            job.end_step("a")
        assert later.value is info.value, "later calls raise it at once"
        assert [e.code for e in errors] == ["producer_gave_up"], "reported once through on_error"
        proxy.script.clear()  # the server answers again: the job's end goes out
        assert job.flush(timeout=10)
        final = p.get_job(job.id)
        assert final["status"] == "failed" and final.get("error", {}).get("code") == "producer_gave_up"
        assert job.status == "failed"
    finally:
        p.close(flush=False)
