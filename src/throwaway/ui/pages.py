"""The pages: the tasks, a task's steps, its files at a step, one file, the whole tree as a zip."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from throwaway.durable import TaskInfo, checkpoints, list_tasks

from . import timeline
from .files import content_disposition
from .security import FILE_POLICY
from .state import LIVE, RESUMABLE, STATUSES, TASK_ID, UI, duration


def tasks_page(request: Request) -> Response:
    ui: UI = request.app.state.ui
    status = request.query_params.get("status") or ""
    try:
        limit = min(max(int(request.query_params.get("limit", "200")), 1), 10_000)
    except ValueError:
        limit = 200
    found = [t for t in list_tasks(limit) if not status or t.status == status]
    rows = [{"task": t, "steps": (t.output or {}).get("steps", ""), "duration": duration(t)} for t in found]
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
        actions = ui.actions.for_task(task_id) if TASK_ID.fullmatch(task_id) else []
        if actions:
            return ui.page("starting.html", task_id=task_id, actions=actions)
        raise
    line = timeline.build(checkpoints(task.task_id))
    return ui.page("task.html", task=task, line=line, steps=[ui.step_html(task, s) for s in line.steps],
                   gallery=ui.gallery(task.task_id, line), actions=ui.actions.for_task(task.task_id),
                   live=ui.live(task), duration=duration(task), resumable=task.status in RESUMABLE,
                   cancellable=task.status in LIVE)


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
