"""Helpers for tests of agents: a scripted model that plays turns you write.

>>> from throwaway.testing import ScriptedModel, tool_call
>>> model = ScriptedModel([tool_call("execute_python", code="6 * 7"), "It is 42."])

Register it under a name (`throwaway.agent.models.register_model`) to run it
from the command line or to resume its tasks in another process.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic_ai.messages import (
    BinaryContent,
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

from throwaway.agent.models import register_model

__all__ = ["ScriptExhausted", "ScriptedModel", "ToolCall", "register_model", "tool_call"]


@dataclass
class ToolCall:
    """A tool call in a script: see `tool_call`."""

    tool: str
    args: dict[str, Any] = field(default_factory=dict)


def tool_call(tool: str, /, **args: Any) -> ToolCall:
    """A scripted turn that calls `tool` with `args`, e.g. ``tool_call("execute_python", code="1+1")``."""
    return ToolCall(tool, args)


Turn = str | ToolCall | ModelResponse | Sequence[str | ToolCall] | Callable[..., Any]
"""One scripted turn: text (the final answer), a `ToolCall`, several of those, a
`ModelResponse`, or a function of ``(messages, info)`` returning one of those."""


class ScriptExhausted(AssertionError):
    """The scripted model was asked for a turn its script does not have."""


class ScriptedModel(FunctionModel):
    """A model that plays a script, for tests and benchmarks.

    >>> model = ScriptedModel([
    ...     tool_call("execute_python", code="print(open('/network/current-ip').read())"),
    ...     "Your IP is shown above.",
    ... ])

    `script` is a list of turns (see `Turn`) or one function of ``(messages,
    info)`` that returns a turn. Turn *n* answers the request that follows *n*
    earlier model responses, so a task resumed in a fresh process gets the
    same turn it would have got had it never stopped. A request past the end
    of the script raises `ScriptExhausted`.

    `describe` answers requests made without tools (the `describe` tool's): a
    string, or a function of ``(question, file: BinaryContent)`` returning one.
    """

    def __init__(
        self,
        script: Sequence[Turn] | Callable[[list[ModelMessage], AgentInfo], Any],
        *,
        describe: str | Callable[[str, BinaryContent], str] | None = None,
        name: str = "scripted",
    ) -> None:
        self.script = script
        self.describe = describe
        super().__init__(self._respond, model_name=name)

    # Async so pydantic-ai calls it inline rather than in a worker thread.
    async def _respond(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if not info.function_tools:
            return self._describe(messages)
        turn_index = sum(isinstance(m, ModelResponse) for m in messages)
        if callable(self.script):
            turn = self.script(messages, info)
        elif turn_index < len(self.script):
            turn = self.script[turn_index]
            if callable(turn) and not isinstance(turn, (ModelResponse, ToolCall)):
                turn = turn(messages, info)
        else:
            raise ScriptExhausted(
                f"the scripted model has {len(self.script)} turn(s) but was asked for turn {turn_index + 1}; "
                f"the last message was: {_last_request_text(messages)!r}"
            )
        return _response(turn, turn_index)

    def _describe(self, messages: list[ModelMessage]) -> ModelResponse:
        if self.describe is None:
            raise ScriptExhausted("the scripted model was asked to describe a file but has no `describe` answer")
        if isinstance(self.describe, str):
            return ModelResponse(parts=[TextPart(self.describe)])
        question, file = "", None
        for part in _last_request(messages).parts if _last_request(messages) else []:
            if isinstance(part, UserPromptPart):
                for item in [part.content] if isinstance(part.content, str) else part.content:
                    if isinstance(item, str):
                        question = item
                    elif isinstance(item, BinaryContent):
                        file = item
        return ModelResponse(parts=[TextPart(self.describe(question, file))])


def _response(turn: Any, turn_index: int) -> ModelResponse:
    if isinstance(turn, ModelResponse):
        return turn
    items = [turn] if isinstance(turn, (str, ToolCall)) else list(turn)
    parts: list[Any] = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            parts.append(TextPart(item))
        elif isinstance(item, ToolCall):
            # Deterministic ids: a resumed task must see the conversation it had.
            parts.append(ToolCallPart(item.tool, dict(item.args), tool_call_id=f"call_{turn_index + 1}_{i + 1}"))
        else:
            raise TypeError(f"a scripted turn holds text or tool_call(...), not {item!r}")
    has_calls = any(isinstance(p, ToolCallPart) for p in parts)
    return ModelResponse(parts=parts, finish_reason="tool_call" if has_calls else "stop")


def _last_request(messages: list[ModelMessage]) -> ModelRequest | None:
    for message in reversed(messages):
        if isinstance(message, ModelRequest):
            return message
    return None


def _last_request_text(messages: list[ModelMessage]) -> str:
    request = _last_request(messages)
    if request is None:
        return ""
    texts = []
    for part in request.parts:
        content = getattr(part, "content", "")
        texts.append(content if isinstance(content, str) else repr(content))
    return " | ".join(texts)[:300]
