"""The SDK's exceptions: every failure of a call is a :class:`ProducerError` carrying the
server's error ``code`` (``duplicate_job``, ``unknown_step``, ``forbidden``…) or one of the
SDK's own codes (``network_error``, ``timeout``, ``aborted``, ``bad_response``,
``handler_error``), and the HTTP ``status`` (0 when there was no HTTP answer)."""
from __future__ import annotations

from typing import Optional

__all__ = ["ProducerError", "JobCancelled", "WebhookVerificationError", "CLIENT_ERROR_CODES"]

#: Codes the SDK itself uses when the server gave no usable answer.
CLIENT_ERROR_CODES = frozenset({"network_error", "timeout", "aborted", "bad_response", "handler_error", "producer_gave_up"})


class ProducerError(Exception):
    """A refused or failed call.

    ``code`` is the server's error code or a client code (see :data:`CLIENT_ERROR_CODES`),
    ``status`` the HTTP status (0: no HTTP response), ``retryable`` whether the SDK considers the
    failure transient (it has already retried those it could before raising).
    """

    code: str
    status: int
    retryable: bool

    def __init__(self, code: str, message: str, *, status: int = 0, retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.retryable = retryable

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __repr__(self) -> str:
        return f"ProducerError(code={self.code!r}, status={self.status}, message={self.message!r})"


class JobCancelled(Exception):
    """Raised by ``job.raise_if_cancelled()`` once someone canceled the job.

    Raised inside ``with job.step(...)``, it ends the job as ``canceled`` instead of failing
    the step; the Celery integration does the same for a task.
    """

    def __init__(self, job_id: str, reason: Optional[str] = None) -> None:
        super().__init__(f"job {job_id} was canceled" + (f": {reason}" if reason else ""))
        self.job_id = job_id
        self.reason = reason


class WebhookVerificationError(Exception):
    """A request that is not a genuine, fresh webhook of the server: answer it with a 4xx and
    do not act on it. ``reason`` says which check failed: ``missing_header``,
    ``invalid_timestamp``, ``timestamp_too_old``, ``timestamp_too_new``, ``invalid_signature``
    or ``invalid_payload``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
