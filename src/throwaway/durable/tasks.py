"""Tasks as the system database records them: listing, inspecting, resuming, cancelling.

Reading tasks starts no DBOS executor, nor even imports DBOS or SQLAlchemy:
it reads DBOS's tables with plain queries (`records`), so `throwaway tasks`
and `show` never pick up queued work and stay one short process. Nor does it
load the agent loop or pydantic-ai (imported where a task is resumed).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from throwaway.agent import events

from . import backend, records
from .locks import holder
from .names import FINISH_STEP, MODEL_STEP, PREPARE_STEP, TOOL_STEP, WORKFLOW_NAME

if TYPE_CHECKING:
    from throwaway.agent.task import TaskResult


class TaskNotFound(LookupError):
    """No task has this id."""


class TaskBusy(RuntimeError):
    """Another live process is running the task."""


class TaskFailed(RuntimeError):
    """A task ended in error or was cancelled; the message says which, and why."""


@dataclass
class TaskInfo:
    """One task, as `throwaway tasks` and `throwaway show` present it.

    `status` is one of: done, max_steps (ran out of steps), running (a live
    process on this machine, or a live worker, holds it: `pid`, `worker`),
    interrupted (pending, but its process is gone: resume it), queued (waiting
    for a worker; `position` on its `queue`, 1 = next), failed (a step raised: `error`; or the model gave
    no usable reply: the output's ``reason``), cancelled.
    """

    task_id: str
    status: str
    prompt: str
    model: str | None
    created_at: datetime | None
    updated_at: datetime | None
    spec: dict[str, Any]
    output: dict[str, Any] | None
    error: str | None
    pid: int | None
    forked_from: str | None = None
    worker: str | None = None
    queue: str | None = None
    position: int | None = None


def _status(wf: Any, pid: int | None, worker: str | None) -> str:
    status = wf.status
    if status == "SUCCESS":
        return (wf.output if isinstance(wf.output, dict) else {}).get("status", "done")
    if status == "PENDING":
        return "running" if pid or worker else "interrupted"
    if status in ("ENQUEUED", "DELAYED"):
        return "queued"
    if status == "CANCELLED":
        return "cancelled"
    return "failed"  # ERROR, MAX_RECOVERY_ATTEMPTS_EXCEEDED


def _info(wf: records.Workflow, workers: dict[str, records.WorkerInfo], positions: dict[str, int]) -> TaskInfo:
    data_dir, _ = backend.configured()
    # A spec that could not be read back (not JSON: DBOS logged why) is left out, never unpickled.
    args = (wf.input if isinstance(wf.input, dict) else {}).get("args") or [{}]
    spec = args[0] if args and isinstance(args[0], dict) else {}
    pid = holder(backend.lock_path(data_dir, wf.workflow_id)) if wf.status == "PENDING" else None
    held_by = workers.get(wf.executor_id) if wf.status == "PENDING" else None
    worker = held_by.describe() if held_by else None
    return TaskInfo(
        task_id=wf.workflow_id,
        status=_status(wf, pid, worker),
        prompt=spec.get("prompt", ""),
        model=spec.get("model") or spec.get("model_label"),
        created_at=_time(wf.created_at),
        updated_at=_time(wf.updated_at),
        spec=spec,
        output=wf.output if isinstance(wf.output, dict) else None,
        error=f"{type(wf.error).__name__}: {wf.error}" if wf.error is not None else None,
        pid=pid,
        forked_from=wf.forked_from,
        worker=worker,
        queue=wf.queue_name,
        position=positions.get(wf.workflow_id),
    )


def _time(ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000) if ms else None


def _tables() -> records.Tables:
    return records.tables(backend.configured()[1])


def _infos(found: list[records.Workflow]) -> list[TaskInfo]:
    workers = _tables().live_workers(records.LEASE_SECONDS) if any(wf.status == "PENDING" for wf in found) else {}
    positions: dict[str, int] = {}
    if any(wf.status == "ENQUEUED" for wf in found):
        per_queue: dict[str | None, int] = {}
        for workflow_id, queue in _tables().queued(WORKFLOW_NAME):
            per_queue[queue] = positions[workflow_id] = per_queue.get(queue, 0) + 1
    return [_info(wf, workers, positions) for wf in found]


def list_tasks(limit: int = 50) -> list[TaskInfo]:
    """The newest tasks first."""
    return _infos(_tables().latest(WORKFLOW_NAME, limit))


def _workflow(task_id: str) -> records.Workflow:
    """The task's row, by its id or a unique prefix of it."""
    found = _tables().by_id(WORKFLOW_NAME, task_id)
    if found is not None:
        return found
    matches = _tables().by_prefix(WORKFLOW_NAME, task_id, limit=2)
    if len(matches) > 1:
        raise TaskNotFound(f"{task_id!r} matches more than one task; give more of its id")
    if not matches:
        raise TaskNotFound(f"no task {task_id!r}")
    return matches[0]


def get_task(task_id: str) -> TaskInfo:
    """The task with this id (or a unique prefix of it)."""
    return _infos([_workflow(task_id)])[0]


def cancel(task_id: str) -> TaskInfo:
    """Cancel a queued or running task: a queued one never starts, a running one stops at its next step."""
    task = get_task(task_id)
    if task.status in ("done", "max_steps", "failed", "cancelled"):
        raise TaskBusy(f"task {task.task_id} already ended ({task.status}); nothing to cancel")
    from .queue import client

    client().cancel_workflow(task.task_id)
    return get_task(task.task_id)


def checkpoints(task_id: str) -> list[dict[str, Any]]:
    """The task's finished steps, oldest first: name, output (plain JSON), error, timing."""
    return [
        {
            "id": s.function_id,
            "name": s.function_name,
            "output": s.output,
            "error": f"{type(s.error).__name__}: {s.error}" if s.error is not None else None,
            "started_at": _time(s.started_at_epoch_ms),
            "completed_at": _time(s.completed_at_epoch_ms),
        }
        for s in _tables().steps(task_id)
    ]


def replay(task: TaskInfo) -> list[events.Event]:
    """The events the task emitted, rebuilt from its checkpoints (for `throwaway show`)."""
    where = backend.where(backend.configured()[1])
    out: list[events.Event] = [{"type": "task", "task_id": task.task_id, "prompt": task.prompt,
                                "model": task.model, "resumed": False}]
    pending_checkpoint: dict[str, Any] | None = None
    unanswered: dict[str, Any] | None = None  # a model step with no tool call that the loop did not accept
    for cp in checkpoints(task.task_id):
        if cp["error"]:
            out.append({"type": "error", "step_name": cp["name"], "error": cp["error"]})
            continue
        data = cp["output"] or {}
        if cp["name"] == MODEL_STEP:
            if pending_checkpoint:
                out.append(pending_checkpoint)
                pending_checkpoint = None
            if unanswered:
                # Another model step after one without tool calls: the loop sent a corrective message.
                out.append({"type": "correction", "step": unanswered["step"]})
            text, calls = reply(data["response"])
            out.append({"type": "model", "step": data["step"], "stop_reason": data["stop_reason"],
                        "text": text, "tool_calls": calls, "replayed": False,
                        "usage": data.get("usage"), "seconds": data.get("seconds"),
                        "text_calls": data.get("text_calls")})
            unanswered = None if calls else data
        elif cp["name"] == TOOL_STEP:
            out.append({"type": "tool", **data, "replayed": False})
            pending_checkpoint = {"type": "checkpoint", "step": data["step"], "task_id": task.task_id,
                                  "snapshot": data.get("snapshot"), "database": where}
        elif cp["name"] in (PREPARE_STEP, FINISH_STEP):
            continue
    if pending_checkpoint:
        out.append(pending_checkpoint)
    if task.output:
        out.append({"type": "done", **task.output})
    return out


# pydantic-ai's name for tool arguments that are not a JSON object (`ToolCallPart.args_as_dict`).
INVALID_JSON_KEY = "INVALID_JSON"


def reply(response: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """A checkpointed model response's text and tool calls, as `agent.steps.response_text` and
    `tool_calls` read them from the pydantic-ai message, but from its JSON: `throwaway show`
    does not load pydantic-ai (about 0.7 s of a process's start)."""
    text, calls = [], []
    for part in response.get("parts") or []:
        if not isinstance(part, dict):
            continue
        if part.get("part_kind") == "text":
            text.append(str(part.get("content", "")))
        elif part.get("part_kind") == "tool-call":
            calls.append({"tool": part.get("tool_name"), "args": _args(part.get("args")),
                          "call_id": part.get("tool_call_id")})
    return "".join(text).strip(), calls


def _args(args: Any) -> dict[str, Any]:
    # As `ToolCallPart.args_as_dict()`: {} for none, a dict as it is, else JSON that must hold an object.
    if not args:
        return {}
    if isinstance(args, dict):
        return args
    try:
        value = json.loads(args)
    except (TypeError, ValueError):
        value = None
    return value if isinstance(value, dict) else {INVALID_JSON_KEY: args}


RESULT_POLL = 0.05  # seconds between looks for a resumed task's result


def resume(task_id: str, *, on_event: events.Listener | None = None, force: bool = False) -> TaskResult:
    """Run an unfinished task to its end, from the step where it stopped.

    A task that was interrupted (its process died) or cancelled carries on
    under its own id: finished steps replay from their checkpoints and the
    interrupted step runs again. A failed task (a step raised) carries on as a
    new task forked from the failed step, with the steps before it copied. A
    finished task is returned as it is.
    """
    from dbos import DBOS

    from throwaway.agent.task import TaskResult

    from .agent import agent_for

    task = get_task(task_id)
    if task.output is not None:  # it ran to its end: done, max_steps, or failed for want of an answer
        return TaskResult.from_dict(task.output)
    if task.pid and task.pid != os.getpid() and not force:
        raise TaskBusy(f"task {task.task_id} is running in process {task.pid}")
    if task.worker and not force:
        raise TaskBusy(f"task {task.task_id} is running on {task.worker}; it carries on there "
                       "(or elsewhere, if that worker dies)")
    # On DBOS's internal queue, a task is being recovered: another resume
    # (a moment ago) put it there, and whichever process dequeues it runs it.
    recovering = task.status == "queued" and task.queue == _internal_queue()
    if task.status == "queued" and not recovering and not force:
        raise TaskBusy(f"task {task.task_id} is queued (position {task.position} on {task.queue}); "
                       "a worker will run it")
    backend.current()
    agent_for(task.spec)  # fails now if this process cannot define the task's agent
    target = {"id": task.task_id}

    def relay(event: events.Event) -> None:
        if on_event and event.get("task_id") == target["id"]:
            on_event(event)

    # Listening to every task: a forked task's id is known only once DBOS made it.
    with events.listen("*", relay):
        if task.status == "failed":
            handle = DBOS.fork_workflow(task.task_id, _failed_step(task.task_id))
            target["id"] = handle.workflow_id
        elif task.status == "interrupted":
            handle = _recover(task.task_id)
        elif recovering:
            handle = DBOS.retrieve_workflow(task.task_id)
        else:
            handle = DBOS.resume_workflow(task.task_id)
        # DBOS looks for the result once a second by default: up to a second
        # lost after the last step. A look is one indexed read.
        return TaskResult.from_dict(handle.get_result(polling_interval_sec=RESULT_POLL))


def _internal_queue() -> str:
    from dbos._utils import INTERNAL_QUEUE_NAME

    return INTERNAL_QUEUE_NAME


def _recover(task_id: str) -> Any:
    """Put an interrupted task back on its queue, once, and return a handle to it.

    DBOS's recovery moves a task only while the executor that died still owns
    it; whichever executor dequeues it next becomes its owner, so of two
    resumes at the same moment only the first moves it, and it runs once.
    (`DBOS.resume_workflow` would move a running task too.)
    """
    from dbos import DBOS
    from dbos._dbos import _get_dbos_instance
    from dbos._utils import INTERNAL_QUEUE_NAME

    _get_dbos_instance()._sys_db.reenqueue_for_recovery(task_id, [_workflow(task_id).executor_id],
                                                        INTERNAL_QUEUE_NAME)
    return DBOS.retrieve_workflow(task_id)


def _failed_step(task_id: str) -> int:
    """The step to fork a failed task from: the one that raised, else the one after the last."""
    steps = checkpoints(task_id)
    for cp in steps:
        if cp["error"]:
            return cp["id"]
    return (steps[-1]["id"] + 1) if steps else 0
