"""The agent's commands: `throwaway run`, `tasks`, `show`, `resume`."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

MODEL_HELP = ("Model as provider:model, e.g. anthropic:claude-sonnet-5-5, openai:gpt-5, "
              "openai-compatible:llama3.1@http://localhost:11434/v1 [env: THROWAWAY_MODEL].")


@contextmanager
def _durable() -> Iterator[None]:
    """Start DBOS for one command and turn known failures into clean messages.

    DBOS is not shut down after: every write a command waits for is committed
    by then, and a graceful shutdown spends a second joining idle threads that
    the process's exit ends anyway.
    """
    from throwaway.agent.models import ModelNotConfigured
    from throwaway.durable import TaskBusy, TaskNotFound, backend

    try:
        backend.current()
        yield
    except (ModelNotConfigured, TaskNotFound, TaskBusy, LookupError) as e:
        # args[0], not str(e): a KeyError's str() is wrapped in quotes.
        raise click.ClickException(str(e.args[0]) if e.args else str(e)) from None


@click.command()
@click.argument("prompt")
@click.option("--model", "-m", help=MODEL_HELP)
@click.option("--mount", "mounts", multiple=True, metavar="HOST:GUEST[:rw]",
              help="Mount a host folder into the sandbox, read-only unless :rw. Repeatable.")
@click.option("--output", "-o", "output_dir", default="output", show_default=True,
              type=click.Path(file_okay=False), help="Where the files the task leaves in /output are copied.")
@click.option("--max-steps", type=click.IntRange(min=1), help="Most model turns the task may take [default: 20].")
@click.option("--docs", type=click.Path(exists=True, file_okay=False), help="Folder of help text, mounted at /docs.")
@click.option("--skills", type=click.Path(exists=True, file_okay=False),
              help="Folder of skills (each a folder with SKILL.md), mounted at /skills.")
@click.option("--app", metavar="MODULE:ATTR", help="Run with an Agent defined in Python (its file system, tools).")
@click.option("--id", "task_id", metavar="ID", help="The task's id (default: a new random one).")
@click.option("--text-tool-calls/--no-text-tool-calls", default=None,
              help="Run tool calls the model writes as text (JSON, tags, a python block) "
                   "[default: on for openai-compatible: models].")
@click.option("--max-tokens", type=click.IntRange(min=1), help="Most tokens one model reply may have [default: 4096].")
@click.option("--model-timeout", type=click.FloatRange(min=1), metavar="SECONDS",
              help="Longest one model call may take [default: 300].")
def run(prompt: str, model: str | None, mounts: tuple[str, ...], output_dir: str, max_steps: int | None,
        docs: str | None, skills: str | None, app: str | None, task_id: str | None,
        text_tool_calls: bool | None, max_tokens: int | None, model_timeout: float | None) -> None:
    """Run an agent on PROMPT: it writes and runs Python until it has an answer.

    Every step is checkpointed: if the process dies, `throwaway resume ID`
    carries on from the step where it stopped.
    """
    from throwaway.durable import Agent, load_app, new_task_id
    from throwaway.fs import MountSpec

    from .display import Printer

    try:
        parsed = [MountSpec.parse(m) for m in mounts]
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--mount") from None
    task_id = task_id or new_task_id()
    with _durable():
        agent = load_app(app) if app else Agent()
        try:
            result = agent.run(prompt, task_id=task_id, model=model, mounts=parsed, output_dir=output_dir,
                               max_steps=max_steps, docs=docs, skills=skills, on_event=Printer(), app=app,
                               text_tool_calls=text_tool_calls, max_tokens=max_tokens, model_timeout=model_timeout)
        except KeyboardInterrupt:
            click.echo(f"\nInterrupted. Carry on with: throwaway resume {task_id}", err=True)
            sys.exit(130)
    sys.exit(0 if result.status == "done" else 3)


@click.command()
@click.option("--limit", "-n", default=20, show_default=True, help="How many tasks to list, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print the tasks as JSON.")
def tasks(limit: int, as_json: bool) -> None:
    """List tasks, newest first, with their status."""
    from throwaway.durable import list_tasks

    with _durable():
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
        prompt = " ".join(t.prompt.split())
        prompt = prompt if len(prompt) <= 60 else prompt[:57] + "..."
        click.echo(f"{t.task_id:<14}{click.style(f'{t.status:<13}', fg=_COLORS.get(t.status))}"
                   f"{steps!s:>5}  {created:<17}{prompt}")


@click.command()
@click.argument("task_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print the task and its checkpoints as JSON.")
def show(task_id: str, as_json: bool) -> None:
    """Show a task: its steps as they ran, read back from their checkpoints."""
    from throwaway.durable import checkpoints, get_task
    from throwaway.durable.tasks import replay

    from .display import Printer

    with _durable():
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
        click.echo(f"Error: {task.error}")
    if (task.output or {}).get("reason"):
        click.echo(f"Reason: {task.output['reason']}")
    if task.status == "running":
        click.echo(f"Running in process {task.pid}.")
    if task.status in ("interrupted", "failed", "cancelled") and task.output is None:
        click.echo(f"Carry on with: throwaway resume {task.task_id}")


@click.command()
@click.argument("task_id", metavar="ID")
@click.option("--force", is_flag=True, help="Resume even if a live process seems to be running the task.")
def resume(task_id: str, force: bool) -> None:
    """Carry on with an interrupted or failed task from the step where it stopped."""
    from throwaway.durable import get_task
    from throwaway.durable import resume as resume_task

    from .display import Printer

    with _durable():
        task = get_task(task_id)
        if task.output is not None:  # done, max_steps, or failed for want of a usable reply
            click.echo(f"Task {task.task_id} already finished ({task.status}); see: throwaway show {task.task_id}")
            return
        if task.status == "failed":
            click.echo(f"Task {task.task_id} failed ({task.error}); carrying on from the failed step as a new task.")
        result = resume_task(task.task_id, on_event=Printer(), force=force)
    sys.exit(0 if result.status == "done" else 3)


_COLORS = {"done": "green", "running": "cyan", "interrupted": "yellow", "failed": "red", "max_steps": "yellow",
           "cancelled": "red", "queued": "cyan"}


def _task_json(t: Any) -> dict[str, Any]:
    return {
        "task_id": t.task_id, "status": t.status, "prompt": t.prompt, "model": t.model,
        "created_at": t.created_at, "updated_at": t.updated_at, "spec": t.spec, "result": t.output,
        "error": t.error, "pid": t.pid, "forked_from": t.forked_from,
    }


COMMANDS = [run, tasks, show, resume]
