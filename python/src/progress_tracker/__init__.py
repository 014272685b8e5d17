"""progress-tracker producer SDK for Python: report the progress of long-running jobs to a
progress-tracker server, and hear when a user presses Retry or Cancel.

>>> from progress_tracker import Producer
>>> producer = Producer("http://127.0.0.1:8080", token)
>>> job = producer.create_job("report", ["collect", "render"], tags=["user:42"])
>>> with job.step("collect"):
...     job.progress(0.5, message="Half way")
>>> job.complete(result={"url": "/r/42.pdf"})
>>> producer.close()

Threads: :class:`Producer`; asyncio: :class:`AsyncProducer`; Celery:
:mod:`progress_tracker.celery`; webhooks: :func:`verify_webhook`. Standard library only.
"""
from ._core import RetryAttempt
from ._timing import RetryPolicy
from .aio import AsyncJobHandle, AsyncProducer
from .client import JobHandle, Producer
from .errors import JobCancelled, ProducerError, WebhookVerificationError
from .tokens import mint_token
from .types import CancelControl, Job, JobEvent, RetryControl, Step, StepSpec
from .webhook import WEBHOOK_TOLERANCE_SECONDS, sign_webhook, verify_webhook

__version__ = "0.1.0"

__all__ = [
    "Producer",
    "JobHandle",
    "AsyncProducer",
    "AsyncJobHandle",
    "ProducerError",
    "JobCancelled",
    "RetryPolicy",
    "RetryAttempt",
    "RetryControl",
    "CancelControl",
    "Job",
    "JobEvent",
    "Step",
    "StepSpec",
    "verify_webhook",
    "sign_webhook",
    "WebhookVerificationError",
    "WEBHOOK_TOLERANCE_SECONDS",
    "mint_token",
    "__version__",
]
