"""A task's steps for the page, rebuilt from its checkpoints.

Each step of the loop is one model call (its text, the tool calls it made,
tokens, time) followed by the tool calls it asked for (code, output, value or
error, files written, the snapshot taken after). The checkpoints hold all of
it as plain JSON; a step still running has a model call without results yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from throwaway.agent.steps import load_response, response_text, tool_calls
from throwaway.durable.workflow import FINISH_STEP, MODEL_STEP, PREPARE_STEP, TOOL_STEP


@dataclass
class ToolRun:
    """One tool call and, once it ran, its result."""

    tool: str
    args: dict[str, Any]
    call_id: str
    done: bool = False
    ok: bool = True
    content: Any = None
    files: list[str] = field(default_factory=list)
    snapshot: str | None = None
    restored: bool = False
    seconds: float | None = None

    @property
    def code(self) -> str | None:
        """The Python it ran, for execute_python."""
        code = self.args.get("code") if isinstance(self.args, dict) else None
        return code if isinstance(code, str) else None

    @property
    def other_args(self) -> dict[str, Any]:
        return {k: v for k, v in (self.args or {}).items() if not (k == "code" and self.code is not None)}

    @property
    def result(self) -> dict[str, Any]:
        """execute_python's answer (stdout, stderr, value, error, ...), or {"text": ...} for other tools."""
        if isinstance(self.content, dict):
            return self.content
        return {"text": "" if self.content is None else str(self.content)}


@dataclass
class Step:
    """One turn of the loop: the model's answer and the tool calls it made."""

    number: int
    checkpoint_id: int  # the model call's DBOS step id: forking from here runs this step again
    text: str = ""
    stop_reason: str = ""
    calls: list[ToolRun] = field(default_factory=list)
    input_tokens: int | None = None
    output_tokens: int | None = None
    seconds: float | None = None
    errors: list[str] = field(default_factory=list)
    snapshot: str | None = None  # the guest's files after this step

    @property
    def running(self) -> bool:
        return any(not c.done for c in self.calls)

    @property
    def tool_seconds(self) -> float | None:
        times = [c.seconds for c in self.calls if c.seconds is not None]
        return sum(times) if times else None


@dataclass
class Timeline:
    steps: list[Step]
    errors: list[str]  # failures outside any step (preparing, finishing)
    checkpoint_count: int

    @property
    def last_snapshot(self) -> str | None:
        for step in reversed(self.steps):
            if step.snapshot:
                return step.snapshot
        return None


def _seconds(cp: dict[str, Any]) -> float | None:
    start, end = cp.get("started_at"), cp.get("completed_at")
    if isinstance(start, datetime) and isinstance(end, datetime):
        return max((end - start).total_seconds(), 0.0)
    return None


def build(checkpoints: list[dict[str, Any]]) -> Timeline:
    """The steps of a task from `throwaway.durable.checkpoints(task_id)`, oldest first."""
    steps: list[Step] = []
    errors: list[str] = []
    snapshot: str | None = None
    for cp in checkpoints:
        data = cp.get("output") if isinstance(cp.get("output"), dict) else {}
        current = steps[-1] if steps else None
        if cp.get("error"):
            (current.errors if current and cp["name"] in (MODEL_STEP, TOOL_STEP) else errors).append(
                f"{cp['name']}: {cp['error']}")
            continue
        if cp["name"] == MODEL_STEP:
            step = Step(number=int(data.get("step", len(steps) + 1)), checkpoint_id=cp["id"],
                        stop_reason=str(data.get("stop_reason", "")), seconds=_seconds(cp), snapshot=snapshot)
            try:
                response = load_response(data["response"])
            except (KeyError, ValueError, TypeError) as e:
                step.errors.append(f"the checkpointed response cannot be read: {e}")
            else:
                step.text = response_text(response)
                step.calls = [ToolRun(tool=c["tool"], args=c["args"], call_id=c["call_id"])
                              for c in tool_calls(response)]
                usage = getattr(response, "usage", None)
                step.input_tokens = getattr(usage, "input_tokens", None)
                step.output_tokens = getattr(usage, "output_tokens", None)
            steps.append(step)
        elif cp["name"] == TOOL_STEP and current is not None:
            run = next((c for c in current.calls if c.call_id == data.get("call_id") and not c.done), None)
            if run is None:
                run = ToolRun(tool=str(data.get("tool", "")), args=data.get("args") or {},
                              call_id=str(data.get("call_id", "")))
                current.calls.append(run)
            run.done = True
            run.ok = bool(data.get("ok"))
            run.content = data.get("content")
            run.files = [f for f in data.get("files") or [] if isinstance(f, str)]
            run.snapshot = data.get("snapshot")
            run.restored = bool(data.get("restored"))
            run.seconds = _seconds(cp)
            if run.snapshot:
                snapshot = current.snapshot = run.snapshot
        elif cp["name"] in (PREPARE_STEP, FINISH_STEP):
            continue
    return Timeline(steps=steps, errors=errors, checkpoint_count=len(checkpoints))


def snapshots_by_step(checkpoints: list[dict[str, Any]]) -> dict[int, str]:
    """Step number -> the snapshot taken after that step's last tool call that changed files.

    Reads only the tool checkpoints (no model responses to parse): what the
    file routes need, cheaply.
    """
    found: dict[int, str] = {}
    for cp in checkpoints:
        data = cp.get("output")
        if cp.get("name") == TOOL_STEP and not cp.get("error") and isinstance(data, dict):
            step, snapshot = data.get("step"), data.get("snapshot")
            if isinstance(step, int) and isinstance(snapshot, str):
                found[step] = snapshot
    return found


def snapshot_after(snapshots: dict[int, str], step: int) -> str | None:
    """The guest's files as they were after `step`: the latest snapshot at or before it."""
    earlier = [n for n in snapshots if n <= step]
    return snapshots[max(earlier)] if earlier else None
