"""What one task runs with, and how it ended."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic_ai.models import Model
from pydantic_ai.settings import ModelSettings

from . import events
from .library import Library
from .prompts import TaskLimits, system_prompt

if TYPE_CHECKING:
    from throwaway.fs import FileSystem
    from throwaway.mcp import Toolbox
    from throwaway.sandbox import Sandbox


MAX_RECORDED_CALLS = 100  # MCP calls kept in one tool step's record; more are counted


@dataclass
class Task:
    """Everything one execution of the loop needs: built afresh each time a task
    runs, resumed ones included, from what the task recorded.

    `fs` is this task's own file system (never shared with another task);
    `model` takes the turns, `describe_model` answers `describe`.
    """

    task_id: str
    prompt: str
    model: Model
    describe_model: Model
    fs: FileSystem
    library: Library
    max_steps: int
    cell_timeout: float
    output_dir: str
    model_label: str = ""
    instructions: str | None = None
    text_tool_calls: bool = False  # read tool calls the model writes as text (see `textcalls`)
    max_tokens: int | None = None  # the most tokens one model reply may have
    model_timeout: float | None = None  # seconds one model call may take
    mcp: Sequence[Any] = ()  # MCP servers and Toolsets (throwaway.mcp): the guest imports them as servers.<name>
    mcp_calls: list[dict[str, Any]] = field(default_factory=list)  # the calls made on them, for the steps' records
    mcp_calls_omitted: int = 0  # calls past MAX_RECORDED_CALLS in one step, counted only
    _toolbox: Toolbox | None = field(default=None, init=False, repr=False)

    def model_settings(self) -> ModelSettings:
        """The bounds sent with every model call of this task."""
        settings = ModelSettings()
        if self.max_tokens:
            settings["max_tokens"] = self.max_tokens
        if self.model_timeout:
            # request_timeout: pydantic-ai's deadline for the whole call, which fails
            # the step with a clear error; timeout: the HTTP client's per attempt,
            # a little longer, so the first deadline to pass is the clear one.
            settings["request_timeout"] = self.model_timeout
            settings["timeout"] = self.model_timeout + 5
        return settings

    def system_prompt(self) -> str:
        """The system prompt, from what this task really has (mounts, docs, skills, packages, limits)."""
        from .packages import probe

        limits = TaskLimits(max_steps=self.max_steps, cell_timeout=self.cell_timeout)
        box = self.toolbox()
        mounts = list(self.fs.mounts)
        if box is not None:
            from throwaway.mcp.toolbox import servers_mount

            mounts.append(servers_mount())
        return system_prompt(mounts, self.library, limits, extra=self.instructions,
                             packages=probe().prompt(), host_modules=box.prompt_lines() if box else ())

    def sandbox(self) -> Sandbox:
        """A new (not yet started) sandbox on this task's file system (and its MCP servers)."""
        from throwaway.sandbox import Sandbox

        box = self.toolbox()
        return Sandbox(fs=self.fs, timeout=self.cell_timeout, extensions=[box] if box else ())

    def toolbox(self) -> Toolbox | None:
        """The task's MCP servers and toolsets as one `Toolbox` (None: it has none)."""
        if not self.mcp:
            return None
        if self._toolbox is None:
            from throwaway.mcp import Toolbox

            self._toolbox = Toolbox(list(self.mcp), on_call=self._mcp_call)
        return self._toolbox

    def _mcp_call(self, record: dict[str, Any]) -> None:
        """Keep a call for its tool step's record (arguments clipped: it goes into a checkpoint)."""
        if len(self.mcp_calls) >= MAX_RECORDED_CALLS:
            self.mcp_calls_omitted += 1
            return
        args = json.dumps(record.get("arguments"), ensure_ascii=False, default=str)
        if len(args) > 1000:
            record = {**record, "arguments": args[:1000] + "..."}
        self.mcp_calls.append(record)

    def take_mcp_calls(self) -> dict[str, Any]:
        """The MCP calls made since the last take, for a tool step's record ({} if none)."""
        calls, omitted = self.mcp_calls[:], self.mcp_calls_omitted
        self.mcp_calls.clear()
        self.mcp_calls_omitted = 0
        out: dict[str, Any] = {"mcp_calls": calls} if calls else {}
        if omitted:
            out["mcp_calls_omitted"] = omitted
        return out

    def emit(self, event: events.Event) -> None:
        """Report progress to whoever listens to this task, or to every task."""
        events.emit(self.task_id, event)
        events.emit("*", {**event, "task_id": self.task_id})


@dataclass
class TaskResult:
    """How a task ended: its answer and the files it left in the output folder."""

    task_id: str
    status: str  # "done"; "max_steps" when it ran out of steps; "failed" when the model gave no usable reply
    answer: str
    steps: int
    artifacts: list[Path] = field(default_factory=list)
    output_dir: Path | None = None
    reason: str = ""  # why a task that is not "done" ended

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskResult:
        return cls(
            task_id=data["task_id"],
            status=data["status"],
            answer=data.get("answer", ""),
            steps=data.get("steps", 0),
            artifacts=[Path(p) for p in data.get("artifacts", [])],
            output_dir=Path(data["output_dir"]) if data.get("output_dir") else None,
            reason=data.get("reason", ""),
        )
