"""Durable tasks: the agent loop as a DBOS workflow, the agents that run it, the tasks it leaves.

A task is a DBOS workflow whose id is the task id; each model call and each
tool call is a step whose checkpoint is plain JSON. File-system snapshots live
in a content-addressed `BlobStore`; checkpoints hold only their hashes.

Its names load on first use (`throwaway tasks` needs the task records, not
the agent and pydantic-ai behind `Agent`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .agent import Agent, load_app, new_task_id
    from .backend import Backend, current, launch, shutdown
    from .tasks import TaskBusy, TaskInfo, TaskNotFound, checkpoints, get_task, list_tasks, resume

# name -> the module of this package that defines it
_HOME = {
    **dict.fromkeys(("Agent", "load_app", "new_task_id"), "agent"),
    **dict.fromkeys(("Backend", "current", "launch", "shutdown"), "backend"),
    **dict.fromkeys(("TaskBusy", "TaskInfo", "TaskNotFound", "checkpoints", "get_task", "list_tasks", "resume"),
                    "tasks"),
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


__all__ = [
    "Agent",
    "Backend",
    "TaskBusy",
    "TaskInfo",
    "TaskNotFound",
    "checkpoints",
    "current",
    "get_task",
    "launch",
    "list_tasks",
    "load_app",
    "new_task_id",
    "resume",
    "shutdown",
]
