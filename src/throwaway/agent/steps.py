"""The bodies of the loop's steps: a model call, a tool call, collecting the output.

Each takes plain data and returns plain JSON, so the durable layer can
checkpoint what it returns as it is and replay it later.
"""

from __future__ import annotations

import os
import time
from typing import Any

from pydantic_ai.messages import ModelMessage, ModelMessagesTypeAdapter, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.settings import ModelSettings

from . import textcalls
from .task import Task
from .tools import TOOL_DEFINITIONS, TOOL_NAMES, ToolContext, ToolResult, run_tool
from .workspace import Workspace

PARAMETERS = ModelRequestParameters(function_tools=TOOL_DEFINITIONS, allow_text_output=True)


def call_model(
    model: Model,
    messages: list[ModelMessage],
    settings: ModelSettings | None = None,
    *,
    text_tool_calls: bool = False,
    step: int = 0,
) -> dict[str, Any]:
    """Ask `model` for the next turn, offering the tools: its response as plain JSON, and why it stopped.

    `settings` bound the call (``max_tokens``, ``request_timeout``). With
    `text_tool_calls`, tool calls the model wrote as text become real ones
    here, in the step, so the checkpoint holds them and a resumed task replays
    the same calls; ``text_calls`` then records what was parsed (see
    `textcalls.convert_response`). ``usage`` and ``seconds`` say what the
    call cost.
    """
    from pydantic_ai.direct import model_request_sync
    from pydantic_ai.exceptions import ModelRequestTimeout

    started = time.monotonic()
    try:
        response = model_request_sync(model, messages, model_settings=settings, model_request_parameters=PARAMETERS)
    except ModelRequestTimeout as e:
        raise ModelTookTooLong(
            f"the model gave no complete reply within {e.timeout:g} s (a runaway reply, or a slow server); "
            "resume the task to ask again, or allow more time (--model-timeout, Agent(model_timeout=...))"
        ) from e
    seconds = round(time.monotonic() - started, 3)
    text_calls = None
    if text_tool_calls:
        response, text_calls = textcalls.convert_response(response, TOOL_NAMES, step)
    out = {
        "stop_reason": stop_reason(response),
        "response": ModelMessagesTypeAdapter.dump_python([response], mode="json")[0],
        "usage": {"input_tokens": response.usage.input_tokens, "output_tokens": response.usage.output_tokens},
        "seconds": seconds,
    }
    if text_calls:
        out["text_calls"] = text_calls
    return out


class ModelTookTooLong(RuntimeError):
    """A model call ran past its timeout; the step fails and the task can be resumed."""


def call_tool(task: Task, workspace: Workspace, step: int, call: dict[str, Any], snapshot: str | None) -> dict[str, Any]:
    """Run one tool call in the task's sandbox (restored to `snapshot` if fresh); snapshot the files after."""
    restored = False

    def sandbox() -> tuple[Any, bool]:
        nonlocal restored
        live, just_restored = workspace.get(snapshot)
        restored = restored or just_restored
        return live, just_restored

    def on_output(stream: str, text: str) -> None:
        task.emit({"type": "output", "step": step, "stream": stream, "text": text})

    context = ToolContext(
        sandbox=sandbox,
        model=task.describe_model,
        library=task.library,
        on_output=on_output,
        cell_timeout=task.cell_timeout,
        model_settings=task.model_settings(),
    )
    task.take_mcp_calls()  # none from before this step (a cell cut short, say) count as its own
    result = run_tool(call["tool"], call["args"], context)
    mcp_calls = task.take_mcp_calls()
    if result.changed_files:
        restarts = workspace.restarts
        snapshot = workspace.snapshot() or snapshot
        if workspace.restarts != restarts:
            result = _files_lost(result)
    return {
        "step": step,
        "tool": call["tool"],
        "args": call["args"],
        "call_id": call["call_id"],
        "ok": result.ok,
        "content": result.content,
        "files": result.files,
        "snapshot": snapshot,
        "restored": restored,
        # MCP calls the cell made: server, tool, arguments, result_bytes, seconds (and error).
        **mcp_calls,
    }


FILES_LOST = ("The sandbox's runtime died after the cell ran, while its files were being saved, and was replaced: "
              "files are as of the last checkpoint, so this cell's changes to them are lost, and variables are "
              "gone. Run the cell again if you need what it wrote.")


def _files_lost(result: ToolResult) -> ToolResult:
    """The cell's result, telling the model that what it wrote is gone (the runtime died before the snapshot)."""
    content = dict(result.content) if isinstance(result.content, dict) else {"output": result.content}
    content["success"] = False
    content.pop("files_written", None)
    if "error" not in content:
        content["error"] = {"type": "SandboxCrashed", "message": FILES_LOST, "traceback": ""}
    content["note"] = " ".join(filter(None, [content.get("note"), FILES_LOST]))
    return ToolResult(content, ok=False, changed_files=True, files=[])


def collect_output(workspace: Workspace, snapshot: str | None, output_dir: str) -> dict[str, Any]:
    """Copy the files the task left in /output to `output_dir`."""
    if snapshot is None and not workspace.started:
        return {"artifacts": []}
    live, _ = workspace.get(snapshot)
    os.makedirs(output_dir, exist_ok=True)
    return {"artifacts": [str(p) for p in live.collect_output(output_dir)]}


def stop_reason(response: ModelResponse) -> str:
    """Why the model stopped, in the words of the seed's printout (tool_use, end_turn, max_tokens, ...)."""
    if any(isinstance(p, ToolCallPart) for p in response.parts):
        return "tool_use"
    return {None: "end_turn", "stop": "end_turn", "length": "max_tokens", "content_filter": "refusal"}.get(
        response.finish_reason, str(response.finish_reason)
    )


def load_response(data: dict[str, Any]) -> ModelResponse:
    """A checkpointed response back as a pydantic-ai message."""
    message = ModelMessagesTypeAdapter.validate_python([data])[0]
    assert isinstance(message, ModelResponse)
    return message


def response_text(response: ModelResponse) -> str:
    return "".join(p.content for p in response.parts if isinstance(p, TextPart)).strip()


def tool_calls(response: ModelResponse) -> list[dict[str, Any]]:
    """The tool calls in a response, as plain JSON: tool, args, call_id."""
    calls = []
    for part in response.parts:
        if not isinstance(part, ToolCallPart):
            continue
        try:
            args = part.args_as_dict()
        except ValueError:
            # Malformed JSON from the model: the tool answers with what it needs.
            args = {"unparsed_arguments": str(part.args)}
        calls.append({"tool": part.tool_name, "args": args, "call_id": part.tool_call_id})
    return calls
