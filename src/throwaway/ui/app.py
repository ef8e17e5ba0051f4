"""The web view's routes: the tasks, a task's steps (live while it runs), its files at any step, and actions.

Pages are rendered on the server from the durable record (the DBOS system
database and the blob store of snapshots); the only script is static/app.js,
which follows a running task's steps over server-sent events and refreshes
the task list while tasks run.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from throwaway.agent import events
from throwaway.durable import Agent, TaskInfo, TaskNotFound, backend, checkpoints, get_task, list_tasks
from throwaway.fs import MountSpec

from . import render, timeline
from .actions import Actions
from .files import Snapshots, content_disposition
from .security import FILE_POLICY, Guard, new_token, same

STATIC = Path(__file__).parent / "static"
LIVE = ("running", "queued")
RESUMABLE = ("interrupted", "cancelled", "failed")
STATUSES = ["done", "running", "queued", "interrupted", "failed", "cancelled", "max_steps"]
_TASK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,199}")
POLL_SECONDS = 0.5


class UI:
    """The state one server's pages share: the backend, the snapshots, the actions, the tokens."""

    def __init__(self, actions: Actions, token: str | None, csrf: str) -> None:
        self.backend = backend.current()
        self.snapshots = Snapshots(self.backend.blobs)
        self.actions = actions
        self.token = token
        self.csrf = csrf
        self.env = render.environment()
        self.pygments_css = render.pygments_css()

    def page(self, template: str, code: int = 200, **context: Any) -> HTMLResponse:
        html = self.env.get_template(template).render(csrf=self.csrf, **context)
        return HTMLResponse(html, status_code=code, headers={"cache-control": "no-store"})

    # --- reading tasks ------------------------------------------------------------

    def task(self, task_id: str) -> TaskInfo:
        if not _TASK_ID.fullmatch(task_id):
            raise HTTPException(404, f"no task {task_id!r}")
        try:
            return get_task(task_id)
        except TaskNotFound as e:
            raise HTTPException(404, str(e.args[0]) if e.args else "no such task") from None

    def written(self, task_id: str, step: int, run: timeline.ToolRun) -> list[dict[str, Any]]:
        """The files a tool call wrote, each with its link and whether it is an image to show inline."""
        out = []
        tree = {}
        if run.snapshot:
            try:
                tree = {e.path: e for e in self.snapshots.tree(run.snapshot) if e.kind == "f"}
            except KeyError:
                tree = {}
        for path in run.files:
            entry = tree.get(path)
            out.append({
                "path": path,
                "url": f"/tasks/{render.urlpart(task_id)}/files/{step}/raw/{entry.url_path}" if entry else None,
                "image": bool(entry and self.snapshots.image_type(entry.sha)),
            })
        return out

    def gallery(self, task_id: str, line: timeline.Timeline) -> list[dict[str, Any]]:
        """The files in /output after the last step: the task's artifacts."""
        digest = line.last_snapshot
        if not digest or not line.steps:
            return []
        try:
            entries = self.snapshots.tree(digest)
        except KeyError:
            return []
        step = line.steps[-1].number
        return [{"path": e.path,
                 "url": f"/tasks/{render.urlpart(task_id)}/files/{step}/raw/{e.url_path}",
                 "image": bool(self.snapshots.image_type(e.sha))}
                for e in entries if e.kind == "f" and e.path.startswith("/output/")]

    def step_html(self, task: TaskInfo, step: timeline.Step) -> str:
        return self.env.get_template("_step.html").render(
            csrf=self.csrf, task=task, step=step, written=self.written, can_fork=task.status not in LIVE)

    def live(self, task: TaskInfo) -> bool:
        """Whether the task's page should follow it: it runs, or this server is bringing it back."""
        return task.status in LIVE or (task.status in RESUMABLE and self.actions.active(task.task_id))


def _duration(task: TaskInfo) -> float | None:
    if not task.created_at:
        return None
    end = datetime.now() if task.status in LIVE else task.updated_at
    return (end - task.created_at).total_seconds() if end else None


# --- pages ----------------------------------------------------------------------


def tasks_page(request: Request) -> Response:
    ui: UI = request.app.state.ui
    status = request.query_params.get("status") or ""
    try:
        limit = min(max(int(request.query_params.get("limit", "200")), 1), 10_000)
    except ValueError:
        limit = 200
    found = [t for t in list_tasks(limit) if not status or t.status == status]
    rows = [{"task": t, "steps": (t.output or {}).get("steps", ""), "duration": _duration(t)} for t in found]
    live = any(t.status in LIVE for t in found)
    if request.query_params.get("partial") == "rows":
        response = ui.page("_rows.html", rows=rows)
        response.headers["x-live"] = "1" if live else "0"
        return response
    return ui.page("tasks.html", rows=rows, status=status, statuses=STATUSES, limit=limit, live=live)


def task_page(request: Request) -> Response:
    ui: UI = request.app.state.ui
    task_id = request.path_params["task_id"]
    try:
        task = ui.task(task_id)
    except HTTPException:
        # A task this server is starting may not be in the database yet.
        actions = ui.actions.for_task(task_id) if _TASK_ID.fullmatch(task_id) else []
        if actions:
            return ui.page("starting.html", task_id=task_id, actions=actions)
        raise
    line = timeline.build(checkpoints(task.task_id))
    return ui.page("task.html", task=task, line=line, steps=[ui.step_html(task, s) for s in line.steps],
                   gallery=ui.gallery(task.task_id, line), actions=ui.actions.for_task(task.task_id),
                   live=ui.live(task), duration=_duration(task), resumable=task.status in RESUMABLE, cancellable=task.status in LIVE)


async def task_events(request: Request) -> Response:
    """Server-sent events for a task page: each step as it changes, a running cell's output, the status, the end.

    Steps come from the checkpoints, polled, so a task run by any process
    shows up; a cell's output as it is printed comes only from tasks this
    server's process runs (their events are in memory, not in the database).
    """
    ui: UI = request.app.state.ui
    task = await anyio.to_thread.run_sync(ui.task, request.path_params["task_id"])
    try:
        seen = int(request.query_params.get("seen", "0"))
    except ValueError:
        seen = 0
    status = request.query_params.get("status", "")

    async def stream() -> AsyncIterator[str]:
        nonlocal seen, status
        loop = asyncio.get_running_loop()
        printed: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1000)

        def on_event(event: dict[str, Any]) -> None:
            if event.get("type") == "output":
                loop.call_soon_threadsafe(_offer, printed, event)

        last_sent = time.monotonic()
        deadline = time.monotonic() + 6 * 3600
        with events.listen(task.task_id, on_event):
            while time.monotonic() < deadline:
                current = await anyio.to_thread.run_sync(get_task, task.task_id)
                cps = await anyio.to_thread.run_sync(checkpoints, task.task_id)
                if len(cps) != seen:
                    line = timeline.build(cps)
                    first_new = cps[seen]["id"] if seen < len(cps) else 0
                    for step in line.steps:
                        if step.checkpoint_id >= first_new or step is line.steps[-1]:
                            html = await anyio.to_thread.run_sync(ui.step_html, current, step)
                            yield _event("step", {"number": step.number, "html": html})
                    seen = len(cps)
                    last_sent = time.monotonic()
                if current.status != status:
                    status = current.status
                    yield _event("status", {"status": status})
                    last_sent = time.monotonic()
                if not ui.live(current):
                    yield _event("end", {"status": status})
                    return
                if time.monotonic() - last_sent > 15:
                    yield ": keep-alive\n\n"
                    last_sent = time.monotonic()
                # Wait for the next poll, passing on what running cells print meanwhile.
                until = time.monotonic() + POLL_SECONDS
                while (left := until - time.monotonic()) > 0:
                    try:
                        event = await asyncio.wait_for(printed.get(), timeout=left)
                    except asyncio.TimeoutError:
                        break
                    yield _event("output", {"step": event.get("step"), "stream": event.get("stream"),
                                            "text": str(event.get("text", ""))})
                    last_sent = time.monotonic()

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"cache-control": "no-store", "x-accel-buffering": "no"})


def _offer(queue: asyncio.Queue[dict[str, Any]], event: dict[str, Any]) -> None:
    # A page that cannot keep up loses live output, never the task's: the checkpoint has it all.
    if not queue.full():
        queue.put_nowait(event)


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


def _step_param(request: Request, snapshots: dict[int, str]) -> int:
    raw = request.path_params.get("step", request.query_params.get("step"))
    if raw is None:
        return max(snapshots, default=0)
    try:
        return int(raw)
    except ValueError:
        raise HTTPException(404, "the step is a number") from None


def _snapshot_of(request: Request) -> tuple[TaskInfo, int, str | None, dict[int, str]]:
    """The task, the step asked for, the snapshot after that step (if any), and every step's snapshot."""
    ui: UI = request.app.state.ui
    task = ui.task(request.path_params["task_id"])
    snapshots = timeline.snapshots_by_step(checkpoints(task.task_id))
    step = _step_param(request, snapshots)
    return task, step, timeline.snapshot_after(snapshots, step), snapshots


def files_page(request: Request) -> Response:
    ui: UI = request.app.state.ui
    task, step, digest, snapshots = _snapshot_of(request)
    entries = []
    if digest:
        try:
            entries = ui.snapshots.tree(digest)
        except KeyError:
            raise HTTPException(404, f"the snapshot of step {step} is missing from the blob store") from None
    return ui.page("files.html", task=task, step=step, steps=sorted(snapshots), entries=entries, digest=digest)


def _existing_snapshot(request: Request) -> tuple[TaskInfo, int, str]:
    task, step, digest, _ = _snapshot_of(request)
    if not digest:
        raise HTTPException(404, f"task {task.task_id} has no files at step {step}")
    return task, step, digest


def raw_file(request: Request) -> Response:
    """One file of a snapshot: raster images inline, everything else as a download."""
    ui: UI = request.app.state.ui
    _task, _step, digest = _existing_snapshot(request)
    path = "/" + request.path_params["path"]
    try:
        entry, data = ui.snapshots.file(digest, path)
    except (KeyError, ValueError):
        raise HTTPException(404, f"no file {path} in this snapshot") from None
    image = ui.snapshots.image_type(entry.sha)
    inline = image is not None and request.query_params.get("download") is None
    return Response(data, media_type=image if inline else "application/octet-stream", headers={
        "content-disposition": content_disposition("inline" if inline else "attachment", entry.name),
        "content-security-policy": FILE_POLICY,
        "cache-control": "private, max-age=3600",
    })


def zip_file(request: Request) -> Response:
    ui: UI = request.app.state.ui
    task, step, digest = _existing_snapshot(request)
    try:
        data = ui.snapshots.zip(digest)
    except KeyError:
        raise HTTPException(404, "this snapshot is missing from the blob store") from None
    return Response(data, media_type="application/zip", headers={
        "content-disposition": content_disposition("attachment", f"{task.task_id}-step{step}.zip"),
        "content-security-policy": FILE_POLICY})


# --- actions --------------------------------------------------------------------


async def _form(request: Request) -> Any:
    """The POSTed form, after checking its CSRF token and, when the browser says, its origin."""
    ui: UI = request.app.state.ui
    form = await request.form()
    origin = request.headers.get("origin")
    if origin and origin != "null" and origin.split("://", 1)[-1] != request.headers.get("host"):
        raise HTTPException(403, "This form was sent from another site.")
    if not same(form.get("csrf") if isinstance(form.get("csrf"), str) else None, ui.csrf):
        raise HTTPException(403, "This form has a missing or stale CSRF token: reload the page and try again.")
    return form


async def task_action(request: Request) -> Response:
    ui: UI = request.app.state.ui
    kind = request.path_params["action"]
    if kind not in ("resume", "cancel", "fork"):
        raise HTTPException(404, f"no action {kind!r}: a task can be resumed, cancelled or forked")
    form = await _form(request)
    task = await anyio.to_thread.run_sync(ui.task, request.path_params["task_id"])
    step, checkpoint_id = None, None
    if kind == "fork":
        line = timeline.build(await anyio.to_thread.run_sync(checkpoints, task.task_id))
        try:
            step = int(str(form.get("step")))
        except ValueError:
            raise HTTPException(400, "fork needs the step to start again from") from None
        found = next((s for s in line.steps if s.number == step), None)
        if found is None:
            raise HTTPException(404, f"task {task.task_id} has no step {step}")
        checkpoint_id = found.checkpoint_id
    if form.get("confirm") != "yes":
        return ui.page("confirm.html", task=task, kind=kind, step=step)
    if kind == "resume":
        action = ui.actions.resume(task)
    elif kind == "cancel":
        action = await anyio.to_thread.run_sync(ui.actions.cancel, task)
    else:
        action = await anyio.to_thread.run_sync(ui.actions.fork, task, checkpoint_id, step)
    target = action.new_task_id or task.task_id
    return RedirectResponse(f"/tasks/{render.urlpart(target)}", status_code=303)


def new_page(request: Request) -> Response:
    ui: UI = request.app.state.ui
    return ui.page("new.html", mounts=ui.actions.mounts, prompt="", model="", chosen=[])


async def start_task(request: Request) -> Response:
    ui: UI = request.app.state.ui
    form = await _form(request)
    prompt = str(form.get("prompt") or "").strip()
    model = str(form.get("model") or "").strip()
    try:
        chosen = sorted({int(str(m)) for m in form.getlist("mount")})
    except ValueError:
        raise HTTPException(400, "mounts are chosen from the list") from None
    if any(not 0 <= i < len(ui.actions.mounts) for i in chosen):
        raise HTTPException(400, "only the folders the server was started with may be mounted")
    if not prompt:
        return ui.page("new.html", code=400, mounts=ui.actions.mounts, prompt=prompt, model=model, chosen=chosen,
                       problem="Say what the task is.")
    if form.get("confirm") != "yes":
        return ui.page("confirm_start.html", prompt=prompt, model=model, chosen=chosen, mounts=ui.actions.mounts)
    action = ui.actions.start(prompt, model or None, chosen)
    return RedirectResponse(f"/tasks/{render.urlpart(action.task_id)}", status_code=303)


def pygments_css(request: Request) -> Response:
    return Response(request.app.state.ui.pygments_css, media_type="text/css",
                    headers={"cache-control": "max-age=3600"})


async def not_found(request: Request, exc: Exception) -> Response:
    ui: UI = request.app.state.ui
    code = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else "Something went wrong."
    if request.url.path.endswith("/events"):
        return PlainTextResponse(str(detail), status_code=code)
    return ui.page("error.html", code=code, detail=detail)


def create_app(*, agent: Agent | None = None, mounts: Sequence[MountSpec | str] = (),
               output_dir: str | Path = "output", token: str | None = None) -> Starlette:
    """The web view as an ASGI app, on the launched durable backend (`throwaway.durable.backend.launch`).

    `agent` starts tasks from the page (default: a plain `Agent()` with the
    configured model); `mounts` are the host folders a started task may
    mount; `token`, when given, is required of every request (use it for any
    address but loopback); without it only loopback Host names are answered.
    """
    specs = [m if isinstance(m, MountSpec) else MountSpec.parse(m) for m in mounts]
    ui = UI(Actions(agent, specs, output_dir), token=token, csrf=new_token())
    routes = [
        Route("/", tasks_page),
        Route("/new", new_page, methods=["GET"]),
        Route("/new", start_task, methods=["POST"]),
        Route("/tasks/{task_id}", task_page),
        Route("/tasks/{task_id}/events", task_events),
        Route("/tasks/{task_id}/files", files_page),
        Route("/tasks/{task_id}/files/{step}/raw/{path:path}", raw_file),
        Route("/tasks/{task_id}/files/{step}/zip", zip_file),
        Route("/tasks/{task_id}/{action:str}", task_action, methods=["POST"]),
        Route("/pygments.css", pygments_css),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(Guard, token=token)],
                    exception_handlers={HTTPException: not_found, 404: not_found})
    app.state.ui = ui
    return app
