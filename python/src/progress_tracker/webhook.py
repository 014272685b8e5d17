"""Verifying the server's webhooks on the receiving side (Standard Webhooks,
https://www.standardwebhooks.com): ``webhook-signature: v1,<base64 HMAC-SHA256 of
"<webhook-id>.<webhook-timestamp>.<raw body>">`` keyed with the bytes of the server's
``PT_WEBHOOK_SECRET`` (``whsec_<base64>``), compared in constant time, timestamps more than five
minutes away refused. Receivers act once per ``webhook-id`` (the same on every attempt of one
delivery)."""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple, Union

from .errors import WebhookVerificationError

__all__ = ["verify_webhook", "sign_webhook", "WEBHOOK_TOLERANCE_SECONDS", "WebhookVerificationError"]

#: How far ``webhook-timestamp`` may be from now, either way (Standard Webhooks' 5 minutes).
WEBHOOK_TOLERANCE_SECONDS = 300

Headers = Union[Mapping[str, Any], Iterable[Tuple[str, str]]]
_B64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")


def _key(secret: str) -> bytes:
    text = secret[len("whsec_"):] if isinstance(secret, str) and secret.startswith("whsec_") else secret
    if not isinstance(text, str) or not _B64.match(text):
        raise TypeError("verify_webhook: secret must be the server's PT_WEBHOOK_SECRET, whsec_ followed by base64")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise TypeError("verify_webhook: secret is not valid base64") from exc


def _header(headers: Headers, name: str) -> Optional[str]:
    """A header's value, case-insensitively; repeated values joined with a space. Takes a dict,
    Starlette/werkzeug/``email.message`` headers (``get_all``/``getlist``) or (name, value) pairs."""
    values: list[str] = []
    getlist = getattr(headers, "getlist", None) or getattr(headers, "get_all", None)
    if callable(getlist):
        found = getlist(name) or []
        values = [str(v) for v in found]
        if not values and isinstance(headers, Mapping):
            values = [str(v) for k, v in headers.items() if str(k).lower() == name]
    elif isinstance(headers, Mapping):
        for k, v in headers.items():
            if str(k).lower() == name:
                values += [str(x) for x in v] if isinstance(v, (list, tuple)) else [str(v)]
    else:
        for k, v in headers:
            if str(k).lower() == name:
                values.append(str(v))
    return " ".join(values) if values else None


def _single(headers: Headers, name: str) -> str:
    value = (_header(headers, name) or "").strip()
    if not value:
        raise WebhookVerificationError("missing_header", f"missing {name} header")
    if re.search(r"[\s,]", value):
        raise WebhookVerificationError("missing_header", f"{name} must be one value")
    return value


def verify_webhook(
    secret: str,
    headers: Headers,
    body: Union[bytes, bytearray, memoryview, str],
    *,
    now: Optional[float] = None,
    tolerance: float = WEBHOOK_TOLERANCE_SECONDS,
) -> Dict[str, Any]:
    """Checks a webhook request and returns its parsed body (``{"type": "retry"|"cancel",
    "jobId", …}``).

    ``secret`` is the server's ``PT_WEBHOOK_SECRET`` (``whsec_<base64>``; the prefix may be left
    out), ``headers`` the request's headers (a dict, Starlette/Flask/Django headers, or pairs),
    ``body`` the raw body exactly as received — bytes or str, never re-serialized JSON. ``now``
    (epoch seconds) and ``tolerance`` are for tests.

    Raises :class:`~progress_tracker.WebhookVerificationError` (``reason``: ``missing_header``,
    ``invalid_timestamp``, ``timestamp_too_old``, ``timestamp_too_new``, ``invalid_signature``,
    ``invalid_payload``) for a request that is not a genuine, fresh webhook — answer it 401 —
    and ``TypeError`` for a mistaken call (a secret that is not base64, a parsed body).
    """
    key = _key(secret)
    if isinstance(body, str):
        raw = body.encode("utf-8")
    elif isinstance(body, (bytes, bytearray, memoryview)):
        raw = bytes(body)
    else:
        raise TypeError("verify_webhook: body must be the raw body as received (bytes or str), not parsed JSON: e.g. await request.body()")
    msg_id = _single(headers, "webhook-id")
    timestamp_text = _single(headers, "webhook-timestamp")
    signatures = _header(headers, "webhook-signature")
    if signatures is None or not signatures.strip():
        raise WebhookVerificationError("missing_header", "missing webhook-signature header")
    if not re.fullmatch(r"\d{1,15}", timestamp_text):
        raise WebhookVerificationError("invalid_timestamp", "webhook-timestamp must be an integer number of seconds")
    timestamp = int(timestamp_text)
    current = int(time.time() if now is None else now)
    if current - timestamp > tolerance:
        raise WebhookVerificationError("timestamp_too_old", f"webhook-timestamp is {current - timestamp} s old (more than {tolerance:g} s): stale or replayed")
    if timestamp - current > tolerance:
        raise WebhookVerificationError("timestamp_too_new", f"webhook-timestamp is {timestamp - current} s in the future (more than {tolerance:g} s)")

    expected = hmac.new(key, f"{msg_id}.{timestamp_text}.".encode("utf-8") + raw, hashlib.sha256).digest()
    matched = False
    # A space-separated list (several during a secret rotation): any matching v1 entry will do.
    for entry in signatures.split():
        entry = entry.rstrip(",")  # joined repeated headers
        version, sep, value = entry.partition(",")
        if not sep or version != "v1":
            continue
        try:
            given = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            continue
        if hmac.compare_digest(given, expected):
            matched = True
    if not matched:
        raise WebhookVerificationError(
            "invalid_signature",
            "no v1 signature in webhook-signature matches (wrong secret, or the body was changed: pass it exactly as received)",
        )
    try:
        payload = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise WebhookVerificationError("invalid_payload", "the signed body is not JSON") from None
    if not isinstance(payload, dict):
        raise WebhookVerificationError("invalid_payload", "the signed body is not a JSON object")
    return payload


def sign_webhook(secret: str, msg_id: str, timestamp: int, body: Union[bytes, str]) -> str:
    """The ``webhook-signature`` value (``v1,<base64>``) the server would send: for tests of a
    receiver."""
    raw = body.encode("utf-8") if isinstance(body, str) else body
    digest = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode("utf-8") + raw, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")
