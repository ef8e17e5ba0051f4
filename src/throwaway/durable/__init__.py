"""Durable tasks: DBOS workflows and steps, the blob store, the data folder.

A task is a DBOS workflow whose id is the task id; each model call and each
tool call is a step whose checkpoint is plain JSON. File-system snapshots live
in a content-addressed `BlobStore`; checkpoints hold only their hashes.
"""

from .blobs import BlobStore
from .runtime import Runtime, current, launch, shutdown
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
    "BlobStore",
    "Runtime",
    "TaskBusy",
    "TaskInfo",
    "TaskNotFound",
    "checkpoints",
    "current",
    "get_task",
    "launch",
    "list_tasks",
    "resume",
    "shutdown",
]
