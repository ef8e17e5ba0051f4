"""The agent: the loop of model calls and tool calls, its tools, prompts and models.

`loop.run_loop` is the seed's loop; `throwaway.durable` runs it as a durable
task (`throwaway.Agent`), `loop.run_local` runs it here with no database.
"""

from .loop import LocalSteps, Steps, run_local, run_loop
from .models import ModelNotConfigured, register_model, resolve_model
from .task import Task, TaskResult

__all__ = [
    "LocalSteps",
    "ModelNotConfigured",
    "Steps",
    "Task",
    "TaskResult",
    "register_model",
    "resolve_model",
    "run_local",
    "run_loop",
]
