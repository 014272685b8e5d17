"""AsyncProducer against the real server: lifecycle, `async with job.step`, one request per turn,
a refused batch re-sent one by one, a lost answer applied once, 429, retry and cancel heard
(async handlers), aclose() flushing fire-and-forget calls."""
from __future__ import annotations

import asyncio
from typing import Any, Coroutine, List, TypeVar

import pytest

from conftest import Server
from fault_proxy import FaultProxy
from progress_tracker import AsyncProducer, CancelControl, Producer, ProducerError, RetryAttempt, RetryControl, RetryPolicy

FAST = RetryPolicy(retries=4, min_delay=0.02, max_delay=0.2)
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_async_lifecycle_and_step_context(server: Server, write_token: str) -> None:
    async def main() -> None:
        async with AsyncProducer(server.url, write_token, retry=FAST) as p:
            job = await p.create_job("async", ["a", {"id": "b", "label": "Bee"}], tags=["user:7"], meta={"n": 1})
            assert job.snapshot is not None and job.snapshot["tags"] == ["user:7"]
            async with job.step("a", message="starting"):
                await job.progress(0.5, message="half")
            with pytest.raises(KeyError):
                async with job.step("b"):
                    raise KeyError("missing")
            failed = await p.get_job(job.id)
            assert failed["status"] == "failed" and failed["error"]["step"] == "b"
            assert failed["error"]["code"] == "step_failed"
            await job.fail("gave up")
            assert (await p.get_job(job.id))["status"] == "failed"

            done = await p.create_job("async", ["a"])
            await done.start_step("a")
            await done.complete(result={"ok": True})
            assert (await p.get_job(done.id))["result"] == {"ok": True}

    run(main())


def test_calls_of_one_turn_go_out_as_one_request(server: Server, write_token: str, proxy: FaultProxy) -> None:
    async def main() -> None:
        p = AsyncProducer(proxy.url, write_token, retry=FAST)
        job = await p.create_job("burst", ["a", "b"])
        calls = [job.start_step("a")] + [job.progress(k / 100) for k in range(1, 101)] + [job.end_step("a")]
        seqs = await asyncio.gather(*calls)
        assert len(set(seqs)) == 1, "one request, one seq"
        bodies = [r.json for r in proxy.events_requests(job.id)]
        assert len(bodies) == 1
        assert [e["type"] for e in bodies[0]] == ["step_start", "progress", "step_end"], "unsent progress coalesced"
        assert bodies[0][1]["progress"] == 1.0

        # A refused batch: nothing of it was applied, so its events are re-sent one by one and
        # only the bad call fails.
        good1, bad, good2 = await asyncio.gather(
            job.start_step("b"), job.progress(0.5, step="a"), job.end_step("b"), return_exceptions=True
        )
        assert isinstance(bad, ProducerError) and bad.code == "step_already_finished" or (
            isinstance(bad, ProducerError) and bad.code == "step_not_running"
        )
        assert isinstance(good1, int) and isinstance(good2, int) and good2 > good1
        final = await p.get_job(job.id)
        assert [s["status"] for s in final["steps"]] == ["completed", "completed"]
        await p.aclose()

    run(main())


def test_async_lost_answer_and_429(server: Server, write_token: str, proxy: FaultProxy) -> None:
    async def main() -> None:
        attempts: List[RetryAttempt] = []
        p = AsyncProducer(proxy.url, write_token, retry=FAST, on_retry_attempt=attempts.append)
        proxy.lose()
        job = await p.create_job("async-flaky", ["a"])
        assert job.snapshot is not None and job.snapshot["seq"] == 1
        proxy.lose()
        assert await job.start_step("a") == 2
        proxy.match = lambda method, path: path.endswith("/events")
        proxy.respond(429, {"Retry-After": "0.5"})
        proxy.respond(503, {"Retry-After": "0.2"})
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await job.progress(0.5) == 3
        assert loop.time() - started >= 0.7
        assert [a.error.status for a in attempts][-2:] == [429, 503]
        assert (await p.get_job(job.id))["seq"] == 3
        await p.aclose()

    run(main())


def test_async_connections_are_kept_alive(server: Server, write_token: str, proxy: FaultProxy) -> None:
    async def main() -> None:
        p = AsyncProducer(proxy.url, write_token, retry=FAST)
        job = await p.create_job("async-keepalive", ["a"])
        await job.start_step("a")
        for k in range(1, 20):
            await job.progress(k / 20)
        await job.complete()
        await p.aclose()

    run(main())
    assert proxy.connections == 1, f"{proxy.connections} connections for 22 requests"


def test_async_stale_keep_alive_is_replaced_at_once(server: Server, write_token: str, proxy: FaultProxy) -> None:
    async def main() -> List[RetryAttempt]:
        attempts: List[RetryAttempt] = []
        p = AsyncProducer(proxy.url, write_token, retry=FAST, on_retry_attempt=attempts.append)
        job = await p.create_job("async-stale", ["a"])
        assert proxy.close_idle_clients() == 1
        await asyncio.sleep(0.1)
        assert await job.start_step("a") == 2
        await p.aclose()
        return attempts

    attempts = run(main())
    assert [a.delay for a in attempts] in ([], [0.0]), "a closed socket is noticed before sending, or resent at once"
    assert proxy.connections == 2


def test_async_retry_and_cancel_are_heard(server: Server, write_token: str) -> None:
    user = Producer(server.url, server.token("progress:retry progress:cancel", ["*"]))

    async def main() -> None:
        p = AsyncProducer(server.url, write_token, retry=FAST)
        job = await p.create_job("async-control", ["a", "b"])
        retried = asyncio.Event()
        heard: List[RetryControl] = []

        async def on_retry(control: RetryControl) -> None:
            heard.append(control)
            await job.start_step(control.step)
            retried.set()

        job.on_retry(on_retry)
        assert await job.wait_listening()
        await job.start_step("a")
        await job.fail_step(TimeoutError("model timeout"))
        await asyncio.get_running_loop().run_in_executor(None, user.retry_job, job.id)
        await asyncio.wait_for(retried.wait(), 10)
        assert heard[0].step == "a"

        cancels: List[CancelControl] = []
        job.on_cancel(cancels.append)
        await asyncio.get_running_loop().run_in_executor(None, lambda: user.cancel_job(job.id, "stop"))
        for _ in range(500):
            if job.cancelled:
                break
            await asyncio.sleep(0.01)
        assert job.cancelled and cancels[0].reason == "stop"
        await job.cancel()
        assert (await p.get_job(job.id))["status"] == "canceled"
        await p.aclose()

    run(main())
    user.close()


def test_aclose_flushes_fire_and_forget_calls(server: Server, write_token: str) -> None:
    async def main() -> str:
        p = AsyncProducer(server.url, write_token, retry=FAST)
        job = await p.create_job("fire-and-forget", ["a"])
        asyncio.ensure_future(job.start_step("a"))
        for k in range(1, 11):
            asyncio.ensure_future(job.progress(k / 10))
        asyncio.ensure_future(job.complete())
        await p.aclose()
        with pytest.raises(ProducerError):
            await job.progress(0.1)
        return job.id

    job_id = run(main())
    check = Producer(server.url, write_token)
    assert check.get_job(job_id)["status"] == "completed"
    check.close()


def test_async_token_provider(server: Server) -> None:
    calls: List[int] = []

    async def provider() -> str:
        calls.append(1)
        return server.token("progress:write", ["async-*"])

    async def main() -> None:
        p = AsyncProducer(server.url, provider, retry=FAST)
        job = await p.create_job("provided", ["a"])
        assert job.id.startswith("async-")
        await job.start_step("a")
        await p.aclose()

    run(main())
    assert len(calls) >= 3


def test_async_give_up_fails_the_queued_calls_and_marks_the_job_failed(server: Server, write_token: str, proxy: FaultProxy) -> None:
    async def main() -> None:
        errors: List[ProducerError] = []
        p = AsyncProducer(proxy.url, write_token, retry=RetryPolicy(max_retry_time=0.6, min_delay=0.02, max_delay=0.1),
                          on_error=errors.append)
        try:
            job = await p.create_job("give-up", ["a", "b"])
            await job.start_step("a")
            proxy.match = lambda method, path: method == "POST" and path.endswith("/events")
            proxy.respond(503, times=1000)
            calls = [asyncio.ensure_future(job.progress(0.25)), asyncio.ensure_future(job.progress(0.5)),
                     asyncio.ensure_future(job.end_step("a")), asyncio.ensure_future(job.start_step("b"))]
            results = await asyncio.gather(*calls, return_exceptions=True)
            assert all(isinstance(r, ProducerError) and r.code == "producer_gave_up" for r in results), results
            with pytest.raises(ProducerError) as later:
                await job.progress(0.1, step="b")
            assert later.value.code == "producer_gave_up"
            assert [e.code for e in errors] == ["producer_gave_up"]
            proxy.script.clear()
            await job.flush()
            final = await p.get_job(job.id)
            assert final["status"] == "failed" and final.get("error", {}).get("code") == "producer_gave_up"
            assert job.status == "failed"
        finally:
            await p.aclose(flush=False)

    run(main())
