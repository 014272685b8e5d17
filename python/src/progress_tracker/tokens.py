"""Minting HS256 tokens for a server that uses ``PT_JWT_SECRET``: what a backend hands its
browsers (``progress:read``, a ``tag:user:<id>`` grant) and its workers (``progress:write``).
Servers configured with a JWKS verify tokens from your identity provider instead."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any, Dict, Optional, Sequence, Union

__all__ = ["mint_token", "BROWSER_SCOPES", "PRODUCER_SCOPES"]

#: What a page needs to follow jobs and press Retry and Cancel.
BROWSER_SCOPES = ("progress:read", "progress:retry", "progress:cancel")
#: What a producer needs.
PRODUCER_SCOPES = ("progress:write",)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def mint_token(
    secret: Union[str, bytes],
    *,
    scope: Union[str, Sequence[str]],
    jobs: Sequence[str],
    ttl: float = 600,
    sub: Optional[str] = None,
    audience: str = "progress-tracker",
    issuer: Optional[str] = None,
    extra: Optional[Dict[str, Any]] = None,
) -> str:
    """An HS256 JWT for the server's ``PT_JWT_SECRET``.

    ``scope``: space-separated or a list (``progress:read``, ``progress:write``,
    ``progress:retry``, ``progress:cancel``); ``jobs``: grants — an id, ``prefix*``, ``*`` or
    ``tag:<tag>`` (every job with that tag, e.g. ``tag:user:42``); ``ttl`` seconds.
    """
    now = int(time.time())
    claims: Dict[str, Any] = {
        "scope": scope if isinstance(scope, str) else " ".join(scope),
        "jobs": list(jobs),
        "aud": audience,
        "iat": now,
        "exp": now + int(ttl),
    }
    if sub is not None:
        claims["sub"] = sub
    if issuer is not None:
        claims["iss"] = issuer
    if extra:
        claims.update(extra)
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(key, f"{head}.{body}".encode("ascii"), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(signature)}"
