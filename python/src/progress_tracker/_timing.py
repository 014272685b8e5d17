"""Backoff with jitter and ``Retry-After``: the same rules as protocol/timing.ts, so every client
of a progress-tracker server backs off the same way; and how long a silent control stream is
trusted."""
from __future__ import annotations

import email.utils
import math
import random as _random
import time
from dataclasses import dataclass
from typing import Callable, Optional

__all__ = ["RetryPolicy", "backoff_delay", "parse_retry_after", "MAX_RETRY_AFTER", "STREAM_READ_TIMEOUT"]

#: A ``Retry-After`` above this (seconds) is treated as this: a producer should not stall for minutes.
MAX_RETRY_AFTER = 60.0


@dataclass(frozen=True)
class RetryPolicy:
    """How the SDK retries transient failures (network errors, timeouts, 408/425/429/5xx).

    A request is retried until ``max_retry_time`` seconds have passed since its first attempt or
    ``retries`` retries were made, whichever comes first; by default only the time budget
    applies (10 minutes), the same rule as the Node SDK's ``retry.maxRetryTime``."""

    #: The retry budget in seconds, counted from a request's first attempt: no retry starts after
    #: it, and the last backoff is shortened to end on it. Default 600 (10 minutes).
    max_retry_time: float = 600.0
    #: Most retries after the first attempt (0 disables retrying). Default unbounded
    #: (``math.inf``): only ``max_retry_time`` bounds retrying.
    retries: float = math.inf
    #: First backoff delay, seconds.
    min_delay: float = 0.2
    #: Largest backoff delay, seconds (a server's ``Retry-After`` may ask for more, up to 60 s).
    max_delay: float = 10.0


def backoff_delay(attempt: int, base: float, maximum: float, random: Callable[[], float] = _random.random) -> float:
    """Exponential backoff with "equal jitter" before retry number ``attempt`` (0 = the first
    retry): the ceiling ``base * 2**attempt`` capped at ``maximum``, then a random value in its
    upper half, so clients failing together do not come back in lockstep."""
    ceiling: float = min(maximum, base * 2.0 ** max(0, min(attempt, 30)))
    return float(ceiling / 2 + random() * ceiling / 2)


def parse_retry_after(value: Optional[str], now: Optional[float] = None, maximum: float = math.inf) -> Optional[float]:
    """``Retry-After`` (delta-seconds or an HTTP date) in seconds from ``now``, at most
    ``maximum``; ``None`` when absent or invalid."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        seconds = float(text)
        if not math.isfinite(seconds) or not text.replace(".", "", 1).isdigit():
            return None
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:  # pragma: no cover - older Pythons returned None
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, min(seconds, maximum))

#: A control stream that says nothing for this long (seconds; the server pings every 15 s) is replaced.
STREAM_READ_TIMEOUT = 45.0
