"""The web view as an ASGI app: its routes, and what guards them.

Pages are rendered on the server from the durable record (the DBOS system
database and the blob store of snapshots); the only script is static/app.js,
which follows a running task's steps over server-sent events and refreshes
the task list while tasks run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from throwaway.durable import Agent
from throwaway.fs import MountSpec

from .actions import Actions
from .forms import new_page, start_task, task_action
from .live import task_events
from .pages import files_page, not_found, pygments_css, raw_file, task_page, tasks_page, zip_file
from .security import Guard, new_token
from .state import UI

STATIC = Path(__file__).parent / "static"


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
