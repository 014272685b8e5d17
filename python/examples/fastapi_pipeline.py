"""The demo's five-stage generation pipeline as an async FastAPI app.

It starts jobs with :class:`progress_tracker.AsyncProducer` (tagged ``user:<id>``), runs them
as asyncio tasks, resumes a failed stage when the user presses Retry and stops when they press
Cancel, and hands browsers short-lived tokens whose grant is the tag (``tag:user:<id>``): one
token follows every job of its user, and no one else's.

Run it next to a progress-tracker server that shares its JWT secret::

    export PT_JWT_SECRET=$(openssl rand -base64 48)
    npx progress-tracker serve &                               # http://127.0.0.1:8080
    PT_URL=http://127.0.0.1:8080 uvicorn fastapi_pipeline:app --port 8000
    # open http://127.0.0.1:8000

Settings (environment): ``PT_URL`` the server's HTTP URL; ``PT_JWT_SECRET`` its secret (this
app mints its own producer token and the browsers' tokens with it; with a JWKS-configured
server, get them from your identity provider instead); ``PT_BROWSER_URL`` the server's URL as
browsers reach it (default ``PT_URL``); ``PT_WIDGET_URL`` where the page loads the
``<progress-tracker>`` bundle (default: this app serves the repository's
``dist/progress-tracker.js`` when it exists, else unpkg).

Endpoints: ``GET /`` the page; ``POST /api/jobs`` ``{"fail"?: bool, "speed"?: number}`` starts a
generation for the current user; ``GET /api/jobs`` the user's jobs; ``GET /api/token`` a fresh
browser token. The user is the ``X-User`` header or a ``uid`` cookie (a demo stand-in for your
session).
"""
from __future__ import annotations

import asyncio
import html
import json
import os
import random
import re
import uuid
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Tuple

from fastapi import Body, FastAPI, HTTPException, Request, Response
from fastapi.responses import FileResponse, HTMLResponse

from progress_tracker import AsyncJobHandle, AsyncProducer, ProducerError, mint_token
from progress_tracker.tokens import BROWSER_SCOPES

PT_URL = os.environ.get("PT_URL", "http://127.0.0.1:8080").rstrip("/")
PT_BROWSER_URL = os.environ.get("PT_BROWSER_URL", PT_URL).rstrip("/")
PT_JWT_SECRET = os.environ.get("PT_JWT_SECRET", "")
BUNDLE = Path(os.environ.get("PT_WIDGET_BUNDLE", Path(__file__).resolve().parents[2] / "dist" / "progress-tracker.js"))
WIDGET_URL = os.environ.get("PT_WIDGET_URL") or ("/static/progress-tracker.js" if BUNDLE.exists() else "https://unpkg.com/progress-tracker-kit/dist/progress-tracker.js")
BROWSER_TOKEN_TTL = 600
JOB_PREFIX = "gen-"

# Same ids, labels and complexities as demo/pipeline.ts: (id, label, complexity, seconds, tasks).
STAGES: List[Tuple[str, str, int, Tuple[float, float], List[str]]] = [
    ("initialization", "Initialization", 1, (2, 4), ["Loading project settings", "Preparing the workspace", "Warming up the models"]),
    ("analysis", "Analysis", 3, (6, 11), ["Reading sources", "Indexing symbols", "Mapping dependencies", "Summarizing findings"]),
    ("planning", "Planning", 2, (4, 8), ["Drafting the plan", "Estimating effort", "Ordering the work"]),
    ("implementation", "Implementation", 5, (12, 22), [f"Generating module {i} of 5" for i in range(1, 6)] + ["Running checks"]),
    ("finalization", "Finalization", 1, (3, 6), ["Formatting the output", "Writing the report", "Publishing results"]),
]
FAILING_STAGE = "implementation"


def producer_token() -> str:
    """This app's own token: it may create and report on ``gen-*`` jobs. Short-lived and minted
    on demand: the SDK calls this before every request and stream connection."""
    return mint_token(PT_JWT_SECRET, scope="progress:write", jobs=[f"{JOB_PREFIX}*"], ttl=300, sub="fastapi-pipeline")


def browser_token(user: str) -> str:
    """What a page gets: read, retry and cancel every job tagged ``user:<id>``, for 10 minutes."""
    return mint_token(PT_JWT_SECRET, scope=BROWSER_SCOPES, jobs=[f"tag:user:{user}"], ttl=BROWSER_TOKEN_TTL, sub=f"user:{user}")


app = FastAPI(title="progress-tracker FastAPI example")
producer = AsyncProducer(PT_URL, token_provider=producer_token)
jobs_by_user: Dict[str, List[str]] = {}
running: Set["asyncio.Task[None]"] = set()


@app.on_event("shutdown")
async def shutdown() -> None:
    for task in list(running):
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)
    await producer.aclose()


def current_user(request: Request) -> str:
    user = request.headers.get("x-user") or request.cookies.get("uid") or "demo"
    return re.sub(r"[^A-Za-z0-9._-]", "", user)[:64] or "demo"


@app.post("/api/jobs", status_code=201)
async def start_job(request: Request, body: Optional[Dict[str, Any]] = Body(None)) -> Dict[str, Any]:
    if not PT_JWT_SECRET:
        raise HTTPException(500, "set PT_JWT_SECRET to the progress server's secret")
    options = body or {}
    user = current_user(request)
    speed = float(options.get("speed") or os.environ.get("PIPELINE_SPEED") or 1)
    speed = max(0.1, min(speed, 200.0))
    job = await producer.create_job(
        "generation",
        [{"id": sid, "label": label, "complexity": complexity} for sid, label, complexity, _, _ in STAGES],
        id=f"{JOB_PREFIX}{uuid.uuid4()}",
        tags=[f"user:{user}"],
        meta={"failureInjected": bool(options.get("fail"))},
    )
    jobs_by_user.setdefault(user, []).append(job.id)
    task = asyncio.ensure_future(run_pipeline(job, fail=bool(options.get("fail")), speed=speed))
    running.add(task)
    task.add_done_callback(running.discard)
    return {"jobId": job.id, "token": browser_token(user), "expiresIn": BROWSER_TOKEN_TTL, "src": ws_url(), "api": PT_BROWSER_URL}


@app.get("/api/jobs")
async def list_jobs(request: Request) -> Dict[str, Any]:
    return {"jobs": jobs_by_user.get(current_user(request), [])}


@app.get("/api/token")
async def token(request: Request) -> Dict[str, Any]:
    return {"token": browser_token(current_user(request)), "expiresIn": BROWSER_TOKEN_TTL}


@app.get("/healthz")
async def healthz() -> Dict[str, Any]:
    return {"status": "ok", "running": len(running)}


@app.get("/static/progress-tracker.js")
async def bundle() -> Response:
    if not BUNDLE.exists():
        return Response("build the widget first: npm run build:widget", status_code=404)
    return FileResponse(BUNDLE, media_type="text/javascript")


def ws_url() -> str:
    return re.sub(r"^http", "ws", PT_BROWSER_URL) + "/v1/ws"


# ---- the pipeline ---------------------------------------------------------------------------


async def run_pipeline(job: AsyncJobHandle, *, fail: bool, speed: float) -> None:
    """Runs the five stages; with ``fail``, the implementation stage fails part-way with a
    retryable error and the run resumes from it when the user presses Retry. Stops when the
    user presses Cancel."""
    failure_pending = fail
    index = 0
    try:
        while index < len(STAGES):
            stage = STAGES[index]
            fail_at = random.uniform(0.35, 0.65) if failure_pending and stage[0] == FAILING_STAGE else None
            outcome = await run_stage(job, stage, speed, fail_at)
            if outcome == "canceled":
                await job.cancel(message="Canceled")
                return
            if outcome == "done":
                index += 1
                continue
            failure_pending = False
            await job.fail_step(
                {"code": "model_timeout", "message": f"The code model did not answer in time while {outcome.lower()}. Retrying usually helps."},
                retryable=True,
            )
            control = await job.wait_for_retry(timeout=15 * 60)
            if control is None:
                return  # nobody retried: leave the job failed
            index = next((i for i, s in enumerate(STAGES) if s[0] == control.step), index)
        await job.complete(message="Generation finished", result={"files": random.randint(5, 12), "summary": "Generated, checked and published."})
    except ProducerError as err:
        if err.code != "aborted":
            print(f"[pipeline] job {job.id}: {err.code}: {err}")


async def run_stage(job: AsyncJobHandle, stage: Tuple[str, str, int, Tuple[float, float], List[str]], speed: float, fail_at: Optional[float]) -> str:
    """One stage: its tasks take random shares of the work and of the time, like a real
    pipeline's. Returns 'done', 'canceled', or the task it was on when it reached ``fail_at``."""
    sid, _, _, seconds, tasks = stage
    total = random.uniform(*seconds) / speed
    work, time_share = shares(len(tasks)), shares(len(tasks))
    await job.start_step(sid, message=tasks[0])
    done = 0.0
    for i, task in enumerate(tasks):
        ticks = max(1, int(time_share[i] * total / 0.25))
        for tick in range(1, ticks + 1):
            if job.cancelled:
                return "canceled"
            await asyncio.sleep(time_share[i] * total / ticks)
            value = min(1.0, done + work[i] * tick / ticks)
            if fail_at is not None and value >= fail_at:
                return task
            await job.progress(round(value, 4), message=task)
        done += work[i]
    await job.end_step(sid)
    return "done"


def shares(n: int) -> List[float]:
    raw = [random.uniform(0.5, 1.5) for _ in range(n)]
    return [r / sum(raw) for r in raw]


# ---- the page -------------------------------------------------------------------------------


@app.get("/", response_class=HTMLResponse)
async def page(request: Request) -> HTMLResponse:
    user = current_user(request)
    steps = json.dumps([{"id": s[0], "label": s[1]} for s in STAGES])
    body = PAGE.replace("{{WIDGET_URL}}", html.escape(WIDGET_URL)).replace("{{USER}}", html.escape(user)).replace("{{STEPS}}", html.escape(steps)).replace("{{SRC}}", html.escape(ws_url()))
    response = HTMLResponse(body)
    if "uid" not in request.cookies and not request.headers.get("x-user"):
        response.set_cookie("uid", f"u{uuid.uuid4().hex[:8]}", httponly=True, samesite="lax")
    return response


PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Generations — progress-tracker + FastAPI</title>
  <script type="module" src="{{WIDGET_URL}}"></script>
  <style>
    body { font: 16px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; }
    progress-tracker { display: block; margin: 1rem 0; }
    form { display: flex; gap: 1rem; align-items: center; }
  </style>
</head>
<body>
  <h1>Generations</h1>
  <p>Signed in as <strong>{{USER}}</strong>. Each generation runs five stages in this FastAPI app;
  the page follows them live, and Retry and Cancel reach the Python code that runs them.</p>
  <form id="start">
    <button type="submit">Start a generation</button>
    <label><input type="checkbox" name="fail"> inject a failure</label>
  </form>
  <div id="jobs" data-steps="{{STEPS}}" data-src="{{SRC}}"></div>
  <script type="module">
    const jobs = document.getElementById('jobs');
    const steps = JSON.parse(jobs.dataset.steps);
    let token = null;
    async function freshToken() {
      const res = await fetch('/api/token', { cache: 'no-store' });
      token = (await res.json()).token;
      return token;
    }
    function show(jobId, src) {
      const el = document.createElement('progress-tracker');
      el.setAttribute('job', jobId);
      el.setAttribute('src', src);
      el.setAttribute('label', 'Generation ' + jobId.slice(4, 12));
      el.steps = steps;
      el.tokenProvider = () => freshToken();   // one token per user: grant tag:user:<id>
      el.innerHTML = '<p>Done: your files are ready.</p>';
      jobs.prepend(el);
    }
    document.getElementById('start').addEventListener('submit', async (event) => {
      event.preventDefault();
      const fail = event.target.elements.fail.checked;
      const res = await fetch('/api/jobs', {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ fail }),
      });
      const started = await res.json();
      token = started.token;
      show(started.jobId, started.src);
    });
    const known = await (await fetch('/api/jobs')).json();
    for (const id of known.jobs) show(id, jobs.dataset.src);
  </script>
</body>
</html>
"""
