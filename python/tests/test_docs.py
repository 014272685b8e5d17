"""docs/producer-python.md's code, run as written: the quick start against the real server and
the FastAPI webhook receiver against signed (and forged) requests."""
from __future__ import annotations

import re
import time
from typing import Any, Dict, List

from fastapi.testclient import TestClient

from conftest import ROOT, Server
from progress_tracker import Producer, sign_webhook

DOC = (ROOT / "docs" / "producer-python.md").read_text()


def block(after_heading: str) -> str:
    section = DOC.split(after_heading, 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]


def test_the_quick_start_runs_as_written(server: Server, write_token: str) -> None:
    code = block("## Quick start").replace("http://127.0.0.1:8080", server.url)
    scope: Dict[str, Any] = {"token": write_token}
    exec(compile(code, "quick start", "exec"), scope)
    job = scope["job"]
    check = Producer(server.url, write_token)
    final = check.get_job(job.id)
    assert final["status"] == "completed" and final["tags"] == ["user:42"]
    assert final["result"] == {"url": "/reports/42.pdf"}
    check.close()


def test_the_webhook_receiver_runs_as_written() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    acted: List[Dict[str, Any]] = []
    scope: Dict[str, Any] = {"SECRET": secret, "resume_or_stop": acted.append}
    exec(compile(block("## Webhooks"), "webhook receiver", "exec"), scope)
    client = TestClient(scope["app"])
    body = '{"type":"cancel","jobId":"gen-1","seq":4,"reason":"user left"}'
    now = int(time.time())
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(now), "webhook-signature": sign_webhook(secret, "msg_1", now, body),
               "content-type": "application/json"}
    assert client.post("/hooks/progress", content=body, headers=headers).status_code == 204
    assert client.post("/hooks/progress", content=body, headers=headers).status_code == 204, "a redelivery"
    assert acted == [{"type": "cancel", "jobId": "gen-1", "seq": 4, "reason": "user left"}], "acted on once"
    forged = {**headers, "webhook-id": "msg_2"}
    assert client.post("/hooks/progress", content=body, headers=forged).status_code == 401
    assert len(acted) == 1
