"""python/examples/fastapi_pipeline.py as a real uvicorn process against the real server: the
page, a generation run to completion, the browser token's tag grant, Retry of an injected
failure and Cancel — with the page's token, as a browser would."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from typing import Any, Dict, Iterator

import httpx
import pytest

from conftest import HERE, PYTHON_DIR, ROOT, Server, api, free_port, wait_for
from progress_tracker._core import jwt_payload

EXAMPLES = PYTHON_DIR / "examples"


@pytest.fixture(scope="module")
def app_url(server: Server) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "PT_URL": server.url,
        "PT_JWT_SECRET": server.secret,
        "PIPELINE_SPEED": "20",
        "PYTHONPATH": os.pathsep.join([str(PYTHON_DIR / "src"), str(EXAMPLES)]),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "fastapi_pipeline:app", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        cwd=str(EXAMPLES), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"uvicorn exited:\n{proc.stdout.read() if proc.stdout else ''}")
        try:
            return httpx.get(f"{url}/healthz", timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(up, 20, "the FastAPI example")
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def start(app_url: str, user: str, **body: Any) -> Dict[str, Any]:
    res = httpx.post(f"{app_url}/api/jobs", json=body, headers={"X-User": user}, timeout=10)
    assert res.status_code == 201, res.text
    return res.json()  # type: ignore[no-any-return]


def until(server: Server, job_id: str, token: str, status: str, timeout: float = 20) -> Dict[str, Any]:
    def probe() -> Any:
        code, job = api(server, "GET", f"/v1/jobs/{job_id}", token)
        assert code == 200, job
        return job if job["status"] == status else None

    return wait_for(probe, timeout, f"{job_id} to be {status}", 0.05)  # type: ignore[no-any-return]


def test_the_page_loads_the_widget(app_url: str) -> None:
    res = httpx.get(app_url, headers={"X-User": "alice"})
    assert res.status_code == 200
    assert "createElement('progress-tracker')" in res.text and "tokenProvider" in res.text
    assert "progress-tracker.js" in res.text
    assert 'data-src="ws://127.0.0.1:' in res.text
    first = httpx.get(app_url)
    assert "uid=" in first.headers.get("set-cookie", ""), "a visitor without a session gets a demo user id"


def test_a_generation_runs_to_completion_under_the_users_tag(app_url: str, server: Server) -> None:
    started = start(app_url, "alice", speed=60)
    job_id, token = started["jobId"], started["token"]
    claims = jwt_payload(token)
    assert claims["jobs"] == ["tag:user:alice"] and set(claims["scope"].split()) == {"progress:read", "progress:retry", "progress:cancel"}
    assert started["src"].endswith("/v1/ws")
    job = until(server, job_id, token, "completed")
    assert job["kind"] == "generation" and job["tags"] == ["user:alice"]
    assert [s["id"] for s in job["steps"]] == ["initialization", "analysis", "planning", "implementation", "finalization"]
    assert job["result"]["summary"]
    listed = httpx.get(f"{app_url}/api/jobs", headers={"X-User": "alice"}).json()
    assert job_id in listed["jobs"]
    fresh = httpx.get(f"{app_url}/api/token", headers={"X-User": "alice"}).json()
    assert jwt_payload(fresh["token"])["jobs"] == ["tag:user:alice"] and fresh["expiresIn"] == 600

    bob = httpx.get(f"{app_url}/api/token", headers={"X-User": "bob"}).json()["token"]
    code, _ = api(server, "GET", f"/v1/jobs/{job_id}", bob)
    assert code in (403, 404), "bob's token does not cover alice's job"


def test_retry_from_the_page_resumes_the_failed_stage(app_url: str, server: Server) -> None:
    started = start(app_url, "carol", fail=True, speed=60)
    job_id, token = started["jobId"], started["token"]
    failed = until(server, job_id, token, "failed")
    assert failed["error"]["code"] == "model_timeout" and failed["error"]["step"] == "implementation"
    code, body = api(server, "POST", f"/v1/jobs/{job_id}/retry", token, {})
    assert code == 202, body
    done = until(server, job_id, token, "completed")
    assert done["attempts"] == 1
    assert done["steps"][0]["endedAt"] == failed["steps"][0]["endedAt"], "completed stages were not run again"


def test_cancel_from_the_page_stops_the_pipeline(app_url: str, server: Server) -> None:
    started = start(app_url, "dave", speed=1)
    job_id, token = started["jobId"], started["token"]
    until(server, job_id, token, "running")
    asked = time.monotonic()
    code, body = api(server, "POST", f"/v1/jobs/{job_id}/cancel", token, {"reason": "wrong project"})
    assert code == 202, body
    job = until(server, job_id, token, "canceled", timeout=10)
    assert time.monotonic() - asked < 5
    assert "error" not in job, "the pipeline ended it, not the server's grace period"


def test_the_page_in_chromium_retries_with_the_widget(app_url: str, server: Server) -> None:
    node, chromium = shutil.which("node"), os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if node is None or not os.path.exists(chromium) or not (ROOT / "node_modules" / "playwright-core").exists():
        pytest.fail("needs node, playwright-core (npm ci) and Debian's chromium (npm test installs them)")
    done = subprocess.run([node, str(HERE / "page_check.mjs"), app_url], cwd=str(ROOT), capture_output=True, text=True, timeout=90)
    seen = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else {"ok": False, "failure": done.stderr}
    assert seen["ok"], seen
    assert not seen["errors"], seen["errors"]
    assert "failed" in seen["statuses"] and seen["statuses"][-1] == "completed", seen["statuses"]
    job = until(server, seen["jobId"], server.token("progress:read", ["*"]), "completed")
    assert job["attempts"] == 1, "resumed by the widget's Retry"
    assert len(job["tags"]) == 1 and job["tags"][0].startswith("user:u"), "the page's visitor got a demo user id"
