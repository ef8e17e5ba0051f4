"""The agent: the loop of model calls and tool calls, its tools, prompts and models.

`loop.run_loop` is the seed's loop; `throwaway.durable` runs it as a durable
task (`throwaway.Agent`), `loop.run_local` runs it here with no database.

Its names load on first use: a module that needs only `events` does not load
the loop and pydantic-ai.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .loop import LocalSteps, Steps, run_local, run_loop
    from .models import ModelNotConfigured, register_model, resolve_model
    from .task import Task, TaskResult

# name -> the module of this package that defines it
_HOME = {
    **dict.fromkeys(("LocalSteps", "Steps", "run_local", "run_loop"), "loop"),
    **dict.fromkeys(("ModelNotConfigured", "register_model", "resolve_model"), "models"),
    **dict.fromkeys(("Task", "TaskResult"), "task"),
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


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
