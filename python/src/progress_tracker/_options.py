"""What both producers (threaded ``client`` and asyncio ``aio``) make of their constructor
arguments: the token (a JWT string, or a provider called before every request and stream
connection), the batch ceiling and the default error reporter. Kept apart so the two producers
accept exactly the same arguments and refuse the same mistakes."""
from __future__ import annotations

import logging
from typing import Any, Callable, Optional, Tuple, Union

from ._core import MAX_EVENTS_PER_REQUEST
from .errors import ProducerError

log = logging.getLogger("progress_tracker")

#: A callable returning a JWT, called before every request and stream connection: cache inside it.
TokenProvider = Callable[[], str]

AnyTokenProvider = Callable[[], Any]


def token_arguments(
    who: str, token: Union[str, AnyTokenProvider, None], token_provider: Optional[AnyTokenProvider]
) -> Tuple[object, Optional[AnyTokenProvider]]:
    """``(token, token_provider)`` as given, a callable passed as ``token`` taken as the
    provider; raises ``TypeError`` when neither is given. A provider wins over a token."""
    if callable(token) and token_provider is None:
        token_provider, token = token, None
    if token is None and token_provider is None:
        raise TypeError(f"{who}: give a token (a JWT string) or a token_provider (a callable returning one)")
    return token, token_provider


def batch_limit(max_batch: int) -> int:
    """Most events per request: the caller's ``max_batch`` within 1..the server's limit."""
    return max(1, min(int(max_batch), MAX_EVENTS_PER_REQUEST))


def report_default(err: ProducerError) -> None:
    """The default ``on_error``: network trouble is retried quietly; anything else is logged."""
    if err.code != "network_error":
        log.warning("progress-tracker producer: %s: %s", err.code, err.message)
