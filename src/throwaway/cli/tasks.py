"""The agent's commands: `throwaway run`, `tasks`, `show`, `resume`."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from .terminal import plain

MODEL_HELP = ("Model as provider:model, e.g. anthropic:claude-sonnet-5-5, openai:gpt-5, "
              "openai-compatible:llama3.1@http://localhost:11434/v1 [env: THROWAWAY_MODEL].")


@contextmanager
def _durable(launch: bool = True, task_id: str | None = None, debug: bool = False) -> Iterator[None]:
    """Start DBOS for one command (unless it only reads) and turn known failures into clean messages.

    A command that only reads tasks never launches DBOS: a launched process
    is an executor that could pick up queued work. DBOS is not shut down
    after: every write a command waits for is committed by then, and a
    graceful shutdown spends a second joining idle threads that the
    process's exit ends anyway.
    """
    from throwaway.agent.models import ModelFailed, ModelNotConfigured
    from throwaway.durable import TaskBusy, TaskNotFound, backend
    from throwaway.durable.records import UnreadableDatabase

    if not debug:
        _quiet_retries()
    try:
        if launch:
            backend.current()
        yield
    except (ModelNotConfigured, TaskNotFound, TaskBusy, LookupError, UnreadableDatabase) as e:
        # args[0], not str(e): a KeyError's str() is wrapped in quotes.
        raise click.ClickException(str(e.args[0]) if e.args else str(e)) from None
    except (click.ClickException, click.exceptions.Exit, click.Abort):
        raise
    except Exception as e:
        # A task that failed (its model unreachable, or a step that raised) is
        # one line with how to carry on; the traceback only with --debug.
        if debug or task_id is None:
            raise
        what = str(e) if isinstance(e, ModelFailed) else f"{type(e).__name__}: {e}"
        raise click.ClickException(plain(
            f"{_one_line(what)}. Task {task_id} stopped there and is kept; carry on with: throwaway resume {task_id}"
            + ("" if isinstance(e, ModelFailed) else " (add --debug to see the traceback)"))) from None


def _quiet_retries() -> None:
    """DBOS logs each retry of a step (a model call) with the error's whole traceback: make that one line."""
    dbos_logger = logging.getLogger("dbos")
    if not any(isinstance(f, _OneLineRetries) for f in dbos_logger.filters):
        dbos_logger.addFilter(_OneLineRetries())


class _OneLineRetries(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.getMessage().startswith("Step being automatically retried"):
            error = record.exc_info[1]
            record.msg, record.args = f"{record.getMessage()} after {type(error).__name__}: {error}", ()
            record.exc_info = record.exc_text = None
        return True


def _one_line(text: str, limit: int = 500) -> str:
    text = " ".join(text.split()).rstrip(".")
    return text if len(text) <= limit else text[: limit - 3] + "..."


DEBUG_HELP = "If the task fails, print the whole traceback, not one line."


# The options of a new task, shared by `run` and `submit`.
TASK_OPTIONS = [
    click.option("--model", "-m", help=MODEL_HELP),
    click.option("--mount", "mounts", multiple=True, metavar="HOST:GUEST[:rw]",
                 help="Mount a host folder into the sandbox, read-only unless :rw. Repeatable."),
    click.option("--output", "-o", "output_dir", default="output", show_default=True,
                 type=click.Path(file_okay=False), help="Where the files the task leaves in /output are copied."),
    click.option("--max-steps", type=click.IntRange(min=1), help="Most model turns the task may take [default: 20]."),
    click.option("--docs", type=click.Path(exists=True, file_okay=False), help="Folder of help text, mounted at /docs."),
    click.option("--skills", type=click.Path(exists=True, file_okay=False),
                 help="Folder of skills (each a folder with SKILL.md), mounted at /skills."),
    click.option("--app", metavar="MODULE:ATTR", help="Run with an Agent defined in Python (its file system, tools)."),
    click.option("--id", "task_id", metavar="ID", help="The task's id (default: a new random one)."),
    click.option("--text-tool-calls/--no-text-tool-calls", default=None,
                 help="Run tool calls the model writes as text (JSON, tags, a python block) "
                      "[default: on for openai-compatible: models]."),
    click.option("--max-tokens", type=click.IntRange(min=1), help="Most tokens one model reply may have [default: 4096]."),
    click.option("--model-timeout", type=click.FloatRange(min=1), metavar="SECONDS",
                 help="Longest one model call may take [default: 300]."),
    click.option("--mcp", "mcp", multiple=True, metavar="NAME=COMMAND|URL", callback=lambda c, p, v: mcp_specs(v),
                 help="An MCP server the task's code can import as servers.NAME: a command the host starts "
                      "('time=python -m mcp_server_time') or a streamable-HTTP URL. Repeatable."),
]


def mcp_specs(texts: tuple[str, ...]) -> tuple[str, ...]:
    """Check `--mcp` values (NAME=COMMAND or NAME=URL); a bad one is a usage error that says why."""
    from throwaway.mcp import MCPServer

    for text in texts:
        try:
            MCPServer.parse(text)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--mcp") from None
    return texts


def task_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give `command` the options of a new task (`TASK_OPTIONS`)."""
    for option in reversed(TASK_OPTIONS):
        command = option(command)
    return command


@click.command()
@click.argument("prompt")
@task_options
@click.option("--debug", is_flag=True, help=DEBUG_HELP)
def run(prompt: str, task_id: str | None, app: str | None, mounts: tuple[str, ...], debug: bool,
        **options: Any) -> None:
    """Run an agent on PROMPT: it writes and runs Python until it has an answer.

    Every step is checkpointed: if the process dies, `throwaway resume ID`
    carries on from the step where it stopped.
    """
    from throwaway.durable import Agent, load_app, new_task_id

    from .display import Printer

    from .mounts import parse_mounts  # here, not above: it loads the file system, which `tasks` never needs

    parsed = parse_mounts(mounts)
    task_id = task_id or new_task_id()
    with _durable(task_id=task_id, debug=debug):
        agent = load_app(app) if app else Agent()
        try:
            result = agent.run(prompt, task_id=task_id, mounts=parsed, on_event=Printer(), app=app, **options)
        except KeyboardInterrupt:
            click.echo(f"\nInterrupted. Carry on with: throwaway resume {task_id}", err=True)
            sys.exit(130)
    sys.exit(0 if result.status == "done" else 3)


@click.command()
@click.argument("prompt")
@task_options
@click.option("--queue", "-q", default="throwaway-tasks", show_default=True, help="The queue workers take it from.")
@click.option("--wait", is_flag=True, help="Follow the task to its end, printing its steps as `run` does.")
def submit(prompt: str, task_id: str | None, app: str | None, mounts: tuple[str, ...], queue: str, wait: bool,
           **options: Any) -> None:
    """Put a task on the queue for a worker (`throwaway worker`, on any machine) and print its id at once."""
    from throwaway.durable import Agent, load_app

    from .mounts import parse_mounts  # here, not above: it loads the file system, which `tasks` never needs

    parsed = parse_mounts(mounts)
    with _durable(launch=False):
        agent = load_app(app) if app else Agent()
        handle = agent.submit(prompt, task_id=task_id, queue=queue, mounts=parsed, app=app, **options)
    click.echo(handle.task_id)
    if wait:
        sys.exit(_follow(handle.task_id))


def _follow(task_id: str, poll: float = 0.5) -> int:
    """Print a task's steps as its checkpoints appear, until it ends; the exit code for its end."""
    from throwaway.durable import get_task
    from throwaway.durable.tasks import replay

    from .display import Printer

    printer, shown = Printer(), 0
    with _durable(launch=False):
        while True:
            task = get_task(task_id)
            ended = task.status not in ("queued", "running", "interrupted")
            recorded = replay(task)
            if not ended and recorded and recorded[-1]["type"] == "checkpoint":
                recorded = recorded[:-1]  # printed once the step's model turn after it is in
            for event in recorded[shown:]:
                printer(event)
            shown = max(shown, len(recorded))
            if ended:
                if task.error:
                    click.echo(plain(f"Error: {task.error}"), err=True)
                return 0 if task.status == "done" else 3
            time.sleep(poll)


@click.command()
@click.option("--limit", "-n", default=20, show_default=True, help="How many tasks to list, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print the tasks as JSON.")
def tasks(limit: int, as_json: bool) -> None:
    """List tasks, newest first, with their status."""
    from throwaway.durable import list_tasks

    with _durable(launch=False):
        found = list_tasks(limit)
    if as_json:
        click.echo(json.dumps([_task_json(t) for t in found], indent=2, default=str))
        return
    if not found:
        click.echo("No tasks yet. Start one with: throwaway run \"...\"")
        return
    click.echo(f"{'ID':<14}{'STATUS':<13}{'STEPS':>5}  {'CREATED':<17}PROMPT")
    for t in found:
        steps = (t.output or {}).get("steps", "")
        created = t.created_at.strftime("%Y-%m-%d %H:%M") if t.created_at else ""
        prompt = " ".join(plain(t.prompt).split())  # whoever submitted it, it cannot drive this terminal
        prompt = prompt if len(prompt) <= 60 else prompt[:57] + "..."
        click.echo(f"{t.task_id:<14}{click.style(f'{t.status:<13}', fg=_COLORS.get(t.status))}"
                   f"{steps!s:>5}  {created:<17}{prompt}{_where(t)}")


@click.command()
@click.argument("task_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print the task and its checkpoints as JSON.")
def show(task_id: str, as_json: bool) -> None:
    """Show a task: its steps as they ran, read back from their checkpoints."""
    from throwaway.durable import checkpoints, get_task
    from throwaway.durable.tasks import replay

    from .display import Printer

    with _durable(launch=False):
        task = get_task(task_id)
        if as_json:
            data = _task_json(task)
            data["checkpoints"] = checkpoints(task.task_id)
            click.echo(json.dumps(data, indent=2, default=str))
            return
        recorded = replay(task)
    printer = Printer()
    for event in recorded:
        printer(event)
    click.echo()
    click.echo(f"Status: {click.style(task.status, fg=_COLORS.get(task.status))}")
    if task.error:
        click.echo(plain(f"Error: {task.error}"))
    if (task.output or {}).get("reason"):
        click.echo(f"Reason: {task.output['reason']}")
    if task.status == "running":
        click.echo(f"Running on {task.worker}." if task.worker else f"Running in process {task.pid}.")
    if task.status == "queued":
        click.echo(f"Queued: position {task.position} on queue {task.queue}.")
    if task.status in ("interrupted", "failed", "cancelled") and task.output is None:
        click.echo(f"Carry on with: throwaway resume {task.task_id}")


@click.command()
@click.argument("task_id", metavar="ID")
@click.option("--force", is_flag=True, help="Resume even if a live process seems to be running the task.")
@click.option("--debug", is_flag=True, help=DEBUG_HELP)
def resume(task_id: str, force: bool, debug: bool) -> None:
    """Carry on with an interrupted or failed task from the step where it stopped."""
    from throwaway.durable import get_task
    from throwaway.durable import resume as resume_task

    from .display import Printer

    with _durable(task_id=task_id, debug=debug):
        task = get_task(task_id)
        if task.output is not None:  # done, max_steps, or failed for want of a usable reply
            click.echo(f"Task {task.task_id} already finished ({task.status}); see: throwaway show {task.task_id}")
            return
        if task.status == "failed":
            click.echo(plain(f"Task {task.task_id} failed ({task.error}); carrying on from the failed step as a new task."))
        result = resume_task(task.task_id, on_event=Printer(), force=force)
    sys.exit(0 if result.status == "done" else 3)


_COLORS = {"done": "green", "running": "cyan", "interrupted": "yellow", "failed": "red", "max_steps": "yellow",
           "cancelled": "red", "queued": "cyan"}


def _where(t: Any) -> str:
    """Who holds a running task, or where a queued one waits, for the task list."""
    if t.status == "running" and t.worker:
        return f"  [{t.worker}]"
    if t.status == "queued" and t.position:
        return f"  [#{t.position} on {t.queue}]"
    return ""


def _task_json(t: Any) -> dict[str, Any]:
    return {
        "task_id": t.task_id, "status": t.status, "prompt": t.prompt, "model": t.model,
        "created_at": t.created_at, "updated_at": t.updated_at, "spec": t.spec, "result": t.output,
        "error": t.error, "pid": t.pid, "forked_from": t.forked_from, "worker": t.worker, "queue": t.queue,
        "position": t.position,
    }


COMMANDS = [run, submit, tasks, show, resume]
