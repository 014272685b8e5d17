"""`queued(position=None)` on both job handles against the real server: the job stays queued with
its place (`job["queue"]`), moves up, leaves the queue at the first step; a bad position is
refused at the call; a queued event after the first step is refused by the server (409)."""
from __future__ import annotations

import asyncio

import pytest

from conftest import Server
from progress_tracker import AsyncProducer, Producer, ProducerError, RetryPolicy

FAST = RetryPolicy(retries=2, min_delay=0.02, max_delay=0.2)


def test_sync_queued_positions_then_running(server: Server, write_token: str) -> None:
    p = Producer(server.url, write_token, retry=FAST)
    try:
        job = p.create_job("q-sync", ["a"])
        job.queued(3)
        seen = p.get_job(job.id)
        assert seen["status"] == "queued" and seen["queue"]["position"] == 3
        since = seen["queue"]["since"]
        job.queued(1)
        seen = p.get_job(job.id)
        assert seen["queue"]["position"] == 1 and seen["queue"]["since"] == since
        job.queued()  # position unknown
        assert "position" not in p.get_job(job.id)["queue"]
        with pytest.raises(ProducerError) as bad:
            job.queued(-1)
        assert bad.value.code == "bad_request"
        job.start_step("a")
        running = p.get_job(job.id)
        assert running["status"] == "running" and "queue" not in running
        with pytest.raises(ProducerError) as late:
            job.queued(0)
        assert late.value.code == "invalid_transition"
        job.complete()
    finally:
        p.close(flush=False)


def test_async_queued(server: Server, write_token: str) -> None:
    async def main() -> None:
        async with AsyncProducer(server.url, write_token, retry=FAST) as p:
            job = await p.create_job("q-async", ["a"])
            await job.queued(position=2)
            seen = await p.get_job(job.id)
            assert seen["status"] == "queued" and seen["queue"]["position"] == 2
            await job.start_step("a")
            assert "queue" not in (await p.get_job(job.id))
            await job.complete()

    asyncio.run(asyncio.wait_for(main(), 30))
