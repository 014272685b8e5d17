"""verify_webhook: the protocol's published example, refusals by reason, header shapes, and the
real server's signed retry and cancel deliveries checked by it."""
from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Tuple

import pytest

from conftest import Server, wait_for
from progress_tracker import Producer, WebhookVerificationError, sign_webhook, verify_webhook

# docs/protocol.md "Retry webhooks": the signed example.
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BODY = '{"type":"retry","jobId":"gen-42","step":"analysis","seq":8}'
HEADERS = {
    "webhook-id": "msg_Jq3v7Hk2bV0mXyQ1rT9sZcLd",
    "webhook-timestamp": "1767000000",
    "webhook-signature": "v1,kTuv+S/47ohy6pz6Jm1GHFOFztfT+DVt2KvwJzptY8M=",
}
NOW = 1767000000 + 10


def reason(headers: Any, body: Any = BODY, secret: str = SECRET, now: float = NOW) -> str:
    with pytest.raises(WebhookVerificationError) as info:
        verify_webhook(secret, headers, body, now=now)
    return info.value.reason


def test_the_protocols_published_example_verifies() -> None:
    assert verify_webhook(SECRET, HEADERS, BODY.encode(), now=NOW) == {"type": "retry", "jobId": "gen-42", "step": "analysis", "seq": 8}
    assert verify_webhook(SECRET, HEADERS, BODY, now=NOW)["step"] == "analysis", "str bodies too"
    assert verify_webhook(SECRET[len("whsec_"):], HEADERS, BODY, now=NOW)["jobId"] == "gen-42", "prefix optional"
    upper = {k.upper(): v for k, v in HEADERS.items()}
    assert verify_webhook(SECRET, upper, BODY, now=NOW)["seq"] == 8, "header names are case-insensitive"
    assert verify_webhook(SECRET, list(HEADERS.items()), BODY, now=NOW)["seq"] == 8, "(name, value) pairs"
    assert sign_webhook(SECRET, HEADERS["webhook-id"], 1767000000, BODY) == HEADERS["webhook-signature"]


def test_refusals_by_reason() -> None:
    assert reason({k: v for k, v in HEADERS.items() if k != "webhook-signature"}) == "missing_header"
    assert reason({k: v for k, v in HEADERS.items() if k != "webhook-id"}) == "missing_header"
    assert reason({**HEADERS, "webhook-timestamp": "17670000.5"}) == "invalid_timestamp"
    assert reason(HEADERS, now=1767000000 + 301) == "timestamp_too_old"
    assert reason(HEADERS, now=1767000000 - 301) == "timestamp_too_new"
    assert reason(HEADERS, body=BODY.replace("analysis", "planning")) == "invalid_signature"
    other = "whsec_" + base64.b64encode(b"another secret of 32 bytes......").decode()
    assert reason(HEADERS, secret=other) == "invalid_signature"
    # Re-timestamped without the secret: the timestamp is signed.
    assert reason({**HEADERS, "webhook-timestamp": str(NOW)}) == "invalid_signature"
    assert reason({**HEADERS, "webhook-signature": "v2,kTuv+S/47ohy6pz6Jm1GHFOFztfT+DVt2KvwJzptY8M="}) == "invalid_signature"
    signed_list = {"webhook-id": "m1", "webhook-timestamp": str(NOW), "webhook-signature": sign_webhook(SECRET, "m1", NOW, "[1]")}
    assert reason(signed_list, body="[1]") == "invalid_payload"
    # Several signatures (a secret rotation): any matching v1 entry will do.
    rotated = {**HEADERS, "webhook-signature": f"v1,bm90IGl0 {HEADERS['webhook-signature']}"}
    assert verify_webhook(SECRET, rotated, BODY, now=NOW)["seq"] == 8


def test_mistaken_calls_are_type_errors() -> None:
    with pytest.raises(TypeError):
        verify_webhook("whsec_not base64!", HEADERS, BODY, now=NOW)
    with pytest.raises(TypeError):
        verify_webhook(SECRET, HEADERS, json.loads(BODY), now=NOW)  # type: ignore[arg-type]


class Receiver:
    """A producer's webhook endpoint, as the docs write it."""

    def __init__(self, secret: str) -> None:
        self.received: List[Dict[str, Any]] = []
        self.refused: List[str] = []
        self.seen_ids: set = set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    hook = verify_webhook(secret, self.headers, body)
                except WebhookVerificationError as err:
                    receiver.refused.append(err.reason)
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                msg_id = self.headers["webhook-id"]
                if msg_id not in receiver.seen_ids:
                    receiver.seen_ids.add(msg_id)
                    receiver.received.append(hook)
                self.send_response(204)
                self.end_headers()

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/hooks/progress"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


def test_the_servers_retry_and_cancel_webhooks_verify(server: Server, write_token: str) -> None:
    receiver = Receiver(server.webhook_secret)
    wrong = Receiver("whsec_" + base64.b64encode(b"x" * 32).decode())
    user = Producer(server.url, server.token("progress:retry progress:cancel", ["*"]))
    p = Producer(server.url, write_token)
    try:
        job = p.create_job("hooked", ["a"], webhook=receiver.url)
        job.start_step("a")
        job.fail_step("boom")
        user.retry_job(job.id)
        wait_for(lambda: receiver.received, 10, "the retry webhook")
        assert receiver.received[0] == {"type": "retry", "jobId": job.id, "step": "a", "seq": receiver.received[0]["seq"]}
        job.start_step("a")
        user.cancel_job(job.id, reason="user left")
        wait_for(lambda: len(receiver.received) == 2, 10, "the cancel webhook")
        cancel = receiver.received[1]
        assert cancel["type"] == "cancel" and cancel["jobId"] == job.id and cancel.get("reason") == "user left"
        job.cancel()

        other = p.create_job("hooked", ["a"], webhook=wrong.url)
        other.start_step("a")
        other.fail_step("boom")
        user.retry_job(other.id)
        wait_for(lambda: wrong.refused, 10, "a delivery signed with another secret")
        assert wrong.refused[0] == "invalid_signature" and not wrong.received
    finally:
        p.close()
        user.close()
        receiver.close()
        wrong.close()
