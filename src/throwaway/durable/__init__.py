"""Durable tasks: the agent loop as a DBOS workflow, the agents that run it, the tasks it leaves.

A task is a DBOS workflow whose id is the task id; each model call and each
tool call is a step whose checkpoint is plain JSON. File-system snapshots live
in a content-addressed `BlobStore`; checkpoints hold only their hashes.
"""

from .agent import Agent, load_app, new_task_id
from .backend import Backend, current, launch, shutdown
from .tasks import (
    TaskBusy,
    TaskInfo,
    TaskNotFound,
    checkpoints,
    get_task,
    list_tasks,
    resume,
)

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
