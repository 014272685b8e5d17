"""The rules every job's event queue follows, threaded (``_event_queue``) or asyncio
(``_async_event_queue``): an unsent ``progress`` for a step is replaced by the newer one until a
structural event (``step_start``, ``step_end``, ``step_failed``, ``job_end``) is queued after it,
and once the retry budget runs out every call fails with ``producer_gave_up`` and the job ends as
``failed``. Kept apart from both queues so the two cannot drift apart (the Node SDK follows the
same rules). No I/O here."""
from __future__ import annotations

import uuid
from typing import Optional, Protocol, Sequence, TypeVar

from .errors import ProducerError
from .types import JobEvent


class QueuedEvent(Protocol):
    event: JobEvent


Q = TypeVar("Q", bound=QueuedEvent)


def replaceable_progress(queue: Sequence[Q], event: JobEvent) -> Optional[Q]:
    """The unsent ``progress`` of ``event``'s step that ``event`` may replace, searching back to
    the last structural event; ``None`` when ``event`` must be queued as it is."""
    if event["type"] != "progress":
        return None
    for queued in reversed(queue):
        if queued.event["type"] != "progress":
            return None
        if queued.event.get("step") == event.get("step"):
            return queued
    return None


def gave_up_error(job_id: str, cause: ProducerError) -> ProducerError:
    """What every call on a job raises once its events could not be delivered within the retry budget."""
    err = ProducerError(
        "producer_gave_up",
        f"job {job_id}: events could not be delivered within the retry budget ({cause.message})",
        status=cause.status,
    )
    err.__cause__ = cause
    return err


def gave_up_end() -> JobEvent:
    """The job's end sent after a give-up, once the server answers again."""
    return {
        "type": "job_end",
        "status": "failed",
        "eventId": str(uuid.uuid4()),
        "error": {"code": "producer_gave_up", "message": "The producer could not reach the server within its retry budget", "retryable": False},
    }
