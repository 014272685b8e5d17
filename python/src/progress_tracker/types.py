"""Wire types of the progress-tracker protocol (docs/protocol.md) as ``TypedDict`` s, and the
control notices the SDK hands to ``on_retry`` / ``on_cancel`` handlers."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Union

from typing import Literal, TypedDict

__all__ = [
    "JobStatus",
    "StepStatus",
    "EventType",
    "StepSpec",
    "StepLike",
    "JobError",
    "Step",
    "Job",
    "JobEvent",
    "CancelRequest",
    "RetryControl",
    "CancelControl",
    "Control",
]

JobStatus = Literal["queued", "running", "completed", "failed", "canceled"]
StepStatus = Literal["pending", "running", "completed", "failed"]
EventType = Literal["step_start", "progress", "step_end", "step_failed", "job_end"]
FinalStatus = Literal["completed", "failed", "canceled"]


class _StepSpecRequired(TypedDict):
    id: str


class StepSpec(_StepSpecRequired, total=False):
    """A step as ``create_job`` takes it: ``{"id", "label"?, "complexity"?}``."""

    label: str
    complexity: float


#: A step given to ``create_job``: its id, or a :class:`StepSpec` mapping.
StepLike = Union[str, Mapping[str, Any]]


class _JobErrorRequired(TypedDict):
    code: str
    message: str


class JobError(_JobErrorRequired, total=False):
    retryable: bool
    step: str


class _StepRequired(TypedDict):
    id: str
    label: str
    status: StepStatus
    progress: float


class Step(_StepRequired, total=False):
    complexity: float
    startedAt: int
    endedAt: int
    message: str
    error: JobError


class _CancelRequestRequired(TypedDict):
    at: int


class CancelRequest(_CancelRequestRequired, total=False):
    by: str
    reason: str


class _JobRequired(TypedDict):
    id: str
    kind: str
    status: JobStatus
    progress: float
    seq: int
    steps: List[Step]
    eta: Optional[Dict[str, float]]
    createdAt: int
    updatedAt: int


class Job(_JobRequired, total=False):
    """A job as the server returns it (``GET /v1/jobs/{id}``, snapshots and updates)."""

    error: JobError
    complexity: float
    meta: Dict[str, Any]
    result: Any
    attempts: int
    tags: List[str]
    cancelRequested: CancelRequest


class _JobEventRequired(TypedDict):
    type: EventType


class JobEvent(_JobEventRequired, total=False):
    """One event of ``POST /v1/jobs/{id}/events``."""

    step: str
    progress: float
    message: str
    error: Dict[str, Any]
    status: FinalStatus
    result: Any
    eventId: str


@dataclass(frozen=True)
class RetryControl:
    """Someone retried the job: resume from ``step`` (it and the later steps are pending again;
    earlier steps stay completed)."""

    job_id: str
    step: str
    #: True when the ``control`` message itself was missed (the stream was down) and the SDK
    #: inferred the retry from the job's snapshot when it reconnected.
    recovered: bool = False
    #: The latest job state the stream has seen.
    job: Optional[Job] = None


@dataclass(frozen=True)
class CancelControl:
    """Someone canceled the job: stop, then end it as canceled (``job.cancel()``); the server
    ends it itself (``cancel_timeout``) if the producer does not within its grace period."""

    job_id: str
    reason: Optional[str] = None
    #: True when inferred from a snapshot (``cancelRequested``) rather than heard live.
    recovered: bool = False
    job: Optional[Job] = None


Control = Union[RetryControl, CancelControl]
