"""Hearing the user over the SSE stream: retry and cancel (live and recovered after a cut),
plain and async handlers, `cancelled` inside a loop, token rotation (HTTP 401 refresh and the
stream reconnecting when its token expires)."""
from __future__ import annotations

import asyncio
import threading
import time
from typing import List

import pytest

from conftest import Server, wait_for
from fault_proxy import FaultProxy
from progress_tracker import CancelControl, Producer, ProducerError, RetryControl, RetryPolicy

FAST = RetryPolicy(retries=4, min_delay=0.02, max_delay=0.2)


@pytest.fixture()
def user(server: Server) -> Producer:
    """What a page does (Retry and Cancel buttons): another token, no write scope."""
    p = Producer(server.url, server.token("progress:read progress:retry progress:cancel", ["*"]), retry=FAST)
    yield p
    p.close(flush=False)


def test_retry_is_heard_and_the_job_resumes_from_the_failed_step(server: Server, write_token: str, user: Producer) -> None:
    p = Producer(server.url, write_token, retry=FAST)
    job = p.create_job("resume", ["collect", "render", "publish"])
    heard: List[RetryControl] = []
    done = threading.Event()

    def resume(control: RetryControl) -> None:
        heard.append(control)
        for step in ("collect", "render", "publish"):
            if job.should_run(step):
                with job.step(step):
                    pass
        job.complete()
        done.set()

    job.on_retry(resume)
    assert job.wait_listening()
    with job.step("collect"):
        pass
    with pytest.raises(RuntimeError):
        with job.step("render"):
            raise RuntimeError("renderer crashed on page 12")
    assert not job.should_run("collect") and job.should_run("render")

    user.retry_job(job.id)
    assert done.wait(10), "the retry was heard"
    assert heard[0].step == "render" and heard[0].recovered is False
    final = p.get_job(job.id)
    assert final["status"] == "completed" and final["attempts"] == 1
    collect = final["steps"][0]
    assert collect["startedAt"] < final["steps"][1]["startedAt"], "collect was not run again"
    p.close()


def test_a_retry_missed_while_the_stream_was_down_is_recovered(server: Server, write_token: str, user: Producer, proxy: FaultProxy) -> None:
    p = Producer(proxy.url, write_token, retry=FAST, stream_backoff=(0.5, 0.5))
    job = p.create_job("recover", ["a"])
    heard: List[RetryControl] = []
    job.on_retry(heard.append)
    assert job.wait_listening()
    job.start_step("a")
    job.fail_step("boom")
    # Cut the stream and retry before it is back: the snapshot that starts the next stream tells.
    proxy.match = lambda method, path: path.endswith("/stream")
    proxy.script.append(("drop",))
    assert proxy.cut_streams() == 1
    user.retry_job(job.id)
    wait_for(lambda: heard, 10, "the recovered retry")
    assert heard[0].step == "a" and heard[0].recovered is True
    time.sleep(0.3)
    assert len(heard) == 1, "heard once"
    p.close()


def test_cancel_is_heard_by_plain_and_async_handlers_and_cancelled_flips(server: Server, write_token: str, user: Producer) -> None:
    p = Producer(server.url, write_token, retry=FAST)
    job = p.create_job("cancel-me", ["work"])
    plain: List[CancelControl] = []
    from_async: List[str] = []
    no_arg = threading.Event()

    async def async_handler(control: CancelControl) -> None:
        await asyncio.sleep(0)
        from_async.append(control.reason or "")

    job.on_cancel(plain.append)
    job.on_cancel(async_handler)
    job.on_cancel(no_arg.set)
    assert job.wait_listening()
    job.start_step("work")
    assert job.cancelled is False
    user.cancel_job(job.id, reason="not needed any more")
    loops = 0
    while not job.cancelled:  # the producer's own loop
        loops += 1
        job.progress(min(1.0, loops / 1000))
        time.sleep(0.01)
        assert loops < 1000
    job.cancel(message="Stopped")
    wait_for(lambda: plain and from_async and no_arg.is_set(), 5, "every handler")
    assert plain[0].reason == "not needed any more" and plain[0].recovered is False
    assert from_async == ["not needed any more"]
    assert job.cancel_reason == "not needed any more"
    final = p.get_job(job.id)
    assert final["status"] == "canceled" and "error" not in final, "ended by the producer, not the grace timeout"

    # Once the job ended the stream closes and a second cancel is refused by the server.
    with pytest.raises(ProducerError) as info:
        user.cancel_job(job.id)
    assert (info.value.code, info.value.status) == ("already_finished", 409)
    p.close()


def test_a_job_canceled_before_the_handle_existed_is_cancelled_at_once(server: Server, write_token: str, user: Producer) -> None:
    p = Producer(server.url, write_token, retry=FAST)
    created = p.create_job("queued-cancel", ["a"])
    user.cancel_job(created.id)
    other = Producer(server.url, write_token, retry=FAST)  # another process picks the job up
    job = other.attach(created.id)
    assert job.cancelled is True
    heard: List[CancelControl] = []
    job.on_cancel(heard.append)
    wait_for(lambda: heard, 5, "on_cancel for an already canceled job")
    assert heard[0].recovered is True
    job.cancel()
    assert p.get_job(job.id)["status"] == "canceled"
    p.close()
    other.close()


def test_wait_for_retry(server: Server, write_token: str, user: Producer) -> None:
    p = Producer(server.url, write_token, retry=FAST)
    job = p.create_job("wait", ["a"])
    job.start_step("a")
    job.fail_step("flaky upstream")
    threading.Timer(0.3, lambda: user.retry_job(job.id)).start()
    control = job.wait_for_retry(10)
    assert control is not None and control.step == "a"
    assert job.wait_for_retry(0.2) is None
    p.close()


def test_token_provider_refreshes_after_401_and_the_stream_reconnects_on_expiry(server: Server, user: Producer) -> None:
    issued: List[str] = []
    # The first token is long expired (beyond the server's 30 s leeway); later ones live 2 s, so
    # the stream, which ends when its token expires, must come back with a fresh one.
    def provider() -> str:
        ttl = -120 if not issued else 2
        issued.append(server.token("progress:write", ["*"], ttl=ttl))
        return issued[-1]

    p = Producer(server.url, provider, retry=FAST)
    job = p.create_job("rotate", ["a"])  # 401 with the expired token, then fresh: one retry
    assert len(set(issued)) >= 2
    heard: List[RetryControl] = []
    job.on_retry(heard.append)
    assert job.wait_listening()
    job.start_step("a")
    job.fail_step("boom")
    before = len(issued)
    time.sleep(3.2)  # the stream's token expired: the server ended it, the SDK reconnected
    assert len(issued) > before
    assert job.wait_listening()
    user.retry_job(job.id)
    wait_for(lambda: heard, 10, "the retry on the reconnected stream")
    assert heard[0].step == "a"
    p.close()


def test_a_fixed_token_that_the_server_refuses_is_a_typed_error(server: Server) -> None:
    expired = server.token("progress:write", ["*"], ttl=-120)
    p = Producer(server.url, expired, retry=FAST)
    with pytest.raises(ProducerError) as info:
        p.create_job("expired", ["a"])
    assert (info.value.code, info.value.status) == ("unauthorized", 401)
    p.close()
