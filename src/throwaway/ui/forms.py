"""The forms that act on tasks: each POST checks the CSRF token, then asks to confirm, then acts."""

from __future__ import annotations

from typing import Any

import anyio
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from throwaway.durable import checkpoints

from . import render, timeline
from .security import same
from .state import UI


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
