"""The ordered queue of one job's events, for the threaded producer: the calling threads send
(one request at a time, in call order), batching what piles up while a request is in flight.
Separate from the job handle because it knows nothing of jobs, steps or streams — only how to
get a sequence of events through a ``send`` function in order, batched, and what to do when
that stops working; the rules it shares with the asyncio queue are in ``_queue_rules``."""
from __future__ import annotations

import threading
from typing import Callable, List, Optional

from ._core import is_event_refusal
from ._queue_rules import gave_up_end, gave_up_error, replaceable_progress
from .errors import ProducerError
from .types import JobEvent


class _Waiter:
    __slots__ = ("done", "seq", "error")

    def __init__(self) -> None:
        self.done = False
        self.seq = 0
        self.error: Optional[BaseException] = None


class _Pending:
    __slots__ = ("event", "waiters")

    def __init__(self, event: JobEvent, waiter: _Waiter) -> None:
        self.event = event
        self.waiters = [waiter]


class _EventQueue:
    """One job's events, sent strictly in call order, one request at a time. The calling threads
    do the sending: the first one in sends, the others wait; whatever they queued meanwhile goes
    out together as the next request (an array, applied atomically by the server), and an unsent
    ``progress`` for a step replaces the one queued for it since the last structural event
    (``step_start``, ``step_end``, ``step_failed``, ``job_end``: never dropped, never reordered).
    A batch the server refuses is re-sent event by event, so one bad call fails alone. When the
    retry budget runs out, the queued calls raise ``producer_gave_up``, later calls too, and a
    background thread ends the job as ``failed`` (error code ``producer_gave_up``) once the
    server answers again (the same rules as the Node SDK)."""

    def __init__(self, send: Callable[[List[JobEvent]], int], max_batch: int, job_id: str = "",
                 on_give_up: Optional[Callable[[ProducerError], None]] = None,
                 on_ended: Optional[Callable[[JobEvent, int], None]] = None) -> None:
        self._send = send
        self._max_batch = max_batch
        self._job_id = job_id
        self._on_give_up = on_give_up
        self._on_ended = on_ended
        self._cond = threading.Condition()
        self._queue: List[_Pending] = []
        self._flushing = False
        #: Set once the retry budget ran out: every later call raises it.
        self._gave_up: Optional[ProducerError] = None
        #: The thread sending the job's end after a give-up (``drain`` waits for it).
        self._ending: Optional[threading.Thread] = None
        #: Requests sent so far (tests check batching with it).
        self.requests = 0

    def push(self, event: JobEvent) -> int:
        waiter = _Waiter()
        with self._cond:
            if self._gave_up is not None:
                raise self._gave_up
            # The latest per step: replace an unsent progress for the step since the last structural event.
            queued = replaceable_progress(self._queue, event)
            if queued is not None:
                queued.event = event  # never sent, so replacing it (and its eventId) is safe
                queued.waiters.append(waiter)
            else:
                self._queue.append(_Pending(event, waiter))
            while not waiter.done:
                if self._flushing:
                    self._cond.wait()
                    continue
                self._flushing = True
                try:
                    self._lead(waiter)
                finally:
                    self._flushing = False
                    self._cond.notify_all()
        if waiter.error is not None:
            raise waiter.error
        return waiter.seq

    def drain(self, timeout: Optional[float] = None) -> bool:
        """Waits until everything queued so far has been answered (after a give-up: until the
        job's end was sent, or given up on too)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._flushing and self._ending is None, timeout)

    def _lead(self, own: _Waiter) -> None:
        """Sends batches (lock held, released while sending) until this thread's own event is
        answered; a waiting thread takes over what is left."""
        while self._queue and not own.done:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            self._cond.release()
            try:
                outcome = self._send_batch(batch)
            finally:
                self._cond.acquire()
            for pending, seq, error in outcome:
                if self._gave_up is None and isinstance(error, ProducerError) and error.retryable:
                    self._give_up(error)
                if self._gave_up is not None and error is not None:
                    error = self._gave_up
                for w in pending.waiters:
                    w.seq, w.error, w.done = seq, error, True
            if self._gave_up is not None:
                for pending in self._queue:
                    for w in pending.waiters:
                        w.error, w.done = self._gave_up, True
                self._queue.clear()
            self._cond.notify_all()

    def _give_up(self, cause: ProducerError) -> None:
        """The retry budget ran out (lock held): nothing queued can be delivered in order any
        more. Every call fails with ``producer_gave_up``; the job's end goes out in the background."""
        err = gave_up_error(self._job_id, cause)
        self._gave_up = err
        if self._on_give_up is not None:
            self._on_give_up(err)
        end = gave_up_end()

        def send_end() -> None:
            try:
                seq = self._send([end])
                if self._on_ended is not None:
                    self._on_ended(end, seq)
            except Exception as e:  # reported; nothing else can be done
                if self._on_give_up is not None and isinstance(e, ProducerError):
                    self._on_give_up(e)
            finally:
                with self._cond:
                    self._ending = None
                    self._cond.notify_all()

        self._ending = threading.Thread(target=send_end, name=f"pt-give-up-{self._job_id}", daemon=True)
        self._ending.start()

    def _send_batch(self, batch: List[_Pending]) -> "List[tuple[_Pending, int, Optional[BaseException]]]":
        try:
            self.requests += 1
            seq = self._send([p.event for p in batch])
            return [(p, seq, None) for p in batch]
        except Exception as err:
            if len(batch) > 1 and is_event_refusal(err):
                # Nothing of an atomic batch was applied: send the events one by one, so only
                # the bad call fails instead of every call in its batch.
                out: "List[tuple[_Pending, int, Optional[BaseException]]]" = []
                for p in batch:
                    try:
                        self.requests += 1
                        out.append((p, self._send([p.event]), None))
                    except Exception as one:
                        out.append((p, 0, one))
                return out
            return [(p, 0, err) for p in batch]
        except BaseException as err:  # KeyboardInterrupt, SystemExit: free the waiters, then go
            stop = ProducerError("aborted", f"interrupted: {type(err).__name__}")
            with self._cond:
                for p in batch:
                    for w in p.waiters:
                        w.error, w.done = stop, True
                self._cond.notify_all()
            raise

