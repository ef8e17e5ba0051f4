"""Submitting tasks to the queue that workers take them from, and following them.

Submitting starts no DBOS executor: a `DBOSClient` writes the task's row
(ENQUEUED, on the queue, under the pinned application version) and returns.
A worker (``throwaway worker``) on any machine that reaches the database runs
it. Following a task reads its row as `throwaway tasks` does (`records`),
without DBOS.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from . import backend
from .names import WORKFLOW_NAME

if TYPE_CHECKING:
    from throwaway.agent.task import TaskResult

_clients: dict[str, Any] = {}


def client(database_url: str | None = None) -> Any:
    """A DBOS client on the tasks' database (no executor: it never runs a task), made once per URL.

    For writes (submitting, cancelling): reads go through `records`. The
    database's tables are created first if it has none yet.
    """
    from dbos import DBOSClient

    from .serialization import JsonSerializer

    folder, url = backend.configured()
    url = database_url or url
    if url not in _clients:
        if url.startswith("sqlite"):
            folder.mkdir(parents=True, exist_ok=True)
            made = DBOSClient(system_database_engine=backend.sqlite_engine(url), serializer=JsonSerializer(),
                              application_name=backend.APP_NAME)
        else:
            # Lazy: the database may not exist yet; the migrations below create it.
            made = DBOSClient(system_database_url=url, serializer=JsonSerializer(),
                              application_name=backend.APP_NAME, lazy=True)
        made._sys_db.run_migrations()  # a client never migrates by itself; a fresh database needs the tables
        _clients[url] = made
    return _clients[url]


class TaskHandle:
    """A submitted task: its id, where it stands, and its result once a worker has run it."""

    def __init__(self, task_id: str, database_url: str | None = None) -> None:
        self.task_id = task_id
        self._database_url = database_url

    def __repr__(self) -> str:
        return f"<TaskHandle {self.task_id}>"

    def status(self) -> str:
        """queued, running, interrupted, done, max_steps, failed or cancelled (see `TaskInfo`)."""
        from .tasks import get_task

        return get_task(self.task_id).status

    def result(self, timeout: float | None = None, poll: float = 0.2) -> TaskResult:
        """Wait for the task to end and return its result; TimeoutError after `timeout` seconds.

        A task that failed or was cancelled raises `TaskFailed` with its error.
        """
        from throwaway.agent.task import TaskResult

        from .tasks import TaskFailed, get_task

        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            task = get_task(self.task_id)
            if task.status in ("done", "max_steps") and task.output:
                return TaskResult.from_dict(task.output)
            if task.status in ("failed", "cancelled"):
                raise TaskFailed(f"task {self.task_id} {task.status}: {task.error or 'no error recorded'}")
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"task {self.task_id} is still {task.status} after {timeout:g} s")
            time.sleep(poll)


def submit(spec: dict[str, Any], *, task_id: str, queue: str | None = None,
           database_url: str | None = None) -> TaskHandle:
    """Enqueue a task (its spec, as `Agent.task_spec` makes it) under `task_id`; return at once."""
    from .workers import QUEUE

    client(database_url).enqueue(
        {
            "queue_name": queue or QUEUE,
            "workflow_name": WORKFLOW_NAME,
            "workflow_id": task_id,
            "app_version": backend.APPLICATION_VERSION,
            "workflow_id_reuse_policy": "reject",
        },
        spec,
    )
    return TaskHandle(task_id, database_url)
