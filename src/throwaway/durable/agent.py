"""`Agent`: what its tasks run with (file system, model, docs, skills, limits), and running them durably."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import uuid
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic_ai.models import Model

from throwaway.agent import events
from throwaway.agent.library import DOCS_GUEST, SKILLS_GUEST, Library
from throwaway.agent.models import configured_model_name, resolve_model
from throwaway.agent.task import Task, TaskResult
from throwaway.fs import FileSystem, MountSpec

from .locks import TaskLock

if TYPE_CHECKING:
    from .queue import TaskHandle

DEFAULT_MAX_STEPS = 20
DEFAULT_CELL_TIMEOUT = 30.0
DEFAULT_MAX_TOKENS = 4096  # the most tokens one model reply may have
DEFAULT_MODEL_TIMEOUT = 300.0  # seconds one model call may take: a small local model takes 30-90 s a step


_agents: dict[str, Agent] = {}


class Agent:
    """An agent that solves tasks by writing throwaway Python, durably.

    >>> agent = Agent(model="anthropic:claude-sonnet-5-5")
    >>> @agent.fs.file("/network/current-ip", description="this machine's public IP")
    ... def current_ip() -> str: ...
    >>> result = agent.run("Make me a picture of my IP address")

    Each task is durable: a process that dies mid-task resumes it with
    `resume` (or ``throwaway resume ID``) at the step where it stopped. A task
    records the agent's `name`; whatever process resumes it must define an
    agent of that name first, as it must define the same DBOS workflows.

    `fs` is the guest's file system (a `FileSystem`, or a function returning a
    new one for each task); `docs` and `skills` are host folders mounted
    read-only at /docs and /skills; `model` is a model name (see
    `throwaway.agent.models`) or a pydantic-ai `Model`; `describe_model`
    answers `describe` (default: `model`); `instructions` are appended to the
    system prompt.

    Every model call is bounded: `max_tokens` per reply, `model_timeout`
    seconds per call. `text_tool_calls` reads tool calls that a model writes as
    text (as small local models do) and runs them as real calls; None (the
    default) turns it on for ``openai-compatible:`` models only.

    `mcp` lists MCP servers and host toolsets (`throwaway.mcp.MCPServer`,
    `Toolset`) every task's code can import as ``servers.<name>``; a task
    adds its own with ``mcp=["time=python -m mcp_server_time", ...]``. The
    system prompt names each server with its tools; each call is in its tool
    step's record. A resumed task that re-runs an interrupted step calls the
    tools again (steps run at least once).
    """

    def __init__(
        self,
        name: str = "default",
        *,
        fs: FileSystem | Callable[[], FileSystem] | None = None,
        model: str | Model | None = None,
        describe_model: str | Model | None = None,
        docs: str | os.PathLike[str] | None = None,
        skills: str | os.PathLike[str] | None = None,
        max_steps: int = DEFAULT_MAX_STEPS,
        cell_timeout: float = DEFAULT_CELL_TIMEOUT,
        instructions: str | None = None,
        text_tool_calls: bool | None = None,
        max_tokens: int | None = DEFAULT_MAX_TOKENS,
        model_timeout: float | None = DEFAULT_MODEL_TIMEOUT,
        mcp: Sequence[Any] = (),
    ) -> None:
        self.name = name
        self.mcp = list(mcp)
        self._fs = fs
        self.model = model
        self.describe_model = describe_model
        self.docs = str(docs) if docs else None
        self.skills = str(skills) if skills else None
        self.max_steps = max_steps
        self.cell_timeout = cell_timeout
        self.instructions = instructions
        self.text_tool_calls = text_tool_calls
        self.max_tokens = max_tokens
        self.model_timeout = model_timeout
        # Resuming a task looks its agent up by name; the newest definition wins.
        _agents[name] = self

    def __repr__(self) -> str:
        return f"<Agent {self.name!r}>"

    @property
    def fs(self) -> FileSystem:
        """The guest file system tasks start from; decorate it to add resources."""
        if self._fs is None:
            self._fs = FileSystem()
        if not isinstance(self._fs, FileSystem):
            raise TypeError("this agent makes a file system per task; decorate the one its factory returns")
        return self._fs

    # --- running tasks -----------------------------------------------------

    def task_spec(
        self,
        prompt: str,
        *,
        model: str | None = None,
        mounts: Iterable[MountSpec | str] = (),
        output_dir: str | os.PathLike[str] = "output",
        max_steps: int | None = None,
        docs: str | os.PathLike[str] | None = None,
        skills: str | os.PathLike[str] | None = None,
        app: str | None = None,
        text_tool_calls: bool | None = None,
        max_tokens: int | None = None,
        model_timeout: float | None = None,
        mcp: Iterable[str] = (),
    ) -> dict[str, Any]:
        """A task's spec: its prompt and every option, as plain JSON recorded with the task,
        so resuming it (anywhere) needs only its id.

        `text_tool_calls`, `max_tokens` and `model_timeout` override the agent's
        own for this task; `mcp` adds MCP servers as ``NAME=COMMAND`` or
        ``NAME=URL`` (see `throwaway.mcp.MCPServer.parse`). Raises `ModelNotConfigured` if no model is usable, so
        a task fails with instructions before it starts. `app`
        (``module:attribute``) says where this agent is defined, so a process
        that resumes it (``throwaway resume``, a worker) can import it.
        """
        # The model is recorded by name, with environment defaults resolved now,
        # so a resumed task uses the model it started with. None: the agent's
        # own Model object.
        model_name = configured_model_name(model or self.model) if model or not isinstance(self.model, Model) else None
        spec = {
            "agent": self.name,
            "app": app,
            "prompt": prompt,
            "model": model_name,
            "mounts": [vars(m if isinstance(m, MountSpec) else MountSpec.parse(m)) for m in mounts],
            "output_dir": str(Path(output_dir).expanduser().resolve()),
            "max_steps": max_steps or self.max_steps,
            "docs": str(Path(docs).resolve()) if docs else self.docs,
            "skills": str(Path(skills).resolve()) if skills else self.skills,
            "text_tool_calls": self.reads_text_tool_calls(model_name, text_tool_calls),
            "max_tokens": max_tokens or self.max_tokens,
            "model_timeout": model_timeout or self.model_timeout,
            "mcp": [_check_mcp(text) for text in mcp],
        }
        # Resolve now, to fail with instructions rather than inside the task.
        spec["model_label"] = model_name or self.model_for(spec).model_name
        if model_name:
            self.model_for(spec)
        return spec

    def run(self, prompt: str, *, task_id: str | None = None, on_event: events.Listener | None = None,
            **options: Any) -> TaskResult:
        """Run a task here, to its end, and return its result.

        The task's id (`task_id`, or a new one) is its DBOS workflow id;
        `options` are those of `task_spec`. `on_event` receives the task's
        progress events (see `throwaway.agent.events`).
        """
        from dbos import SetWorkflowID

        from . import backend
        from .workflow import task_workflow

        spec = self.task_spec(prompt, **options)
        current = backend.current()
        task_id = task_id or new_task_id()
        with ExitStack() as stack:
            if on_event:
                stack.enter_context(events.listen(task_id, on_event))
            # Held from before DBOS records the task: from its first moment it reads as running here.
            stack.enter_context(TaskLock(current.lock_path(task_id)))
            with SetWorkflowID(task_id):
                return TaskResult.from_dict(task_workflow(spec))

    def submit(self, prompt: str, *, task_id: str | None = None, queue: str | None = None,
               **options: Any) -> TaskHandle:
        """Put a task on the queue for a worker (``throwaway worker``) and return at once.

        `options` are those of `task_spec`. Starts no executor here: this
        process never runs tasks it did not ask to run.
        """
        from .queue import submit

        return submit(self.task_spec(prompt, **options), task_id=task_id or new_task_id(), queue=queue)

    def resume(self, task_id: str, *, on_event: events.Listener | None = None) -> TaskResult:
        """Bring an interrupted task back and run it to its end (see `throwaway.durable.tasks.resume`)."""
        from . import tasks

        return tasks.resume(task_id, on_event=on_event)

    # --- what a task runs with -----------------------------------------------

    def reads_text_tool_calls(self, model_name: str | None, override: bool | None = None) -> bool:
        """Whether a task on `model_name` reads tool calls written as text: `override`, else the
        agent's setting, else yes for ``openai-compatible:`` models."""
        for choice in (override, self.text_tool_calls):
            if choice is not None:
                return choice
        return (model_name or "").startswith("openai-compatible:")

    def model_for(self, spec: dict[str, Any]) -> Model:
        """The model a task uses: the one it recorded by name, else this agent's."""
        if spec.get("model"):
            return resolve_model(spec["model"])
        return resolve_model(self.model)

    def describe_model_for(self, spec: dict[str, Any]) -> Model:
        if self.describe_model is not None:
            return resolve_model(self.describe_model)
        return self.model_for(spec)

    def library(self, spec: dict[str, Any]) -> Library:
        return Library(spec.get("docs") or self.docs, spec.get("skills") or self.skills)

    def file_system(self, spec: dict[str, Any]) -> FileSystem:
        """The guest file system for one task: its own copy of the agent's, plus the task's mounts, docs and skills.

        Never the agent's own table: a task's mounts must not show up in
        another task of the same agent.
        """
        fs = self._fs() if callable(self._fs) and not isinstance(self._fs, FileSystem) else self.fs.copy()
        present = {m.path for m in fs.mounts}
        wanted = [(m["guest"], m["host"], m["writable"], f"host folder {m['host']}") for m in spec.get("mounts", [])]
        library = self.library(spec)
        if library.docs_dir:
            wanted.append((DOCS_GUEST, str(library.docs_dir), False, "help text; search it with help(query)"))
        if library.skills_dir:
            wanted.append((SKILLS_GUEST, str(library.skills_dir), False, "skills: folders with a SKILL.md each"))
        for guest, host, writable, description in wanted:
            if guest not in present:
                fs.mount_host(guest, host, writable=writable, description=description)
        return fs

    def task(self, task_id: str, spec: dict[str, Any]) -> Task:
        """What one execution of a task runs with, from the spec it recorded."""
        return Task(
            task_id=task_id,
            prompt=spec["prompt"],
            model=self.model_for(spec),
            describe_model=self.describe_model_for(spec),
            fs=self.file_system(spec),
            library=self.library(spec),
            max_steps=spec.get("max_steps") or self.max_steps,
            cell_timeout=self.cell_timeout,
            output_dir=spec["output_dir"],
            model_label=spec.get("model") or spec.get("model_label") or "",
            instructions=self.instructions,
            text_tool_calls=bool(spec.get("text_tool_calls", self.reads_text_tool_calls(spec.get("model")))),
            max_tokens=spec.get("max_tokens", self.max_tokens),
            model_timeout=spec.get("model_timeout", self.model_timeout),
            mcp=self.mcp_for(spec),
        )

    def mcp_for(self, spec: dict[str, Any]) -> list[Any]:
        """The MCP servers a task's code can import: the agent's, then the task's own."""
        from throwaway.mcp import MCPServer

        return [*self.mcp, *(MCPServer.parse(text) for text in spec.get("mcp") or [])]


def _check_mcp(text: str) -> str:
    from throwaway.mcp import MCPServer

    MCPServer.parse(text)  # a ValueError that says what is expected
    return text


def new_task_id() -> str:
    """A fresh task id: short enough to type, random enough never to collide."""
    return uuid.uuid4().hex[:12]


def agent_for(spec: dict[str, Any]) -> Agent:
    """The agent a task was started with, importing its ``app`` if this process lacks it."""
    name = spec.get("agent", "default")
    if name not in _agents and spec.get("app"):
        load_app(spec["app"])
    if name not in _agents and name == "default":
        Agent()
    if name not in _agents:
        raise LookupError(
            f"this task was started by agent {name!r}, which this process does not define; "
            "resume it from the program that defines it, or with --app MODULE:ATTRIBUTE"
        )
    return _agents[name]


def load_app(app: str) -> Agent:
    """Import ``module:attribute`` (or ``path/to/file.py:attribute``) and return the `Agent` it names."""
    module_name, _, attribute = app.partition(":")
    if module_name.endswith(".py"):
        path = Path(module_name).resolve()
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {module_name}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(module_name)
    found = getattr(module, attribute or "agent", None)
    if not isinstance(found, Agent):
        raise TypeError(f"{app!r} does not name an Agent")
    return found


def registered_agents() -> Sequence[Agent]:
    return list(_agents.values())
