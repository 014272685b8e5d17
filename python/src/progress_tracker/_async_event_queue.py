"""The ordered queue of one job's events, for the asyncio producer: one request at a time, in
call order; the events of one loop turn, or queued while a request is in flight, go out
together. Separate from the job handle for the same reason as the threaded ``_event_queue``: it
knows only how to get events through a ``send`` coroutine in order and batched, and what to do
when that stops working; the rules both queues follow are in ``_queue_rules``."""
from __future__ import annotations

import asyncio
from typing import Any, Callable, List, Optional

from ._core import is_event_refusal
from ._queue_rules import gave_up_end, gave_up_error, replaceable_progress
from .errors import ProducerError
from .types import JobEvent


class _Pending:
    __slots__ = ("event", "futures")

    def __init__(self, event: JobEvent, future: "asyncio.Future[int]") -> None:
        self.event = event
        self.futures = [future]


class _AsyncEventQueue:
    """One job's events in call order, one request at a time; the events of one loop turn, or
    queued while a request is in flight, go out together; progress coalesces to the latest per
    step between structural events; when the retry budget runs out, calls raise
    ``producer_gave_up`` and the job's end (``failed``, ``producer_gave_up``) is sent next (see the
    threaded ``_EventQueue``)."""

    def __init__(self, send: Callable[[List[JobEvent]], Any], max_batch: int, job_id: str = "",
                 on_give_up: Optional[Callable[[ProducerError], None]] = None,
                 on_ended: Optional[Callable[[JobEvent, int], None]] = None) -> None:
        self._send = send
        self._max_batch = max_batch
        self._job_id = job_id
        self._on_give_up = on_give_up
        self._on_ended = on_ended
        self._queue: List[_Pending] = []
        self._flushing: Optional["asyncio.Task[None]"] = None
        self._gave_up: Optional[ProducerError] = None
        self.requests = 0

    def push(self, event: JobEvent) -> "asyncio.Future[int]":
        loop = asyncio.get_running_loop()
        future: "asyncio.Future[int]" = loop.create_future()
        if self._gave_up is not None:
            future.set_exception(self._gave_up)
            return future
        queued = replaceable_progress(self._queue, event)
        if queued is not None:
            queued.event = event  # never sent, so replacing it (and its eventId) is safe
            queued.futures.append(future)
        else:
            self._queue.append(_Pending(event, future))
        if self._flushing is None:
            self._flushing = loop.create_task(self._flush())
        return future

    async def drain(self) -> None:
        while self._flushing is not None:
            await asyncio.shield(self._flushing)

    async def _flush(self) -> None:
        try:
            await asyncio.sleep(0)  # the rest of this turn joins the first event
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                try:
                    self.requests += 1
                    seq = await self._send([p.event for p in batch])
                    for p in batch:
                        _settle(p, seq, None)
                except Exception as err:
                    if len(batch) > 1 and is_event_refusal(err):
                        for i, p in enumerate(batch):
                            try:
                                self.requests += 1
                                _settle(p, await self._send([p.event]), None)
                            except Exception as one:
                                if isinstance(one, ProducerError) and one.retryable:
                                    self._give_up(batch[i:], one)
                                    break
                                _settle(p, 0, one)
                    elif isinstance(err, ProducerError) and err.retryable:
                        self._give_up(batch, err)
                    else:
                        for p in batch:
                            _settle(p, 0, err)
                except BaseException as err:  # cancelled: nothing more will be sent
                    for p in batch + self._queue:
                        _settle(p, 0, ProducerError("aborted", f"sending was cancelled: {type(err).__name__}"))
                    self._queue.clear()
                    raise
        finally:
            self._flushing = None

    def _give_up(self, batch: List[_Pending], cause: ProducerError) -> None:
        """The retry budget ran out: nothing queued can be delivered in order any more."""
        rest = batch + self._queue
        self._queue.clear()
        if self._gave_up is not None:  # the job's end could not be delivered either
            for p in rest:
                _settle(p, 0, cause)
            return
        err = gave_up_error(self._job_id, cause)
        self._gave_up = err
        for p in rest:
            _settle(p, 0, err)
        if self._on_give_up is not None:
            self._on_give_up(err)
        end = gave_up_end()
        future: "asyncio.Future[int]" = asyncio.get_running_loop().create_future()
        on_ended, on_give_up = self._on_ended, self._on_give_up

        def done(f: "asyncio.Future[int]") -> None:
            if f.exception() is None:
                if on_ended is not None:
                    on_ended(end, f.result())
            elif on_give_up is not None and isinstance(f.exception(), ProducerError):
                on_give_up(f.exception())  # type: ignore[arg-type]

        future.add_done_callback(done)
        self._queue.append(_Pending(end, future))


def _settle(p: _Pending, seq: int, error: Optional[BaseException]) -> None:
    for f in p.futures:
        if f.done():
            continue
        if error is None:
            f.set_result(seq)
        else:
            f.set_exception(error)
