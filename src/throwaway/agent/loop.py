"""The agent loop, as the seed tells it: ask the model, run the tools it
called, feed the results back, and stop at the answer or the step limit.

The loop reaches the model and the tools only through `Steps`. `LocalSteps`
runs them here and now, with no database; the durable layer
(`throwaway.durable.workflow`) supplies steps that checkpoint each call as a
DBOS step and snapshot the guest's files, so a task that dies resumes where
it stopped, with its files.
"""

from __future__ import annotations

from typing import Any, Protocol

from pydantic_ai.messages import ModelMessage, ModelRequest, ToolReturnPart, UserPromptPart

from . import steps as bodies
from . import textcalls
from .task import Task
from .tools import TOOL_NAMES
from .workspace import Workspace


class Steps(Protocol):
    """How the loop calls the model and the tools.

    Each call returns plain JSON plus ``replayed``: True when the answer came
    from a checkpoint rather than from running the step now.
    """

    where: str  # where the steps are kept, for the step log

    def prepare(self) -> dict[str, Any]: ...  # system_prompt, replayed
    def model(self, step: int, messages: list[ModelMessage]) -> dict[str, Any]: ...
    def tool(self, step: int, call: dict[str, Any], snapshot: str | None) -> dict[str, Any]: ...
    def finish(self, snapshot: str | None) -> dict[str, Any]: ...  # artifacts


def run_loop(task: Task, steps: Steps) -> dict[str, Any]:
    """Run `task` to its end through `steps`; the result as plain JSON (see `TaskResult`)."""
    prepared = steps.prepare()
    task.emit({"type": "task", "task_id": task.task_id, "prompt": task.prompt, "model": task.model_label,
               "resumed": prepared["replayed"]})
    messages: list[ModelMessage] = [
        ModelRequest(parts=[UserPromptPart(task.prompt)], instructions=prepared["system_prompt"])
    ]
    snapshot: str | None = None
    answer, status, reason, step = "", "max_steps", "", 0
    corrections = 0  # corrective messages sent since the last tool call
    for step in range(1, task.max_steps + 1):
        # Ask the model.
        task.emit({"type": "thinking", "step": step})
        turn = steps.model(step, messages)
        response = bodies.load_response(turn["response"])
        messages.append(response)
        calls = bodies.tool_calls(response)
        text = bodies.response_text(response)
        task.emit({"type": "model", "step": step, "stop_reason": turn["stop_reason"], "text": text,
                   "tool_calls": calls, "replayed": turn["replayed"], "usage": turn.get("usage"),
                   "seconds": turn.get("seconds"), "text_calls": turn.get("text_calls")})
        if text:
            answer = text  # the final answer, or the latest words if the steps run out
        if not calls:
            # No false "done": a reply that is no answer gets a corrective message, a few times.
            problem = unusable_reply(text, turn["stop_reason"])
            if problem is None:
                status = "done"
                break
            if corrections >= MAX_CORRECTIONS:
                status, reason = "failed", f"{problem} ({corrections + 1} times in a row)"
                break
            corrections += 1
            correction = CUT_OFF_CORRECTION if turn["stop_reason"] == "max_tokens" else CORRECTION
            messages.append(ModelRequest(parts=[UserPromptPart(correction)]))
            task.emit({"type": "correction", "step": step, "problem": problem, "message": correction})
            continue
        corrections = 0
        # Run the tools it called, and feed the results back.
        returns = []
        for call in calls:
            result = steps.tool(step, call, snapshot)
            snapshot = result["snapshot"]
            returns.append(ToolReturnPart(
                tool_name=result["tool"], content=result["content"], tool_call_id=result["call_id"],
                outcome="success" if result["ok"] or result["tool"] == "execute_python" else "failed",
            ))
            task.emit({"type": "tool", **result})
        messages.append(ModelRequest(parts=returns))
        task.emit({"type": "checkpoint", "step": step, "task_id": task.task_id, "snapshot": snapshot,
                   "database": steps.where})
    finished = steps.finish(snapshot)
    result = {
        "task_id": task.task_id,
        "status": status,
        "answer": answer,
        "steps": step,
        "artifacts": finished["artifacts"],
        "output_dir": task.output_dir,
        "snapshot": snapshot,
    }
    if reason:
        result["reason"] = reason
    task.emit({"type": "done", **result})
    return result


MAX_CORRECTIONS = 2
CORRECTION = ("Your last reply was not a usable answer and no tool was run. Call the tool (execute_python, "
              "describe or help) through the tool-calling interface, or answer in plain words.")
CUT_OFF_CORRECTION = ("Your last reply was cut off at the token limit and no tool was run. Call one tool with "
                      "shorter code, or answer in plain words, briefly.")


def unusable_reply(text: str, stop_reason: str) -> str | None:
    """Why a reply without tool calls cannot be the task's answer, or None if it can."""
    if stop_reason == "max_tokens":
        return "the reply was cut off at the token limit (max_tokens)"
    if not text:
        return "the model gave an empty reply"
    if textcalls.looks_like_call(text, TOOL_NAMES):
        return "the reply looks like a tool call written as text that could not be read"
    return None


class LocalSteps:
    """Steps run directly in this process: nothing is checkpointed, nothing survives a crash.

    For the loop's own tests and for anyone who wants no database. Give
    `blobs` (a `BlobStore`) to snapshot the guest's files after each tool call.
    """

    where = "memory"

    def __init__(self, task: Task, blobs: Any = None) -> None:
        self.task = task
        self.workspace = Workspace(task.sandbox, blobs)

    def prepare(self) -> dict[str, Any]:
        return {"system_prompt": self.task.system_prompt(), "replayed": False}

    def model(self, step: int, messages: list[ModelMessage]) -> dict[str, Any]:
        turn = bodies.call_model(self.task.model, messages, self.task.model_settings(),
                                 text_tool_calls=self.task.text_tool_calls, step=step)
        return {"step": step, **turn, "replayed": False}

    def tool(self, step: int, call: dict[str, Any], snapshot: str | None) -> dict[str, Any]:
        return {**bodies.call_tool(self.task, self.workspace, step, call, snapshot), "replayed": False}

    def finish(self, snapshot: str | None) -> dict[str, Any]:
        return bodies.collect_output(self.workspace, snapshot, self.task.output_dir)

    def close(self) -> None:
        self.workspace.close()


def run_local(task: Task) -> dict[str, Any]:
    """Run `task` in this process with `LocalSteps`, closing its sandbox after."""
    steps = LocalSteps(task)
    try:
        return run_loop(task, steps)
    finally:
        steps.close()
