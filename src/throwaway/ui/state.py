"""What one server's pages share: the backend, the snapshot reader, the actions, the tokens, the templates."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse

from throwaway.durable import TaskInfo, TaskNotFound, backend, get_task

from . import render, timeline
from .actions import Actions
from .files import Snapshots

LIVE = ("running", "queued")
RESUMABLE = ("interrupted", "cancelled", "failed")
STATUSES = ["done", "running", "queued", "interrupted", "failed", "cancelled", "max_steps"]
TASK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,199}")


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
        if not TASK_ID.fullmatch(task_id):
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


def duration(task: TaskInfo) -> float | None:
    if not task.created_at:
        return None
    end = datetime.now() if task.status in LIVE else task.updated_at
    return (end - task.created_at).total_seconds() if end else None
