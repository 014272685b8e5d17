"""Fixtures for the Python SDK's tests: the real progress-tracker server process (built with
``npx tsc -b``), tokens minted for it, a fault-injecting HTTP proxy in front of it, a real
redis-server. Nothing of the server is mocked: faults are injected only between the SDK and it."""
from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import pytest

HERE = Path(__file__).resolve().parent
PYTHON_DIR = HERE.parent
ROOT = PYTHON_DIR.parent
sys.path.insert(0, str(PYTHON_DIR / "src"))
sys.path.insert(0, str(HERE))

from progress_tracker import mint_token  # noqa: E402

CLI = ROOT / "dist" / "server" / "app" / "cli.js"
BIN = ROOT / "bin" / "progress-tracker.js"
REDIS_SERVER = os.environ.get("PT_REDIS_SERVER_BIN", "/usr/bin/redis-server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(probe: Callable[[], Any], timeout: float = 10.0, what: str = "condition", interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class Server:
    """A running ``progress-tracker serve`` process."""

    def __init__(self, proc: "subprocess.Popen[bytes]", url: str, secret: str, webhook_secret: str, db_dir: str, output: List[str]) -> None:
        self.proc = proc
        self.url = url
        self.port = int(url.rsplit(":", 1)[1])
        self.secret = secret
        self.webhook_secret = webhook_secret
        self.db_dir = db_dir
        self._output = output

    def output(self) -> str:
        return "".join(self._output)

    def token(
        self,
        scope: str = "progress:write",
        jobs: Sequence[str] = ("*",),
        ttl: float = 300,
        sub: Optional[str] = None,
        **extra: Any,
    ) -> str:
        return mint_token(self.secret, scope=scope, jobs=jobs, ttl=ttl, sub=sub, extra=extra or None)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.db_dir, ignore_errors=True)


def ensure_built() -> None:
    if CLI.exists():
        return
    npx = shutil.which("npx")
    if npx is None:
        pytest.fail(f"{CLI} is missing and npx is not installed: run `npm ci && npx tsc -b` in {ROOT} first")
    result = subprocess.run([npx, "tsc", "-b"], cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0 or not CLI.exists():
        pytest.fail(f"`npx tsc -b` failed, so the server cannot start:\n{result.stdout}\n{result.stderr}")


def start_server(env: Optional[Dict[str, str]] = None) -> Server:
    ensure_built()
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: the tests run the real progress-tracker server")
    secret = base64.b64encode(secrets.token_bytes(48)).decode()
    webhook_secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    db_dir = tempfile.mkdtemp(prefix="pt-py-")
    full_env = {
        **os.environ,
        "PORT": "0",
        "HOST": "127.0.0.1",
        "PT_JWT_SECRET": secret,
        "PT_DB": os.path.join(db_dir, "progress.db"),
        "PT_WEBHOOK_SECRET": webhook_secret,
        "PT_DEMO": "",
        "PT_ALLOWED_ORIGINS": "",
        "LOG_LEVEL": "info",
        # No ETA revisions between events: a revision adds 1 to a running job's seq, and the tests
        # check exact seqs (a resend applied once answers the first acceptance's seq).
        "PT_ETA_TICK": "0",
        **(env or {}),
    }
    proc = subprocess.Popen([node, str(BIN), "serve"], cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output: List[str] = []
    found: List[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace")
            output.append(line)
            m = re.search(r'"msg":"listening on (http://[^"]+)"', line)
            if m and not found:
                found.append(m.group(1))

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + 20
    while not found:
        if proc.poll() is not None:
            time.sleep(0.1)
            raise RuntimeError(f"server exited with {proc.returncode} before listening:\n{''.join(output)}")
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"server did not start within 20 s:\n{''.join(output)}")
        time.sleep(0.02)
    return Server(proc, found[0], secret, webhook_secret, db_dir, output)


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    srv = start_server()
    yield srv
    srv.stop()


@pytest.fixture()
def write_token(server: Server) -> str:
    return server.token("progress:write", ["*"])


@pytest.fixture()
def proxy(server: Server) -> Iterator["FaultProxy"]:
    from fault_proxy import FaultProxy

    p = FaultProxy(server.port)
    yield p
    p.close()


class RedisServer:
    def __init__(self, proc: "subprocess.Popen[bytes]", port: int, dir: str) -> None:
        self.proc = proc
        self.port = port
        self.dir = dir
        self.url = f"redis://127.0.0.1:{port}/0"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def start_redis() -> RedisServer:
    if not os.path.exists(REDIS_SERVER):
        pytest.fail(f"{REDIS_SERVER} not found: apt-get install redis-server (npm test installs it)")
    port = free_port()
    d = tempfile.mkdtemp(prefix="pt-py-redis-")
    proc = subprocess.Popen(
        [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--dir", d, "--save", "", "--appendonly", "no", "--protected-mode", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def ready() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    wait_for(ready, 10, "redis-server")
    return RedisServer(proc, port, d)


def api(server: Server, method: str, path: str, token: Optional[str], body: Any = None) -> "tuple[int, Any]":
    """A plain HTTP call to the server (no SDK): for checking what the SDK did."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
        res = conn.getresponse()
        data = res.read()
        return res.status, json.loads(data) if data else None
    finally:
        conn.close()
