"""What the page can do to tasks: start, resume, cancel, fork; each recorded so the page can show it.

Starting and resuming run a task to its end, so they run in a background
thread of the server; cancelling and forking only write to the database (a
fork then runs on DBOS's queue in this process). Each action is kept in
memory with its state, for the task page to show as it runs.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from dbos import DBOS

from throwaway.durable import Agent, TaskInfo, new_task_id
from throwaway.durable import resume as resume_task
from throwaway.fs import MountSpec

_ids = itertools.count(1)


@dataclass
class Action:
    """One thing someone asked the page to do to a task."""

    kind: str  # start, resume, cancel, fork
    task_id: str
    id: int = field(default_factory=lambda: next(_ids))
    started: datetime = field(default_factory=datetime.now)
    state: str = "running"  # running, done, failed
    message: str = ""
    new_task_id: str | None = None  # a fork's (or a resumed failed task's) new task


class Actions:
    """Runs and remembers the actions of one server.

    `agent` starts new tasks; `mounts` is the allow-list of host folders a
    started task may mount; `output_dir` is where tasks' /output files go.
    """

    def __init__(self, agent: Agent | None = None, mounts: Sequence[MountSpec] = (),
                 output_dir: str | Path = "output") -> None:
        self.agent = agent
        self.mounts = list(mounts)
        self.output_dir = Path(output_dir)
        self._lock = threading.Lock()
        self._actions: list[Action] = []

    # --- what the pages read ----------------------------------------------------

    def for_task(self, task_id: str) -> list[Action]:
        """The actions on task `task_id` (or that made it), newest first."""
        with self._lock:
            return [a for a in reversed(self._actions) if task_id in (a.task_id, a.new_task_id)]

    def active(self, task_id: str) -> bool:
        """Whether an action of this server is still running task `task_id`."""
        return any(a.state == "running" for a in self.for_task(task_id))

    def _record(self, action: Action) -> Action:
        with self._lock:
            self._actions.append(action)
            del self._actions[:-500]
        return action

    def _in_background(self, action: Action, work: Callable[[], Any]) -> Action:
        def run() -> None:
            try:
                result = work()
            except BaseException as e:  # noqa: BLE001 - the page shows why it failed
                action.state, action.message = "failed", f"{type(e).__name__}: {e}"
            else:
                status = getattr(result, "status", "done")
                action.state = "done"
                action.message = f"finished: {status}"

        threading.Thread(target=run, name=f"throwaway-ui-{action.kind}-{action.task_id}", daemon=True).start()
        return action

    # --- the actions ------------------------------------------------------------

    def start(self, prompt: str, model: str | None, mounts: Sequence[int]) -> Action:
        """Start a new task with the server's agent; `mounts` are indexes into the allow-list."""
        if self.agent is None:
            self.agent = Agent()
        chosen = [self.mounts[i] for i in mounts]
        agent, task_id = self.agent, new_task_id()
        action = self._record(Action("start", task_id, message=f"starting with {len(chosen)} mount(s)"))
        return self._in_background(action, lambda: agent.run(
            prompt, task_id=task_id, model=model or None, mounts=chosen, output_dir=self.output_dir))

    def resume(self, task: TaskInfo) -> Action:
        """Carry on with an interrupted, cancelled or failed task (a failed one as a new, forked task)."""
        action = self._record(Action("resume", task.task_id, message="resuming"))

        def on_event(event: dict[str, Any]) -> None:
            if event.get("task_id") not in (None, task.task_id):
                action.new_task_id = event["task_id"]

        return self._in_background(action, lambda: resume_task(task.task_id, on_event=on_event))

    def cancel(self, task: TaskInfo) -> Action:
        """Cancel a running or queued task: it stops at its next step."""
        action = self._record(Action("cancel", task.task_id))
        try:
            DBOS.cancel_workflow(task.task_id)
        except Exception as e:  # noqa: BLE001
            action.state, action.message = "failed", f"{type(e).__name__}: {e}"
        else:
            action.state, action.message = "done", "cancelled: the task stops at its next step"
        return action

    def fork(self, task: TaskInfo, checkpoint_id: int, step: int) -> Action:
        """A new task that copies `task`'s checkpoints before `checkpoint_id` and runs on from there."""
        action = self._record(Action("fork", task.task_id))
        try:
            handle = DBOS.fork_workflow(task.task_id, checkpoint_id)
        except Exception as e:  # noqa: BLE001
            action.state, action.message = "failed", f"{type(e).__name__}: {e}"
        else:
            action.new_task_id = handle.workflow_id
            action.state, action.message = "done", f"forked from step {step} as a new task"
        return action
