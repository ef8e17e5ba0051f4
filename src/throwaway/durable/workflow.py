"""A task as a DBOS workflow: the agent loop, with each model call and tool call a step.

The workflow's input is the task's spec (plain JSON: prompt, model name,
mounts, limits); its id is the task id. Each step returns plain JSON: the model
step the response, the tool step what the model sees plus the hash of the
file-system snapshot taken after it. On recovery DBOS replays finished steps
from their checkpoints, so the conversation is rebuilt without calling the
model again, and re-runs only the step that was interrupted; a tool step that
starts in a fresh sandbox first restores the snapshot it starts from.
"""

from __future__ import annotations

import os
from functools import cached_property
from typing import Any

from dbos import DBOS
from pydantic_ai.exceptions import (
    ModelConnectionError,
    ModelRateLimitError,
    ModelRequestTimeout,
    ModelServerError,
    ModelUnavailableError,
)
from pydantic_ai.messages import (
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models import Model, ModelRequestParameters

from throwaway.agent import events
from throwaway.agent.library import Library
from throwaway.agent.tools import TOOL_DEFINITIONS, ToolContext, run_tool

from . import runtime
from .locks import TaskLock
from .sessions import SandboxSession

WORKFLOW_NAME = "throwaway.task"
PREPARE_STEP = "throwaway.prepare"
MODEL_STEP = "throwaway.model"
TOOL_STEP = "throwaway.tool"
FINISH_STEP = "throwaway.finish"

PARAMETERS = ModelRequestParameters(function_tools=TOOL_DEFINITIONS, allow_text_output=True)

_TRANSIENT = (ModelConnectionError, ModelRateLimitError, ModelRequestTimeout, ModelServerError, ModelUnavailableError)


class TaskRun:
    """One execution of a task in this process: the non-durable half.

    Holds what cannot be checkpointed (the agent, the model client, the live
    sandbox, the task's lock) and is rebuilt from the spec on every execution,
    including a resumed one.
    """

    def __init__(self, task_id: str, spec: dict[str, Any]) -> None:
        from throwaway.agent.agent import agent_for

        self.task_id = task_id
        self.spec = spec
        self.runtime = runtime.current()
        self.agent = agent_for(spec)
        self.model = self.agent.model_for(spec)
        self._fs: Any = None
        self.session = SandboxSession(lambda: self.agent.sandbox(self.file_system()), self.runtime.blobs)
        self.lock = TaskLock(self.runtime.lock_path(task_id))
        # DBOS runs a step's body only when it has no checkpoint; the body sets
        # this, so the loop can tell a replayed step from one that ran.
        self.ran = False

    def file_system(self) -> Any:
        if self._fs is None:
            self._fs = self.agent.file_system(self.spec)
        return self._fs

    @cached_property
    def library(self) -> Library:
        return self.agent.library(self.spec)

    @cached_property
    def describe_model(self) -> Model:
        return self.agent.describe_model_for(self.spec)

    def took(self) -> bool:
        """Whether the step just called ran (rather than replayed its checkpoint)."""
        ran, self.ran = self.ran, False
        return ran

    def emit(self, event: dict[str, Any]) -> None:
        events.emit(self.task_id, event)
        events.emit("*", {**event, "task_id": self.task_id})

    def close(self) -> None:
        try:
            self.session.close()
        finally:
            self.lock.release()


@DBOS.workflow(name=WORKFLOW_NAME)
def task_workflow(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one task: model and tool steps until the model answers or the steps run out."""
    run = TaskRun(DBOS.workflow_id, spec)
    # Best effort: if another process holds the lock it is running this task
    # too, and DBOS's ownership check will stop whichever of us is stale.
    run.lock.acquire()
    try:
        return _loop(run)
    finally:
        run.close()


def _loop(run: TaskRun) -> dict[str, Any]:
    spec = run.spec
    prepared = prepare_step(run)
    run.emit({"type": "task", "task_id": run.task_id, "prompt": spec["prompt"],
              "model": spec.get("model") or run.model.model_name, "resumed": not run.took()})
    messages: list[ModelMessage] = [
        ModelRequest(parts=[UserPromptPart(spec["prompt"])], instructions=prepared["system_prompt"])
    ]
    snapshot: str | None = None
    answer, status, step = "", "max_steps", 0
    for step in range(1, spec["max_steps"] + 1):
        out = model_step(run, step, messages)
        replayed = not run.took()
        response = load_response(out["response"])
        messages.append(response)
        calls = [p for p in response.parts if isinstance(p, ToolCallPart)]
        text = response_text(response)
        run.emit({"type": "model", "step": step, "stop_reason": out["stop_reason"], "text": text,
                  "tool_calls": [_call(c) for c in calls], "replayed": replayed})
        if text:
            answer = text  # the final answer, or the latest words if the steps run out
        if not calls:
            status = "done"
            break
        returns = []
        for tool_call in calls:
            result = tool_step(run, step, _call(tool_call), snapshot)
            result_replayed = not run.took()
            snapshot = result["snapshot"]
            returns.append(ToolReturnPart(
                tool_name=result["tool"], content=result["content"], tool_call_id=result["call_id"],
                outcome="success" if result["ok"] or result["tool"] == "execute_python" else "failed",
            ))
            run.emit({"type": "tool", **result, "replayed": result_replayed})
        messages.append(ModelRequest(parts=returns))
        run.emit({"type": "checkpoint", "step": step, "task_id": run.task_id, "snapshot": snapshot,
                  "database": _where(run.runtime)})
    finished = finish_step(run, snapshot, spec["output_dir"])
    run.took()
    result = {
        "task_id": run.task_id,
        "status": status,
        "answer": answer,
        "steps": step,
        "artifacts": finished["artifacts"],
        "output_dir": spec["output_dir"],
        "snapshot": snapshot,
    }
    run.emit({"type": "done", **result})
    return result


# --- steps: each returns plain JSON -------------------------------------------


@DBOS.step(name=PREPARE_STEP)
def prepare_step(run: TaskRun) -> dict[str, Any]:
    """Fix the system prompt from what the task has (mounts, docs, skills, limits)."""
    run.ran = True
    return {"system_prompt": run.agent.system_prompt(run.spec, run.file_system())}


def _transient(error: BaseException) -> bool:
    return isinstance(error, _TRANSIENT)


@DBOS.step(name=MODEL_STEP, retries_allowed=True, max_attempts=3, interval_seconds=2.0, backoff_rate=3.0,
           should_retry=_transient)
def model_step(run: TaskRun, step: int, messages: list[ModelMessage]) -> dict[str, Any]:
    """One model call: the conversation so far in, the model's response out."""
    run.ran = True
    return {"step": step, **call_model(run.model, messages)}


@DBOS.step(name=TOOL_STEP)
def tool_step(run: TaskRun, step: int, call: dict[str, Any], snapshot: str | None) -> dict[str, Any]:
    """One tool call, in the sandbox restored to `snapshot` if it is fresh; files snapshotted after."""
    run.ran = True
    restored = False

    def sandbox() -> tuple[Any, bool]:
        nonlocal restored
        live, just_restored = run.session.get(snapshot)
        restored = restored or just_restored
        return live, just_restored

    def on_output(stream: str, text: str) -> None:
        run.emit({"type": "output", "step": step, "stream": stream, "text": text})

    context = ToolContext(
        sandbox=sandbox,
        model=run.describe_model,
        library=run.library,
        on_output=on_output,
        cell_timeout=run.agent.cell_timeout,
    )
    result = run_tool(call["tool"], call["args"], context)
    if result.changed_files:
        snapshot = run.session.snapshot()
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
    }


@DBOS.step(name=FINISH_STEP)
def finish_step(run: TaskRun, snapshot: str | None, output_dir: str) -> dict[str, Any]:
    """Copy the files the task left in /output to the output folder."""
    run.ran = True
    if snapshot is None and not run.session.started:
        return {"artifacts": []}
    live, _ = run.session.get(snapshot)
    os.makedirs(output_dir, exist_ok=True)
    return {"artifacts": [str(p) for p in live.collect_output(output_dir)]}


# --- helpers --------------------------------------------------------------------


def call_model(model: Model, messages: list[ModelMessage]) -> dict[str, Any]:
    """Ask `model` for the next turn, offering the tools; the response as plain JSON, and why it stopped."""
    from pydantic_ai.direct import model_request_sync

    response = model_request_sync(model, messages, model_request_parameters=PARAMETERS)
    return {
        "stop_reason": stop_reason(response),
        "response": ModelMessagesTypeAdapter.dump_python([response], mode="json")[0],
    }


def stop_reason(response: ModelResponse) -> str:
    """Why the model stopped, in the words of the seed's printout (tool_use, end_turn, max_tokens, ...)."""
    if any(isinstance(p, ToolCallPart) for p in response.parts):
        return "tool_use"
    return {None: "end_turn", "stop": "end_turn", "length": "max_tokens", "content_filter": "refusal"}.get(
        response.finish_reason, str(response.finish_reason)
    )


def load_response(data: dict[str, Any]) -> ModelResponse:
    message = ModelMessagesTypeAdapter.validate_python([data])[0]
    assert isinstance(message, ModelResponse)
    return message


def response_text(response: ModelResponse) -> str:
    return "".join(p.content for p in response.parts if isinstance(p, TextPart)).strip()


def _call(part: ToolCallPart) -> dict[str, Any]:
    try:
        args = part.args_as_dict()
    except ValueError:
        # Malformed JSON from the model: the tool answers with what it needs.
        args = {"unparsed_arguments": str(part.args)}
    return {"tool": part.tool_name, "args": args, "call_id": part.tool_call_id}


def _where(rt: runtime.Runtime) -> str:
    if rt.is_sqlite:
        return rt.database_url.removeprefix("sqlite:///")
    from sqlalchemy import make_url

    return make_url(rt.database_url).render_as_string(hide_password=True)
