"""A task as a DBOS workflow: the agent loop, with each model call and tool call a step.

The workflow's input is the task's spec (plain JSON: prompt, model name,
mounts, limits); its id is the task id. It runs `throwaway.agent.loop.run_loop`
with `DurableSteps`, whose every call is a DBOS step returning plain JSON: the
model step the response, the tool step what the model sees plus the hash of
the file-system snapshot taken after it. On recovery DBOS replays finished
steps from their checkpoints, so the conversation is rebuilt without calling
the model again, and re-runs only the step that was interrupted; a tool step
that starts in a fresh sandbox first restores the snapshot it starts from.
"""

from __future__ import annotations

from typing import Any

from dbos import DBOS
from dbos._error import DBOSMaxStepRetriesExceeded  # not exported by the package
from pydantic_ai.exceptions import (
    ModelAPIError,
    ModelConnectionError,
    ModelRateLimitError,
    ModelServerError,
    ModelUnavailableError,
    UnexpectedModelBehavior,
)
from pydantic_ai.messages import ModelMessage

from throwaway.agent import steps as bodies
from throwaway.agent.loop import run_loop
from throwaway.agent.models import model_failure
from throwaway.agent.task import Task
from throwaway.agent.workspace import Workspace

from . import backend, drain
from .locks import TaskLock
from .names import FINISH_STEP, MODEL_STEP, PREPARE_STEP, TOOL_STEP, WORKFLOW_NAME  # noqa: F401 - also read from here
from .serialization import RecordedError

# Not a timeout: a call that ran past the task's model timeout is most likely a
# runaway reply, and asking twice more would triple the wait; the step fails
# with the reason and the task can be resumed.
_TRANSIENT = (ModelConnectionError, ModelRateLimitError, ModelServerError, ModelUnavailableError)


class DurableSteps:
    """The loop's steps as DBOS steps, for one execution of a task in this process.

    Holds what cannot be checkpointed (the task with its model client, the
    live sandbox, the task's lock) and is rebuilt from the spec on every
    execution, including a resumed one.
    """

    def __init__(self, task: Task, lock: TaskLock) -> None:
        self.task = task
        self.backend = backend.current()
        self.where = self.backend.where
        self.workspace = Workspace(task.sandbox, self.backend.blobs)
        self.lock = lock
        # DBOS runs a step's body only when it has no checkpoint; the body sets
        # this, so the loop can tell a replayed step from one that ran.
        self.ran = False

    def _replayed(self, out: dict[str, Any]) -> dict[str, Any]:
        replayed, self.ran = not self.ran, False
        return {**out, "replayed": replayed}

    def prepare(self) -> dict[str, Any]:
        with drain.step():
            return self._replayed(prepare_step(self))

    def model(self, step: int, messages: list[ModelMessage]) -> dict[str, Any]:
        with drain.step():
            try:
                return self._replayed(model_step(self, step, messages))
            except (DBOSMaxStepRetriesExceeded, ModelAPIError, UnexpectedModelBehavior, RecordedError) as e:
                # One line that names the model and its URL, not DBOS's "exceeded its maximum of 3 retries".
                errors = getattr(e, "errors", None) or [e]
                raise model_failure(self.task.model, self.task.model_label, errors[-1], len(errors)) from e

    def tool(self, step: int, call: dict[str, Any], snapshot: str | None) -> dict[str, Any]:
        with drain.step():
            return self._replayed(tool_step(self, step, call, snapshot))

    def finish(self, snapshot: str | None) -> dict[str, Any]:
        with drain.step():
            return self._replayed(finish_step(self, snapshot))

    def close(self) -> None:
        try:
            self.workspace.close()
        finally:
            self.lock.release()


@DBOS.workflow(name=WORKFLOW_NAME)
def task_workflow(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one task: model and tool steps until the model answers or the steps run out."""
    from .agent import agent_for

    # First, so the task reads as running while its agent is built. Best
    # effort: if another process holds the lock it is running this task too,
    # and DBOS's ownership check will stop whichever of us is stale.
    lock = TaskLock(backend.current().lock_path(DBOS.workflow_id))
    lock.acquire()
    try:
        task = agent_for(spec).task(DBOS.workflow_id, spec)
        steps = DurableSteps(task, lock)
    except BaseException:
        lock.release()
        raise
    try:
        return run_loop(task, steps)
    except Exception as e:
        task.emit({"type": "error", "task_id": task.task_id, "error": f"{type(e).__name__}: {e}"[:500]})
        raise
    finally:
        steps.close()


# --- steps: each returns plain JSON -------------------------------------------


@DBOS.step(name=PREPARE_STEP)
def prepare_step(steps: DurableSteps) -> dict[str, Any]:
    """Fix the system prompt from what the task has (mounts, docs, skills, limits)."""
    steps.ran = True
    return {"system_prompt": steps.task.system_prompt()}


def _transient(error: BaseException) -> bool:
    return isinstance(error, _TRANSIENT)


@DBOS.step(name=MODEL_STEP, retries_allowed=True, max_attempts=3, interval_seconds=2.0, backoff_rate=3.0,
           should_retry=_transient)
def model_step(steps: DurableSteps, step: int, messages: list[ModelMessage]) -> dict[str, Any]:
    """One model call: the conversation so far in, the model's response out."""
    steps.ran = True
    task = steps.task
    turn = bodies.call_model(task.model, messages, task.model_settings(), text_tool_calls=task.text_tool_calls,
                             step=step)
    return {"step": step, **turn}


@DBOS.step(name=TOOL_STEP)
def tool_step(steps: DurableSteps, step: int, call: dict[str, Any], snapshot: str | None) -> dict[str, Any]:
    """One tool call, in the sandbox restored to `snapshot` if it is fresh; files snapshotted after."""
    steps.ran = True
    return bodies.call_tool(steps.task, steps.workspace, step, call, snapshot)


@DBOS.step(name=FINISH_STEP)
def finish_step(steps: DurableSteps, snapshot: str | None) -> dict[str, Any]:
    """Copy the files the task left in /output to the output folder."""
    steps.ran = True
    return bodies.collect_output(steps.workspace, snapshot, steps.task.output_dir)
