"""The agent: a loop of model calls and tool calls, run as a durable task.

>>> from throwaway.agent import Agent
>>> agent = Agent(model="anthropic:claude-sonnet-5-5")
>>> result = agent.run("Make me a picture of the number 42")
>>> result.answer, result.artifacts
"""

from .agent import Agent, Mount, TaskResult
from .models import (
    ModelNotConfigured,
    ScriptedModel,
    ScriptExhausted,
    call,
    register_model,
    resolve_model,
)

__all__ = [
    "Agent",
    "ModelNotConfigured",
    "Mount",
    "ScriptExhausted",
    "ScriptedModel",
    "TaskResult",
    "call",
    "register_model",
    "resolve_model",
]
