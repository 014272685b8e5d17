"""What the threaded and the asyncio producers share: request bodies and events, error mapping,
the retry decision, the SSE parser and the control tracker. No I/O here."""
from __future__ import annotations

import base64
import json
import math
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from ._timing import MAX_RETRY_AFTER, RetryPolicy, backoff_delay, parse_retry_after
from .errors import JobCancelled, ProducerError
from .types import CancelControl, Control, Job, JobEvent, RetryControl, StepLike, StepSpec

#: Most events per request (the server's limit).
MAX_EVENTS_PER_REQUEST = 1000
JOB_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
TAG_PATTERN = re.compile(r"^[A-Za-z0-9:._-]{1,128}$")
MAX_TAGS = 16

#: HTTP statuses worth another attempt.
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    413: "payload_too_large",
    429: "rate_limited",
    500: "internal",
}
TERMINAL = frozenset({"completed", "canceled"})

JSONBody = Any


def new_event_id() -> str:
    return str(uuid.uuid4())


def normalize_steps(steps: Iterable[StepLike]) -> List[StepSpec]:
    """Step ids or ``{"id", "label"?, "complexity"?}`` mappings, as the HTTP API takes them."""
    if isinstance(steps, (str, bytes)):
        raise TypeError("steps must be a list of step ids or {'id', 'label'?, 'complexity'?} dicts, not a string")
    out: List[StepSpec] = []
    for i, step in enumerate(steps):
        if isinstance(step, str):
            out.append({"id": step})
            continue
        if not isinstance(step, Mapping) or not isinstance(step.get("id"), str):
            raise TypeError(f"steps[{i}] must be a step id or a dict with an 'id'")
        spec: StepSpec = {"id": step["id"]}
        if step.get("label") is not None:
            spec["label"] = str(step["label"])
        if step.get("complexity") is not None:
            spec["complexity"] = step["complexity"]
        out.append(spec)
    if not out:
        raise TypeError("steps must not be empty")
    return out


def create_body(
    kind: str,
    steps: Iterable[StepLike],
    *,
    job_id: str,
    tags: Optional[Sequence[str]],
    meta: Optional[Mapping[str, Any]],
    webhook: Optional[str],
    complexity: Optional[float],
) -> Dict[str, Any]:
    body: Dict[str, Any] = {"id": job_id, "kind": kind, "steps": normalize_steps(steps)}
    if tags is not None:
        if isinstance(tags, str):
            raise TypeError("tags must be a list of strings, e.g. ['user:42']")
        body["tags"] = [str(t) for t in tags]
    if meta is not None:
        body["meta"] = dict(meta)
    if webhook is not None:
        body["webhook"] = webhook
    if complexity is not None:
        body["complexity"] = complexity
    return body


def creation_prefix(token: str) -> str:
    """The id prefix a token lets us create jobs under: its single ``prefix*`` grant, '' for ``*``
    or anything else. Reads the JWT payload without verifying it: only the server's check counts."""
    payload = jwt_payload(token)
    grants = [g for g in payload.get("jobs", []) if isinstance(g, str)] if isinstance(payload.get("jobs"), list) else []
    if "*" in grants:
        return ""
    prefixes = [g for g in grants if g.endswith("*") and not g.startswith("tag:")]
    return prefixes[0][:-1] if len(prefixes) == 1 else ""


def jwt_payload(token: str) -> Dict[str, Any]:
    try:
        part = token.split(".")[1]
        data = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        return data if isinstance(data, dict) else {}
    except (IndexError, ValueError, TypeError):
        return {}


def compact(event: Mapping[str, Any]) -> JobEvent:
    """The event without ``None`` fields, with an ``eventId``."""
    out: Dict[str, Any] = {k: v for k, v in event.items() if v is not None}
    out.setdefault("eventId", new_event_id())
    return out  # type: ignore[return-value]


def check_progress(value: float) -> float:
    """Refuses a progress value outside 0..1 at the call, before anything is queued (the server's
    rule; status 0: no request was made)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 <= value <= 1:
        raise ProducerError("progress_out_of_range", f"progress must be a number within 0..1, got {value!r}")
    return float(value)


def failure(
    error: Union[BaseException, str, Mapping[str, Any]],
    *,
    code: Optional[str],
    retryable: Optional[bool],
    default_code: str,
) -> Dict[str, Any]:
    """``{code, message, retryable?}`` from an exception, a message or a mapping."""
    if isinstance(error, BaseException):
        own = getattr(error, "code", None)
        message = str(error) or type(error).__name__
        out: Dict[str, Any] = {"code": code or (own if isinstance(own, str) and own else default_code), "message": message}
    elif isinstance(error, str):
        out = {"code": code or default_code, "message": error}
    elif isinstance(error, Mapping):
        out = {"code": code or str(error.get("code") or default_code), "message": str(error.get("message") or "")}
        if retryable is None and isinstance(error.get("retryable"), bool):
            retryable = bool(error["retryable"])
    else:
        raise TypeError("error must be an exception, a message or {'code', 'message', 'retryable'?}")
    out["code"] = out["code"][:64]
    out["message"] = (out["message"] or out["code"])[:2000]
    if retryable is not None:
        out["retryable"] = retryable
    return out


def error_from_response(status: int, reason: str, body: bytes) -> ProducerError:
    """A ProducerError carrying the server's ``{"error": {"code", "message"}}``."""
    retryable = status in RETRYABLE_STATUS
    try:
        parsed = json.loads(body.decode("utf-8")) if body else None
    except (ValueError, UnicodeDecodeError):
        parsed = None
    err = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(err, dict) and isinstance(err.get("code"), str):
        return ProducerError(err["code"], str(err.get("message") or err["code"]), status=status, retryable=retryable)
    code = STATUS_CODES.get(status, "bad_response")
    return ProducerError(code, f"HTTP {status} {reason}".strip(), status=status, retryable=retryable)


def parse_json(status: int, body: bytes) -> JSONBody:
    if not body:
        return None
    try:
        return json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProducerError("bad_response", f"expected JSON from the server (HTTP {status})", status=status) from exc


def is_event_refusal(err: BaseException) -> bool:
    """A refusal of the events themselves (400/409/413), not of the job or token."""
    return isinstance(err, ProducerError) and err.status in (400, 409, 413)


@dataclass(frozen=True)
class RetryAttempt:
    """Handed to ``on_retry_attempt`` before every HTTP retry (logs, metrics)."""

    method: str
    path: str
    #: 1 for the first retry.
    attempt: int
    #: Seconds the SDK waits before it.
    delay: float
    error: ProducerError


class Attempts:
    """The retry decision of one request: what the sync and async transports both follow."""

    def __init__(self, policy: RetryPolicy, method: str, path: str, refreshable: bool,
                 on_retry_attempt: Optional[Callable[[RetryAttempt], None]]) -> None:
        self.policy = policy
        self.method = method
        self.path = path
        self.refreshable = refreshable
        self.on_retry_attempt = on_retry_attempt
        self.attempt = 0
        #: When the first attempt started: the retry budget (``max_retry_time``) counts from here.
        self.started = time.monotonic()
        self.refreshed_for_401 = False
        self.stale_resent = False
        #: Something was sent again: a 409 on a create may be our own first attempt.
        self.resent = False

    def next_delay(self, error: ProducerError, retry_after: Optional[str] = None, *, stale: bool = False) -> float:
        """Seconds to wait before the next attempt; raises ``error`` when there is none."""
        if stale and not self.stale_resent:
            # A kept-alive connection the server had closed: resend at once on a fresh one.
            self.stale_resent = True
            return self._report(error, 0.0, count=False)
        if error.status == 401 and self.refreshable and not self.refreshed_for_401:
            # The token may have expired in flight: one immediate retry with a fresh one.
            self.refreshed_for_401 = True
            return self._report(error, 0.0, count=False)
        # The budget: ``retries`` retries or ``max_retry_time`` seconds, whichever ends first.
        left = self.policy.max_retry_time - (time.monotonic() - self.started)
        if not error.retryable or self.attempt >= self.policy.retries or not left > 0:
            raise error
        wait = parse_retry_after(retry_after, maximum=MAX_RETRY_AFTER)
        delay = wait if wait is not None else backoff_delay(self.attempt, self.policy.min_delay, self.policy.max_delay)
        delay = max(0.0, min(delay, left))  # the last retry is made when the budget ends
        return self._report(error, delay, count=True)

    def _report(self, error: ProducerError, delay: float, *, count: bool) -> float:
        if count:
            self.attempt += 1
        self.resent = True
        if self.on_retry_attempt is not None:
            self.on_retry_attempt(RetryAttempt(self.method, self.path, self.attempt if count else max(self.attempt, 1), delay, error))
        return delay


def aborted(method: str, path: str) -> ProducerError:
    return ProducerError("aborted", f"{method} {path} aborted: the producer was closed")


def request_headers(token: str, has_body: bool) -> Dict[str, str]:
    headers = {"Accept": "application/json", "Authorization": f"Bearer {token}", "User-Agent": "progress-tracker-kit-python/0.1"}
    if has_body:
        headers["Content-Type"] = "application/json"
    return headers


def encode(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


# ---- Server-Sent Events ---------------------------------------------------------------------


class SseParser:
    """Incremental ``text/event-stream`` parser: feed it lines, get ``(id, data)`` per event."""

    def __init__(self) -> None:
        self.data: List[str] = []
        self.last_id: Optional[str] = None

    def feed(self, line: str) -> Optional[Tuple[Optional[str], str]]:
        line = line.rstrip("\r\n")
        if line == "":
            if not self.data:
                return None
            data = "\n".join(self.data)
            self.data = []
            return self.last_id, data
        if line.startswith(":"):
            return None  # comment: the server's heartbeat
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            self.data.append(value)
        elif field == "id":
            self.last_id = value
        return None


class ControlTracker:
    """Turns one job's stream messages into retry and cancel notices, so a producer hears about
    each once, even across reconnects: a retry or cancel that happened while the stream was down
    is inferred from the snapshot that starts every stream (``recovered=True``)."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        #: What the producer last reported, or the latest status seen.
        self.last_status: Optional[str] = None
        self.last_attempts: Optional[int] = None
        self.last_job: Optional[Job] = None
        #: A ``control`` arrived after the latest job state: a snapshot must not replay it.
        self.control_since_state = False
        self.cancel_heard = False
        self.cancel_reason: Optional[str] = None
        #: The job completed or was canceled: nothing more to hear.
        self.finished = False

    def note_status(self, status: str) -> None:
        self.last_status = status
        self.control_since_state = False
        if status in TERMINAL:
            self.finished = True

    def on_message(self, data: str) -> List[Control]:
        try:
            msg = json.loads(data)
        except ValueError:
            return []
        if not isinstance(msg, dict):
            return []
        kind = msg.get("type")
        if kind in ("snapshot", "update") and isinstance(msg.get("job"), dict):
            return self._on_job(kind == "snapshot", msg["job"])
        if kind == "control" and msg.get("jobId") == self.job_id:
            return self._on_control(msg)
        return []

    def _on_job(self, snapshot: bool, job: Any) -> List[Control]:
        if job.get("id") != self.job_id:
            return []
        out: List[Control] = []
        status = job.get("status")
        attempts = int(job.get("attempts") or 0)
        missed_retry = (
            snapshot
            and not self.control_since_state
            and status == "queued"
            and (self.last_status == "failed" or (self.last_attempts is not None and attempts > self.last_attempts))
        )
        self.last_status = status
        self.last_attempts = attempts
        self.last_job = job
        self.control_since_state = False
        if missed_retry:
            step = next((s.get("id") for s in job.get("steps", []) if s.get("status") != "completed"), None)
            if isinstance(step, str):
                self.cancel_heard = False
                self.cancel_reason = None
                out.append(RetryControl(self.job_id, step, True, job))
        requested = job.get("cancelRequested")
        if isinstance(requested, dict) and not self.cancel_heard and status not in TERMINAL:
            self.cancel_heard = True
            reason = requested.get("reason")
            self.cancel_reason = reason if isinstance(reason, str) else None
            out.append(CancelControl(self.job_id, self.cancel_reason, snapshot, job))
        if status in TERMINAL:
            self.finished = True
        return out

    def _on_control(self, msg: Dict[str, Any]) -> List[Control]:
        action = msg.get("action")
        if action == "retry" and isinstance(msg.get("step"), str):
            self.control_since_state = True
            self.cancel_heard = False  # a retried job runs again: an earlier cancel is history
            self.cancel_reason = None
            return [RetryControl(self.job_id, msg["step"], False, self.last_job)]
        if action == "cancel":
            if self.cancel_heard:
                return []
            self.cancel_heard = True
            reason = msg.get("reason")
            self.cancel_reason = reason if isinstance(reason, str) else None
            return [CancelControl(self.job_id, self.cancel_reason, False, self.last_job)]
        return []


def cancelled_error(job_id: str, reason: Optional[str]) -> JobCancelled:
    return JobCancelled(job_id, reason)


def same_shape(job: Job, kind: str, steps: Sequence[Mapping[str, Any]]) -> bool:
    """Whether a job read back after a 409 on a resent create is the one we asked for."""
    return job.get("kind") == kind and [s.get("id") for s in job.get("steps", [])] == [s["id"] for s in steps]
